// RUN: ember-opt %s -p fuse-attention,dce | filecheck %s

// The sdpa export over a packed QKV projection (as merge-parallel-matmuls leaves it): column
// slices, head split (reshape + transpose), Mul by d^-1/4 on Q and on Kᵀ, Where(mask, s, -inf),
// softmax, the IsNaN/Where guard, PV, transpose back and reshape. One nn.attention reads the
// packed tensor at column offsets 0, 4 and 8; scale = 0.5 * 0.5; masked_value = -inf.
builtin.module {
  func.func @main(%p: tensor<1x3x12xf32>, %m: tensor<1x1x1x3xi1>) -> tensor<1x3x4xf32> {
    %q0 = nn.slice %p {starts = array<i64: 0, 0, 0>, ends = array<i64: 1, 3, 4>, steps = array<i64: 1, 1, 1>} : tensor<1x3x12xf32> -> tensor<1x3x4xf32>
    %k0 = nn.slice %p {starts = array<i64: 0, 0, 4>, ends = array<i64: 1, 3, 8>, steps = array<i64: 1, 1, 1>} : tensor<1x3x12xf32> -> tensor<1x3x4xf32>
    %v0 = nn.slice %p {starts = array<i64: 0, 0, 8>, ends = array<i64: 1, 3, 12>, steps = array<i64: 1, 1, 1>} : tensor<1x3x12xf32> -> tensor<1x3x4xf32>
    %q1 = nn.reshape %q0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %q2 = nn.transpose %q1 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x3x2x2xf32> -> tensor<1x2x3x2xf32>
    %k1 = nn.reshape %k0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %k2 = nn.transpose %k1 {perm = array<i64: 0, 2, 3, 1>} : tensor<1x3x2x2xf32> -> tensor<1x2x2x3xf32>
    %v1 = nn.reshape %v0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %v2 = nn.transpose %v1 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x3x2x2xf32> -> tensor<1x2x3x2xf32>
    %c = nn.constant dense<5.000000e-01> : tensor<f32>
    %qs = nn.binary "mul" %q2, %c : tensor<1x2x3x2xf32>, tensor<f32> -> tensor<1x2x3x2xf32>
    %ks = nn.binary "mul" %k2, %c : tensor<1x2x2x3xf32>, tensor<f32> -> tensor<1x2x2x3xf32>
    %s = nn.matmul %qs, %ks : (tensor<1x2x3x2xf32>, tensor<1x2x2x3xf32>) -> tensor<1x2x3x3xf32>
    %ninf = nn.constant dense<0xff800000> : tensor<1xf32>
    %sm = nn.select %m, %s, %ninf : (tensor<1x1x1x3xi1>, tensor<1x2x3x3xf32>, tensor<1xf32>) -> tensor<1x2x3x3xf32>
    %a = nn.softmax %sm {axis = 3 : i64, log = false} : tensor<1x2x3x3xf32> -> tensor<1x2x3x3xf32>
    %nan = nn.unary "isnan" %a : tensor<1x2x3x3xf32> -> tensor<1x2x3x3xi1>
    %zero = nn.constant dense<0.000000e+00> : tensor<1xf32>
    %g = nn.select %nan, %zero, %a : (tensor<1x2x3x3xi1>, tensor<1xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x3x3xf32>
    %o = nn.matmul %g, %v2 : (tensor<1x2x3x3xf32>, tensor<1x2x3x2xf32>) -> tensor<1x2x3x2xf32>
    %ot = nn.transpose %o {perm = array<i64: 0, 2, 1, 3>} : tensor<1x2x3x2xf32> -> tensor<1x3x2x2xf32>
    %y = nn.reshape %ot : (tensor<1x3x2x2xf32>) -> tensor<1x3x4xf32>
    func.return %y : tensor<1x3x4xf32>
  }
}

// CHECK:      func.func @main(%p: tensor<1x3x12xf32>, %m: tensor<1x1x1x3xi1>)
// CHECK-NEXT: %[[Y:.*]] = nn.attention %p, %p, %p, %m {num_heads = 2 : i64, head_dim = 2 : i64, scale = 2.500000e-01 : f64, k_offset = 4 : i64, v_offset = 8 : i64, masked_value = 0xfff0000000000000 : f64} : (tensor<1x3x12xf32>, tensor<1x3x12xf32>, tensor<1x3x12xf32>, tensor<1x1x1x3xi1>) -> tensor<1x3x4xf32>
// CHECK-NEXT: func.return %[[Y]] : tensor<1x3x4xf32>
