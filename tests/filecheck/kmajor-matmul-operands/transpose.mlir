// RUN: ember-opt %s -p kmajor-matmul-operands | filecheck %s

// A matmul's B made by a transpose that puts the stored last axis last but one (BERT's K,
// [B, S, H, D] -> [B, H, D, S]), through a scale and a cast: the transpose keeps D last
// ([B, H, S, D]), the chain's types follow, and the matmul reads B with transpose_b. Left
// alone: a transpose with another user, and one whose swap would not keep the last axis last.
builtin.module {
  // CHECK-LABEL: func.func @key
  // CHECK-NEXT:    %[[S:.*]] = nn.constant dense<1.250000e-01> : tensor<f32>
  // CHECK-NEXT:    %[[T:.*]] = nn.transpose %k {perm = array<i64: 0, 2, 1, 3>} : tensor<2x4x3x8xf32> -> tensor<2x3x4x8xf32>
  // CHECK-NEXT:    %[[M:.*]] = nn.binary "mul" %[[T]], %[[S]] : tensor<2x3x4x8xf32>, tensor<f32> -> tensor<2x3x4x8xf32>
  // CHECK-NEXT:    %[[C:.*]] = nn.cast %[[M]] {to = f16} : tensor<2x3x4x8xf32> -> tensor<2x3x4x8xf16>
  // CHECK-NEXT:    %[[Y:.*]] = nn.matmul %q, %[[C]] {transpose_b = true} : (tensor<2x3x4x8xf16>, tensor<2x3x4x8xf16>) -> tensor<2x3x4x4xf16>
  // CHECK-NEXT:    func.return %[[Y]]
  func.func @key(%q: tensor<2x3x4x8xf16>, %k: tensor<2x4x3x8xf32>) -> tensor<2x3x4x4xf16> {
    %s = nn.constant dense<0.125> : tensor<f32>
    %t = nn.transpose %k {perm = array<i64: 0, 2, 3, 1>} : tensor<2x4x3x8xf32> -> tensor<2x3x8x4xf32>
    %m = nn.binary "mul" %t, %s : tensor<2x3x8x4xf32>, tensor<f32> -> tensor<2x3x8x4xf32>
    %c = nn.cast %m {to = f16} : tensor<2x3x8x4xf32> -> tensor<2x3x8x4xf16>
    %y = nn.matmul %q, %c : (tensor<2x3x4x8xf16>, tensor<2x3x8x4xf16>) -> tensor<2x3x4x4xf16>
    func.return %y : tensor<2x3x4x4xf16>
  }

  // A swap that leaves the identity removes the transpose.
  // CHECK-LABEL: func.func @plain
  // CHECK-NEXT:    %[[Y:.*]] = nn.matmul %a, %b {transpose_b = true} : (tensor<4x6xf32>, tensor<5x6xf32>) -> tensor<4x5xf32>
  // CHECK-NEXT:    func.return %[[Y]]
  func.func @plain(%a: tensor<4x6xf32>, %b: tensor<5x6xf32>) -> tensor<4x5xf32> {
    %t = nn.transpose %b {perm = array<i64: 1, 0>} : tensor<5x6xf32> -> tensor<6x5xf32>
    %y = nn.matmul %a, %t : (tensor<4x6xf32>, tensor<6x5xf32>) -> tensor<4x5xf32>
    func.return %y : tensor<4x5xf32>
  }

  // CHECK-LABEL: func.func @left_alone
  // CHECK-NEXT:    nn.transpose %k {perm = array<i64: 0, 2, 3, 1>}
  // CHECK-NEXT:    nn.matmul %q, %{{.*}} : (tensor<2x3x4x8xf32>, tensor<2x3x8x4xf32>)
  // CHECK-NEXT:    nn.transpose %v {perm = array<i64: 0, 3, 1, 2>}
  // CHECK-NEXT:    nn.matmul %p, %{{.*}} : (tensor<2x3x4x8xf32>, tensor<2x3x8x4xf32>)
  func.func @left_alone(%q: tensor<2x3x4x8xf32>, %k: tensor<2x4x3x8xf32>, %p: tensor<2x3x4x8xf32>, %v: tensor<2x8x4x3xf32>) -> (tensor<2x3x4x4xf32>, tensor<2x3x8x4xf32>, tensor<2x3x4x4xf32>) {
    %t = nn.transpose %k {perm = array<i64: 0, 2, 3, 1>} : tensor<2x4x3x8xf32> -> tensor<2x3x8x4xf32>
    %y = nn.matmul %q, %t : (tensor<2x3x4x8xf32>, tensor<2x3x8x4xf32>) -> tensor<2x3x4x4xf32>
    %u = nn.transpose %v {perm = array<i64: 0, 3, 1, 2>} : tensor<2x8x4x3xf32> -> tensor<2x3x8x4xf32>
    %z = nn.matmul %p, %u : (tensor<2x3x4x8xf32>, tensor<2x3x8x4xf32>) -> tensor<2x3x4x4xf32>
    func.return %y, %t, %z : tensor<2x3x4x4xf32>, tensor<2x3x8x4xf32>, tensor<2x3x4x4xf32>
  }
}
