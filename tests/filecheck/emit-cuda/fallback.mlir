// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// A kernel its template cannot emit (attention over heads wider than 128) gets no kernel.cuda
// but `cuda_fallback`, the reason, as a CUDA plan runs that step on the host; the next op's
// kernel is emitted as usual.
builtin.module {
  func.func @main(%q: tensor<1x2x256xf32>, %k: tensor<1x3x256xf32>, %v: tensor<1x3x256xf32>) -> tensor<1x2x256xf32> {
    %y = nn.attention %q, %k, %v {num_heads = 1 : i64, head_dim = 256 : i64, scale = 6.250000e-02 : f64} : (tensor<1x2x256xf32>, tensor<1x3x256xf32>, tensor<1x3x256xf32>) -> tensor<1x2x256xf32>
    %r = nn.unary "relu" %y : tensor<1x2x256xf32> -> tensor<1x2x256xf32>
    func.return %r : tensor<1x2x256xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "attention"(%q, %k, %v) {cuda_fallback = "step 'attention_0': template 'attention': CUDA attention: head_dim 256 > 128", params = {{.*}}}
// CHECK-NOT:  kernel.cuda "attention
// CHECK:      %[[R:.*]] = kernel.elementwise(%[[Y]])
// CHECK:      kernel.cuda "[[K:elementwise_[0-9a-f]{12}]]"(%[[R]]) grid [2, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x256xf32> {
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0) {
