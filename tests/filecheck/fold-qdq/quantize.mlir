// RUN: ember-opt %s -p fold-qdq | filecheck %s

// Per-tensor quantize / dequantize with constant scale and zero point become float32
// arithmetic (so they fuse with their neighbours): quantize(x) = cast(clip(round(x / s) + zp,
// -128, 127)), dequantize(q) = (cast(q) - zp) * s. A per-channel (1-D) scale stays an op.
builtin.module {
  func.func @main(%x: tensor<2x4xf32>, %q: tensor<2x4xi8>) -> (tensor<2x4xi8>, tensor<2x4xf32>, tensor<2x4xi8>) {
    %z = nn.constant dense<3> : tensor<i8>
    %s = nn.constant dense<2.500000e-01> : tensor<f32>
    %y = nn.quantize %x, %s, %z {axis = 1 : i64} : (tensor<2x4xf32>, tensor<f32>, tensor<i8>) -> tensor<2x4xi8>
    %d = nn.dequantize %q, %s, %z {axis = 1 : i64} : (tensor<2x4xi8>, tensor<f32>, tensor<i8>) -> tensor<2x4xf32>
    %sc = nn.constant dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]> : tensor<4xf32>
    %p = nn.quantize %x, %sc {axis = 1 : i64, to = i8} : (tensor<2x4xf32>, tensor<4xf32>) -> tensor<2x4xi8>
    func.return %y, %d, %p : tensor<2x4xi8>, tensor<2x4xf32>, tensor<2x4xi8>
  }
}

// CHECK:      %[[S:[0-9]+]] = nn.constant dense<2.500000e-01> : tensor<f32>
// CHECK-NEXT: %[[Q1:.*]] = nn.binary "div" %x, %[[S]] {ember.qdq_math}
// CHECK-NEXT: %[[Q2:.*]] = nn.unary "round" %[[Q1]]
// CHECK-NEXT: %[[Z:.*]] = nn.constant dense<3.000000e+00> : tensor<f32>
// CHECK-NEXT: %[[Q3:.*]] = nn.binary "add" %[[Q2]], %[[Z]]
// CHECK-NEXT: %[[Q4:.*]] = nn.unary "clip" %[[Q3]] {ember.qdq_math, alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64}
// CHECK-NEXT: %[[Y:.*]] = nn.cast %[[Q4]] {ember.qdq_math, to = i8} : tensor<2x4xf32> -> tensor<2x4xi8>
// CHECK:      %[[D1:.*]] = nn.cast %q {ember.qdq_math, to = f32}
// CHECK:      %[[D2:.*]] = nn.binary "sub" %[[D1]]
// CHECK:      %[[D:.*]] = nn.binary "mul" %[[D2]]
// CHECK:      %[[P:.*]] = nn.quantize %x, %sc
// CHECK:      func.return %[[Y]], %[[D]], %[[P]]
