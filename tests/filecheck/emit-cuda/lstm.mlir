// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// A bidirectional LSTM with a bias and sequence lengths as one launch: one block per (batch
// row, direction), grid [batch, 2]; direction 1 walks its row's valid steps backwards, and
// Y's rows past a row's length are 0. Each step the block's threads compute the 4H = 12 gate
// rows' input and recurrent dot products (plus W's and R's halves of the bias row), then the
// cell update in ONNX's gate order i, o, f, c: rows [0, H) are the input gate, [H, 2H) the
// output gate, [2H, 3H) the forget gate, [3H, 4H) the cell candidate. Without peepholes their
// terms are 0 * c.
builtin.module {
  func.func @main(%x: tensor<5x2x2xf32>, %lens: tensor<2xi32>) -> (tensor<5x2x2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>) {
    %w = nn.weight "W" : tensor<2x12x2xf32>
    %r = nn.weight "R" : tensor<2x12x3xf32>
    %b = nn.weight "B" : tensor<2x24xf32>
    %y, %yh, %yc = nn.lstm %x, %w, %r bias(%b : tensor<2x24xf32>) sequence_lens(%lens : tensor<2xi32>) {hidden_size = 3 : i64, direction = "bidirectional"} : tensor<5x2x2xf32>, tensor<2x12x2xf32>, tensor<2x12x3xf32> -> tensor<5x2x2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>
    func.return %y, %yh, %yc : tensor<5x2x2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32>
  }
}

// CHECK:      %[[Y:.*]], %[[YH:.*]], %[[YC:.*]] = kernel.launch "lstm"(%x, %{{.*}}, %{{.*}}, %{{.*}}, %lens)
// CHECK-NEXT: kernel.cuda "[[K:lstm_[0-9a-f]{12}]]"(%[[Y]], %[[YH]], %[[YC]]) grid [2, 2, 1] block [256, 1, 1] shared 120 : tensor<5x2x2x3xf32>, tensor<2x2x3xf32>, tensor<2x2x3xf32> {
// CHECK-NEXT: | // lstm bidirectional hidden=3 seq=5 batch=2 in=2 layout=0 float32
// CHECK-NEXT: | // tactic: one block of 256 per (batch row, direction) over the time steps; state and gates in shared memory; sums in float
// CHECK:      | __device__ __forceinline__ float act0_0(float x) { return (float)1 / (1 + exp(-x)); }
// CHECK-NEXT: | __device__ __forceinline__ float act0_1(float x) { return tanh(x); }
// CHECK-NEXT: | __device__ __forceinline__ float act0_2(float x) { return tanh(x); }
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, const float* __restrict__ in3, const int* __restrict__ in4, float* __restrict__ out0, float* __restrict__ out1, float* __restrict__ out2) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     const int b = blockIdx.x, d = blockIdx.y;
// CHECK-NEXT: |     const bool reverse = d == 1;
// CHECK:      |     const int len = (int)in4[b];
// CHECK:      |     for (int rt = len; rt < 5; ++rt)
// CHECK-NEXT: |         for (int j = threadIdx.x; j < 3; j += blockDim.x) out0[(((size_t)rt * 2 + d) * 2 + b) * 3 + j] = (float)0;
// CHECK:      |     for (int t = 0; t < len; ++t) {
// CHECK-NEXT: |         const int rt = reverse ? len - 1 - t : t;
// CHECK-NEXT: |         for (int j = threadIdx.x; j < 12; j += blockDim.x) {
// CHECK:      |             sx += (float)in3[(size_t)d * 24 + j];
// CHECK-NEXT: |             sh += (float)in3[(size_t)d * 24 + 12 + j];
// CHECK:      |             const float ig = (d == 0 ? act0_0(gx[j] + gh[j] + 0 * c[j]) : act1_0(gx[j] + gh[j] + 0 * c[j]));
// CHECK-NEXT: |             const float fg = (d == 0 ? act0_0(gx[6 + j] + gh[6 + j] + 0 * c[j]) : act1_0(gx[6 + j] + gh[6 + j] + 0 * c[j]));
// CHECK-NEXT: |             const float cg = (d == 0 ? act0_1(gx[9 + j] + gh[9 + j]) : act1_1(gx[9 + j] + gh[9 + j]));
// CHECK-NEXT: |             const float cn = fg * c[j] + ig * cg;
// CHECK-NEXT: |             const float og = (d == 0 ? act0_0(gx[3 + j] + gh[3 + j] + 0 * cn) : act1_0(gx[3 + j] + gh[3 + j] + 0 * cn));
// CHECK-NEXT: |             const float hn = og * (d == 0 ? act0_2(cn) : act1_2(cn));
// CHECK:      |         out1[((size_t)d * 2 + b) * 3 + j] = (float)(h[j]);
// CHECK-NEXT: |         out2[((size_t)d * 2 + b) * 3 + j] = (float)(c[j]);
// CHECK:      func.return %[[Y]], %[[YH]], %[[YC]]
