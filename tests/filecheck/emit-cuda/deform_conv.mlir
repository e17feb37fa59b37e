// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// DeformConv with a bias and a mask, two offset groups over two input channels: one thread per
// output element; each tap samples its channel's image bilinearly at the tap's position plus
// the (dy, dx) pair of its offset group (channels 2t and 2t + 1 of the offsets, one plane of
// 25 apart), scales it by the group's mask, times the weight; the bias is added last. Corners
// outside the 4x4 image read 0.
builtin.module {
  func.func @main(%x: tensor<1x2x4x4xf32>, %offset: tensor<1x16x5x5xf32>, %mask: tensor<1x8x5x5xf32>) -> tensor<1x3x5x5xf32> {
    %w = nn.weight "w" : tensor<3x2x2x2xf32>
    %b = nn.weight "b" : tensor<3xf32>
    %y = nn.deform_conv %x, %w, %offset, %b, %mask {present = ["bias", "mask"], strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, group = 1 : i64, offset_group = 2 : i64} : (tensor<1x2x4x4xf32>, tensor<3x2x2x2xf32>, tensor<1x16x5x5xf32>, tensor<3xf32>, tensor<1x8x5x5xf32>) -> tensor<1x3x5x5xf32>
    func.return %y : tensor<1x3x5x5xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "deform_conv"(%x, %{{.*}}, %offset, %{{.*}}, %mask)
// CHECK-NEXT: kernel.cuda "[[K:deform_conv_[0-9a-f]{12}]]"(%[[Y]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x3x5x5xf32> {
// CHECK-NEXT: | // deform_conv [1, 2, 4, 4] * [3, 2, 2, 2] -> [1, 3, 5, 5] group=1 offset_group=2 strides=[1, 1] pads=[1, 1, 1, 1] dilations=[1, 1] with bias, mask
// CHECK:      | static __device__ __forceinline__ float sample(const float* image, float y, float x) {
// CHECK:      |             if (yy < 0 || yy >= 4 || xx < 0 || xx >= 4) continue;
// CHECK-NEXT: |             const float w = (1 - fabs(y - yy)) * (1 - fabs(x - xx));
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, const float* __restrict__ in3, const float* __restrict__ in4, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 75; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |             const int og = c / 1;
// CHECK:      |                     const size_t tap = ((size_t)c0 * 2 + og) * 4 + ky * 2 + kx;
// CHECK-NEXT: |                     const size_t at = (tap * 2) * 25 + c2 * 5 + c3;
// CHECK-NEXT: |                     const float y = c2 * 1 - 1 + ky * 1 + in2[at];
// CHECK-NEXT: |                     const float x = c3 * 1 - 1 + kx * 1 + in2[at + 25];
// CHECK-NEXT: |                     float v = sample(image, y, x);
// CHECK-NEXT: |                     v *= in4[tap * 25 + c2 * 5 + c3];
// CHECK-NEXT: |                     sum += v * in1[(((size_t)c1 * 2 + ci) * 2 + ky) * 2 + kx];
// CHECK:      |         sum += in3[c1];
// CHECK-NEXT: |         out0[i] = (float)sum;
// CHECK:      func.return %[[Y]]
