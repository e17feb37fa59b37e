// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Col2Im gathers rather than scatters: one thread per image element sums, for each tap k of
// the 2x2 block, the column of the block b with b * 2 - 1 + k = p (stride 2, pad 1), where such
// a b exists: e = p + 1 - k must be >= 0, divisible by the stride and e / 2 inside the 3x3
// grid of blocks. Taps index the column's rows (k0 * 2 + k1), blocks its 9 positions.
builtin.module {
  func.func @main(%x: tensor<1x8x9xf32>) -> tensor<1x2x5x5xf32> {
    %y = nn.col2im %x {image_shape = array<i64: 5, 5>, block_shape = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>} : tensor<1x8x9xf32> -> tensor<1x2x5x5xf32>
    func.return %y : tensor<1x2x5x5xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "col2im"(%x)
// CHECK-NEXT: kernel.cuda "[[K:col2im_[0-9a-f]{12}]]"(%[[Y]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x5x5xf32> {
// CHECK-NEXT: | // col2im [1, 8, 9] -> [1, 2, 5, 5] block=[2, 2] strides=[2, 2] pads=[1, 1, 1, 1] dilations=[1, 1]
// CHECK-NEXT: | // tactic: one thread per image element gathering its columns, grid-stride loop, block 256
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 50; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const float* cols = in0 + ((size_t)c0 * 8 + (size_t)c1 * 4) * 9;
// CHECK-NEXT: |         float sum = 0;
// CHECK-NEXT: |         for (int k0 = 0; k0 < 2; ++k0) {
// CHECK-NEXT: |             const int e0 = (int)c2 + 1 - k0 * 1;
// CHECK-NEXT: |             if (e0 < 0 || e0 % 2 || e0 / 2 >= 3) continue;
// CHECK-NEXT: |             for (int k1 = 0; k1 < 2; ++k1) {
// CHECK-NEXT: |                 const int e1 = (int)c3 + 1 - k1 * 1;
// CHECK-NEXT: |                 if (e1 < 0 || e1 % 2 || e1 / 2 >= 3) continue;
// CHECK-NEXT: |                 sum += cols[(size_t)(k0 * 2 + k1 * 1) * 9 + (e0 / 2) * 3 + (e1 / 2) * 1];
// CHECK:      |         out0[i] = (float)sum;
// CHECK:      func.return %[[Y]]
