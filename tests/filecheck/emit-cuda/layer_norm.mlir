// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Layer norm over the last axis with scale and bias (weights are kernel inputs). A row of 8 (up
// to 1024): one warp per row, the row in registers, sums by warp shuffles. A row of 1100: one
// block per row with shared-memory trees.
builtin.module {
  func.func @main(%x: tensor<2x8xf32>, %z: tensor<2x1100xf32>) -> (tensor<2x8xf32>, tensor<2x1100xf32>) {
    %g = nn.weight "g" : tensor<8xf32>
    %b = nn.weight "b" : tensor<8xf32>
    %y = nn.layer_norm %x, %g, %b {axis = 1 : i64, epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
    %g2 = nn.weight "g2" : tensor<1100xf32>
    %w = nn.layer_norm %z, %g2 {axis = 1 : i64, epsilon = 1.0e-05 : f64} : (tensor<2x1100xf32>, tensor<1100xf32>) -> tensor<2x1100xf32>
    func.return %y, %w : tensor<2x8xf32>, tensor<2x1100xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "layer_norm"(%x, %g, %b)
// CHECK-NEXT: kernel.cuda "[[K:layer_norm_[0-9a-f]{12}]]"(%[[Y]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x8xf32> {
// CHECK-NEXT: | // layer_norm axis 1 of [2, 8] eps=1e-05 float32
// CHECK-NEXT: | // tactic: one warp per row (2 rows of 8, 8 rows a block), the row in registers (1 a lane), two-pass mean / variance by warp shuffles
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
// CHECK-NEXT: |     for (int row = blockIdx.x * 8 + warp; row < 2; row += gridDim.x * 8) {
// CHECK:      |             v[i] = j < 8 ? x[j] : 0.0f;
// CHECK:      |         const float mean = warp_sum(s) / (float)8;
// CHECK:      |         const float inv = rsqrtf(warp_sum(q) / (float)8 + 9.999999747378752e-06f);
// CHECK:      |             y[j] = (v[i] - mean) * inv * in1[j] + in2[j];

// CHECK:      %[[W:.*]] = kernel.launch "layer_norm"(%z, %g2)
// CHECK-NEXT: kernel.cuda "[[L:layer_norm_[0-9a-f]{12}]]"(%[[W]]) grid [2, 1, 1] block [512, 1, 1] shared 0 : tensor<2x1100xf32> {
// CHECK-NEXT: | // layer_norm axis 1 of [2, 1100] eps=1e-05 float32
// CHECK-NEXT: | // tactic: one block of 512 threads per row (2 rows of 1100), two-pass mean / variance
// CHECK:      |         const float mean = block_reduce(s, smem, SumOp()) / (float)1100;
// CHECK:      |         const float inv = rsqrtf(block_reduce(q, smem, SumOp()) / (float)1100 + 9.999999747378752e-06f);
