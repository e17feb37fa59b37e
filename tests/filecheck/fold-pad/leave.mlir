// RUN: ember-opt %s -p fold-pad | filecheck %s

// Left alone: what a consumer's own padding cannot say exactly. Each function keeps its pad.
builtin.module {
  // A non-zero fill into a conv.
  // CHECK-LABEL: func.func @nonzero
  // CHECK-NEXT:    nn.pad %x {{.*}}value = 1.000000e+00 : f64
  // CHECK-NEXT:    nn.weight
  // CHECK-NEXT:    nn.conv %p
  func.func @nonzero(%x: tensor<1x1x4x4xf32>) -> tensor<1x1x4x4xf32> {
    %p = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant", value = 1.000000e+00 : f64} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %w = nn.weight "w" : tensor<1x1x3x3xf32>
    %y = nn.conv %p, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x6x6xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x4x4xf32>
    func.return %y : tensor<1x1x4x4xf32>
  }

  // Reflect and edge modes.
  // CHECK-LABEL: func.func @modes
  // CHECK-NEXT:    nn.pad %x {{.*}}mode = "reflect"
  // CHECK-NEXT:    nn.pad %x {{.*}}mode = "edge"
  // CHECK:         nn.conv %p
  // CHECK-NEXT:    nn.conv %q
  func.func @modes(%x: tensor<1x1x4x4xf32>) -> (tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>) {
    %p = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "reflect"} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %q = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "edge"} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %w = nn.weight "w" : tensor<1x1x3x3xf32>
    %a = nn.conv %p, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x6x6xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x4x4xf32>
    %b = nn.conv %q, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x6x6xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x4x4xf32>
    func.return %a, %b : tensor<1x1x4x4xf32>, tensor<1x1x4x4xf32>
  }

  // Pads on the channel dim and on the batch dim.
  // CHECK-LABEL: func.func @channels
  // CHECK-NEXT:    nn.pad %x {pads = array<i64: 0, 1, 1, 1, 0, 0, 1, 1>
  // CHECK-NEXT:    nn.pad %x {pads = array<i64: 1, 0, 0, 0, 0, 0, 0, 0>
  func.func @channels(%x: tensor<1x1x4x4xf32>) -> (tensor<1x1x4x4xf32>, tensor<2x1x2x2xf32>) {
    %p = nn.pad %x {pads = array<i64: 0, 1, 1, 1, 0, 0, 1, 1>, mode = "constant"} : tensor<1x1x4x4xf32> -> tensor<1x2x6x6xf32>
    %q = nn.pad %x {pads = array<i64: 1, 0, 0, 0, 0, 0, 0, 0>, mode = "constant"} : tensor<1x1x4x4xf32> -> tensor<2x1x4x4xf32>
    %w = nn.weight "w" : tensor<1x2x3x3xf32>
    %v = nn.weight "v" : tensor<1x1x3x3xf32>
    %a = nn.conv %p, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x6x6xf32>, tensor<1x2x3x3xf32>) -> tensor<1x1x4x4xf32>
    %b = nn.conv %q, %v {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<2x1x4x4xf32>, tensor<1x1x3x3xf32>) -> tensor<2x1x2x2xf32>
    func.return %a, %b : tensor<1x1x4x4xf32>, tensor<2x1x2x2xf32>
  }

  // A negative pad crops.
  // CHECK-LABEL: func.func @crop
  // CHECK-NEXT:    nn.pad %x {pads = array<i64: 0, 0, -1, 1, 0, 0, 1, 1>
  func.func @crop(%x: tensor<1x1x4x4xf32>) -> tensor<1x1x2x4xf32> {
    %p = nn.pad %x {pads = array<i64: 0, 0, -1, 1, 0, 0, 1, 1>, mode = "constant"} : tensor<1x1x4x4xf32> -> tensor<1x1x4x6xf32>
    %w = nn.weight "w" : tensor<1x1x3x3xf32>
    %y = nn.conv %p, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x4x6xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x2x4xf32>
    func.return %y : tensor<1x1x2x4xf32>
  }

  // The padded tensor is also read by something else.
  // CHECK-LABEL: func.func @other_user
  // CHECK-NEXT:    nn.pad %x
  func.func @other_user(%x: tensor<1x1x4x4xf32>) -> (tensor<1x1x4x4xf32>, tensor<1x1x6x6xf32>) {
    %p = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant"} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %w = nn.weight "w" : tensor<1x1x3x3xf32>
    %y = nn.conv %p, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x6x6xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x4x4xf32>
    %r = nn.unary "relu" %p : tensor<1x1x6x6xf32> -> tensor<1x1x6x6xf32>
    func.return %y, %r : tensor<1x1x4x4xf32>, tensor<1x1x6x6xf32>
  }

  // Pools whose padding means something else: zeros into max, -inf into avg, zeros into an avg
  // pool that pads without counting pads, and ceil mode.
  // CHECK-LABEL: func.func @pools
  // CHECK-NEXT:    nn.pad %x {{.*}}value = 0.000000e+00
  // CHECK-NEXT:    nn.pad %x {{.*}}value = 0xfff0000000000000
  // CHECK-NEXT:    nn.pad %x {{.*}}value = 0.000000e+00
  // CHECK-NEXT:    nn.pad %x {{.*}}value = 0.000000e+00
  func.func @pools(%x: tensor<1x1x4x4xf32>) -> (tensor<1x1x5x5xf32>, tensor<1x1x5x5xf32>, tensor<1x1x6x6xf32>, tensor<1x1x3x3xf32>) {
    %p = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant", value = 0.000000e+00 : f64} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %q = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant", value = 0xfff0000000000000 : f64} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %r = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant", value = 0.000000e+00 : f64} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %s = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant", value = 0.000000e+00 : f64} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %a = nn.pool "max" %p {kernel = array<i64: 2, 2>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = false} : tensor<1x1x6x6xf32> -> tensor<1x1x5x5xf32>
    %b = nn.pool "avg" %q {kernel = array<i64: 2, 2>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = false, count_include_pad = true} : tensor<1x1x6x6xf32> -> tensor<1x1x5x5xf32>
    %c = nn.pool "avg" %r {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, ceil_mode = false, count_include_pad = false} : tensor<1x1x6x6xf32> -> tensor<1x1x6x6xf32>
    %d = nn.pool "avg" %s {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = true, count_include_pad = true} : tensor<1x1x6x6xf32> -> tensor<1x1x3x3xf32>
    func.return %a, %b, %c, %d : tensor<1x1x5x5xf32>, tensor<1x1x5x5xf32>, tensor<1x1x6x6xf32>, tensor<1x1x3x3xf32>
  }

  // Run-time pads, and a conv_transpose (its pads crop).
  // CHECK-LABEL: func.func @dynamic_and_transposed
  // CHECK-NEXT:    nn.pad %x pads(%n
  // CHECK-NEXT:    nn.pad %x {pads
  func.func @dynamic_and_transposed(%x: tensor<1x1x4x4xf32>, %n: tensor<8xi64>) -> (tensor<1x1x?x?xf32>, tensor<1x1x8x8xf32>) {
    %p = nn.pad %x pads(%n : tensor<8xi64>) {mode = "constant"} : tensor<1x1x4x4xf32> -> tensor<1x1x?x?xf32>
    %q = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant"} : tensor<1x1x4x4xf32> -> tensor<1x1x6x6xf32>
    %w = nn.weight "w" : tensor<1x1x3x3xf32>
    %a = nn.pool "max" %p {kernel = array<i64: 1, 1>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = false} : tensor<1x1x?x?xf32> -> tensor<1x1x?x?xf32>
    %b = nn.conv_transpose %q, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x6x6xf32>, tensor<1x1x3x3xf32>) -> tensor<1x1x8x8xf32>
    func.return %a, %b : tensor<1x1x?x?xf32>, tensor<1x1x8x8xf32>
  }
}
