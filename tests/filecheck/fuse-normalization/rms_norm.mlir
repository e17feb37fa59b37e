// RUN: ember-opt %s -p fuse-normalization,dce | filecheck %s

// RMSNorm: T5 / LLaMA as exported (@t5: Pow 2, mean, + eps, 1 / Sqrt, x · that, weight · x),
// with x·x, Reciprocal(Sqrt) and no weight (@reciprocal), and as x / Sqrt with a bias after the
// weight, symbolic batch (@div_bias).
builtin.module {
  func.func @t5(%x: tensor<2x5x16xf32>, %w: tensor<16xf32>) -> tensor<2x5x16xf32> {
    %two = nn.constant dense<2.000000e+00> : tensor<f32>
    %sq = nn.binary "pow" %x, %two : tensor<2x5x16xf32>, tensor<f32> -> tensor<2x5x16xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 2>, keepdims = true} : (tensor<2x5x16xf32>) -> tensor<2x5x1xf32>
    %eps = nn.constant dense<1.000000e-06> : tensor<f32>
    %ve = nn.binary "add" %v, %eps : tensor<2x5x1xf32>, tensor<f32> -> tensor<2x5x1xf32>
    %s = nn.unary "sqrt" %ve : tensor<2x5x1xf32> -> tensor<2x5x1xf32>
    %one = nn.constant dense<1.000000e+00> : tensor<f32>
    %r = nn.binary "div" %one, %s : tensor<f32>, tensor<2x5x1xf32> -> tensor<2x5x1xf32>
    %n = nn.binary "mul" %x, %r : tensor<2x5x16xf32>, tensor<2x5x1xf32> -> tensor<2x5x16xf32>
    %y = nn.binary "mul" %w, %n : tensor<16xf32>, tensor<2x5x16xf32> -> tensor<2x5x16xf32>
    func.return %y : tensor<2x5x16xf32>
  }
  func.func @reciprocal(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
    %sq = nn.binary "mul" %x, %x : tensor<4x16xf32>, tensor<4x16xf32> -> tensor<4x16xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 1>, keepdims = true} : (tensor<4x16xf32>) -> tensor<4x1xf32>
    %eps = nn.constant dense<1.000000e-06> : tensor<f32>
    %ve = nn.binary "add" %v, %eps : tensor<4x1xf32>, tensor<f32> -> tensor<4x1xf32>
    %s = nn.unary "sqrt" %ve : tensor<4x1xf32> -> tensor<4x1xf32>
    %r = nn.unary "reciprocal" %s : tensor<4x1xf32> -> tensor<4x1xf32>
    %y = nn.binary "mul" %x, %r : tensor<4x16xf32>, tensor<4x1xf32> -> tensor<4x16xf32>
    func.return %y : tensor<4x16xf32>
  }
  func.func @div_bias(%x: tensor<?x16xf32, #nn.layout<["N"]>>, %w: tensor<16xf32>, %b: tensor<16xf32>) -> tensor<?x16xf32, #nn.layout<["N"]>> {
    %sq = nn.binary "mul" %x, %x : tensor<?x16xf32, #nn.layout<["N"]>>, tensor<?x16xf32, #nn.layout<["N"]>> -> tensor<?x16xf32, #nn.layout<["N"]>>
    %v = nn.reduce "mean" %sq {axes = array<i64: 1>, keepdims = true} : (tensor<?x16xf32, #nn.layout<["N"]>>) -> tensor<?x1xf32, #nn.layout<["N"]>>
    %eps = nn.constant dense<1.000000e-06> : tensor<f32>
    %ve = nn.binary "add" %v, %eps : tensor<?x1xf32, #nn.layout<["N"]>>, tensor<f32> -> tensor<?x1xf32, #nn.layout<["N"]>>
    %s = nn.unary "sqrt" %ve : tensor<?x1xf32, #nn.layout<["N"]>> -> tensor<?x1xf32, #nn.layout<["N"]>>
    %n = nn.binary "div" %x, %s : tensor<?x16xf32, #nn.layout<["N"]>>, tensor<?x1xf32, #nn.layout<["N"]>> -> tensor<?x16xf32, #nn.layout<["N"]>>
    %nw = nn.binary "mul" %n, %w : tensor<?x16xf32, #nn.layout<["N"]>>, tensor<16xf32> -> tensor<?x16xf32, #nn.layout<["N"]>>
    %y = nn.binary "add" %b, %nw : tensor<16xf32>, tensor<?x16xf32, #nn.layout<["N"]>> -> tensor<?x16xf32, #nn.layout<["N"]>>
    func.return %y : tensor<?x16xf32, #nn.layout<["N"]>>
  }
}

// CHECK-LABEL: func.func @t5(%x: tensor<2x5x16xf32>, %w: tensor<16xf32>)
// CHECK-NEXT:    %[[Y:.*]] = nn.layer_norm %x, %w {axis = 2 : i64, epsilon = {{.*}} : f64, rms = true} : (tensor<2x5x16xf32>, tensor<16xf32>) -> tensor<2x5x16xf32>
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @reciprocal
// CHECK-NEXT:    %[[ONE:.*]] = nn.constant dense<1.000000e+00> : tensor<1xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.layer_norm %x, %[[ONE]] {axis = 1 : i64, epsilon = {{.*}} : f64, rms = true}
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @div_bias
// CHECK-NEXT:    %[[Y:.*]] = nn.layer_norm %x, %w, %b {axis = 1 : i64, epsilon = {{.*}} : f64, rms = true} : (tensor<?x16xf32, #nn.layout<["N"]>>, tensor<16xf32>, tensor<16xf32>) -> tensor<?x16xf32, #nn.layout<["N"]>>
// CHECK-NEXT:    func.return %[[Y]]
