// RUN: ember-opt %s -p convert-nn-to-kernel,fuse-epilogues,select-tactics,emit-cuda | filecheck %s

// A tiny 3x3 convolution with a relu epilogue runs the direct kernel (one thread per output
// element): no GEMM tactic, no scratch.
builtin.module {
  func.func @main(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32> {
    %w = nn.weight "conv.weight" : tensor<2x2x3x3xf32>
    %c = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    %r = nn.unary "relu" %c : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xf32>
    func.return %r : tensor<1x2x4x4xf32>
  }
}

// CHECK:      %[[R:.*]] = kernel.launch "conv"(%x, %{{.*}}) {params = {{.*}}} : {{.*}} epilogue {
// CHECK-NOT:  tactic
// CHECK:      kernel.cuda "[[K:conv_[0-9a-f]{12}]]"(%[[R]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x4x4xf32> {
// CHECK-NEXT: | // conv 2-d x[1, 2, 4, 4] w[2, 2, 3, 3] -> [1, 2, 4, 4] strides=[1, 1] pads=[1, 1, 1, 1] dilations=[1, 1] groups=1 bias=0 float32
// CHECK-NEXT: | // tactic: direct, one thread per output element
// CHECK-NEXT: | // epilogue fused: [relu]
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0) {
// CHECK:      |         const float e1 = fmaxf(e0, 0.0f);  // relu
// CHECK:      func.return %[[R]]
