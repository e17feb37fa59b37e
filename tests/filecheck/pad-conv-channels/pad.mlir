// RUN: ember-opt %s -p pad-conv-channels | filecheck %s

// An FP16 conv over 3 channels reads them zero-padded to 8 (input and weight); an FP32 one
// marked tf32 pads to 4; a grouped conv, an unmarked FP32 one and 8 channels stay as they are.
builtin.module {
  // CHECK-LABEL: func.func @half
  // CHECK-NEXT:    %[[W:.*]] = nn.constant dense<{{.*}}> : tensor<2x8x1x1xf16>
  // CHECK-NEXT:    %[[P:.*]] = nn.pad %x {pads = array<i64: 0, 0, 0, 0, 0, 5, 0, 0>, mode = "constant", value = 0.000000e+00 : f64} : tensor<1x3x4x4xf16> -> tensor<1x8x4x4xf16>
  // CHECK-NEXT:    %{{.*}} = nn.conv %[[P]], %[[W]] {{.*}} : (tensor<1x8x4x4xf16>, tensor<2x8x1x1xf16>) -> tensor<1x2x4x4xf16>
  func.func @half(%x: tensor<1x3x4x4xf16>) -> tensor<1x2x4x4xf16> {
    %w = nn.constant dense<[[[[1.0]], [[2.0]], [[3.0]]], [[[4.0]], [[5.0]], [[6.0]]]]> : tensor<2x3x1x1xf16>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x4x4xf16>, tensor<2x3x1x1xf16>) -> tensor<1x2x4x4xf16>
    func.return %c : tensor<1x2x4x4xf16>
  }

  // CHECK-LABEL: func.func @tf32
  // CHECK:         nn.pad %x {pads = array<i64: 0, 0, 0, 0, 0, 1, 0, 0>{{.*}} -> tensor<1x4x4x4xf32>
  // CHECK:         nn.conv {{.*}} : (tensor<1x4x4x4xf32>, tensor<2x4x1x1xf32>) -> tensor<1x2x4x4xf32>
  func.func @tf32(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x4x4xf32> {
    %w = nn.constant dense<[[[[1.0]], [[2.0]], [[3.0]]], [[[4.0]], [[5.0]], [[6.0]]]]> : tensor<2x3x1x1xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, tf32} : (tensor<1x3x4x4xf32>, tensor<2x3x1x1xf32>) -> tensor<1x2x4x4xf32>
    func.return %c : tensor<1x2x4x4xf32>
  }

  // CHECK-LABEL: func.func @left_alone
  // CHECK-NOT:     nn.pad
  // CHECK:         func.return
  func.func @left_alone(%x: tensor<1x3x4x4xf32>, %h: tensor<1x4x4x4xf16>, %e: tensor<1x8x4x4xf16>) -> (tensor<1x2x4x4xf32>, tensor<1x4x4x4xf16>, tensor<1x2x4x4xf16>) {
    %w = nn.constant dense<[[[[1.0]], [[2.0]], [[3.0]]], [[[4.0]], [[5.0]], [[6.0]]]]> : tensor<2x3x1x1xf32>
    %a = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x4x4xf32>, tensor<2x3x1x1xf32>) -> tensor<1x2x4x4xf32>
    %g = nn.constant dense<[[[[1.0]]], [[[2.0]]], [[[3.0]]], [[[4.0]]]]> : tensor<4x1x1x1xf16>
    %b = nn.conv %h, %g {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 4 : i64} : (tensor<1x4x4x4xf16>, tensor<4x1x1x1xf16>) -> tensor<1x4x4x4xf16>
    %v = nn.constant dense<1.0> : tensor<2x8x1x1xf16>
    %c = nn.conv %e, %v {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x4x4xf16>, tensor<2x8x1x1xf16>) -> tensor<1x2x4x4xf16>
    func.return %a, %b, %c : tensor<1x2x4x4xf32>, tensor<1x4x4x4xf16>, tensor<1x2x4x4xf16>
  }
}
