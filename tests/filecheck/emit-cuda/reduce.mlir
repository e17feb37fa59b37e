// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// A sum over the last axis: a row reduction.
builtin.module {
  func.func @main(%x: tensor<2x8xf32>) -> tensor<2x1xf32> {
    %y = nn.reduce "sum" %x {axes = array<i64: 1>, keepdims = true} : (tensor<2x8xf32>) -> tensor<2x1xf32>
    func.return %y : tensor<2x1xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "reduce"(%x)
// CHECK-NEXT: kernel.cuda "[[K:reduce_[0-9a-f]{12}]]"(%[[Y]]) grid [2, 1, 1] block [32, 1, 1] shared 0 : tensor<2x1xf32> {
// CHECK-NEXT: | // reduce sum over axes [1] of [2, 8] float32
// CHECK-NEXT: | // tactic: one block of 32 threads per output element (2 outputs x 8 reduced), shared-memory tree
// CHECK:      | __device__ T block_reduce(T v, T* smem, Op op) {
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |         const float r = block_reduce(v, smem, SumOp());
