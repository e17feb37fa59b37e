// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// MaxUnpool of a max pool's own indices (`windowed`, as convert-onnx-to-nn marks them) runs on
// the GPU as a gather: one thread per output element visits the pooled elements whose 2x2
// window (stride 2) covers it, q in [lo, hi] per dim, and takes the value of the last one whose
// index is this element's flat position `me`, else 0. Indices of unknown origin could point
// anywhere: that max_unpool scatters on the host and says so.
builtin.module {
  func.func @main(%x: tensor<1x2x4x4xf32>, %v: tensor<1x2x2x2xf32>, %vi: tensor<1x2x2x2xi64>) -> (tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>) {
    %p, %i = nn.max_pool_indices %x {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = false, storage_order = 0 : i64} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>, tensor<1x2x2x2xi64>
    %u = nn.max_unpool %p, %i {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, windowed = true} : tensor<1x2x2x2xf32>, tensor<1x2x2x2xi64> -> tensor<1x2x4x4xf32>
    %h = nn.max_unpool %v, %vi {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>} : tensor<1x2x2x2xf32>, tensor<1x2x2x2xi64> -> tensor<1x2x4x4xf32>
    func.return %u, %h : tensor<1x2x4x4xf32>, tensor<1x2x4x4xf32>
  }
}

// CHECK:      %[[P:.*]], %[[I:.*]] = kernel.launch "max_pool_indices"(%x)
// CHECK:      %[[U:.*]] = kernel.launch "max_unpool"(%[[P]], %[[I]]) {params = {{{.*}}windowed = true
// CHECK-NEXT: kernel.cuda "[[K:max_unpool_[0-9a-f]{12}]]"(%[[U]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x4x4xf32> {
// CHECK-NEXT: | // max_unpool 2-d [1, 2, 2, 2] -> [1, 2, 4, 4] kernel=[2, 2] strides=[2, 2] pads=[0, 0, 0, 0]
// CHECK-NEXT: | // tactic: one thread per output element gathering from the windows that cover it, grid-stride loop, block 256
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const long long* __restrict__ in1, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 32; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         float value = (float)0;
// CHECK-NEXT: |         if (o2 < 4 && o3 < 4) {
// CHECK-NEXT: |             const long long me = ((long long)o0 * 2 + o1) * 16 + (long long)o2 * 4 + (long long)o3 * 1;
// CHECK-NEXT: |             const long long first = ((long long)o0 * 2 + o1) * 4;
// CHECK-NEXT: |             const int a0 = (int)o2 + -1;
// CHECK-NEXT: |             const int lo0 = a0 <= 0 ? 0 : (a0 + 1) / 2;
// CHECK-NEXT: |             const int hi0 = min(2 - 1, ((int)o2 + 0) / 2);
// CHECK-NEXT: |             for (int q0 = lo0; q0 <= hi0; ++q0) {
// CHECK:      |                 for (int q1 = lo1; q1 <= hi1; ++q1) {
// CHECK-NEXT: |                     const long long p = first + (long long)q0 * 2 + (long long)q1 * 1;
// CHECK-NEXT: |                     if (in1[p] == me) value = in0[p];
// CHECK:      |         out0[i] = value;

// CHECK:      %[[H:.*]] = kernel.launch "max_unpool"(%v, %vi) {cuda_fallback = "step 'max_unpool_2': template 'max_unpool': max_unpool: indices not known to come from a matching max pool are scattered on the host", params = {{.*}}}
// CHECK-NOT:  kernel.cuda
// CHECK:      func.return %[[U]], %[[H]]
