// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// TopK: one block of 256 threads per line (a grid-stride loop over the lines, here N of them,
// N's range from the module's profile). Each of the k rounds is a block-wide selection: every
// thread scans its strided share of the line for the best value not taken by an earlier round
// (`before` orders NaNs first for largest, last for smallest, then by value, then by the lower
// index), then a shared-memory tree (s = 128 .. 1) reduces the 256 candidates and thread 0
// stores the winner and its index. Along axis 0 of [6, 4] the lines are strided by 4. A k read
// at run time is not known when the kernel is emitted: that TopK runs on the host.
builtin.module attributes {ember.symbols = {N = [1, 4, 64]}, ember.data_symbols = {topk0 = 10 : i64}} {
  func.func @main(%x: tensor<?x10xf32, #nn.layout<["N"]>>, %y: tensor<6x4xf32>, %z: tensor<3x10xf32>, %k: tensor<1xi64>) -> (tensor<?x3xf32, #nn.layout<["N"]>>, tensor<?x3xi64, #nn.layout<["N"]>>, tensor<2x4xf32>, tensor<2x4xi64>, tensor<3x?xf32, #nn.layout<["topk0"]>>, tensor<3x?xi64, #nn.layout<["topk0"]>>) {
    %v, %i = nn.topk %x {axis = 1 : i64, largest = true, k = 3 : i64} : tensor<?x10xf32, #nn.layout<["N"]>> -> tensor<?x3xf32, #nn.layout<["N"]>>, tensor<?x3xi64, #nn.layout<["N"]>>
    %sv, %si = nn.topk %y {axis = 0 : i64, largest = false, k = 2 : i64} : tensor<6x4xf32> -> tensor<2x4xf32>, tensor<2x4xi64>
    %dv, %di = nn.topk %z k(%k : tensor<1xi64>) {axis = 1 : i64, largest = true} : tensor<3x10xf32> -> tensor<3x?xf32, #nn.layout<["topk0"]>>, tensor<3x?xi64, #nn.layout<["topk0"]>>
    func.return %v, %i, %sv, %si, %dv, %di : tensor<?x3xf32, #nn.layout<["N"]>>, tensor<?x3xi64, #nn.layout<["N"]>>, tensor<2x4xf32>, tensor<2x4xi64>, tensor<3x?xf32, #nn.layout<["topk0"]>>, tensor<3x?xi64, #nn.layout<["topk0"]>>
  }
}

// CHECK:      %[[V:.*]], %[[I:.*]] = kernel.launch "topk"(%x)
// CHECK-NEXT: kernel.cuda "[[K:topk_[0-9a-f]{12}]]"(%[[V]], %[[I]]) grid ["min(N, 65535)", 1, 1] block [256, 1, 1] shared 3072 sizes ["N"] : tensor<?x3xf32, #nn.layout<["N"]>>, tensor<?x3xi64, #nn.layout<["N"]>> {
// CHECK-NEXT: | // topk largest k=3 axis 1 of [sz_N, 10] float32
// CHECK-NEXT: | // tactic: one block of 256 threads per line, k block-wide argmin rounds (shared-memory tree), grid-stride loop over the lines
// CHECK:      | static __device__ __forceinline__ bool before(float a, long long ia, float b, long long ib) {
// CHECK-NEXT: |     const bool na = a != a, nb = b != b;
// CHECK-NEXT: |     if (na != nb) return na;
// CHECK-NEXT: |     if (!na && a != b) return a > b;
// CHECK-NEXT: |     return ia < ib;
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0, long long* __restrict__ out1, const int sz_N) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     extern __shared__ __align__(16) unsigned char smem[];
// CHECK-NEXT: |     long long* si = (long long*)smem;
// CHECK-NEXT: |     float* sv = (float*)(smem + 256 * sizeof(long long));
// CHECK-NEXT: |     const int tid = threadIdx.x;
// CHECK-NEXT: |     for (long long row = blockIdx.x; row < sz_N; row += gridDim.x) {
// CHECK-NEXT: |         const float* line = in0 + (row / 1) * 10 + row % 1;
// CHECK-NEXT: |         const size_t out = (row / 1) * 3 + row % 1;
// CHECK:      |         for (int r = 0; r < 3; ++r) {
// CHECK:      |             for (long long j = tid; j < 10; j += 256) {
// CHECK-NEXT: |                 const float v = line[(size_t)j * 1];
// CHECK-NEXT: |                 if (pi >= 0 && !before(pv, pi, v, j)) continue;  // taken already
// CHECK-NEXT: |                 if (bi < 0 || before(v, j, bv, bi)) { bv = v; bi = j; }
// CHECK-NEXT: |             }
// CHECK-NEXT: |             sv[tid] = bv;
// CHECK-NEXT: |             si[tid] = bi;
// CHECK-NEXT: |             __syncthreads();
// CHECK-NEXT: |             for (int s = 128; s > 0; s >>= 1) {
// CHECK-NEXT: |                 if (tid < s && si[tid + s] >= 0 && (si[tid] < 0 || before(sv[tid + s], si[tid + s], sv[tid], si[tid]))) {
// CHECK:      |             pv = sv[0];
// CHECK-NEXT: |             pi = si[0];
// CHECK-NEXT: |             if (tid == 0) {
// CHECK-NEXT: |                 out0[out + (size_t)r * 1] = pv;
// CHECK-NEXT: |                 out1[out + (size_t)r * 1] = pi;

// CHECK:      %[[SV:.*]], %[[SI:.*]] = kernel.launch "topk"(%y)
// CHECK-NEXT: kernel.cuda "[[KS:topk_[0-9a-f]{12}]]"(%[[SV]], %[[SI]]) grid [4, 1, 1] block [256, 1, 1] shared 3072 : tensor<2x4xf32>, tensor<2x4xi64> {
// CHECK-NEXT: | // topk smallest k=2 axis 0 of [6, 4] float32
// CHECK:      |     if (na != nb) return nb;
// CHECK-NEXT: |     if (!na && a != b) return a < b;
// CHECK:      | extern "C" __global__ void [[KS]](const float* __restrict__ in0, float* __restrict__ out0, long long* __restrict__ out1) {
// CHECK:      |     for (long long row = blockIdx.x; row < 4; row += gridDim.x) {
// CHECK-NEXT: |         const float* line = in0 + (row / 4) * 24 + row % 4;
// CHECK-NEXT: |         const size_t out = (row / 4) * 8 + row % 4;
// CHECK:      |         for (int r = 0; r < 2; ++r) {
// CHECK:      |             for (long long j = tid; j < 6; j += 256) {
// CHECK-NEXT: |                 const float v = line[(size_t)j * 4];
// CHECK:      |                 out0[out + (size_t)r * 4] = pv;
// CHECK-NEXT: |                 out1[out + (size_t)r * 4] = pi;

// CHECK:      %[[DV:.*]], %[[DI:.*]] = kernel.launch "topk"(%z, %k) {cuda_fallback = "run-time parameters (dyn_k) are read on the host", params = {{.*}}}
// CHECK-NOT:  kernel.cuda
// CHECK:      func.return %[[V]], %[[I]], %[[SV]], %[[SI]], %[[DV]], %[[DI]]
