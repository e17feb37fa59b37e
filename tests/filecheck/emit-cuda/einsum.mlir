// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Einsum as a strided contraction, one thread per output element. "bij,bjk->bik" is a batched
// matmul: the output coordinates (b, i, k) fix each operand's base (b * 12 + i * 4 and b * 20 + k)
// and the loop sums over j with strides 1 and 5. "ii->i" is a diagonal: the repeated label's
// strides add up to 4, and with nothing summed each output is one read.
builtin.module {
  func.func @main(%a: tensor<2x3x4xf32>, %b: tensor<2x4x5xf32>, %d: tensor<3x3xf32>) -> (tensor<2x3x5xf32>, tensor<3xf32>) {
    %m = nn.einsum "bij,bjk->bik" %a, %b : (tensor<2x3x4xf32>, tensor<2x4x5xf32>) -> tensor<2x3x5xf32>
    %g = nn.einsum "ii->i" %d : (tensor<3x3xf32>) -> tensor<3xf32>
    func.return %m, %g : tensor<2x3x5xf32>, tensor<3xf32>
  }
}

// CHECK:      %[[M:.*]] = kernel.launch "einsum"(%a, %b)
// CHECK-NEXT: kernel.cuda "[[KM:einsum_[0-9a-f]{12}]]"(%[[M]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x3x5xf32> {
// CHECK-NEXT: | // einsum 'bij,bjk->bik' {{\[\[}}2, 3, 4], [2, 4, 5]] -> [2, 3, 5] float32
// CHECK-NEXT: | // tactic: one thread per output element (grid-stride loop, block 256) sums over the labels ['j'] (4 terms);
// CHECK-NEXT: | // label sizes: b=2, i=3, j=4, k=5; operand strides per label: [{'b': 12, 'i': 4, 'j': 1}, {'b': 20, 'j': 5, 'k': 1}]
// CHECK:      | extern "C" __global__ void [[KM]](const float* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 30; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const float* a0 = in0 + (size_t)o0 * 12 + (size_t)o1 * 4;
// CHECK-NEXT: |         const float* a1 = in1 + (size_t)o0 * 20 + (size_t)o2 * 1;
// CHECK-NEXT: |         float acc = 0;
// CHECK-NEXT: |         for (long long r = 0; r < 4; ++r) {
// CHECK-NEXT: |             long long rrest = r;
// CHECK-NEXT: |             long long r0 = rrest;
// CHECK-NEXT: |             acc += (float)a0[(size_t)r0 * 1] * (float)a1[(size_t)r0 * 5];
// CHECK-NEXT: |         }
// CHECK-NEXT: |         out0[i] = (float)acc;

// CHECK:      %[[G:.*]] = kernel.launch "einsum"(%d)
// CHECK-NEXT: kernel.cuda "[[KG:einsum_[0-9a-f]{12}]]"(%[[G]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<3xf32> {
// CHECK-NEXT: | // einsum 'ii->i' {{\[\[}}3, 3]] -> [3] float32
// CHECK:      | // label sizes: i=3; operand strides per label: [{'i': 4}]
// CHECK:      | extern "C" __global__ void [[KG]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 3; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const float* a0 = in0 + (size_t)o0 * 4;
// CHECK-NEXT: |         float acc = 0;
// CHECK-NEXT: |         acc = (float)a0[0];
// CHECK-NEXT: |         out0[i] = (float)acc;
// CHECK:      func.return %[[M]], %[[G]]
