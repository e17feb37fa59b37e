// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// ArgMax / ArgMin: one thread per output element scans its line of the reduced axis. ArgMax over
// the last axis of [2, 5] scans forward from j = 0 (the first maximum wins ties); ArgMin over
// axis 1 of [2, 4, 3] with select_last_index scans from j = 3 down (the last minimum wins), its
// lines at stride 3 starting at (i / 3) * 12 + i % 3. A NaN wins in both, as in numpy.
builtin.module {
  func.func @main(%x: tensor<2x5xf32>, %y: tensor<2x4x3xf32>) -> (tensor<2x1xi64>, tensor<2x3xi64>) {
    %a = nn.arg_reduce "max" %x {axis = 1 : i64, keepdims = true, select_last_index = false} : tensor<2x5xf32> -> tensor<2x1xi64>
    %b = nn.arg_reduce "min" %y {axis = 1 : i64, keepdims = false, select_last_index = true} : tensor<2x4x3xf32> -> tensor<2x3xi64>
    func.return %a, %b : tensor<2x1xi64>, tensor<2x3xi64>
  }
}

// CHECK:      %[[A:.*]] = kernel.launch "arg_reduce"(%x)
// CHECK-NEXT: kernel.cuda "[[KA:arg_reduce_[0-9a-f]{12}]]"(%[[A]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x1xi64> {
// CHECK-NEXT: | // arg_reduce argmax axis 1 of [2, 5] float32 select_last_index=0
// CHECK:      | extern "C" __global__ void [[KA]](const float* __restrict__ in0, long long* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 2; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const float* line = in0 + (i / 1) * 5 + i % 1;
// CHECK-NEXT: |         long long best_j = 0;
// CHECK-NEXT: |         float best = line[(size_t)best_j * 1];
// CHECK-NEXT: |         for (long long j = 0; j < 5; ++j) {
// CHECK-NEXT: |             if (best != best) break;  // a NaN is final
// CHECK-NEXT: |             const float v = line[(size_t)j * 1];
// CHECK-NEXT: |             if (v > best || v != v) { best = v; best_j = j; }
// CHECK-NEXT: |         }
// CHECK-NEXT: |         out0[i] = best_j;

// CHECK:      %[[B:.*]] = kernel.launch "arg_reduce"(%y)
// CHECK-NEXT: kernel.cuda "[[KB:arg_reduce_[0-9a-f]{12}]]"(%[[B]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x3xi64> {
// CHECK-NEXT: | // arg_reduce argmin axis 1 of [2, 4, 3] float32 select_last_index=1
// CHECK:      | extern "C" __global__ void [[KB]](const float* __restrict__ in0, long long* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 6; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const float* line = in0 + (i / 3) * 12 + i % 3;
// CHECK-NEXT: |         long long best_j = 3;
// CHECK-NEXT: |         float best = line[(size_t)best_j * 3];
// CHECK-NEXT: |         for (long long j = 3; j >= 0; --j) {
// CHECK-NEXT: |             if (best != best) break;  // a NaN is final
// CHECK-NEXT: |             const float v = line[(size_t)j * 3];
// CHECK-NEXT: |             if (v < best || v != v) { best = v; best_j = j; }
// CHECK-NEXT: |         }
// CHECK-NEXT: |         out0[i] = best_j;
// CHECK:      func.return %[[A]], %[[B]]
