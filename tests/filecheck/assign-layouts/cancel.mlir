// RUN: ember-opt %s -p assign-layouts | filecheck %s

// Back-to-back reformats cancel: NCHW->NHWC->NCHW disappears, and the lrn (an NCHW kernel) reads
// the input itself. I/O stays NCHW.
builtin.module {
  func.func @round_trip(%x: tensor<1x8x4x4xf32>) -> tensor<1x8x4x4xf32> {
    %a = kernel.launch "transpose"(%x) {params = {perm = array<i64: 0, 2, 3, 1>, reformat = "NCHW->NHWC", in_shapes = [array<i64: 1, 8, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 4, 4, 8>], out_dtypes = ["float32"]}} : (tensor<1x8x4x4xf32>) -> tensor<1x8x4x4xf32, #nn.layout<NHWC>>
    %b = kernel.launch "transpose"(%a) {params = {perm = array<i64: 0, 3, 1, 2>, reformat = "NHWC->NCHW", in_shapes = [array<i64: 1, 4, 4, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 8, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x8x4x4xf32, #nn.layout<NHWC>>) -> tensor<1x8x4x4xf32>
    %y = kernel.launch "lrn"(%b) {params = {size = 3 : i64, alpha = 1.000000e-04 : f64, beta = 7.500000e-01 : f64, bias = 1.000000e+00 : f64, in_shapes = [array<i64: 1, 8, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 8, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x8x4x4xf32>) -> tensor<1x8x4x4xf32>
    func.return %y : tensor<1x8x4x4xf32>
  }
}

// CHECK-LABEL: func.func @round_trip(%x: tensor<1x8x4x4xf32, #nn.layout<NCHW>>) -> tensor<1x8x4x4xf32, #nn.layout<NCHW>>
// CHECK-NOT:     "transpose"
// CHECK:         %[[Y:.*]] = kernel.launch "lrn"(%x)
// CHECK-SAME:      -> tensor<1x8x4x4xf32, #nn.layout<NCHW>>
// CHECK-NEXT:    func.return %[[Y]]

// Three in a row: the first two cancel, the third stays (the softmax follows its NHWC input).
builtin.module {
  func.func @three(%x: tensor<1x8x4x4xf32>) -> tensor<1x8x4x4xf32> {
    %a = kernel.launch "transpose"(%x) {params = {perm = array<i64: 0, 2, 3, 1>, reformat = "NCHW->NHWC", in_shapes = [array<i64: 1, 8, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 4, 4, 8>], out_dtypes = ["float32"]}} : (tensor<1x8x4x4xf32>) -> tensor<1x8x4x4xf32, #nn.layout<NHWC>>
    %b = kernel.launch "transpose"(%a) {params = {perm = array<i64: 0, 3, 1, 2>, reformat = "NHWC->NCHW", in_shapes = [array<i64: 1, 4, 4, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 8, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x8x4x4xf32, #nn.layout<NHWC>>) -> tensor<1x8x4x4xf32>
    %c = kernel.launch "transpose"(%b) {params = {perm = array<i64: 0, 2, 3, 1>, reformat = "NCHW->NHWC", in_shapes = [array<i64: 1, 8, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 4, 4, 8>], out_dtypes = ["float32"]}} : (tensor<1x8x4x4xf32>) -> tensor<1x8x4x4xf32, #nn.layout<NHWC>>
    %y = kernel.launch "softmax"(%c) {params = {axis = 1 : i64, log = false, in_shapes = [array<i64: 1, 8, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 8, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x8x4x4xf32, #nn.layout<NHWC>>) -> tensor<1x8x4x4xf32>
    func.return %y : tensor<1x8x4x4xf32>
  }
}

// CHECK-LABEL: func.func @three
// CHECK-NEXT:    %[[C:.*]] = kernel.launch "transpose"(%x) {params = {perm = array<i64: 0, 2, 3, 1>, reformat = "NCHW->NHWC"
// CHECK-NOT:     "transpose"
// CHECK:         %[[S:.*]] = kernel.launch "softmax"(%[[C]]) {params = {axis = 3 : i64
// CHECK-SAME:      in_shapes = [array<i64: 1, 4, 4, 8>]
// CHECK-SAME:      -> tensor<1x8x4x4xf32, #nn.layout<NHWC>>
// CHECK-NEXT:    %[[O:.*]] = kernel.launch "transpose"(%[[S]]) {params = {perm = array<i64: 0, 3, 1, 2>, reformat = "NHWC->NCHW"
// CHECK-NEXT:    func.return %[[O]]
