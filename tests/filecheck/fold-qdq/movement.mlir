// RUN: ember-opt %s -p fold-qdq | filecheck %s

// quantize(op(dequantize(q))) with the same per-tensor scale and zero point on both sides is
// op(q) for ops that only move elements (the quantizer's Q/DQ pairs around a BERT's reshapes
// and transposes): the reshape and transpose below run on the int8 data, and no Q/DQ
// arithmetic is left around them. A quantize of another scale is left as it was.
builtin.module {
  func.func @main(%q: tensor<2x3x4xi8>) -> (tensor<4x6xi8>, tensor<6x4xi8>) {
    %s = nn.constant dense<2.500000e-01> : tensor<f32>
    %t = nn.constant dense<5.000000e-01> : tensor<f32>
    %z = nn.constant dense<0> : tensor<i8>
    %d0 = nn.dequantize %q, %s, %z {axis = 1 : i64} : (tensor<2x3x4xi8>, tensor<f32>, tensor<i8>) -> tensor<2x3x4xf32>
    %r = nn.reshape %d0 : (tensor<2x3x4xf32>) -> tensor<6x4xf32>
    %q1 = nn.quantize %r, %s, %z {axis = 1 : i64} : (tensor<6x4xf32>, tensor<f32>, tensor<i8>) -> tensor<6x4xi8>
    %d1 = nn.dequantize %q1, %s, %z {axis = 1 : i64} : (tensor<6x4xi8>, tensor<f32>, tensor<i8>) -> tensor<6x4xf32>
    %tr = nn.transpose %d1 {perm = array<i64: 1, 0>} : tensor<6x4xf32> -> tensor<4x6xf32>
    %q2 = nn.quantize %tr, %s, %z {axis = 1 : i64} : (tensor<4x6xf32>, tensor<f32>, tensor<i8>) -> tensor<4x6xi8>
    %q3 = nn.quantize %d1, %t, %z {axis = 1 : i64} : (tensor<6x4xf32>, tensor<f32>, tensor<i8>) -> tensor<6x4xi8>
    func.return %q2, %q3 : tensor<4x6xi8>, tensor<6x4xi8>
  }
}

// CHECK:      %[[R:.*]] = nn.reshape %q : (tensor<2x3x4xi8>) -> tensor<6x4xi8>
// CHECK-NEXT: %[[D:.*]] = nn.cast %[[R]] {ember.qdq_math, to = f32}
// CHECK:      %[[T:.*]] = nn.transpose %[[R]] {perm = array<i64: 1, 0>} : tensor<6x4xi8> -> tensor<4x6xi8>
// CHECK:      nn.binary "div" {{.*}} {ember.qdq_math}
// CHECK:      %[[Q3:.*]] = nn.cast {{.*}} {ember.qdq_math, to = i8} : tensor<6x4xf32> -> tensor<6x4xi8>
// CHECK-NEXT: func.return %[[T]], %[[Q3]]
