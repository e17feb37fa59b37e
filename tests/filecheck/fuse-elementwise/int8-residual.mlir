// RUN: ember-opt %s -p fuse-elementwise | filecheck %s
// RUN: ember-opt %s -p fuse-elementwise,fuse-epilogues | filecheck %s --check-prefix=EPI

// An int8 residual block: the main conv's and the shortcut's int32 sums are each dequantized
// (cast, scale) and quantized to int8 (the QDQ model's Q/DQ after them), then meet in the add.
// The chain into the add from the shortcut (the add's second input) is cut at its narrowest
// value, the int8 quantize: that part stays its own kernel (the shortcut's epilogue after
// fuse-epilogues, storing int8) and the rest fuses with the main chain into the main conv's
// epilogue, which reads the shortcut's int8 result.
builtin.module {
  func.func @residual(%x: tensor<1x16x4x4xi8>, %w: tensor<16x16x1x1xi8>, %v: tensor<16x16x1x1xi8>) -> tensor<1x16x4x4xi8> {
    %c = kernel.launch "conv"(%x, %w) {params = {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 16, 4, 4>, array<i64: 16, 16, 1, 1>], in_dtypes = ["int8", "int8"], out_shapes = [array<i64: 1, 16, 4, 4>], out_dtypes = ["int32"]}, origin = ["main"]} : (tensor<1x16x4x4xi8>, tensor<16x16x1x1xi8>) -> tensor<1x16x4x4xi32>
    %s = kernel.launch "conv"(%x, %v) {params = {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 16, 4, 4>, array<i64: 16, 16, 1, 1>], in_dtypes = ["int8", "int8"], out_shapes = [array<i64: 1, 16, 4, 4>], out_dtypes = ["int32"]}, origin = ["shortcut"]} : (tensor<1x16x4x4xi8>, tensor<16x16x1x1xi8>) -> tensor<1x16x4x4xi32>
    %cq = kernel.elementwise(%c) attributes {origin = ["main_q"]} : (tensor<1x16x4x4xi32>) -> tensor<1x16x4x4xi8> {
    ^bb0(%0: i32):
      %1 = kernel.scalar "cast" %0 : (i32) -> f32
      %2 = kernel.scalar "cast" %1 : (f32) -> i8
      kernel.yield %2 : i8
    }
    %sq = kernel.elementwise(%s) attributes {origin = ["shortcut_q"]} : (tensor<1x16x4x4xi32>) -> tensor<1x16x4x4xi8> {
    ^bb0(%0: i32):
      %1 = kernel.scalar "cast" %0 : (i32) -> f32
      %2 = kernel.scalar "cast" %1 : (f32) -> i8
      kernel.yield %2 : i8
    }
    %sd = kernel.elementwise(%sq) attributes {origin = ["shortcut_dq"]} : (tensor<1x16x4x4xi8>) -> tensor<1x16x4x4xf32> {
    ^bb0(%0: i8):
      %1 = kernel.scalar "cast" %0 : (i8) -> f32
      kernel.yield %1 : f32
    }
    %cd = kernel.elementwise(%cq) attributes {origin = ["main_dq"]} : (tensor<1x16x4x4xi8>) -> tensor<1x16x4x4xf32> {
    ^bb0(%0: i8):
      %1 = kernel.scalar "cast" %0 : (i8) -> f32
      kernel.yield %1 : f32
    }
    %y = kernel.elementwise(%cd, %sd) attributes {origin = ["add"]} : (tensor<1x16x4x4xf32>, tensor<1x16x4x4xf32>) -> tensor<1x16x4x4xi8> {
    ^bb0(%0: f32, %1: f32):
      %2 = kernel.scalar "add" %0, %1 : (f32, f32) -> f32
      %3 = kernel.scalar "cast" %2 : (f32) -> i8
      kernel.yield %3 : i8
    }
    func.return %y : tensor<1x16x4x4xi8>
  }
}

// CHECK-LABEL: func.func @residual
// CHECK:         %[[SQ:.*]] = kernel.elementwise(%[[S:.*]]) {{.*}}origin = ["shortcut_q"]{{.*}} -> tensor<1x16x4x4xi8>
// CHECK:         %[[Y:.*]] = kernel.elementwise(%[[C:.*]], %[[SQ]]) {{.*}}origin = ["main_q", "shortcut_dq", "main_dq", "add"]{{.*}} : (tensor<1x16x4x4xi32>, tensor<1x16x4x4xi8>) -> tensor<1x16x4x4xi8>
// CHECK:         func.return %[[Y]]

// EPI-LABEL: func.func @residual
// EPI:         %[[SQ:.*]] = kernel.launch "conv"(%x, %v) {{.*}}origin = ["shortcut", "shortcut_q"]{{.*}} -> tensor<1x16x4x4xi8> epilogue
// EPI:         %[[Y:.*]] = kernel.launch "conv"(%x, %w, %[[SQ]]) {{.*}}origin = ["main", "main_q", "shortcut_dq", "main_dq", "add"]{{.*}} -> tensor<1x16x4x4xi8> epilogue
// EPI:         func.return %[[Y]]
