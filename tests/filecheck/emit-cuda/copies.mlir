// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Copies by index arithmetic, one thread per output element: expand reads [3, 1] at [2, 3, 4]'s
// coordinates through broadcast strides (only c1 survives); tile reads in[(c0 % 2) * 3 + c1 % 3];
// gather_elements along axis 1 of [2, 5, 3] takes dims 0 and 2 from the output position (strides
// 15 and 1) and dim 1 from the index (stride 3), a negative index counted from the end.
builtin.module {
  func.func @main(%x: tensor<3x1xf32>, %t: tensor<2x3xf32>, %d: tensor<2x5x3xf32>, %i: tensor<2x4x3xi64>) -> (tensor<2x3x4xf32>, tensor<4x6xf32>, tensor<2x4x3xf32>) {
    %e = nn.expand %x : (tensor<3x1xf32>) -> tensor<2x3x4xf32>
    %r = nn.tile %t {repeats = array<i64: 2, 2>} : tensor<2x3xf32> -> tensor<4x6xf32>
    %g = nn.gather_elements %d, %i {axis = 1 : i64} : (tensor<2x5x3xf32>, tensor<2x4x3xi64>) -> tensor<2x4x3xf32>
    func.return %e, %r, %g : tensor<2x3x4xf32>, tensor<4x6xf32>, tensor<2x4x3xf32>
  }
}

// CHECK:      %[[E:.*]] = kernel.launch "expand"(%x)
// CHECK-NEXT: kernel.cuda "[[KE:expand_[0-9a-f]{12}]]"(%[[E]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x3x4xf32> {
// CHECK-NEXT: | // expand: [3, 1] -> [2, 3, 4] float32
// CHECK:      | extern "C" __global__ void [[KE]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 24; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         int crest = i;
// CHECK-NEXT: |         int c2 = crest % 4;
// CHECK-NEXT: |         crest /= 4;
// CHECK-NEXT: |         int c1 = crest % 3;
// CHECK-NEXT: |         crest /= 3;
// CHECK-NEXT: |         int c0 = crest;
// CHECK-NEXT: |         out0[i] = in0[c1];
// CHECK-NEXT: |     }

// CHECK:      %[[R:.*]] = kernel.launch "tile"(%t)
// CHECK-NEXT: kernel.cuda "[[KT:tile_[0-9a-f]{12}]]"(%[[R]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<4x6xf32> {
// CHECK-NEXT: | // tile repeats=[2, 2]: [2, 3] -> [4, 6] float32
// CHECK:      | extern "C" __global__ void [[KT]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 24; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         int crest = i;
// CHECK-NEXT: |         int c1 = crest % 6;
// CHECK-NEXT: |         crest /= 6;
// CHECK-NEXT: |         int c0 = crest;
// CHECK-NEXT: |         out0[i] = in0[(c0 % 2) * (int)3 + (c1 % 3)];
// CHECK-NEXT: |     }

// CHECK:      %[[G:.*]] = kernel.launch "gather_elements"(%d, %i)
// CHECK-NEXT: kernel.cuda "[[KG:gather_elements_[0-9a-f]{12}]]"(%[[G]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x4x3xf32> {
// CHECK-NEXT: | // gather_elements axis 1: data [2, 5, 3], indices [2, 4, 3] float32
// CHECK:      | extern "C" __global__ void [[KG]](const float* __restrict__ in0, const long long* __restrict__ in1, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 24; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         int rest = i;
// CHECK-NEXT: |         size_t at = 0;
// CHECK-NEXT: |         at += (size_t)(rest % 3) * 1;
// CHECK-NEXT: |         rest /= 3;
// CHECK-NEXT: |         rest /= 4;
// CHECK-NEXT: |         at += (size_t)(rest) * 15;
// CHECK-NEXT: |         long long k = (long long)in1[i];
// CHECK-NEXT: |         if (k < 0) k += 5;
// CHECK-NEXT: |         out0[i] = (k >= 0 && k < 5) ? in0[at + (size_t)k * 3] : in0[0] * 0;
// CHECK-NEXT: |     }
// CHECK:      func.return %[[E]], %[[R]], %[[G]]
