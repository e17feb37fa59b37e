// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Fused attention (as fuse-attention leaves it) over 2 heads with an additive mask.
builtin.module {
  func.func @main(%q: tensor<1x3x4xf32>, %k: tensor<1x5x4xf32>, %v: tensor<1x5x4xf32>, %m: tensor<1x1x1x5xf32>) -> tensor<1x3x4xf32> {
    %y = nn.attention %q, %k, %v, %m {num_heads = 2 : i64, head_dim = 2 : i64, scale = 5.000000e-01 : f64} : (tensor<1x3x4xf32>, tensor<1x5x4xf32>, tensor<1x5x4xf32>, tensor<1x1x1x5xf32>) -> tensor<1x3x4xf32>
    func.return %y : tensor<1x3x4xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "attention"(%q, %k, %v, %m)
// CHECK-NEXT: kernel.cuda "[[K:attention_[0-9a-f]{12}]]"(%[[Y]]) grid [2, 1, 1] block [128, 1, 1] shared 0 : tensor<1x3x4xf32> {
// CHECK-NEXT: | // attention 1x2 heads of 2, 3 queries x 5 keys, float32, mask [1, 1, 1, 5] float32
// CHECK-NEXT: | // tactic: one block of 4 warps per (1 batch, 2 heads, 1 tiles of 16 queries); 32-key K/V tiles in shared memory; online softmax per row
// CHECK-NEXT: | // q cols 0+ of 4, k cols 0+ of 4, v cols 0+ of 4; scale 0.5f
// CHECK:      | extern "C" __global__ void __launch_bounds__(128, 1) [[K]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, const float* __restrict__ in3, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     __shared__ float Qs[16][2];
