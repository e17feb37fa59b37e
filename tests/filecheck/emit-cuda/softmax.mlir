// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Softmax over the last axis, rows of at most 1024: one warp per row, the row in registers,
// max (NaN-propagating) and sum by warp shuffles, the exponentials kept for the scale.
// Over an axis that is not the last (%z): one block per row (a position of the other dims),
// threads striding along the axis, max and sum by shared-memory trees.
builtin.module {
  func.func @main(%x: tensor<2x8xf32>, %z: tensor<2x8x3xf32>) -> (tensor<2x8xf32>, tensor<2x8x3xf32>) {
    %y = nn.softmax %x {axis = 1 : i64, log = false} : tensor<2x8xf32> -> tensor<2x8xf32>
    %w = nn.softmax %z {axis = 1 : i64, log = false} : tensor<2x8x3xf32> -> tensor<2x8x3xf32>
    func.return %y, %w : tensor<2x8xf32>, tensor<2x8x3xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "softmax"(%x)
// CHECK-NEXT: kernel.cuda "[[K:softmax_[0-9a-f]{12}]]"(%[[Y]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x8xf32> {
// CHECK-NEXT: | // softmax axis 1 of [2, 8] float32
// CHECK-NEXT: | // tactic: one warp per row (2 rows of 8, 8 rows a block), the row in registers (1 a lane), max and sum by warp shuffles
// CHECK:      |         if (w > v || w != w) v = w;
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |             v[i] = j < 8 ? x[j] : -__int_as_float(0x7f800000);
// CHECK:      |         const float m = warp_max(mx);
// CHECK:      |             const float e = expf(v[i] - m);
// CHECK:      |         s = warp_sum(s);
// CHECK:      |             if (j < 8) y[j] = v[i] * inv;

// CHECK:      %[[W:.*]] = kernel.launch "softmax"(%z)
// CHECK-NEXT: kernel.cuda "[[K2:softmax_[0-9a-f]{12}]]"(%[[W]]) grid [6, 1, 1] block [32, 1, 1] shared 0 : tensor<2x8x3xf32> {
// CHECK-NEXT: | // softmax axis 1 of [2, 8, 3] float32
// CHECK-NEXT: | // tactic: one block of 32 threads per row (6 rows of 8), shared-memory trees for max and sum
// CHECK:      | extern "C" __global__ void [[K2]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |         const float m = block_reduce(mx, smem, MaxOp());
// CHECK:      |             out0[base + (size_t)j * 3] = expf(x - m) * inv;
