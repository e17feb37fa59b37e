// RUN: ember-opt %s -p fuse-epilogues | filecheck %s

// An FP16 conv whose result is cast to f32 (an FP32-pinned layer after it, or a network output
// kept FP32): the cast becomes the epilogue, the launch stores f32 directly and its params keep
// the type it computes in (out_dtypes = float16).
builtin.module {
  func.func @to_f32(%x: tensor<1x2x4x4xf16>, %w: tensor<2x2x3x3xf16>) -> tensor<1x2x4x4xf32> {
    %c = kernel.launch "conv"(%x, %w) {params = {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 2, 4, 4>, array<i64: 2, 2, 3, 3>], in_dtypes = ["float16", "float16"], out_shapes = [array<i64: 1, 2, 4, 4>], out_dtypes = ["float16"]}, origin = ["conv"]} : (tensor<1x2x4x4xf16>, tensor<2x2x3x3xf16>) -> tensor<1x2x4x4xf16>
    %y = kernel.elementwise(%c) attributes {origin = ["relu"]} : (tensor<1x2x4x4xf16>) -> tensor<1x2x4x4xf32> {
    ^bb0(%0: f16):
      %1 = kernel.scalar "relu" %0 : (f16) -> f16
      %2 = kernel.scalar "cast" %1 : (f16) -> f32
      kernel.yield %2 : f32
    }
    func.return %y : tensor<1x2x4x4xf32>
  }
}

// CHECK-LABEL: func.func @to_f32
// CHECK-NEXT:    %[[Y:.*]] = kernel.launch "conv"(%x, %w) {params = {{{.*}}out_dtypes = ["float16"]}, origin = ["conv", "relu"]} : (tensor<1x2x4x4xf16>, tensor<2x2x3x3xf16>) -> tensor<1x2x4x4xf32> epilogue {
// CHECK-NEXT:    ^bb0(%[[ACC:.*]]: f16):
// CHECK-NEXT:      %[[R:.*]] = kernel.scalar "relu" %[[ACC]] : (f16) -> f16
// CHECK-NEXT:      %[[C:.*]] = kernel.scalar "cast" %[[R]] : (f16) -> f32
// CHECK-NEXT:      kernel.yield %[[C]] : f32
// CHECK-NEXT:    }
// CHECK-NEXT:    func.return %[[Y]] : tensor<1x2x4x4xf32>

// An FP32 (pinned) matmul feeding FP16 layers, with a residual read by the cast region: it
// stores f16.
builtin.module {
  func.func @to_f16(%a: tensor<3x8xf32>, %b: tensor<8x5xf32>, %r: tensor<3x5xf16>) -> tensor<3x5xf16> {
    %m = kernel.launch "matmul"(%a, %b) {params = {in_shapes = [array<i64: 3, 8>, array<i64: 8, 5>], in_dtypes = ["float32", "float32"], out_shapes = [array<i64: 3, 5>], out_dtypes = ["float32"]}} : (tensor<3x8xf32>, tensor<8x5xf32>) -> tensor<3x5xf32>
    %y = kernel.elementwise(%m, %r) : (tensor<3x5xf32>, tensor<3x5xf16>) -> tensor<3x5xf16> {
    ^bb0(%0: f32, %1: f16):
      %2 = kernel.scalar "cast" %0 : (f32) -> f16
      %3 = kernel.scalar "add" %2, %1 : (f16, f16) -> f16
      kernel.yield %3 : f16
    }
    func.return %y : tensor<3x5xf16>
  }
}

// CHECK-LABEL: func.func @to_f16
// CHECK-NEXT:    %[[Y:.*]] = kernel.launch "matmul"(%a, %b, %r) {params = {{{.*}}out_dtypes = ["float32"]}} : (tensor<3x8xf32>, tensor<8x5xf32>, tensor<3x5xf16>) -> tensor<3x5xf16> epilogue {
// CHECK-NEXT:    ^bb0(%{{.*}}: f32, %{{.*}}: f16):
// CHECK-NEXT:      kernel.scalar "cast"
// CHECK-NEXT:      kernel.scalar "add"
// CHECK-NEXT:      kernel.yield {{.*}} : f16
// CHECK-NEXT:    }
// CHECK-NEXT:    func.return %[[Y]] : tensor<3x5xf16>

// A cast behind a view of the launch (conv -> flatten -> cast before an FP32 layer): the
// launch stores f32 and the view moves after it.
builtin.module {
  func.func @view(%x: tensor<2x2x4x4xf16>, %w: tensor<4x2x3x3xf16>) -> tensor<2x64xf32> {
    %c = kernel.launch "conv"(%x, %w) {params = {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 2, 2, 4, 4>, array<i64: 4, 2, 3, 3>], in_dtypes = ["float16", "float16"], out_shapes = [array<i64: 2, 4, 4, 4>], out_dtypes = ["float16"]}, origin = ["conv"]} : (tensor<2x2x4x4xf16>, tensor<4x2x3x3xf16>) -> tensor<2x4x4x4xf16>
    %f = kernel.view %c : tensor<2x4x4x4xf16> -> tensor<2x64xf16>
    %y = kernel.elementwise(%f) : (tensor<2x64xf16>) -> tensor<2x64xf32> {
    ^bb0(%0: f16):
      %1 = kernel.scalar "cast" %0 : (f16) -> f32
      kernel.yield %1 : f32
    }
    func.return %y : tensor<2x64xf32>
  }
}

// CHECK-LABEL: func.func @view
// CHECK-NEXT:    %[[C:.*]] = kernel.launch "conv"(%x, %w) {params = {{{.*}}groups = 1 : i64{{.*}}}, origin = ["conv"]} : (tensor<2x2x4x4xf16>, tensor<4x2x3x3xf16>) -> tensor<2x4x4x4xf32> epilogue {
// CHECK-NEXT:    ^bb0(%[[ACC:.*]]: f16):
// CHECK-NEXT:      %[[K:.*]] = kernel.scalar "cast" %[[ACC]] : (f16) -> f32
// CHECK-NEXT:      kernel.yield %[[K]] : f32
// CHECK-NEXT:    }
// CHECK-NEXT:    %[[Y:.*]] = kernel.view %[[C]] : tensor<2x4x4x4xf32> -> tensor<2x64xf32>
// CHECK-NEXT:    func.return %[[Y]] : tensor<2x64xf32>

// Left alone: a cast to a type the templates do not store from an epilogue (f64, integers),
// and a view whose elementwise user reads another input (it would need the view's shape).
builtin.module {
  func.func @left(%x: tensor<1x2x4x4xf32>, %w: tensor<2x2x3x3xf32>, %z: tensor<1x32xf32>) -> (tensor<1x2x4x4xf64>, tensor<1x32xf32>) {
    %c = kernel.launch "conv"(%x, %w) {params = {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 2, 4, 4>, array<i64: 2, 2, 3, 3>], in_dtypes = ["float32", "float32"], out_shapes = [array<i64: 1, 2, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    %d = kernel.elementwise(%c) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf64> {
    ^bb0(%0: f32):
      %1 = kernel.scalar "cast" %0 : (f32) -> f64
      kernel.yield %1 : f64
    }
    %e = kernel.launch "conv"(%x, %w) {params = {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 2, 4, 4>, array<i64: 2, 2, 3, 3>], in_dtypes = ["float32", "float32"], out_shapes = [array<i64: 1, 2, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    %v = kernel.view %e : tensor<1x2x4x4xf32> -> tensor<1x32xf32>
    %s = kernel.elementwise(%v, %z) : (tensor<1x32xf32>, tensor<1x32xf32>) -> tensor<1x32xf32> {
    ^bb0(%2: f32, %3: f32):
      %4 = kernel.scalar "add" %2, %3 : (f32, f32) -> f32
      kernel.yield %4 : f32
    }
    func.return %d, %s : tensor<1x2x4x4xf64>, tensor<1x32xf32>
  }
}

// CHECK-LABEL: func.func @left
// CHECK-NOT:     epilogue
// CHECK:         kernel.elementwise(%{{.*}}) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf64>
// CHECK-NOT:     epilogue
// CHECK:         kernel.view
// CHECK-NEXT:    kernel.elementwise
// CHECK-NOT:     epilogue
