// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Trilu and cumsum. Trilu keeps an element of the last two dims by col - row against k (upper:
// >= k, lower: <= k), one thread per element, the rest zero. Cumsum runs one thread per line of
// the axis: inclusive forward along the last axis (lines of 5 at stride 1, add then store) and
// exclusive reverse along axis 0 of [3, 4] (4 lines of 3 at stride 4, j from 2 down to 0, store
// then add).
builtin.module {
  func.func @main(%x: tensor<2x4x4xf32>, %c: tensor<2x5xf32>, %r: tensor<3x4xf32>) -> (tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x5xf32>, tensor<3x4xf32>) {
    %u = nn.trilu %x {upper = true, k = 1 : i64} : tensor<2x4x4xf32> -> tensor<2x4x4xf32>
    %l = nn.trilu %x {upper = false, k = -1 : i64} : tensor<2x4x4xf32> -> tensor<2x4x4xf32>
    %s = nn.cumsum %c {axis = 1 : i64, exclusive = false, reverse = false} : tensor<2x5xf32> -> tensor<2x5xf32>
    %e = nn.cumsum %r {axis = 0 : i64, exclusive = true, reverse = true} : tensor<3x4xf32> -> tensor<3x4xf32>
    func.return %u, %l, %s, %e : tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x5xf32>, tensor<3x4xf32>
  }
}

// CHECK:      %[[U:.*]] = kernel.launch "trilu"(%x)
// CHECK-NEXT: kernel.cuda "[[KU:trilu_[0-9a-f]{12}]]"(%[[U]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x4x4xf32> {
// CHECK-NEXT: | // trilu upper k=1 of [2, 4, 4] float32
// CHECK:      | extern "C" __global__ void [[KU]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 32; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const long long col = i % 4;
// CHECK-NEXT: |         const long long row = (i / 4) % 4;
// CHECK-NEXT: |         out0[i] = (col - row >= 1) ? in0[i] : (float)0;

// CHECK:      %[[L:.*]] = kernel.launch "trilu"(%x)
// CHECK-NEXT: kernel.cuda "[[KL:trilu_[0-9a-f]{12}]]"(%[[L]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x4x4xf32> {
// CHECK-NEXT: | // trilu lower k=-1 of [2, 4, 4] float32
// CHECK:      | extern "C" __global__ void [[KL]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |         out0[i] = (col - row <= -1) ? in0[i] : (float)0;

// CHECK:      %[[S:.*]] = kernel.launch "cumsum"(%c)
// CHECK-NEXT: kernel.cuda "[[KS:cumsum_[0-9a-f]{12}]]"(%[[S]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x5xf32> {
// CHECK-NEXT: | // cumsum axis 1 of [2, 5] float32 exclusive=0 reverse=0
// CHECK-NEXT: | // tactic: one thread per line (2 lines of 5, stride 1), sequential sum in the element type
// CHECK:      | extern "C" __global__ void [[KS]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 2; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const size_t base = (size_t)(i / 1) * 5 + i % 1;
// CHECK-NEXT: |         const float* line = in0 + base;
// CHECK-NEXT: |         float* out_line = out0 + base;
// CHECK-NEXT: |         float acc = 0;
// CHECK-NEXT: |         for (long long j = 0; j < 5; ++j) {
// CHECK-NEXT: |             const size_t at = (size_t)j * 1;
// CHECK-NEXT: |             acc += line[at];
// CHECK-NEXT: |             out_line[at] = acc;
// CHECK-NEXT: |         }

// CHECK:      %[[E:.*]] = kernel.launch "cumsum"(%r)
// CHECK-NEXT: kernel.cuda "[[KX:cumsum_[0-9a-f]{12}]]"(%[[E]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<3x4xf32> {
// CHECK-NEXT: | // cumsum axis 0 of [3, 4] float32 exclusive=1 reverse=1
// CHECK-NEXT: | // tactic: one thread per line (4 lines of 3, stride 4)
// CHECK:      | extern "C" __global__ void [[KX]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 4; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const size_t base = (size_t)(i / 4) * 12 + i % 4;
// CHECK:      |         float acc = 0;
// CHECK-NEXT: |         for (long long j = 2; j >= 0; --j) {
// CHECK-NEXT: |             const size_t at = (size_t)j * 4;
// CHECK-NEXT: |             out_line[at] = acc;
// CHECK-NEXT: |             acc += line[at];
// CHECK-NEXT: |         }
// CHECK:      func.return %[[U]], %[[L]], %[[S]], %[[E]]
