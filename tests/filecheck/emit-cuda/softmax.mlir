// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Softmax over the last axis: one block per row (max, sum of exponentials, scale).
builtin.module {
  func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = nn.softmax %x {axis = 1 : i64, log = false} : tensor<2x8xf32> -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "softmax"(%x)
// CHECK-NEXT: kernel.cuda "[[K:softmax_[0-9a-f]{12}]]"(%[[Y]]) grid [2, 1, 1] block [32, 1, 1] shared 0 : tensor<2x8xf32> {
// CHECK-NEXT: | // softmax axis 1 of [2, 8] float32
// CHECK-NEXT: | // tactic: one block of 32 threads per row (2 rows of 8), shared-memory trees for max and sum
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |         const float m = block_reduce(mx, smem, MaxOp());
// CHECK:      |             out0[base + (size_t)j * 1] = expf(x - m) * inv;
