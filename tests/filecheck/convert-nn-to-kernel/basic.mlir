// RUN: ember-opt %s -p convert-nn-to-kernel | filecheck %s

// Elementwise ops get a one-op scalar region; a reshape is a view (no kernel); other ops launch
// their template with the static shapes in params; weights stay data.
builtin.module {
  func.func @main(%x: tensor<1x2x4x4xf32>) -> tensor<1x32xf32> {
    %w = nn.weight "conv.weight" : tensor<2x2x3x3xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    %r = nn.unary "relu" %c : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xf32>
    %y = nn.reshape %r : (tensor<1x2x4x4xf32>) -> tensor<1x32xf32>
    func.return %y : tensor<1x32xf32>
  }
}

// CHECK:      %[[W:.*]] = nn.weight "conv.weight" : tensor<2x2x3x3xf32>
// CHECK-NEXT: %[[C:.*]] = kernel.launch "conv"(%{{.*}}, %[[W]]) {params = {{{.*}}groups = 1 : i64, in_shapes = [array<i64: 1, 2, 4, 4>, array<i64: 2, 2, 3, 3>], in_dtypes = ["float32", "float32"], out_shapes = [array<i64: 1, 2, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
// CHECK-NEXT: %[[R:.*]] = kernel.elementwise(%[[C]]) : (tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
// CHECK-NEXT: ^bb0(%[[S:.*]]: f32):
// CHECK-NEXT:   %[[T:.*]] = kernel.scalar "relu" %[[S]] : (f32) -> f32
// CHECK-NEXT:   kernel.yield %[[T]] : f32
// CHECK-NEXT: }
// CHECK-NEXT: %[[Y:.*]] = kernel.view %[[R]] : tensor<1x2x4x4xf32> -> tensor<1x32xf32>
// CHECK-NEXT: func.return %[[Y]]
