// RUN: ember-opt %s -p fuse-normalization,dce | filecheck %s

// LayerNorm as PyTorch exports it before opset 17 (@torch: Pow 2, + eps, Sqrt, Div, · γ + β),
// with d·d and · Reciprocal(Sqrt) and a symbolic batch and no affine (@mul_reciprocal: scale 1),
// and over two dims with · (.)^-0.5 and a γ of shape [1, 3, 8] (@pow_two_dims: γ reshaped).
builtin.module {
  func.func @torch(%x: tensor<2x3x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) -> tensor<2x3x8xf32> {
    %m = nn.reduce "mean" %x {axes = array<i64: 2>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x3x1xf32>
    %d = nn.binary "sub" %x, %m : tensor<2x3x8xf32>, tensor<2x3x1xf32> -> tensor<2x3x8xf32>
    %two = nn.constant dense<2.000000e+00> : tensor<f32>
    %sq = nn.binary "pow" %d, %two : tensor<2x3x8xf32>, tensor<f32> -> tensor<2x3x8xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 2>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x3x1xf32>
    %eps = nn.constant dense<1.000000e-05> : tensor<f32>
    %ve = nn.binary "add" %v, %eps : tensor<2x3x1xf32>, tensor<f32> -> tensor<2x3x1xf32>
    %s = nn.unary "sqrt" %ve : tensor<2x3x1xf32> -> tensor<2x3x1xf32>
    %n = nn.binary "div" %d, %s : tensor<2x3x8xf32>, tensor<2x3x1xf32> -> tensor<2x3x8xf32>
    %ng = nn.binary "mul" %n, %g : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
    %y = nn.binary "add" %ng, %b : tensor<2x3x8xf32>, tensor<8xf32> -> tensor<2x3x8xf32>
    func.return %y : tensor<2x3x8xf32>
  }
  func.func @mul_reciprocal(%x: tensor<?x8xf32, #nn.layout<["N"]>>) -> tensor<?x8xf32, #nn.layout<["N"]>> {
    %m = nn.reduce "mean" %x {axes = array<i64: 1>, keepdims = true} : (tensor<?x8xf32, #nn.layout<["N"]>>) -> tensor<?x1xf32, #nn.layout<["N"]>>
    %d = nn.binary "sub" %x, %m : tensor<?x8xf32, #nn.layout<["N"]>>, tensor<?x1xf32, #nn.layout<["N"]>> -> tensor<?x8xf32, #nn.layout<["N"]>>
    %sq = nn.binary "mul" %d, %d : tensor<?x8xf32, #nn.layout<["N"]>>, tensor<?x8xf32, #nn.layout<["N"]>> -> tensor<?x8xf32, #nn.layout<["N"]>>
    %v = nn.reduce "mean" %sq {axes = array<i64: 1>, keepdims = true} : (tensor<?x8xf32, #nn.layout<["N"]>>) -> tensor<?x1xf32, #nn.layout<["N"]>>
    %eps = nn.constant dense<1.000000e-03> : tensor<1xf32>
    %ve = nn.binary "add" %eps, %v : tensor<1xf32>, tensor<?x1xf32, #nn.layout<["N"]>> -> tensor<?x1xf32, #nn.layout<["N"]>>
    %s = nn.unary "sqrt" %ve : tensor<?x1xf32, #nn.layout<["N"]>> -> tensor<?x1xf32, #nn.layout<["N"]>>
    %r = nn.unary "reciprocal" %s : tensor<?x1xf32, #nn.layout<["N"]>> -> tensor<?x1xf32, #nn.layout<["N"]>>
    %y = nn.binary "mul" %r, %d : tensor<?x1xf32, #nn.layout<["N"]>>, tensor<?x8xf32, #nn.layout<["N"]>> -> tensor<?x8xf32, #nn.layout<["N"]>>
    func.return %y : tensor<?x8xf32, #nn.layout<["N"]>>
  }
  func.func @pow_two_dims(%x: tensor<2x3x8xf32>, %g: tensor<1x3x8xf32>) -> tensor<2x3x8xf32> {
    %m = nn.reduce "mean" %x {axes = array<i64: 1, 2>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x1x1xf32>
    %d = nn.binary "sub" %x, %m : tensor<2x3x8xf32>, tensor<2x1x1xf32> -> tensor<2x3x8xf32>
    %sq = nn.binary "mul" %d, %d : tensor<2x3x8xf32>, tensor<2x3x8xf32> -> tensor<2x3x8xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 1, 2>, keepdims = true} : (tensor<2x3x8xf32>) -> tensor<2x1x1xf32>
    %eps = nn.constant dense<1.000000e-05> : tensor<f32>
    %ve = nn.binary "add" %v, %eps : tensor<2x1x1xf32>, tensor<f32> -> tensor<2x1x1xf32>
    %p = nn.constant dense<-5.000000e-01> : tensor<f32>
    %r = nn.binary "pow" %ve, %p : tensor<2x1x1xf32>, tensor<f32> -> tensor<2x1x1xf32>
    %n = nn.binary "mul" %d, %r : tensor<2x3x8xf32>, tensor<2x1x1xf32> -> tensor<2x3x8xf32>
    %y = nn.binary "mul" %g, %n : tensor<1x3x8xf32>, tensor<2x3x8xf32> -> tensor<2x3x8xf32>
    func.return %y : tensor<2x3x8xf32>
  }
}

// CHECK-LABEL: func.func @torch(%x: tensor<2x3x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>)
// CHECK-NEXT:    %[[Y:.*]] = nn.layer_norm %x, %g, %b {axis = 2 : i64, epsilon = {{.*}}e-06 : f64} : (tensor<2x3x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x3x8xf32>
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @mul_reciprocal
// CHECK-NEXT:    %[[ONE:.*]] = nn.constant dense<1.000000e+00> : tensor<1xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.layer_norm %x, %[[ONE]] {axis = 1 : i64, epsilon = 0.0010000000474974513 : f64} : (tensor<?x8xf32, #nn.layout<["N"]>>, tensor<1xf32>) -> tensor<?x8xf32, #nn.layout<["N"]>>
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @pow_two_dims
// CHECK-NEXT:    %[[G:.*]] = nn.reshape %g : (tensor<1x3x8xf32>) -> tensor<3x8xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.layer_norm %x, %[[G]] {axis = 1 : i64, epsilon = {{.*}} : f64} : (tensor<2x3x8xf32>, tensor<3x8xf32>) -> tensor<2x3x8xf32>
// CHECK-NEXT:    func.return %[[Y]]
