// RUN: ember-opt %s -p 'convert-nn-to-kernel,choose-formats{arch="sm_90"}' | filecheck %s
// RUN: ember-opt %s -p 'convert-nn-to-kernel,choose-formats{arch="sm_90"},assign-layouts' | filecheck %s --check-prefix=APPLY

// The cost model (no GPU) prices each FP16 conv in NCHW (element-wise im2col loads) and NHWC
// (16-byte chunks, wgmma on sm_90): the two big convs run NHWC, their relu follows them, and
// the one NCHW->NHWC reformat at the input and NHWC->NCHW at the output pay for themselves.
// The tiny conv would run faster in NHWC too, but not by the two reformats it would need.
builtin.module {
  func.func @main(%x: tensor<8x64x56x56xf16>, %s: tensor<1x8x4x4xf16>) -> (tensor<8x64x56x56xf16>, tensor<1x8x4x4xf16>) {
    %w1 = nn.weight "big1.weight" : tensor<64x64x3x3xf16>
    %c1 = nn.conv %x, %w1 {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<8x64x56x56xf16>, tensor<64x64x3x3xf16>) -> tensor<8x64x56x56xf16>
    %r1 = nn.unary "relu" %c1 : tensor<8x64x56x56xf16> -> tensor<8x64x56x56xf16>
    %w2 = nn.weight "big2.weight" : tensor<64x64x3x3xf16>
    %c2 = nn.conv %r1, %w2 {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<8x64x56x56xf16>, tensor<64x64x3x3xf16>) -> tensor<8x64x56x56xf16>
    %w3 = nn.weight "small.weight" : tensor<8x8x3x3xf16>
    %c3 = nn.conv %s, %w3 {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x4x4xf16>, tensor<8x8x3x3xf16>) -> tensor<1x8x4x4xf16>
    func.return %c2, %c3 : tensor<8x64x56x56xf16>, tensor<1x8x4x4xf16>
  }
}

// CHECK:      func.func @main({{.*}}) attributes {formats = {source = "model", kernels_us = {{.*}}, reformats = 2 : i64, reformats_us = {{.*}}, args = ["NCHW", "NCHW"]}}
// CHECK:      %c1 = kernel.launch "conv"(%x, %w1) {format = "NHWC", format_costs = {NCHW = [[BIG_NCHW:.*]] : f64, NHWC = [[BIG_NHWC:.*]] : f64}, params =
// CHECK-NEXT: %r1 = kernel.elementwise(%c1) attributes {format = "NHWC"}
// CHECK:      %c2 = kernel.launch "conv"(%r1, %w2) {format = "NHWC", format_costs = {NCHW = [[BIG_NCHW]] : f64, NHWC = [[BIG_NHWC]] : f64}, params =
// CHECK:      %c3 = kernel.launch "conv"(%s, %w3) {format = "NCHW", format_costs = {NCHW = {{.*}} : f64, NHWC = {{.*}} : f64}, params =
// CHECK-NEXT: func.return %c2, %c3

// APPLY:      kernel.launch "transpose"(%x) {params = {perm = array<i64: 0, 2, 3, 1>, reformat = "NCHW->NHWC"
// APPLY:      %c1 = kernel.launch "conv"{{.*}}layout = "NHWC"{{.*}} -> tensor<8x64x56x56xf16, #nn.layout<NHWC>>
// APPLY:      %r1 = kernel.elementwise(%c1) {{.*}} -> tensor<8x64x56x56xf16, #nn.layout<NHWC>>
// APPLY:      %c2 = kernel.launch "conv"{{.*}}layout = "NHWC"{{.*}} -> tensor<8x64x56x56xf16, #nn.layout<NHWC>>
// APPLY-NEXT: kernel.launch "transpose"(%c2) {params = {perm = array<i64: 0, 3, 1, 2>, reformat = "NHWC->NCHW"
// APPLY:      %c3 = kernel.launch "conv"(%s, %w3)
// APPLY-NOT:  layout =
// APPLY-SAME: -> tensor<1x8x4x4xf16, #nn.layout<NCHW>>
