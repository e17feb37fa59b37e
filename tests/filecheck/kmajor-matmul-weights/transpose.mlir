// RUN: ember-opt %s -p kmajor-matmul-weights | filecheck %s

// An FP16 matmul by a constant [K, N] weight reads it stored [N, K] with transpose_b; one
// transposed copy serves two matmuls of the same weight. FP32 matmuls, weights already read
// transposed and run-time B operands are left alone.
builtin.module {
  // CHECK-LABEL: func.func @half
  // CHECK-NEXT:    %[[WT:.*]] = nn.constant dense<{{\[\[}}1.000000e+00, 3.000000e+00, 5.000000e+00], [2.000000e+00, 4.000000e+00, 6.000000e+00]]> : tensor<2x3xf16>
  // CHECK-NEXT:    %[[A:.*]] = nn.matmul %x, %[[WT]] {transpose_b = true} : (tensor<4x3xf16>, tensor<2x3xf16>) -> tensor<4x2xf16>
  // CHECK-NEXT:    %[[B:.*]] = nn.matmul %x, %[[WT]] {transpose_b = true} : (tensor<4x3xf16>, tensor<2x3xf16>) -> tensor<4x2xf16>
  // CHECK-NEXT:    func.return %[[A]], %[[B]]
  func.func @half(%x: tensor<4x3xf16>) -> (tensor<4x2xf16>, tensor<4x2xf16>) {
    %w = nn.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf16>
    %a = nn.matmul %x, %w : (tensor<4x3xf16>, tensor<3x2xf16>) -> tensor<4x2xf16>
    %b = nn.matmul %x, %w : (tensor<4x3xf16>, tensor<3x2xf16>) -> tensor<4x2xf16>
    func.return %a, %b : tensor<4x2xf16>, tensor<4x2xf16>
  }

  // CHECK-LABEL: func.func @left_alone
  // CHECK-NEXT:    nn.constant dense<{{.*}}> : tensor<3x2xf32>
  // CHECK-NEXT:    nn.matmul %x, %{{.*}} : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  // CHECK-NEXT:    nn.matmul %h, %y : (tensor<4x3xf16>, tensor<3x2xf16>) -> tensor<4x2xf16>
  func.func @left_alone(%x: tensor<4x3xf32>, %h: tensor<4x3xf16>, %y: tensor<3x2xf16>) -> (tensor<4x2xf32>, tensor<4x2xf16>) {
    %w = nn.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]> : tensor<3x2xf32>
    %a = nn.matmul %x, %w : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
    %b = nn.matmul %h, %y : (tensor<4x3xf16>, tensor<3x2xf16>) -> tensor<4x2xf16>
    func.return %a, %b : tensor<4x2xf32>, tensor<4x2xf16>
  }
}
