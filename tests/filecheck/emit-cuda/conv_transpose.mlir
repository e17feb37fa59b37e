// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// A transposed convolution as a direct gather, one thread per output element: 2 groups of one
// input channel and 2 output channels each (o1 splits into group o1 / 2 and m = o1 % 2), strides
// [2, 1], dilations [1, 2], pads 1 on the rows, output_padding 1 and a bias. Output row o2 takes
// input row i0 = (o2 + 1 - k0) / 2 where that divides exactly, column o3 takes i1 = o3 - 2 * k1.
// An FP16 transposed convolution has no CUDA kernel: it runs on the host (cuda_fallback).
builtin.module {
  func.func @main(%x: tensor<1x2x3x3xf32>, %h: tensor<1x2x3x3xf16>) -> (tensor<1x4x6x7xf32>, tensor<1x1x6x6xf16>) {
    %w = nn.weight "up.weight" : tensor<2x2x3x3xf32>
    %b = nn.weight "up.bias" : tensor<4xf32>
    %y = nn.conv_transpose %x, %w, %b {strides = array<i64: 2, 1>, pads = array<i64: 1, 0, 1, 0>, dilations = array<i64: 1, 2>, groups = 2 : i64, output_padding = array<i64: 1, 0>} : (tensor<1x2x3x3xf32>, tensor<2x2x3x3xf32>, tensor<4xf32>) -> tensor<1x4x6x7xf32>
    %v = nn.weight "up16.weight" : tensor<2x1x2x2xf16>
    %z = nn.conv_transpose %h, %v {strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x3x3xf16>, tensor<2x1x2x2xf16>) -> tensor<1x1x6x6xf16>
    func.return %y, %z : tensor<1x4x6x7xf32>, tensor<1x1x6x6xf16>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "conv_transpose"(%x, %w, %b)
// CHECK-NEXT: kernel.cuda "[[K:conv_transpose_[0-9a-f]{12}]]"(%[[Y]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x4x6x7xf32> {
// CHECK-NEXT: | // conv_transpose 2-d x[1, 2, 3, 3] w[2, 2, 3, 3] -> [1, 4, 6, 7] strides=[2, 1] pads=[1, 0, 1, 0] dilations=[1, 2] output_padding=[1, 0] groups=2 bias=1 float32
// CHECK-NEXT: | // tactic: direct gather, one thread per output element (grid-stride loop, block 256):
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 168; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const int g = (int)o1 / 2, m = (int)o1 % 2;
// CHECK-NEXT: |         float acc = 0;
// CHECK-NEXT: |         for (int c = 0; c < 1; ++c) {
// CHECK-NEXT: |             const float* x = in0 + ((size_t)o0 * 2 + g * 1 + c) * 9;
// CHECK-NEXT: |             const float* w = in1 + ((size_t)(g * 1 + c) * 2 + m) * 9;
// CHECK-NEXT: |             for (int k0 = 0; k0 < 3; ++k0) {
// CHECK-NEXT: |                 const int p0 = (int)o2 + 1 - k0 * 1;
// CHECK-NEXT: |                 if (p0 < 0 || p0 % 2 != 0) continue;
// CHECK-NEXT: |                 const int i0 = p0 / 2;
// CHECK-NEXT: |                 if (i0 >= 3) continue;
// CHECK-NEXT: |                 for (int k1 = 0; k1 < 3; ++k1) {
// CHECK-NEXT: |                     const int p1 = (int)o3 + 0 - k1 * 2;
// CHECK-NEXT: |                     if (p1 < 0 || p1 % 1 != 0) continue;
// CHECK-NEXT: |                     const int i1 = p1 / 1;
// CHECK-NEXT: |                     if (i1 >= 3) continue;
// CHECK-NEXT: |                     acc += x[(i0) * 3 + i1] * w[(k0) * 3 + k1];
// CHECK:      |         acc += in2[o1];
// CHECK-NEXT: |         out0[i] = acc;

// CHECK:      %[[Z:.*]] = kernel.launch "conv_transpose"(%h, %v) {cuda_fallback = "step 'conv_transpose_1': template 'conv_transpose': CUDA conv_transpose: element type float16 is not supported", params = {{.*}}}
// CHECK-NOT:  kernel.cuda
// CHECK:      func.return %[[Y]], %[[Z]]
