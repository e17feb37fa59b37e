// RUN: ember-opt %s -p fold-scale-shift | filecheck %s

// Left alone: a scale varying along the spatial dims, a result used twice, a constant divided
// by the conv (not the conv by a constant), an add after a matmul (it becomes the epilogue), a
// run-time scale.
builtin.module {
  // CHECK-LABEL: func.func @spatial_scale
  // CHECK:         nn.conv
  // CHECK-NEXT:    nn.constant
  // CHECK-NEXT:    nn.binary "mul"
  func.func @spatial_scale(%x: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
    %w = nn.constant dense<2.0> : tensor<1x1x1x1xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x2x2xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x2x2xf32>
    %s = nn.constant dense<[1.0, 2.0]> : tensor<2xf32>
    %m = nn.binary "mul" %c, %s : tensor<1x1x2x2xf32>, tensor<2xf32> -> tensor<1x1x2x2xf32>
    func.return %m : tensor<1x1x2x2xf32>
  }

  // CHECK-LABEL: func.func @used_twice
  // CHECK:         nn.conv
  // CHECK:         nn.binary "mul"
  func.func @used_twice(%x: tensor<1x1x2x2xf32>) -> (tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>) {
    %w = nn.constant dense<2.0> : tensor<1x1x1x1xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x2x2xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x2x2xf32>
    %s = nn.constant dense<3.0> : tensor<f32>
    %m = nn.binary "mul" %c, %s : tensor<1x1x2x2xf32>, tensor<f32> -> tensor<1x1x2x2xf32>
    func.return %c, %m : tensor<1x1x2x2xf32>, tensor<1x1x2x2xf32>
  }

  // CHECK-LABEL: func.func @constant_over_conv
  // CHECK:         nn.binary "div" %{{.*}}, %{{.*}}
  func.func @constant_over_conv(%x: tensor<1x1x2x2xf32>) -> tensor<1x1x2x2xf32> {
    %w = nn.constant dense<2.0> : tensor<1x1x1x1xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x2x2xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x2x2xf32>
    %s = nn.constant dense<3.0> : tensor<f32>
    %m = nn.binary "div" %s, %c : tensor<f32>, tensor<1x1x2x2xf32> -> tensor<1x1x2x2xf32>
    func.return %m : tensor<1x1x2x2xf32>
  }

  // CHECK-LABEL: func.func @matmul_add_stays
  // CHECK:         nn.matmul
  // CHECK-NEXT:    nn.constant
  // CHECK-NEXT:    nn.binary "add"
  func.func @matmul_add_stays(%x: tensor<3x2xf32>) -> tensor<3x2xf32> {
    %w = nn.constant dense<[[1.0, 1.0], [2.0, 2.0]]> : tensor<2x2xf32>
    %m = nn.matmul %x, %w : (tensor<3x2xf32>, tensor<2x2xf32>) -> tensor<3x2xf32>
    %s = nn.constant dense<[2.0, 3.0]> : tensor<2xf32>
    %y = nn.binary "add" %m, %s : tensor<3x2xf32>, tensor<2xf32> -> tensor<3x2xf32>
    func.return %y : tensor<3x2xf32>
  }

  // CHECK-LABEL: func.func @runtime_scale
  // CHECK:         nn.binary "mul"
  func.func @runtime_scale(%x: tensor<1x1x2x2xf32>, %s: tensor<f32>) -> tensor<1x1x2x2xf32> {
    %w = nn.constant dense<2.0> : tensor<1x1x1x1xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x1x2x2xf32>, tensor<1x1x1x1xf32>) -> tensor<1x1x2x2xf32>
    %m = nn.binary "mul" %c, %s : tensor<1x1x2x2xf32>, tensor<f32> -> tensor<1x1x2x2xf32>
    func.return %m : tensor<1x1x2x2xf32>
  }

  // A division by a constant with a zero in it stays (1/0 in a weight makes NaN of zeros).
  // CHECK-LABEL: func.func @divide_by_zero_stays
  // CHECK:         nn.binary "div"
  func.func @divide_by_zero_stays(%x: tensor<1x2x2x2xf32>) -> tensor<1x2x2x2xf32> {
    %w = nn.constant dense<2.0> : tensor<2x2x1x1xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x2x2xf32>, tensor<2x2x1x1xf32>) -> tensor<1x2x2x2xf32>
    %s = nn.constant dense<[[[0.0]], [[2.0]]]> : tensor<2x1x1xf32>
    %m = nn.binary "div" %c, %s : tensor<1x2x2x2xf32>, tensor<2x1x1xf32> -> tensor<1x2x2x2xf32>
    func.return %m : tensor<1x2x2x2xf32>
  }
}
