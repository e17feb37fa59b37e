// RUN: ember-opt %s -p fold-qdq | filecheck %s
// RUN: ember-opt %s -p 'fold-qdq{multiple=16}' | filecheck %s --check-prefix=GPU

// A grouped conv over 2 x 16 channels folds to int8 on the CPU; GPU builds (multiple=16) fold
// only ungrouped convs (the INT8 tensor-core conv runs ungrouped, NHWC), so it stays float.
builtin.module {
  func.func @main(%xq: tensor<1x32x4x4xi8>) -> tensor<1x32x2x2xf32> {
    %s = nn.constant dense<5.000000e-01> : tensor<f32>
    %x = nn.dequantize %xq, %s {axis = 1 : i64} : (tensor<1x32x4x4xi8>, tensor<f32>) -> tensor<1x32x4x4xf32>
    %wq = nn.constant dense<1> : tensor<32x16x3x3xi8>
    %w = nn.dequantize %wq, %s {axis = 0 : i64} : (tensor<32x16x3x3xi8>, tensor<f32>) -> tensor<32x16x3x3xf32>
    %y = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 2 : i64} : (tensor<1x32x4x4xf32>, tensor<32x16x3x3xf32>) -> tensor<1x32x2x2xf32>
    func.return %y : tensor<1x32x2x2xf32>
  }
}

// CHECK: nn.conv %xq, %wq {{.*}} -> tensor<1x32x2x2xi32>
// GPU:   nn.conv %{{.*}}, %{{.*}} {{.*}} : (tensor<1x32x4x4xf32>, tensor<32x16x3x3xf32>) -> tensor<1x32x2x2xf32>
