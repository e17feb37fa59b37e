// RUN: ember-opt %s -p fold-pad | filecheck %s

// A zero pad of the spatial dims becomes the conv's own pads (added to those it has), for every
// conv that reads it; -inf pads fold into max pools, zero pads into avg pools that count pads
// (a pool without pads of its own starts counting them) and into lp pools.
builtin.module {
  // CHECK-LABEL: func.func @conv
  // CHECK-NEXT:    %[[W:.*]] = nn.weight "w"
  // CHECK-NEXT:    %[[B:.*]] = nn.weight "b"
  // CHECK-NEXT:    %{{.*}} = nn.conv %x, %[[W]], %[[B]] {strides = array<i64: 1, 1>, pads = array<i64: 1, 3, 2, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x4x4xf32>, tensor<2x3x3x3xf32>, tensor<2xf32>) -> tensor<1x2x5x6xf32>
  // CHECK-NOT:     nn.pad
  func.func @conv(%x: tensor<1x3x4x4xf32>) -> tensor<1x2x5x6xf32> {
    %p = nn.pad %x {pads = array<i64: 0, 0, 1, 2, 0, 0, 2, 0>, mode = "constant", value = 0.000000e+00 : f64} : tensor<1x3x4x4xf32> -> tensor<1x3x7x6xf32>
    %w = nn.weight "w" : tensor<2x3x3x3xf32>
    %b = nn.weight "b" : tensor<2xf32>
    %y = nn.conv %p, %w, %b {strides = array<i64: 1, 1>, pads = array<i64: 0, 1, 0, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x3x7x6xf32>, tensor<2x3x3x3xf32>, tensor<2xf32>) -> tensor<1x2x5x6xf32>
    func.return %y : tensor<1x2x5x6xf32>
  }

  // A pad without a value fills with zeros; two convs read it, both take it; a symbolic batch.
  // CHECK-LABEL: func.func @two_convs
  // CHECK-NOT:     nn.pad
  // CHECK:         nn.conv %x, %{{.*}} {strides = array<i64: 1>, pads = array<i64: 2, 2>, {{.*}}} : (tensor<?x2x5xf32, #nn.layout<["N"]>>, tensor<2x2x3xf32>) -> tensor<?x2x7xf32, #nn.layout<["N"]>>
  // CHECK:         nn.conv %x, %{{.*}} {strides = array<i64: 2>, pads = array<i64: 1, 1>, {{.*}}} : (tensor<?x2x5xf32, #nn.layout<["N"]>>, tensor<2x2x3xf32>) -> tensor<?x2x3xf32, #nn.layout<["N"]>>
  func.func @two_convs(%x: tensor<?x2x5xf32, #nn.layout<["N"]>>) -> (tensor<?x2x7xf32, #nn.layout<["N"]>>, tensor<?x2x3xf32, #nn.layout<["N"]>>) {
    %p = nn.pad %x {pads = array<i64: 0, 0, 1, 0, 0, 1>, mode = "constant"} : tensor<?x2x5xf32, #nn.layout<["N"]>> -> tensor<?x2x7xf32, #nn.layout<["N"]>>
    %w = nn.weight "w" : tensor<2x2x3xf32>
    %a = nn.conv %p, %w {strides = array<i64: 1>, pads = array<i64: 1, 1>, dilations = array<i64: 1>, groups = 1 : i64} : (tensor<?x2x7xf32, #nn.layout<["N"]>>, tensor<2x2x3xf32>) -> tensor<?x2x7xf32, #nn.layout<["N"]>>
    %b = nn.conv %p, %w {strides = array<i64: 2>, pads = array<i64: 0, 0>, dilations = array<i64: 1>, groups = 1 : i64} : (tensor<?x2x7xf32, #nn.layout<["N"]>>, tensor<2x2x3xf32>) -> tensor<?x2x3xf32, #nn.layout<["N"]>>
    func.return %a, %b : tensor<?x2x7xf32, #nn.layout<["N"]>>, tensor<?x2x3xf32, #nn.layout<["N"]>>
  }

  // CHECK-LABEL: func.func @max_pool
  // CHECK-NEXT:    %{{.*}} = nn.pool "max" %x {kernel = array<i64: 2, 2>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, ceil_mode = false} : tensor<1x3x4x4xf32> -> tensor<1x3x5x5xf32>
  func.func @max_pool(%x: tensor<1x3x4x4xf32>) -> tensor<1x3x5x5xf32> {
    %p = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant", value = 0xfff0000000000000 : f64} : tensor<1x3x4x4xf32> -> tensor<1x3x6x6xf32>
    %y = nn.pool "max" %p {kernel = array<i64: 2, 2>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = false} : tensor<1x3x6x6xf32> -> tensor<1x3x5x5xf32>
    func.return %y : tensor<1x3x5x5xf32>
  }

  // CHECK-LABEL: func.func @avg_pools
  // CHECK-NEXT:    %{{.*}} = nn.pool "avg" %x {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, ceil_mode = false, count_include_pad = true} : tensor<1x3x4x4xf32> -> tensor<1x3x4x4xf32>
  // CHECK-NEXT:    %{{.*}} = nn.pool "avg" %x {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 2, 2, 2, 2>, dilations = array<i64: 1, 1>, ceil_mode = false, count_include_pad = true} : tensor<1x3x4x4xf32> -> tensor<1x3x6x6xf32>
  // CHECK-NEXT:    %{{.*}} = nn.pool "lp" %x {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, ceil_mode = false, p = 2.000000e+00 : f64} : tensor<1x3x4x4xf32> -> tensor<1x3x4x4xf32>
  func.func @avg_pools(%x: tensor<1x3x4x4xf32>) -> (tensor<1x3x4x4xf32>, tensor<1x3x6x6xf32>, tensor<1x3x4x4xf32>) {
    %p = nn.pad %x {pads = array<i64: 0, 0, 1, 1, 0, 0, 1, 1>, mode = "constant", value = 0.000000e+00 : f64} : tensor<1x3x4x4xf32> -> tensor<1x3x6x6xf32>
    %a = nn.pool "avg" %p {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = false, count_include_pad = false} : tensor<1x3x6x6xf32> -> tensor<1x3x4x4xf32>
    %b = nn.pool "avg" %p {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, ceil_mode = false, count_include_pad = true} : tensor<1x3x6x6xf32> -> tensor<1x3x6x6xf32>
    %c = nn.pool "lp" %p {kernel = array<i64: 3, 3>, strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = false, p = 2.000000e+00 : f64} : tensor<1x3x6x6xf32> -> tensor<1x3x4x4xf32>
    func.return %a, %b, %c : tensor<1x3x4x4xf32>, tensor<1x3x6x6xf32>, tensor<1x3x4x4xf32>
  }
}
