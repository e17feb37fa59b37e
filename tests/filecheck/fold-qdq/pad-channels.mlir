// RUN: ember-opt %s -p 'fold-qdq{multiple=16}' | filecheck %s
// RUN: ember-opt %s -p fold-qdq | filecheck %s --check-prefix=CPU

// GPU builds (multiple=16): a conv over 3 int8 channels (an image's) reads them zero-padded to
// 16, its int8 weight padded alike; the CPU keeps the 3 channels.
builtin.module {
  func.func @main(%xq: tensor<1x3x4x4xi8>) -> tensor<1x8x2x2xf32> {
    %s = nn.constant dense<5.000000e-01> : tensor<f32>
    %x = nn.dequantize %xq, %s {axis = 1 : i64} : (tensor<1x3x4x4xi8>, tensor<f32>) -> tensor<1x3x4x4xf32>
    %wq = nn.constant dense<1> : tensor<8x3x3x3xi8>
    %w = nn.dequantize %wq, %s {axis = 0 : i64} : (tensor<8x3x3x3xi8>, tensor<f32>) -> tensor<8x3x3x3xf32>
    %y = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x4x4xf32>, tensor<8x3x3x3xf32>) -> tensor<1x8x2x2xf32>
    func.return %y : tensor<1x8x2x2xf32>
  }
}

// CHECK-NOT:  tensor<8x3x3x3xi8>
// CHECK:      %[[W:.*]] = nn.weight "const.padC" : tensor<8x16x3x3xi8>
// CHECK-NEXT: %[[X:.*]] = nn.pad %xq {{.*}}pads = array<i64: 0, 0, 0, 0, 0, 13, 0, 0>{{.*}} -> tensor<1x16x4x4xi8>
// CHECK-NEXT: nn.conv %[[X]], %[[W]] {{.*}} : (tensor<1x16x4x4xi8>, tensor<8x16x3x3xi8>) -> tensor<1x8x2x2xi32>
// CPU:        nn.conv %xq, %wq {{.*}} : (tensor<1x3x4x4xi8>, tensor<8x3x3x3xi8>) -> tensor<1x8x2x2xi32>
