// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// ONNX RNN and GRU run the `rnn` template (LSTM its `lstm` sibling, lstm.mlir): one block per
// (batch row, direction) over the time steps. A reverse RNN walks t = 4 .. 0 and applies tanh
// to the sum. A GRU's gate rows are z [0, H), r [H, 2H), h [2H, 3H): by default the reset
// gate scales h before the product with R_h, so each thread recomputes r over all k in its own
// dot product; with linear_before_reset it scales the product instead.
builtin.module {
  func.func @main(%x: tensor<5x1x2xf32>) -> (tensor<5x1x1x3xf32>, tensor<1x1x3xf32>, tensor<5x1x1x3xf32>, tensor<1x1x3xf32>, tensor<5x1x1x3xf32>) {
    %w = nn.weight "rnn.W" : tensor<1x3x2xf32>
    %r = nn.weight "rnn.R" : tensor<1x3x3xf32>
    %y, %yh = nn.rnn %x, %w, %r {hidden_size = 3 : i64, direction = "reverse", cell = "rnn"} : tensor<5x1x2xf32>, tensor<1x3x2xf32>, tensor<1x3x3xf32> -> tensor<5x1x1x3xf32>, tensor<1x1x3xf32>
    %gw = nn.weight "gru.W" : tensor<1x9x2xf32>
    %gr = nn.weight "gru.R" : tensor<1x9x3xf32>
    %gy, %gyh = nn.rnn %x, %gw, %gr {hidden_size = 3 : i64, direction = "forward", cell = "gru"} : tensor<5x1x2xf32>, tensor<1x9x2xf32>, tensor<1x9x3xf32> -> tensor<5x1x1x3xf32>, tensor<1x1x3xf32>
    %ly, %lyh = nn.rnn %x, %gw, %gr {hidden_size = 3 : i64, direction = "forward", linear_before_reset = 1 : i64, cell = "gru"} : tensor<5x1x2xf32>, tensor<1x9x2xf32>, tensor<1x9x3xf32> -> tensor<5x1x1x3xf32>, tensor<1x1x3xf32>
    func.return %y, %yh, %gy, %gyh, %ly : tensor<5x1x1x3xf32>, tensor<1x1x3xf32>, tensor<5x1x1x3xf32>, tensor<1x1x3xf32>, tensor<5x1x1x3xf32>
  }
}

// CHECK:      %[[Y:.*]], %[[YH:.*]] = kernel.launch "rnn"(%x, %w, %r)
// CHECK-NEXT: kernel.cuda "[[K:rnn_[0-9a-f]{12}]]"(%[[Y]], %[[YH]]) grid [1, 1, 1] block [256, 1, 1] shared 48 : tensor<5x1x1x3xf32>, tensor<1x1x3xf32> {
// CHECK-NEXT: | // rnn reverse hidden=3 seq=5 batch=1 in=2 layout=0 float32
// CHECK:      | __device__ __forceinline__ float act0_0(float x) { return tanh(x); }
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, float* __restrict__ out0, float* __restrict__ out1) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     const int b = blockIdx.x, d = blockIdx.y;
// CHECK-NEXT: |     const bool reverse = true;
// CHECK:      |         const int rt = reverse ? len - 1 - t : t;
// CHECK-NEXT: |         for (int j = threadIdx.x; j < 3; j += blockDim.x) {
// CHECK:      |             for (int k = 0; k < 2; ++k) sx += (float)in0[((size_t)rt * 1 + b) * 2 + k] * (float)in1[w + k];
// CHECK:      |             for (int k = 0; k < 3; ++k) sh += h[k] * (float)in2[r + k];
// CHECK:      |             const float hn = act0_0(gx[j] + gh[j]);
// CHECK:      |             out0[(((size_t)rt * 1 + d) * 1 + b) * 3 + j] = (float)(h[j]);
// CHECK:      |         out1[((size_t)d * 1 + b) * 3 + j] = (float)(h[j]);

// CHECK:      %[[G:.*]], %[[GH:.*]] = kernel.launch "rnn"(%x, %gw, %gr)
// CHECK-NEXT: kernel.cuda "[[KG:rnn_[0-9a-f]{12}]]"(%[[G]], %[[GH]]) grid [1, 1, 1] block [256, 1, 1] shared 96 : tensor<5x1x1x3xf32>, tensor<1x1x3xf32> {
// CHECK-NEXT: | // gru forward hidden=3 seq=5 batch=1 in=2 layout=0 float32
// CHECK:      | __device__ __forceinline__ float act0_0(float x) { return (float)1 / (1 + exp(-x)); }
// CHECK-NEXT: | __device__ __forceinline__ float act0_1(float x) { return tanh(x); }
// CHECK:      | extern "C" __global__ void [[KG]](
// CHECK:      |         for (int j = threadIdx.x; j < 9; j += blockDim.x) {
// CHECK:      |             const float z = act0_0(gx[j] + gh[j]);
// CHECK-NEXT: |             const float rr = act0_0(gx[3 + j] + gh[3 + j]);
// CHECK-NEXT: |             float sr = 0;
// CHECK-NEXT: |             const size_t r = ((size_t)d * 9 + 6 + j) * 3;
// CHECK-NEXT: |             for (int k = 0; k < 3; ++k) {
// CHECK-NEXT: |                 const float rk = act0_0(gx[3 + k] + gh[3 + k]);
// CHECK-NEXT: |                 sr += rk * h[k] * (float)in2[r + k];
// CHECK-NEXT: |             }
// CHECK-NEXT: |             const float hc = act0_1(gx[6 + j] + sr + 0);
// CHECK-NEXT: |             const float hn = (1 - z) * hc + z * h[j];

// CHECK:      %[[L:.*]], %{{.*}} = kernel.launch "rnn"(%x, %gw, %gr) {params = {{{.*}}linear_before_reset = 1 : i64
// CHECK-NEXT: kernel.cuda "[[KL:rnn_[0-9a-f]{12}]]"(%[[L]]
// CHECK:      | extern "C" __global__ void [[KL]](
// CHECK:      |             const float rr = act0_0(gx[3 + j] + gh[3 + j]);
// CHECK-NEXT: |             const float hc = act0_1(gx[6 + j] + rr * gh[6 + j]);
// CHECK-NEXT: |             const float hn = (1 - z) * hc + z * h[j];
// CHECK:      func.return %[[Y]], %[[YH]], %[[G]], %[[GH]], %[[L]]
