// RUN: ember-opt %s -p merge-parallel-matmuls | filecheck %s

// Three matmuls of %x with constant weights of one K become one matmul over the weights side by
// side; the bias adds (either operand order) become one add of the biases side by side (zeros for
// the member without one); each member's users read its columns through an nn.slice. The matmul
// of another input (%y) is left alone.
builtin.module {
  func.func @main(%x: tensor<1x3x2xf32>, %y: tensor<1x3x2xf32>) -> (tensor<1x3x2xf32>, tensor<1x3x2xf32>, tensor<1x3x1xf32>, tensor<1x3x2xf32>) {
    %wq = nn.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
    %bq = nn.constant dense<[0.5, -0.5]> : tensor<2xf32>
    %wk = nn.constant dense<[[5.0, 6.0], [7.0, 8.0]]> : tensor<2x2xf32>
    %bk = nn.constant dense<[1.5, 2.5]> : tensor<2xf32>
    %wv = nn.constant dense<[[9.0], [10.0]]> : tensor<2x1xf32>
    %q0 = nn.matmul %x, %wq : (tensor<1x3x2xf32>, tensor<2x2xf32>) -> tensor<1x3x2xf32>
    %q = nn.binary "add" %q0, %bq : tensor<1x3x2xf32>, tensor<2xf32> -> tensor<1x3x2xf32>
    %k0 = nn.matmul %x, %wk : (tensor<1x3x2xf32>, tensor<2x2xf32>) -> tensor<1x3x2xf32>
    %k = nn.binary "add" %bk, %k0 : tensor<2xf32>, tensor<1x3x2xf32> -> tensor<1x3x2xf32>
    %v = nn.matmul %x, %wv : (tensor<1x3x2xf32>, tensor<2x1xf32>) -> tensor<1x3x1xf32>
    %o = nn.matmul %y, %wq : (tensor<1x3x2xf32>, tensor<2x2xf32>) -> tensor<1x3x2xf32>
    func.return %q, %k, %v, %o : tensor<1x3x2xf32>, tensor<1x3x2xf32>, tensor<1x3x1xf32>, tensor<1x3x2xf32>
  }
}

// CHECK:      %[[W:.*]] = nn.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00, 5.000000e+00, 6.000000e+00, 9.000000e+00], [3.000000e+00, 4.000000e+00, 7.000000e+00, 8.000000e+00, 1.000000e+01]]> : tensor<2x5xf32>
// CHECK-NEXT: %[[M:.*]] = nn.matmul %x, %[[W]] : (tensor<1x3x2xf32>, tensor<2x5xf32>) -> tensor<1x3x5xf32>
// CHECK-NEXT: %[[B:.*]] = nn.constant dense<[5.000000e-01, -5.000000e-01, 1.500000e+00, 2.500000e+00, 0.000000e+00]> : tensor<5xf32>
// CHECK-NEXT: %[[P:.*]] = nn.binary "add" %[[M]], %[[B]] : tensor<1x3x5xf32>, tensor<5xf32> -> tensor<1x3x5xf32>
// CHECK-NEXT: %[[Q:.*]] = nn.slice %[[P]] {{.*}}starts = array<i64: 0, 0, 0>{{.*}} -> tensor<1x3x2xf32>
// CHECK-NEXT: %[[K:.*]] = nn.slice %[[P]] {{.*}}starts = array<i64: 0, 0, 2>{{.*}} -> tensor<1x3x2xf32>
// CHECK-NEXT: %[[V:.*]] = nn.slice %[[P]] {{.*}}starts = array<i64: 0, 0, 4>{{.*}} -> tensor<1x3x1xf32>
// CHECK-NEXT: %[[O:.*]] = nn.matmul %y, %{{.*}} : (tensor<1x3x2xf32>, tensor<2x2xf32>) -> tensor<1x3x2xf32>
// CHECK-NEXT: func.return %[[Q]], %[[K]], %[[V]], %[[O]]

// Integer sums (fold-qdq's int8 matmuls) are not merged: each keeps its own result, into whose
// kernel its dequantize fuses as an epilogue.
builtin.module {
  func.func @int8(%x: tensor<4x32xi8>) -> (tensor<4x16xi32>, tensor<4x16xi32>) {
    %wq = nn.constant dense<1> : tensor<32x16xi8>
    %wk = nn.constant dense<2> : tensor<32x16xi8>
    %q = nn.matmul %x, %wq : (tensor<4x32xi8>, tensor<32x16xi8>) -> tensor<4x16xi32>
    %k = nn.matmul %x, %wk : (tensor<4x32xi8>, tensor<32x16xi8>) -> tensor<4x16xi32>
    func.return %q, %k : tensor<4x16xi32>, tensor<4x16xi32>
  }
}

// CHECK-LABEL: func.func @int8
// CHECK:       %[[Q:.*]] = nn.matmul %x, %wq : (tensor<4x32xi8>, tensor<32x16xi8>) -> tensor<4x16xi32>
// CHECK-NEXT:  %[[K:.*]] = nn.matmul %x, %wk : (tensor<4x32xi8>, tensor<32x16xi8>) -> tensor<4x16xi32>
// CHECK-NEXT:  func.return %[[Q]], %[[K]]
