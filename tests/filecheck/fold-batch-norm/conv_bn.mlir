// RUN: ember-opt %s -p fold-batch-norm,dce | filecheck %s

// After a conv with constant weights, BatchNorm becomes the conv's new weight and bias:
// s = gamma / sqrt(var + eps) = [2, 0.5]; w' = w * s; b' = (0 - mean) * s + beta.
// A BatchNorm on anything else becomes a per-channel multiply-add.
builtin.module {
  func.func @main(%x: tensor<1x1x2x2xf32>) -> tensor<1x2x2x2xf32> {
    %w = nn.constant dense<[[[[1.0]]], [[[4.0]]]]> : tensor<2x1x1x1xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x2x2xf32>, tensor<2x1x1x1xf32>) -> tensor<1x2x2x2xf32>
    %gamma = nn.constant dense<[2.0, 1.0]> : tensor<2xf32>
    %beta = nn.constant dense<[1.0, -1.0]> : tensor<2xf32>
    %mean = nn.constant dense<[0.5, 2.0]> : tensor<2xf32>
    %var = nn.constant dense<[1.0, 4.0]> : tensor<2xf32>
    %y = nn.batch_norm %c, %gamma, %beta, %mean, %var {epsilon = 0.0 : f64} : (tensor<1x2x2x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %r = nn.unary "relu" %y : tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
    %z = nn.batch_norm %r, %gamma, %beta, %mean, %var {epsilon = 0.0 : f64} : (tensor<1x2x2x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    func.return %z : tensor<1x2x2x2xf32>
  }
}

// CHECK:      %[[W:.*]] = nn.constant dense<2.000000e+00> : tensor<2x1x1x1xf32>
// CHECK-NEXT: %[[B:.*]] = nn.constant dense<[0.000000e+00, -2.000000e+00]> : tensor<2xf32>
// CHECK-NEXT: %[[C:.*]] = nn.conv %{{.*}}, %[[W]], %[[B]] {{.*}} -> tensor<1x2x2x2xf32>
// CHECK-NEXT: %[[R:.*]] = nn.unary "relu" %[[C]]
// CHECK-NEXT: %[[S:.*]] = nn.constant dense<{{\[\[\[}}2.000000e+00]], {{\[\[}}5.000000e-01]]]> : tensor<2x1x1xf32>
// CHECK-NEXT: %[[T:.*]] = nn.constant dense<{{\[\[\[}}0.000000e+00]], {{\[\[}}-2.000000e+00]]]> : tensor<2x1x1xf32>
// CHECK-NEXT: %[[M:.*]] = nn.binary "mul" %[[R]], %[[S]]
// CHECK-NEXT: %[[A:.*]] = nn.binary "add" %[[M]], %[[T]]
// CHECK-NEXT: func.return %[[A]]
// CHECK-NOT:  nn.batch_norm
