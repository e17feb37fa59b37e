// RUN: ember-opt %s -p convert-nn-to-kernel,assign-layouts | filecheck %s
// RUN: ember-opt %s -p 'convert-nn-to-kernel,assign-layouts{io-formats="NCHW,NHWC"}' | filecheck %s --check-prefix=IO

// Three convs with C_in % 4 == 0 outnumber the two reformats they need: they run in NHWC (weights
// read as OHWI: a 1x1 weight is the same bytes, a view; a 3x3 one not in the weight store is
// reformatted at run time), the bias add and relu follow their producer, the bias [8, 1, 1] is
// read as [1, 1, 1, 8] (a view). The network input and output stay NCHW: one reformat each.
builtin.module {
  func.func @main(%x: tensor<1x4x8x8xf32>) -> tensor<1x8x8x8xf32> {
    %w = nn.weight "w1" : tensor<8x4x3x3xf32>
    %w2 = nn.weight "w2" : tensor<8x8x1x1xf32>
    %b = nn.weight "b" : tensor<8x1x1xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<8x4x3x3xf32>) -> tensor<1x8x8x8xf32>
    %a = nn.binary "add" %c, %b : tensor<1x8x8x8xf32>, tensor<8x1x1xf32> -> tensor<1x8x8x8xf32>
    %r = nn.unary "relu" %a : tensor<1x8x8x8xf32> -> tensor<1x8x8x8xf32>
    %c2 = nn.conv %r, %w2 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x8xf32>, tensor<8x8x1x1xf32>) -> tensor<1x8x8x8xf32>
    %c3 = nn.conv %c2, %w2 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x8x8xf32>, tensor<8x8x1x1xf32>) -> tensor<1x8x8x8xf32>
    func.return %c3 : tensor<1x8x8x8xf32>
  }
}

// CHECK-LABEL: func.func @main(%x: tensor<1x4x8x8xf32, #nn.layout<NCHW>>) -> tensor<1x8x8x8xf32, #nn.layout<NCHW>>
// CHECK-NEXT:    %[[X:.*]] = kernel.launch "transpose"(%x) {params = {perm = array<i64: 0, 2, 3, 1>, reformat = "NCHW->NHWC", in_shapes = [array<i64: 1, 4, 8, 8>], {{.*}} out_shapes = [array<i64: 1, 8, 8, 4>]
// CHECK-SAME:      -> tensor<1x4x8x8xf32, #nn.layout<NHWC>>
// CHECK:         %[[W:.*]] = kernel.launch "transpose"(%w) {params = {perm = array<i64: 0, 2, 3, 1>, reformat = "NCHW->NHWC"
// CHECK:         %[[W2:.*]] = kernel.view %w2 : tensor<8x8x1x1xf32> -> tensor<8x8x1x1xf32, #nn.layout<NHWC>>
// CHECK:         %[[B:.*]] = kernel.view %b : tensor<8x1x1xf32> -> tensor<1x8x1x1xf32, #nn.layout<NHWC>>
// CHECK-NEXT:    %[[C:.*]] = kernel.launch "conv"(%[[X]], %[[W]]) {params = {{{.*}}in_shapes = [array<i64: 1, 8, 8, 4>, array<i64: 8, 3, 3, 4>], {{.*}}out_shapes = [array<i64: 1, 8, 8, 8>], out_dtypes = ["float32"], layout = "NHWC"}}
// CHECK-SAME:      -> tensor<1x8x8x8xf32, #nn.layout<NHWC>>
// CHECK-NEXT:    %[[A:.*]] = kernel.elementwise(%[[C]], %[[B]]) : (tensor<1x8x8x8xf32, #nn.layout<NHWC>>, tensor<1x8x1x1xf32, #nn.layout<NHWC>>) -> tensor<1x8x8x8xf32, #nn.layout<NHWC>>
// CHECK:         kernel.elementwise(%[[A]]) : (tensor<1x8x8x8xf32, #nn.layout<NHWC>>) -> tensor<1x8x8x8xf32, #nn.layout<NHWC>>
// CHECK:         kernel.launch "conv"({{.*}}, %[[W2]]) {{.*}}layout = "NHWC"
// CHECK:         %[[C3:.*]] = kernel.launch "conv"({{.*}}, %[[W2]]) {{.*}}layout = "NHWC"
// CHECK-NEXT:    %[[Y:.*]] = kernel.launch "transpose"(%[[C3]]) {params = {perm = array<i64: 0, 3, 1, 2>, reformat = "NHWC->NCHW"
// CHECK-SAME:      -> tensor<1x8x8x8xf32, #nn.layout<NCHW>>
// CHECK-NEXT:    func.return %[[Y]] : tensor<1x8x8x8xf32, #nn.layout<NCHW>>

// With NHWC I/O allowed, the input and output are NHWC and only the weight is reformatted.
// IO-LABEL: func.func @main(%x: tensor<1x4x8x8xf32, #nn.layout<NHWC>>) -> tensor<1x8x8x8xf32, #nn.layout<NHWC>>
// IO-COUNT-1: reformat =
// IO-NOT:     reformat =
// IO:         kernel.launch "conv"(%x,
// IO:         func.return %{{.*}} : tensor<1x8x8x8xf32, #nn.layout<NHWC>>

// A single conv would need two reformats: not worth it, everything stays NCHW, no reformat.
builtin.module {
  func.func @single(%x: tensor<1x4x8x8xf32>) -> tensor<1x8x8x8xf32> {
    %w = nn.weight "w1" : tensor<8x4x3x3xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x4x8x8xf32>, tensor<8x4x3x3xf32>) -> tensor<1x8x8x8xf32>
    func.return %c : tensor<1x8x8x8xf32>
  }
}

// CHECK-LABEL: func.func @single(%x: tensor<1x4x8x8xf32, #nn.layout<NCHW>>)
// CHECK-NOT:     transpose
// CHECK:         kernel.launch "conv"(%x, %w) {params = {{{.*}}out_dtypes = ["float32"]}} : (tensor<1x4x8x8xf32, #nn.layout<NCHW>>, tensor<8x4x3x3xf32>) -> tensor<1x8x8x8xf32, #nn.layout<NCHW>>
// CHECK-NEXT:    func.return
