// RUN: ember-opt %s -p fuse-normalization,dce | filecheck %s

// GroupNorm as PyTorch exports it: reshape to [N, G, -1], a layer norm written out over the last
// dim, reshape back, · γ[C, 1, 1] + β[C, 1, 1] (@torch_decomposed, symbolic batch); the older
// export's InstanceNormalization of the G "channels" with unit parameters (@torch_instance);
// no affine (@no_affine: unit parameters); InstanceNorm written out over H, W with · γ + β
// per channel (@instance_norm: groups = channels).
builtin.module {
  func.func @torch_decomposed(%x: tensor<?x4x3x3xf32, #nn.layout<["N"]>>, %g: tensor<4x1x1xf32>, %b: tensor<4x1x1xf32>) -> tensor<?x4x3x3xf32, #nn.layout<["N"]>> {
    %r = nn.reshape %x : (tensor<?x4x3x3xf32, #nn.layout<["N"]>>) -> tensor<?x2x18xf32, #nn.layout<["N"]>>
    %m = nn.reduce "mean" %r {axes = array<i64: 2>, keepdims = true} : (tensor<?x2x18xf32, #nn.layout<["N"]>>) -> tensor<?x2x1xf32, #nn.layout<["N"]>>
    %d = nn.binary "sub" %r, %m : tensor<?x2x18xf32, #nn.layout<["N"]>>, tensor<?x2x1xf32, #nn.layout<["N"]>> -> tensor<?x2x18xf32, #nn.layout<["N"]>>
    %two = nn.constant dense<2.000000e+00> : tensor<f32>
    %sq = nn.binary "pow" %d, %two : tensor<?x2x18xf32, #nn.layout<["N"]>>, tensor<f32> -> tensor<?x2x18xf32, #nn.layout<["N"]>>
    %v = nn.reduce "mean" %sq {axes = array<i64: 2>, keepdims = true} : (tensor<?x2x18xf32, #nn.layout<["N"]>>) -> tensor<?x2x1xf32, #nn.layout<["N"]>>
    %eps = nn.constant dense<1.000000e-05> : tensor<f32>
    %ve = nn.binary "add" %v, %eps : tensor<?x2x1xf32, #nn.layout<["N"]>>, tensor<f32> -> tensor<?x2x1xf32, #nn.layout<["N"]>>
    %s = nn.unary "sqrt" %ve : tensor<?x2x1xf32, #nn.layout<["N"]>> -> tensor<?x2x1xf32, #nn.layout<["N"]>>
    %n = nn.binary "div" %d, %s : tensor<?x2x18xf32, #nn.layout<["N"]>>, tensor<?x2x1xf32, #nn.layout<["N"]>> -> tensor<?x2x18xf32, #nn.layout<["N"]>>
    %nb = nn.reshape %n : (tensor<?x2x18xf32, #nn.layout<["N"]>>) -> tensor<?x4x3x3xf32, #nn.layout<["N"]>>
    %ng = nn.binary "mul" %nb, %g : tensor<?x4x3x3xf32, #nn.layout<["N"]>>, tensor<4x1x1xf32> -> tensor<?x4x3x3xf32, #nn.layout<["N"]>>
    %y = nn.binary "add" %ng, %b : tensor<?x4x3x3xf32, #nn.layout<["N"]>>, tensor<4x1x1xf32> -> tensor<?x4x3x3xf32, #nn.layout<["N"]>>
    func.return %y : tensor<?x4x3x3xf32, #nn.layout<["N"]>>
  }
  func.func @torch_instance(%x: tensor<2x6x5xf32>, %g: tensor<6x1xf32>, %b: tensor<6x1xf32>) -> tensor<2x6x5xf32> {
    %r = nn.reshape %x : (tensor<2x6x5xf32>) -> tensor<2x3x10xf32>
    %one = nn.constant dense<1.000000e+00> : tensor<3xf32>
    %zero = nn.constant dense<0.000000e+00> : tensor<3xf32>
    %n = nn.group_norm %r, %one, %zero {groups = 3 : i64, epsilon = 1.000000e-05 : f64} : (tensor<2x3x10xf32>, tensor<3xf32>, tensor<3xf32>) -> tensor<2x3x10xf32>
    %nb = nn.reshape %n : (tensor<2x3x10xf32>) -> tensor<2x6x5xf32>
    %ng = nn.binary "mul" %nb, %g : tensor<2x6x5xf32>, tensor<6x1xf32> -> tensor<2x6x5xf32>
    %y = nn.binary "add" %ng, %b : tensor<2x6x5xf32>, tensor<6x1xf32> -> tensor<2x6x5xf32>
    func.return %y : tensor<2x6x5xf32>
  }
  func.func @no_affine(%x: tensor<2x6x5xf32>) -> tensor<2x6x5xf32> {
    %r = nn.reshape %x : (tensor<2x6x5xf32>) -> tensor<2x2x15xf32>
    %one = nn.constant dense<1.000000e+00> : tensor<1xf32>
    %n = nn.layer_norm %r, %one {axis = 2 : i64, epsilon = 1.000000e-05 : f64} : (tensor<2x2x15xf32>, tensor<1xf32>) -> tensor<2x2x15xf32>
    %y = nn.reshape %n : (tensor<2x2x15xf32>) -> tensor<2x6x5xf32>
    func.return %y : tensor<2x6x5xf32>
  }
  func.func @instance_norm(%x: tensor<2x4x3x3xf32>, %g: tensor<4x1x1xf32>, %b: tensor<1x4x1x1xf32>) -> tensor<2x4x3x3xf32> {
    %m = nn.reduce "mean" %x {axes = array<i64: 2, 3>, keepdims = true} : (tensor<2x4x3x3xf32>) -> tensor<2x4x1x1xf32>
    %d = nn.binary "sub" %x, %m : tensor<2x4x3x3xf32>, tensor<2x4x1x1xf32> -> tensor<2x4x3x3xf32>
    %sq = nn.binary "mul" %d, %d : tensor<2x4x3x3xf32>, tensor<2x4x3x3xf32> -> tensor<2x4x3x3xf32>
    %v = nn.reduce "mean" %sq {axes = array<i64: 2, 3>, keepdims = true} : (tensor<2x4x3x3xf32>) -> tensor<2x4x1x1xf32>
    %eps = nn.constant dense<1.000000e-05> : tensor<f32>
    %ve = nn.binary "add" %v, %eps : tensor<2x4x1x1xf32>, tensor<f32> -> tensor<2x4x1x1xf32>
    %s = nn.unary "sqrt" %ve : tensor<2x4x1x1xf32> -> tensor<2x4x1x1xf32>
    %n = nn.binary "div" %d, %s : tensor<2x4x3x3xf32>, tensor<2x4x1x1xf32> -> tensor<2x4x3x3xf32>
    %ng = nn.binary "mul" %n, %g : tensor<2x4x3x3xf32>, tensor<4x1x1xf32> -> tensor<2x4x3x3xf32>
    %y = nn.binary "add" %ng, %b : tensor<2x4x3x3xf32>, tensor<1x4x1x1xf32> -> tensor<2x4x3x3xf32>
    func.return %y : tensor<2x4x3x3xf32>
  }
}

// CHECK-LABEL: func.func @torch_decomposed
// CHECK-NEXT:    %[[G:.*]] = nn.reshape %g : (tensor<4x1x1xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %[[B:.*]] = nn.reshape %b : (tensor<4x1x1xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.group_norm %x, %[[G]], %[[B]] {groups = 2 : i64, epsilon = {{.*}} : f64} : (tensor<?x4x3x3xf32, #nn.layout<["N"]>>, tensor<4xf32>, tensor<4xf32>) -> tensor<?x4x3x3xf32, #nn.layout<["N"]>>
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @torch_instance
// CHECK-NEXT:    %[[G:.*]] = nn.reshape %g : (tensor<6x1xf32>) -> tensor<6xf32>
// CHECK-NEXT:    %[[B:.*]] = nn.reshape %b : (tensor<6x1xf32>) -> tensor<6xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.group_norm %x, %[[G]], %[[B]] {groups = 3 : i64, epsilon = 1.000000e-05 : f64}
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @no_affine
// CHECK-NEXT:    %[[ONE:.*]] = nn.constant dense<1.000000e+00> : tensor<6xf32>
// CHECK-NEXT:    %[[ZERO:.*]] = nn.constant dense<0.000000e+00> : tensor<6xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.group_norm %x, %[[ONE]], %[[ZERO]] {groups = 2 : i64, epsilon = 1.000000e-05 : f64}
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @instance_norm
// CHECK-NEXT:    %[[G:.*]] = nn.reshape %g : (tensor<4x1x1xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %[[B:.*]] = nn.reshape %b : (tensor<1x4x1x1xf32>) -> tensor<4xf32>
// CHECK-NEXT:    %[[Y:.*]] = nn.group_norm %x, %[[G]], %[[B]] {groups = 4 : i64, epsilon = {{.*}} : f64}
// CHECK-NEXT:    func.return %[[Y]]
