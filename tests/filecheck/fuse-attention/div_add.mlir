// RUN: ember-opt %s -p fuse-attention,dce | filecheck %s

// The older BERT export: separate Q, K, V projections, Kᵀ as matmul's transpose_b (as
// cancel-transposes leaves it), scores / sqrt(d), + an additive [B, 1, 1, S] mask, softmax, PV,
// transpose back and reshape: one nn.attention with scale 1/2 and the float mask.
builtin.module {
  func.func @main(%q0: tensor<2x3x4xf32>, %k0: tensor<2x5x4xf32>, %v0: tensor<2x5x4xf32>, %m: tensor<2x1x1x5xf32>) -> tensor<2x3x4xf32> {
    %q1 = nn.reshape %q0 : (tensor<2x3x4xf32>) -> tensor<2x3x1x4xf32>
    %q2 = nn.transpose %q1 {perm = array<i64: 0, 2, 1, 3>} : tensor<2x3x1x4xf32> -> tensor<2x1x3x4xf32>
    %k1 = nn.reshape %k0 : (tensor<2x5x4xf32>) -> tensor<2x5x1x4xf32>
    %k2 = nn.transpose %k1 {perm = array<i64: 0, 2, 1, 3>} : tensor<2x5x1x4xf32> -> tensor<2x1x5x4xf32>
    %v1 = nn.reshape %v0 : (tensor<2x5x4xf32>) -> tensor<2x5x1x4xf32>
    %v2 = nn.transpose %v1 {perm = array<i64: 0, 2, 1, 3>} : tensor<2x5x1x4xf32> -> tensor<2x1x5x4xf32>
    %s = nn.matmul %q2, %k2 {transpose_b = 1 : i64} : (tensor<2x1x3x4xf32>, tensor<2x1x5x4xf32>) -> tensor<2x1x3x5xf32>
    %c = nn.constant dense<2.000000e+00> : tensor<f32>
    %sd = nn.binary "div" %s, %c : tensor<2x1x3x5xf32>, tensor<f32> -> tensor<2x1x3x5xf32>
    %sm = nn.binary "add" %sd, %m : tensor<2x1x3x5xf32>, tensor<2x1x1x5xf32> -> tensor<2x1x3x5xf32>
    %a = nn.softmax %sm {axis = 3 : i64, log = false} : tensor<2x1x3x5xf32> -> tensor<2x1x3x5xf32>
    %o = nn.matmul %a, %v2 : (tensor<2x1x3x5xf32>, tensor<2x1x5x4xf32>) -> tensor<2x1x3x4xf32>
    %ot = nn.transpose %o {perm = array<i64: 0, 2, 1, 3>} : tensor<2x1x3x4xf32> -> tensor<2x3x1x4xf32>
    %y = nn.reshape %ot : (tensor<2x3x1x4xf32>) -> tensor<2x3x4xf32>
    func.return %y : tensor<2x3x4xf32>
  }
}

// CHECK:      func.func @main(%q0: tensor<2x3x4xf32>, %k0: tensor<2x5x4xf32>, %v0: tensor<2x5x4xf32>, %m: tensor<2x1x1x5xf32>)
// CHECK-NEXT: %[[Y:.*]] = nn.attention %q0, %k0, %v0, %m {num_heads = 1 : i64, head_dim = 4 : i64, scale = 5.000000e-01 : f64} : (tensor<2x3x4xf32>, tensor<2x5x4xf32>, tensor<2x5x4xf32>, tensor<2x1x1x5xf32>) -> tensor<2x3x4xf32>
// CHECK-NEXT: func.return %[[Y]] : tensor<2x3x4xf32>
