// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Batch norm, group norm and LRN. Batch norm: one thread per element, its channel (i / 9) % 2
// indexing scale, bias, mean and var. Group norm: one warp per (batch, group) row of 2 channels
// x 4 pixels = 8 values, two-pass mean / variance, then each element's channel (row % 2) * 2 +
// j / 4 picks its scale and bias. LRN with an even size 4: the window is channels c - 1 .. c + 2
// (ONNX's floor / ceil of (size - 1) / 2), clamped to 0 .. 3, alpha divided by size.
// (Group norm's rows are short: one warp per row, see layer_norm.mlir.)
builtin.module {
  func.func @main(%x: tensor<1x2x3x3xf32>, %g: tensor<1x4x2x2xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x4x2x2xf32>, tensor<1x4x2x2xf32>) {
    %s = nn.weight "bn.scale" : tensor<2xf32>
    %b = nn.weight "bn.bias" : tensor<2xf32>
    %m = nn.weight "bn.mean" : tensor<2xf32>
    %v = nn.weight "bn.var" : tensor<2xf32>
    %bn = nn.batch_norm %x, %s, %b, %m, %v {epsilon = 1.0e-05 : f64} : (tensor<1x2x3x3xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<1x2x3x3xf32>
    %gs = nn.weight "gn.scale" : tensor<4xf32>
    %gb = nn.weight "gn.bias" : tensor<4xf32>
    %gn = nn.group_norm %g, %gs, %gb {groups = 2 : i64, epsilon = 1.0e-05 : f64} : (tensor<1x4x2x2xf32>, tensor<4xf32>, tensor<4xf32>) -> tensor<1x4x2x2xf32>
    %lrn = nn.lrn %g {size = 4 : i64, alpha = 4.0e-04 : f64, beta = 7.500000e-01 : f64, bias = 2.000000e+00 : f64} : tensor<1x4x2x2xf32> -> tensor<1x4x2x2xf32>
    func.return %bn, %gn, %lrn : tensor<1x2x3x3xf32>, tensor<1x4x2x2xf32>, tensor<1x4x2x2xf32>
  }
}

// CHECK:      %[[BN:.*]] = kernel.launch "batch_norm"(%x, %s, %b, %m, %v)
// CHECK-NEXT: kernel.cuda "[[B:batch_norm_[0-9a-f]{12}]]"(%[[BN]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x3x3xf32> {
// CHECK-NEXT: | // batch_norm [1, 2, 3, 3] eps=1e-05 float32
// CHECK-NEXT: | // tactic: one thread per element, grid-stride loop, block 256
// CHECK:      | extern "C" __global__ void [[B]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, const float* __restrict__ in3, const float* __restrict__ in4, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 18; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const int c = (int)((i / 9) % 2);
// CHECK-NEXT: |         // inputs: x, scale, bias, mean, var
// CHECK-NEXT: |         const float inv = rsqrtf(in4[c] + 9.999999747378752e-06f);
// CHECK-NEXT: |         out0[i] = (in0[i] - in3[c]) * inv * in1[c] + in2[c];
// CHECK-NEXT: |     }
// CHECK-NEXT: | }

// CHECK:      %[[GN:.*]] = kernel.launch "group_norm"(%g, %gs, %gb)
// CHECK-NEXT: kernel.cuda "[[G:group_norm_[0-9a-f]{12}]]"(%[[GN]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x4x2x2xf32> {
// CHECK-NEXT: | // group_norm groups=2 of [1, 4, 2, 2] eps=1e-05 float32
// CHECK-NEXT: | // tactic: one warp per row (2 rows of 8, 8 rows a block), the row in registers (1 a lane), two-pass mean / variance by warp shuffles
// CHECK:      | extern "C" __global__ void [[G]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, float* __restrict__ out0) {
// CHECK:      |     for (int row = blockIdx.x * 8 + warp; row < 2; row += gridDim.x * 8) {
// CHECK-NEXT: |         const float* x = in0 + (size_t)row * 8;
// CHECK-NEXT: |         float* y = out0 + (size_t)row * 8;
// CHECK:      |         const float mean = warp_sum(s) / (float)8;
// CHECK:      |             const float d = v[i] - mean;
// CHECK-NEXT: |             if (lane + 32 * i < 8) q += d * d;
// CHECK:      |         const float inv = rsqrtf(warp_sum(q) / (float)8 + 9.999999747378752e-06f);
// CHECK:      |             const int c = (row % 2) * 2 + j / 4;
// CHECK-NEXT: |             y[j] = (v[i] - mean) * inv * in1[c] + in2[c];

// CHECK:      %[[LRN:.*]] = kernel.launch "lrn"(%g)
// CHECK-NEXT: kernel.cuda "[[L:lrn_[0-9a-f]{12}]]"(%[[LRN]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x4x2x2xf32> {
// CHECK-NEXT: | // lrn [1, 4, 2, 2] size=4 alpha=0.0004 beta=0.75 bias=2.0 float32
// CHECK:      | extern "C" __global__ void [[L]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 16; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const int c = (int)((i / 4) % 4);
// CHECK-NEXT: |         const int base = i - (int)c * 4;  // channel 0, same position
// CHECK-NEXT: |         const int c_lo = c - 1 < 0 ? 0 : c - 1;
// CHECK-NEXT: |         const int c_hi = c + 2 > 3 ? 3 : c + 2;
// CHECK-NEXT: |         float s = 0;
// CHECK-NEXT: |         for (int cc = c_lo; cc <= c_hi; ++cc) {
// CHECK-NEXT: |             const float v = in0[base + (int)cc * 4];
// CHECK-NEXT: |             s += v * v;
// CHECK-NEXT: |         }
// CHECK-NEXT: |         out0[i] = in0[i] / powf(2.0f + 9.999999747378752e-05f * s, 0.75f);
// CHECK:      func.return %[[BN]], %[[GN]], %[[LRN]]
