// RUN: ember-opt %s -p 'assign-layouts{packed=true io-formats="NCHW,NC4HW4"}' | filecheck %s

// Back-to-back reformats through NC4HW4 cancel as NCHW/NHWC ones do: pack then unpack
// disappears (pad lanes are don't-care), and the lrn (an NCHW kernel) reads the input itself.
builtin.module {
  func.func @round_trip(%x: tensor<1x6x4x4xf32>) -> tensor<1x6x4x4xf32> {
    %a = kernel.launch "reformat"(%x) {params = {reformat = "NCHW->NC4HW4", channels = 6 : i64, in_shapes = [array<i64: 1, 6, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 2, 4, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x6x4x4xf32>) -> tensor<1x6x4x4xf32, #nn.layout<NC4HW4>>
    %b = kernel.launch "reformat"(%a) {params = {reformat = "NC4HW4->NCHW", channels = 6 : i64, in_shapes = [array<i64: 1, 2, 4, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 6, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x6x4x4xf32, #nn.layout<NC4HW4>>) -> tensor<1x6x4x4xf32>
    %y = kernel.launch "lrn"(%b) {params = {size = 3 : i64, alpha = 1.000000e-04 : f64, beta = 7.500000e-01 : f64, bias = 1.000000e+00 : f64, in_shapes = [array<i64: 1, 6, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 6, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x6x4x4xf32>) -> tensor<1x6x4x4xf32>
    func.return %y : tensor<1x6x4x4xf32>
  }
}

// CHECK-LABEL: func.func @round_trip(%x: tensor<1x6x4x4xf32, #nn.layout<NCHW>>)
// CHECK-NOT:     "reformat"
// CHECK:         %[[Y:.*]] = kernel.launch "lrn"(%x)
// CHECK-NEXT:    func.return %[[Y]]

// NCHW -> NHWC (a transpose) then NHWC -> NC4HW4 (a reformat) compose into one NCHW -> NC4HW4
// reformat; the NC4HW4 result is returned as it is (NC4HW4 I/O allowed).
builtin.module {
  func.func @compose(%x: tensor<1x6x4x4xf32>) -> tensor<1x6x4x4xf32, #nn.layout<NC4HW4>> {
    %a = kernel.launch "transpose"(%x) {params = {perm = array<i64: 0, 2, 3, 1>, reformat = "NCHW->NHWC", in_shapes = [array<i64: 1, 6, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 4, 4, 6>], out_dtypes = ["float32"]}} : (tensor<1x6x4x4xf32>) -> tensor<1x6x4x4xf32, #nn.layout<NHWC>>
    %b = kernel.launch "reformat"(%a) {params = {reformat = "NHWC->NC4HW4", channels = 6 : i64, in_shapes = [array<i64: 1, 4, 4, 6>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 2, 4, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x6x4x4xf32, #nn.layout<NHWC>>) -> tensor<1x6x4x4xf32, #nn.layout<NC4HW4>>
    func.return %b : tensor<1x6x4x4xf32, #nn.layout<NC4HW4>>
  }
}

// CHECK-LABEL: func.func @compose
// CHECK-NEXT:    %[[R:.*]] = kernel.launch "reformat"(%x) {params = {reformat = "NCHW->NC4HW4", channels = 6 : i64, in_shapes = [array<i64: 1, 6, 4, 4>], {{.*}}out_shapes = [array<i64: 1, 2, 4, 4, 4>]
// CHECK-SAME:      -> tensor<1x6x4x4xf32, #nn.layout<NC4HW4>>
// CHECK-NEXT:    func.return %[[R]] : tensor<1x6x4x4xf32, #nn.layout<NC4HW4>>
