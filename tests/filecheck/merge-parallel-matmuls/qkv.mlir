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

// Integer sums used as they are (no dequantizing tail) are not merged: each keeps its own result.
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

// int8 matmuls whose dequantize / requantize tails are the same ops to their ends merge with
// them: one tail on the merged sums, each constant the members' side by side along N (q's weight
// scale per column, k's scalar repeated over its 3 columns; k's mul has its constant on the left),
// a constant all members share stays one scalar; each member reads its int8 columns.
builtin.module {
  func.func @int8_tails(%x: tensor<4x32xi8>) -> (tensor<4x2xi8>, tensor<4x3xi8>) {
    %wq = nn.constant dense<1> : tensor<32x2xi8>
    %wk = nn.constant dense<2> : tensor<32x3xi8>
    %sq = nn.constant dense<[[0.5, 0.25]]> : tensor<1x2xf32>
    %sk = nn.constant dense<0.125> : tensor<f32>
    %o = nn.constant dense<0.75> : tensor<f32>
    %q0 = nn.matmul %x, %wq : (tensor<4x32xi8>, tensor<32x2xi8>) -> tensor<4x2xi32>
    %q1 = nn.cast %q0 {to = f32} : tensor<4x2xi32> -> tensor<4x2xf32>
    %q2 = nn.binary "mul" %q1, %sq : tensor<4x2xf32>, tensor<1x2xf32> -> tensor<4x2xf32>
    %q3 = nn.binary "div" %q2, %o : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %q4 = nn.unary "round" %q3 : tensor<4x2xf32> -> tensor<4x2xf32>
    %q5 = nn.cast %q4 {to = i8} : tensor<4x2xf32> -> tensor<4x2xi8>
    %k0 = nn.matmul %x, %wk : (tensor<4x32xi8>, tensor<32x3xi8>) -> tensor<4x3xi32>
    %k1 = nn.cast %k0 {to = f32} : tensor<4x3xi32> -> tensor<4x3xf32>
    %k2 = nn.binary "mul" %sk, %k1 : tensor<f32>, tensor<4x3xf32> -> tensor<4x3xf32>
    %k3 = nn.binary "div" %k2, %o : tensor<4x3xf32>, tensor<f32> -> tensor<4x3xf32>
    %k4 = nn.unary "round" %k3 : tensor<4x3xf32> -> tensor<4x3xf32>
    %k5 = nn.cast %k4 {to = i8} : tensor<4x3xf32> -> tensor<4x3xi8>
    func.return %q5, %k5 : tensor<4x2xi8>, tensor<4x3xi8>
  }
}

// CHECK-LABEL: func.func @int8_tails
// CHECK:       %[[M:.*]] = nn.matmul %x, %{{.*}} : (tensor<4x32xi8>, tensor<32x5xi8>) -> tensor<4x5xi32>
// CHECK-NEXT:  %[[C:.*]] = nn.cast %[[M]] {to = f32} : tensor<4x5xi32> -> tensor<4x5xf32>
// CHECK-NEXT:  %[[S:.*]] = nn.constant dense<[5.000000e-01, 2.500000e-01, 1.250000e-01, 1.250000e-01, 1.250000e-01]> : tensor<5xf32>
// CHECK-NEXT:  %[[D:.*]] = nn.binary "mul" %[[C]], %[[S]] : tensor<4x5xf32>, tensor<5xf32> -> tensor<4x5xf32>
// CHECK-NEXT:  %[[O:.*]] = nn.constant dense<7.500000e-01> : tensor<f32>
// CHECK-NEXT:  %[[R:.*]] = nn.binary "div" %[[D]], %[[O]] : tensor<4x5xf32>, tensor<f32> -> tensor<4x5xf32>
// CHECK-NEXT:  %[[N:.*]] = nn.unary "round" %[[R]]
// CHECK-NEXT:  %[[I:.*]] = nn.cast %[[N]] {to = i8} : tensor<4x5xf32> -> tensor<4x5xi8>
// CHECK-NEXT:  %[[Q:.*]] = nn.slice %[[I]] {{.*}}starts = array<i64: 0, 0>{{.*}} -> tensor<4x2xi8>
// CHECK-NEXT:  %[[K:.*]] = nn.slice %[[I]] {{.*}}starts = array<i64: 0, 2>{{.*}} -> tensor<4x3xi8>
// CHECK-NEXT:  func.return %[[Q]], %[[K]]

// Tails that differ (q's ends in a round, k's in a relu) are not merged: each member's tail keeps
// the GEMM it fuses into.
builtin.module {
  func.func @int8_other_tails(%x: tensor<4x32xi8>) -> (tensor<4x2xf32>, tensor<4x3xf32>) {
    %wq = nn.constant dense<1> : tensor<32x2xi8>
    %wk = nn.constant dense<2> : tensor<32x3xi8>
    %q0 = nn.matmul %x, %wq : (tensor<4x32xi8>, tensor<32x2xi8>) -> tensor<4x2xi32>
    %q1 = nn.cast %q0 {to = f32} : tensor<4x2xi32> -> tensor<4x2xf32>
    %q2 = nn.unary "round" %q1 : tensor<4x2xf32> -> tensor<4x2xf32>
    %k0 = nn.matmul %x, %wk : (tensor<4x32xi8>, tensor<32x3xi8>) -> tensor<4x3xi32>
    %k1 = nn.cast %k0 {to = f32} : tensor<4x3xi32> -> tensor<4x3xf32>
    %k2 = nn.unary "relu" %k1 : tensor<4x3xf32> -> tensor<4x3xf32>
    func.return %q2, %k2 : tensor<4x2xf32>, tensor<4x3xf32>
  }
}

// CHECK-LABEL: func.func @int8_other_tails
// CHECK:       nn.matmul %x, %wq : (tensor<4x32xi8>, tensor<32x2xi8>) -> tensor<4x2xi32>
// CHECK:       nn.matmul %x, %wk : (tensor<4x32xi8>, tensor<32x3xi8>) -> tensor<4x3xi32>
