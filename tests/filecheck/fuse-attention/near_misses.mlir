// RUN: ember-opt %s -p fuse-attention,dce | filecheck %s

// Left alone: softmax over another axis (@axis2); scores that another op also reads
// (@scores_escape); a scale that is not a constant (@runtime_scale).
builtin.module {
  func.func @axis2(%q0: tensor<1x3x4xf32>, %k0: tensor<1x3x4xf32>, %v0: tensor<1x3x4xf32>) -> tensor<1x3x4xf32> {
    %q1 = nn.reshape %q0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %q2 = nn.transpose %q1 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x3x2x2xf32> -> tensor<1x2x3x2xf32>
    %k1 = nn.reshape %k0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %k2 = nn.transpose %k1 {perm = array<i64: 0, 2, 3, 1>} : tensor<1x3x2x2xf32> -> tensor<1x2x2x3xf32>
    %v1 = nn.reshape %v0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %v2 = nn.transpose %v1 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x3x2x2xf32> -> tensor<1x2x3x2xf32>
    %s = nn.matmul %q2, %k2 : (tensor<1x2x3x2xf32>, tensor<1x2x2x3xf32>) -> tensor<1x2x3x3xf32>
    %a = nn.softmax %s {axis = 2 : i64, log = false} : tensor<1x2x3x3xf32> -> tensor<1x2x3x3xf32>
    %o = nn.matmul %a, %v2 : (tensor<1x2x3x3xf32>, tensor<1x2x3x2xf32>) -> tensor<1x2x3x2xf32>
    %ot = nn.transpose %o {perm = array<i64: 0, 2, 1, 3>} : tensor<1x2x3x2xf32> -> tensor<1x3x2x2xf32>
    %y = nn.reshape %ot : (tensor<1x3x2x2xf32>) -> tensor<1x3x4xf32>
    func.return %y : tensor<1x3x4xf32>
  }
  func.func @scores_escape(%q0: tensor<1x3x4xf32>, %k0: tensor<1x3x4xf32>, %v0: tensor<1x3x4xf32>) -> (tensor<1x3x4xf32>, tensor<1x2x3x3xf32>) {
    %q1 = nn.reshape %q0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %q2 = nn.transpose %q1 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x3x2x2xf32> -> tensor<1x2x3x2xf32>
    %k1 = nn.reshape %k0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %k2 = nn.transpose %k1 {perm = array<i64: 0, 2, 3, 1>} : tensor<1x3x2x2xf32> -> tensor<1x2x2x3xf32>
    %v1 = nn.reshape %v0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %v2 = nn.transpose %v1 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x3x2x2xf32> -> tensor<1x2x3x2xf32>
    %s = nn.matmul %q2, %k2 : (tensor<1x2x3x2xf32>, tensor<1x2x2x3xf32>) -> tensor<1x2x3x3xf32>
    %a = nn.softmax %s {axis = 3 : i64, log = false} : tensor<1x2x3x3xf32> -> tensor<1x2x3x3xf32>
    %o = nn.matmul %a, %v2 : (tensor<1x2x3x3xf32>, tensor<1x2x3x2xf32>) -> tensor<1x2x3x2xf32>
    %ot = nn.transpose %o {perm = array<i64: 0, 2, 1, 3>} : tensor<1x2x3x2xf32> -> tensor<1x3x2x2xf32>
    %y = nn.reshape %ot : (tensor<1x3x2x2xf32>) -> tensor<1x3x4xf32>
    func.return %y, %s : tensor<1x3x4xf32>, tensor<1x2x3x3xf32>
  }
  func.func @runtime_scale(%q0: tensor<1x3x4xf32>, %k0: tensor<1x3x4xf32>, %v0: tensor<1x3x4xf32>, %c: tensor<f32>) -> tensor<1x3x4xf32> {
    %q1 = nn.reshape %q0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %q2 = nn.transpose %q1 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x3x2x2xf32> -> tensor<1x2x3x2xf32>
    %k1 = nn.reshape %k0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %k2 = nn.transpose %k1 {perm = array<i64: 0, 2, 3, 1>} : tensor<1x3x2x2xf32> -> tensor<1x2x2x3xf32>
    %v1 = nn.reshape %v0 : (tensor<1x3x4xf32>) -> tensor<1x3x2x2xf32>
    %v2 = nn.transpose %v1 {perm = array<i64: 0, 2, 1, 3>} : tensor<1x3x2x2xf32> -> tensor<1x2x3x2xf32>
    %s = nn.matmul %q2, %k2 : (tensor<1x2x3x2xf32>, tensor<1x2x2x3xf32>) -> tensor<1x2x3x3xf32>
    %sd = nn.binary "div" %s, %c : tensor<1x2x3x3xf32>, tensor<f32> -> tensor<1x2x3x3xf32>
    %a = nn.softmax %sd {axis = 3 : i64, log = false} : tensor<1x2x3x3xf32> -> tensor<1x2x3x3xf32>
    %o = nn.matmul %a, %v2 : (tensor<1x2x3x3xf32>, tensor<1x2x3x2xf32>) -> tensor<1x2x3x2xf32>
    %ot = nn.transpose %o {perm = array<i64: 0, 2, 1, 3>} : tensor<1x2x3x2xf32> -> tensor<1x3x2x2xf32>
    %y = nn.reshape %ot : (tensor<1x3x2x2xf32>) -> tensor<1x3x4xf32>
    func.return %y : tensor<1x3x4xf32>
  }
}

// CHECK-LABEL: func.func @axis2
// CHECK:       nn.softmax
// CHECK-NOT:   nn.attention
// CHECK-LABEL: func.func @scores_escape
// CHECK:       nn.softmax
// CHECK-NOT:   nn.attention
// CHECK-LABEL: func.func @runtime_scale
// CHECK:       nn.softmax
// CHECK-NOT:   nn.attention
