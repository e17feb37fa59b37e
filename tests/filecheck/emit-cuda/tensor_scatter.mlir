// RUN: ember-opt %s -p 'convert-nn-to-kernel,emit-cuda{symbols="N=1:4:64"}' | filecheck %s

// TensorScatter, the KV-cache update: one thread per element of the present cache. In circular
// mode over a symbolic batch N, sample c0's write index w = in2[c0] places the 3 new positions
// at (w .. w + 2) mod 8: an element at sequence position c2 takes update row
// rel = (c2 - w) mod 8 (made non-negative) when rel < 3, else the past's value. Linear mode
// without write indices writes at 0 and wraps nothing.
builtin.module {
  func.func @main(%past: tensor<?x2x8x4xf32, #nn.layout<["N"]>>, %new: tensor<?x2x3x4xf32, #nn.layout<["N"]>>, %at: tensor<?xi64, #nn.layout<["N"]>>, %p: tensor<1x8x4xf32>, %u: tensor<1x2x4xf32>) -> (tensor<?x2x8x4xf32, #nn.layout<["N"]>>, tensor<1x8x4xf32>) {
    %c = nn.tensor_scatter %past, %new at %at : tensor<?xi64, #nn.layout<["N"]>> {axis = 2 : i64, mode = "circular"} : tensor<?x2x8x4xf32, #nn.layout<["N"]>>, tensor<?x2x3x4xf32, #nn.layout<["N"]>> -> tensor<?x2x8x4xf32, #nn.layout<["N"]>>
    %l = nn.tensor_scatter %p, %u {axis = 1 : i64, mode = "linear"} : tensor<1x8x4xf32>, tensor<1x2x4xf32> -> tensor<1x8x4xf32>
    func.return %c, %l : tensor<?x2x8x4xf32, #nn.layout<["N"]>>, tensor<1x8x4xf32>
  }
}

// CHECK:      %[[C:.*]] = kernel.launch "tensor_scatter"(%past, %new, %at)
// CHECK-NEXT: kernel.cuda "[[KC:tensor_scatter_[0-9a-f]{12}]]"(%[[C]]) grid ["min(cdiv(64*N, 256), 65536)", 1, 1] block [256, 1, 1] shared 0 sizes ["N"] : tensor<?x2x8x4xf32, #nn.layout<["N"]>> {
// CHECK-NEXT: | // tensor_scatter circular axis 2: past [sz_N, 2, 8, 4], update [sz_N, 2, 3, 4] float32
// CHECK:      | extern "C" __global__ void [[KC]](const float* __restrict__ in0, const float* __restrict__ in1, const long long* __restrict__ in2, float* __restrict__ out0, const int sz_N) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < (sz_N*64); i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const long long w = in2[c0];
// CHECK-NEXT: |         long long rel = (long long)c2 - w;
// CHECK-NEXT: |         rel %= 8;
// CHECK-NEXT: |         if (rel < 0) rel += 8;
// CHECK-NEXT: |         if (rel >= 0 && rel < 3) {
// CHECK-NEXT: |             out0[i] = in1[(size_t)(c0) * 24 + (size_t)(c1) * 12 + (size_t)(rel) * 4 + (size_t)(c3) * 1];
// CHECK-NEXT: |         } else {
// CHECK-NEXT: |             out0[i] = in0[i];

// CHECK:      %[[L:.*]] = kernel.launch "tensor_scatter"(%p, %u)
// CHECK-NEXT: kernel.cuda "[[KL:tensor_scatter_[0-9a-f]{12}]]"(%[[L]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x8x4xf32> {
// CHECK-NEXT: | // tensor_scatter linear axis 1: past [1, 8, 4], update [1, 2, 4] float32
// CHECK:      | extern "C" __global__ void [[KL]](const float* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0) {
// CHECK:      |         const long long w = 0;
// CHECK-NEXT: |         long long rel = (long long)c1 - w;
// CHECK-NEXT: |         if (rel >= 0 && rel < 2) {
// CHECK-NEXT: |             out0[i] = in1[(size_t)(c0) * 8 + (size_t)(rel) * 4 + (size_t)(c2) * 1];
// CHECK:      func.return %[[C]], %[[L]]
