// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// MaxPool with its Indices output: one thread per output element walks its 3x3 window
// (stride 2, pad 1), skipping taps in the padding, and keeps the first maximum (strict `>`).
// The index is flat over the whole input, base = (n * C + c) * H * W plus the tap's position;
// storage_order 1 numbers a plane column-major (i0 * 1 + i1 * 5) while the load stays
// row-major (i0 * 5 + i1 * 1). A window with no tap inside gives -1.
builtin.module {
  func.func @main(%x: tensor<1x2x5x5xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>) {
    %y, %i = nn.max_pool_indices %x {kernel = array<i64: 3, 3>, strides = array<i64: 2, 2>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, ceil_mode = false, storage_order = 1 : i64} : tensor<1x2x5x5xf32> -> tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>
    func.return %y, %i : tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64>
  }
}

// CHECK:      %[[Y:.*]], %[[I:.*]] = kernel.launch "max_pool_indices"(%x)
// CHECK-NEXT: kernel.cuda "[[K:max_pool_indices_[0-9a-f]{12}]]"(%[[Y]], %[[I]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x3x3xf32>, tensor<1x2x3x3xi64> {
// CHECK-NEXT: | // max_pool_indices 2-d [1, 2, 5, 5] -> [1, 2, 3, 3] kernel=[3, 3] strides=[2, 2] pads=[1, 1, 1, 1] dilations=[1, 1] storage_order=1
// CHECK-NEXT: | // tactic: one thread per output element walking its window, grid-stride loop, block 256
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0, long long* __restrict__ out1) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 18; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const long long base = ((long long)c0 * 2 + c1) * 25;
// CHECK-NEXT: |         const float* x = in0 + base;
// CHECK-NEXT: |         float acc = 0;
// CHECK-NEXT: |         long long at = -1;
// CHECK-NEXT: |         #pragma unroll
// CHECK-NEXT: |         for (int k0 = 0; k0 < 3; ++k0) {
// CHECK-NEXT: |             const int i0 = c2 * 2 - 1 + k0 * 1;
// CHECK-NEXT: |             #pragma unroll
// CHECK-NEXT: |             for (int k1 = 0; k1 < 3; ++k1) {
// CHECK-NEXT: |                 const int i1 = c3 * 2 - 1 + k1 * 1;
// CHECK-NEXT: |                 if ((unsigned)i0 < 5u && (unsigned)i1 < 5u) {
// CHECK-NEXT: |                     const float v = x[i0 * 5 + i1 * 1];
// CHECK-NEXT: |                     if (at < 0 || v > acc) { acc = v; at = (long long)i0 * 1 + (long long)i1 * 5; }
// CHECK:      |         out0[i] = acc;
// CHECK-NEXT: |         out1[i] = at < 0 ? -1 : base + at;
// CHECK:      func.return %[[Y]], %[[I]]
