// RUN: ember-opt %s -p fold-scale-shift,dce | filecheck %s

// conv * [2, 0.5] per channel + [1, -1] per channel: one conv with w' = w * s, b' = b * s + t.
// matmul * [2, 3] per column (scalar / 4 with a transposed weight): the weight is scaled.
builtin.module {
  // CHECK-LABEL: func.func @conv_scale_shift
  // CHECK-NEXT:    %[[W:.*]] = nn.constant dense<2.000000e+00> : tensor<2x1x1x1xf32>
  // CHECK-NEXT:    %[[B:.*]] = nn.constant dense<[3.000000e+00, -5.000000e-01]> : tensor<2xf32>
  // CHECK-NEXT:    %[[C:.*]] = nn.conv %{{.*}}, %[[W]], %[[B]] {{.*}} -> tensor<1x2x2x2xf32>
  // CHECK-NEXT:    func.return %[[C]]
  func.func @conv_scale_shift(%x: tensor<1x1x2x2xf32>) -> tensor<1x2x2x2xf32> {
    %w = nn.constant dense<[[[[1.0]]], [[[4.0]]]]> : tensor<2x1x1x1xf32>
    %b = nn.constant dense<[1.0, 1.0]> : tensor<2xf32>
    %c = nn.conv %x, %w, %b {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x2x2xf32>, tensor<2x1x1x1xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %s = nn.constant dense<[[[2.0]], [[0.5]]]> : tensor<2x1x1xf32>
    %m = nn.binary "mul" %c, %s : tensor<1x2x2x2xf32>, tensor<2x1x1xf32> -> tensor<1x2x2x2xf32>
    %t = nn.constant dense<[[[1.0]], [[-1.0]]]> : tensor<2x1x1xf32>
    %a = nn.binary "add" %t, %m : tensor<2x1x1xf32>, tensor<1x2x2x2xf32> -> tensor<1x2x2x2xf32>
    func.return %a : tensor<1x2x2x2xf32>
  }

  // CHECK-LABEL: func.func @matmul_columns
  // CHECK-NEXT:    %[[W:.*]] = nn.constant dense<{{\[\[}}2.000000e+00, 3.000000e+00], [4.000000e+00, 6.000000e+00]]> : tensor<2x2xf32>
  // CHECK-NEXT:    %[[M:.*]] = nn.matmul %{{.*}}, %[[W]] : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32>
  // CHECK-NEXT:    func.return %[[M]]
  func.func @matmul_columns(%x: tensor<3x2xf32>) -> tensor<3x2xf32> {
    %w = nn.constant dense<[[1.0, 1.0], [2.0, 2.0]]> : tensor<2x2xf32>
    %m = nn.matmul %x, %w : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32>
    %s = nn.constant dense<[2.0, 3.0]> : tensor<2xf32>
    %y = nn.binary "mul" %m, %s : tensor<3x2xf32>, tensor<2xf32> -> tensor<3x2xf32>
    func.return %y : tensor<3x2xf32>
  }

  // CHECK-LABEL: func.func @matmul_transposed_div
  // CHECK-NEXT:    %[[W:.*]] = nn.constant dense<{{\[\[}}2.500000e-01, 5.000000e-01], [7.500000e-01, 1.000000e+00]]> : tensor<2x2xf32>
  // CHECK-NEXT:    %[[M:.*]] = nn.matmul %{{.*}}, %[[W]] {transpose_b = 1 : i64}
  // CHECK-NEXT:    func.return %[[M]]
  func.func @matmul_transposed_div(%x: tensor<3x2xf32>) -> tensor<3x2xf32> {
    %w = nn.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
    %m = nn.matmul %x, %w {transpose_b = 1 : i64} : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32>
    %s = nn.constant dense<4.0> : tensor<f32>
    %y = nn.binary "div" %m, %s : tensor<3x2xf32>, tensor<f32> -> tensor<3x2xf32>
    func.return %y : tensor<3x2xf32>
  }
}
