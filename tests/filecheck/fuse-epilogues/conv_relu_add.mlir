// RUN: ember-opt %s -p fuse-epilogues | filecheck %s

// conv -> relu+add(residual x) (already one elementwise kernel) becomes one launch: the region
// moves into its epilogue with the conv's value first, the residual joins its operands.
builtin.module {
  func.func @block(%x: tensor<1x2x4x4xf32>, %w: tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32> {
    %c = kernel.launch "conv"(%x, %w) {params = {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 2, 4, 4>, array<i64: 2, 2, 3, 3>], in_dtypes = ["float32", "float32"], out_shapes = [array<i64: 1, 2, 4, 4>], out_dtypes = ["float32"]}, origin = ["conv"]} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    %y = kernel.elementwise(%c, %x) attributes {origin = ["relu", "add"]} : (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    ^bb0(%0: f32, %1: f32):
      %2 = kernel.scalar "relu" %0 : (f32) -> f32
      %3 = kernel.scalar "add" %2, %1 : (f32, f32) -> f32
      kernel.yield %3 : f32
    }
    func.return %y : tensor<1x2x4x4xf32>
  }
}

// CHECK-LABEL: func.func @block
// CHECK-NEXT:    %[[Y:.*]] = kernel.launch "conv"(%x, %w, %x) {params = {{{.*}}groups = 1 : i64{{.*}}}, origin = ["conv", "relu", "add"]} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>, tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> epilogue {
// CHECK-NEXT:    ^bb0(%[[ACC:.*]]: f32, %[[RES:.*]]: f32):
// CHECK-NEXT:      %[[R:.*]] = kernel.scalar "relu" %[[ACC]] : (f32) -> f32
// CHECK-NEXT:      %[[A:.*]] = kernel.scalar "add" %[[R]], %[[RES]] : (f32, f32) -> f32
// CHECK-NEXT:      kernel.yield %[[A]] : f32
// CHECK-NEXT:    }
// CHECK-NEXT:    func.return %[[Y]] : tensor<1x2x4x4xf32>

// The conv's value is also returned: it is not fused.
builtin.module {
  func.func @shared(%x: tensor<1x2x4x4xf32>, %w: tensor<2x2x3x3xf32>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
    %c = kernel.launch "conv"(%x, %w) {params = {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 2, 4, 4>, array<i64: 2, 2, 3, 3>], in_dtypes = ["float32", "float32"], out_shapes = [array<i64: 1, 2, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    %y = kernel.elementwise(%c) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    ^bb0(%0: f32):
      %1 = kernel.scalar "relu" %0 : (f32) -> f32
      kernel.yield %1 : f32
    }
    func.return %c, %y : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
  }
}

// CHECK-LABEL: func.func @shared
// CHECK-NEXT:    %[[C:.*]] = kernel.launch "conv"(%x, %w) {params = {{{.*}}groups = 1 : i64{{.*}}}} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT:    %[[Y:.*]] = kernel.elementwise(%[[C]])
