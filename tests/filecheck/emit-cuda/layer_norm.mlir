// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Layer norm over the last axis with scale and bias (weights are kernel inputs).
builtin.module {
  func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %g = nn.weight "g" : tensor<8xf32>
    %b = nn.weight "b" : tensor<8xf32>
    %y = nn.layer_norm %x, %g, %b {axis = 1 : i64, epsilon = 1.0e-05 : f64} : (tensor<2x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "layer_norm"(%x, %g, %b)
// CHECK-NEXT: kernel.cuda "[[K:layer_norm_[0-9a-f]{12}]]"(%[[Y]]) grid [2, 1, 1] block [32, 1, 1] shared 0 : tensor<2x8xf32> {
// CHECK-NEXT: | // layer_norm axis 1 of [2, 8] eps=1e-05 float32
// CHECK-NEXT: | // tactic: one block of 32 threads per row (2 rows of 8), two-pass mean / variance
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, float* __restrict__ out0) {
// CHECK:      |         const float mean = block_reduce(s, smem, SumOp()) / (float)8;
// CHECK:      |         const float inv = rsqrtf(block_reduce(q, smem, SumOp()) / (float)8 + 9.999999747378752e-06f);
