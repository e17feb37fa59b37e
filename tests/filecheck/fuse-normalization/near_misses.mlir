// RUN: ember-opt %s -p fuse-normalization,dce | filecheck %s

// Left alone: statistics over a dim that is not trailing (@not_trailing); eps not a constant
// (@runtime_eps); the centred values also read elsewhere (@extra_user); a cube, not a square
// (@cube); softmax over two axes (@softmax_two_axes); exp(x) also read elsewhere
// (@softmax_exp_escapes); a sum of something else (@softmax_other_sum); a group norm whose inner
// norm has a real scale (@group_scaled) or that is reshaped back to another shape
// (@group_other_shape).
// Partly fused, exactly: a mean over other dims than the variance's is not a layer norm, but
// what follows is the RMS norm of x - mean (@mean_other_dims); a scale per batch element (not
// per normalized element, nor per channel) stays a multiply after the layer norm
// (@scale_per_batch).
builtin.module {
  func.func @not_trailing(%x: tensor<2x3x8xf32>) -> tensor<2x3x8xf32> {
    %m = nn.reduce "mean" %x {axes = array<i64: 1>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x1x8xf32>
    %d = nn.binary "sub" %x, %m : tensor<2x3x8xf32>, tensor<2x1x8xf32> -> tensor<2x3x8xf32>
    %sq = nn.binary "mul" %d, %d : tensor<2x3x8xf32>, tensor<2x3x8xf32> -> tensor<2x3x8xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 1>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x1x8xf32>
    %s = nn.unary "sqrt" %v : tensor<2x1x8xf32> -> tensor<2x1x8xf32>
    %y = nn.binary "div" %d, %s : tensor<2x3x8xf32>, tensor<2x1x8xf32> -> tensor<2x3x8xf32>
    func.return %y : tensor<2x3x8xf32>
  }
  func.func @runtime_eps(%x: tensor<2x8xf32>, %eps: tensor<f32>) -> tensor<2x8xf32> {
    %m = nn.reduce "mean" %x {axes = array<i64: 1>, keepdims = true} : (tensor<2x8xf32>) -> tensor<2x1xf32>
    %d = nn.binary "sub" %x, %m : tensor<2x8xf32>, tensor<2x1xf32> -> tensor<2x8xf32>
    %sq = nn.binary "mul" %d, %d : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<2x8xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 1>, keepdims = true} : (tensor<2x8xf32>) -> tensor<2x1xf32>
    %ve = nn.binary "add" %v, %eps : tensor<2x1xf32>, tensor<f32> -> tensor<2x1xf32>
    %s = nn.unary "sqrt" %ve : tensor<2x1xf32> -> tensor<2x1xf32>
    %y = nn.binary "div" %d, %s : tensor<2x8xf32>, tensor<2x1xf32> -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
  func.func @extra_user(%x: tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>) {
    %m = nn.reduce "mean" %x {axes = array<i64: 1>, keepdims = true} : (tensor<2x8xf32>) -> tensor<2x1xf32>
    %d = nn.binary "sub" %x, %m : tensor<2x8xf32>, tensor<2x1xf32> -> tensor<2x8xf32>
    %sq = nn.binary "mul" %d, %d : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<2x8xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 1>, keepdims = true} : (tensor<2x8xf32>) -> tensor<2x1xf32>
    %eps = nn.constant dense<1.000000e-05> : tensor<f32>
    %ve = nn.binary "add" %v, %eps : tensor<2x1xf32>, tensor<f32> -> tensor<2x1xf32>
    %s = nn.unary "sqrt" %ve : tensor<2x1xf32> -> tensor<2x1xf32>
    %y = nn.binary "div" %d, %s : tensor<2x8xf32>, tensor<2x1xf32> -> tensor<2x8xf32>
    func.return %y, %sq : tensor<2x8xf32>, tensor<2x8xf32>
  }
  func.func @cube(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %three = nn.constant dense<3.000000e+00> : tensor<f32>
    %sq = nn.binary "pow" %x, %three : tensor<2x8xf32>, tensor<f32> -> tensor<2x8xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 1>, keepdims = true} : (tensor<2x8xf32>) -> tensor<2x1xf32>
    %s = nn.unary "sqrt" %v : tensor<2x1xf32> -> tensor<2x1xf32>
    %y = nn.binary "div" %x, %s : tensor<2x8xf32>, tensor<2x1xf32> -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
  func.func @softmax_two_axes(%x: tensor<2x3x4xf32>) -> tensor<2x3x4xf32> {
    %e = nn.unary "exp" %x : tensor<2x3x4xf32> -> tensor<2x3x4xf32>
    %s = nn.reduce "sum" %e {axes = array<i64: 1, 2>, keepdims = true} : (tensor<2x3x4xf32>) -> tensor<2x1x1xf32>
    %y = nn.binary "div" %e, %s : tensor<2x3x4xf32>, tensor<2x1x1xf32> -> tensor<2x3x4xf32>
    func.return %y : tensor<2x3x4xf32>
  }
  func.func @softmax_exp_escapes(%x: tensor<2x4xf32>) -> (tensor<2x4xf32>, tensor<2x4xf32>) {
    %e = nn.unary "exp" %x : tensor<2x4xf32> -> tensor<2x4xf32>
    %s = nn.reduce "sum" %e {axes = array<i64: 1>, keepdims = true} : (tensor<2x4xf32>) -> tensor<2x1xf32>
    %y = nn.binary "div" %e, %s : tensor<2x4xf32>, tensor<2x1xf32> -> tensor<2x4xf32>
    func.return %y, %e : tensor<2x4xf32>, tensor<2x4xf32>
  }
  func.func @softmax_other_sum(%x: tensor<2x4xf32>, %z: tensor<2x4xf32>) -> tensor<2x4xf32> {
    %e = nn.unary "exp" %x : tensor<2x4xf32> -> tensor<2x4xf32>
    %ez = nn.unary "exp" %z : tensor<2x4xf32> -> tensor<2x4xf32>
    %s = nn.reduce "sum" %ez {axes = array<i64: 1>, keepdims = true} : (tensor<2x4xf32>) -> tensor<2x1xf32>
    %y = nn.binary "div" %e, %s : tensor<2x4xf32>, tensor<2x1xf32> -> tensor<2x4xf32>
    func.return %y : tensor<2x4xf32>
  }
  func.func @group_scaled(%x: tensor<2x6x5xf32>, %g: tensor<15xf32>) -> tensor<2x6x5xf32> {
    %r = nn.reshape %x : (tensor<2x6x5xf32>) -> tensor<2x2x15xf32>
    %n = nn.layer_norm %r, %g {axis = 2 : i64, epsilon = 1.000000e-05 : f64} : (tensor<2x2x15xf32>, tensor<15xf32>) -> tensor<2x2x15xf32>
    %y = nn.reshape %n : (tensor<2x2x15xf32>) -> tensor<2x6x5xf32>
    func.return %y : tensor<2x6x5xf32>
  }
  func.func @group_other_shape(%x: tensor<2x6x5xf32>) -> tensor<2x5x6xf32> {
    %r = nn.reshape %x : (tensor<2x6x5xf32>) -> tensor<2x2x15xf32>
    %one = nn.constant dense<1.000000e+00> : tensor<1xf32>
    %n = nn.layer_norm %r, %one {axis = 2 : i64, epsilon = 1.000000e-05 : f64} : (tensor<2x2x15xf32>, tensor<1xf32>) -> tensor<2x2x15xf32>
    %y = nn.reshape %n : (tensor<2x2x15xf32>) -> tensor<2x5x6xf32>
    func.return %y : tensor<2x5x6xf32>
  }
  func.func @mean_other_dims(%x: tensor<2x3x8xf32>) -> tensor<2x3x8xf32> {
    %m = nn.reduce "mean" %x {axes = array<i64: 1, 2>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x1x1xf32>
    %d = nn.binary "sub" %x, %m : tensor<2x3x8xf32>, tensor<2x1x1xf32> -> tensor<2x3x8xf32>
    %sq = nn.binary "mul" %d, %d : tensor<2x3x8xf32>, tensor<2x3x8xf32> -> tensor<2x3x8xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 2>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x3x1xf32>
    %s = nn.unary "sqrt" %v : tensor<2x3x1xf32> -> tensor<2x3x1xf32>
    %y = nn.binary "div" %d, %s : tensor<2x3x8xf32>, tensor<2x3x1xf32> -> tensor<2x3x8xf32>
    func.return %y : tensor<2x3x8xf32>
  }
  func.func @scale_per_batch(%x: tensor<2x3x8xf32>, %g: tensor<2x1x1xf32>) -> tensor<2x3x8xf32> {
    %m = nn.reduce "mean" %x {axes = array<i64: 2>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x3x1xf32>
    %d = nn.binary "sub" %x, %m : tensor<2x3x8xf32>, tensor<2x3x1xf32> -> tensor<2x3x8xf32>
    %sq = nn.binary "mul" %d, %d : tensor<2x3x8xf32>, tensor<2x3x8xf32> -> tensor<2x3x8xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 2>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x3x1xf32>
    %s = nn.unary "sqrt" %v : tensor<2x3x1xf32> -> tensor<2x3x1xf32>
    %n = nn.binary "div" %d, %s : tensor<2x3x8xf32>, tensor<2x3x1xf32> -> tensor<2x3x8xf32>
    %y = nn.binary "mul" %n, %g : tensor<2x3x8xf32>, tensor<2x1x1xf32> -> tensor<2x3x8xf32>
    func.return %y : tensor<2x3x8xf32>
  }
}

// CHECK-LABEL: func.func @not_trailing
// CHECK-NOT:     nn.layer_norm
// CHECK:         nn.binary "div"
// CHECK-LABEL: func.func @runtime_eps
// CHECK-NOT:     nn.layer_norm
// CHECK:         nn.binary "div"
// CHECK-LABEL: func.func @extra_user
// CHECK-NOT:     nn.layer_norm
// CHECK:         nn.binary "div"
// CHECK-LABEL: func.func @cube
// CHECK-NOT:     nn.layer_norm
// CHECK:         nn.binary "div"
// CHECK-LABEL: func.func @softmax_two_axes
// CHECK-NOT:     nn.softmax
// CHECK:         nn.binary "div"
// CHECK-LABEL: func.func @softmax_exp_escapes
// CHECK-NOT:     nn.softmax
// CHECK:         nn.binary "div"
// CHECK-LABEL: func.func @softmax_other_sum
// CHECK-NOT:     nn.softmax
// CHECK:         nn.binary "div"
// CHECK-LABEL: func.func @group_scaled
// CHECK-NOT:     nn.group_norm
// CHECK:         nn.layer_norm
// CHECK-LABEL: func.func @group_other_shape
// CHECK-NOT:     nn.group_norm
// CHECK:         nn.layer_norm
// CHECK-LABEL: func.func @mean_other_dims
// CHECK:         %[[M:.*]] = nn.reduce "mean" %x {axes = array<i64: 1, 2>, keepdims = true}
// CHECK-NEXT:    %[[D:.*]] = nn.binary "sub" %x, %[[M]]
// CHECK:         nn.layer_norm %[[D]], %{{.*}} {axis = 2 : i64, epsilon = 0.000000e+00 : f64, rms = true}
// CHECK-NOT:     nn.binary
// CHECK-LABEL: func.func @scale_per_batch
// CHECK:         %[[N:.*]] = nn.layer_norm %x, %{{.*}} {axis = 2 : i64, epsilon = 0.000000e+00 : f64}
// CHECK-NEXT:    nn.binary "mul" %[[N]], %g
