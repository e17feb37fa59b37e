// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// A 2x2 max pool with stride 2: one thread per output element over its window.
builtin.module {
  func.func @main(%x: tensor<1x2x4x4xf32>) -> tensor<1x2x2x2xf32> {
    %y = nn.pool "max" %x {kernel = array<i64: 2, 2>, strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, ceil_mode = false} : tensor<1x2x4x4xf32> -> tensor<1x2x2x2xf32>
    func.return %y : tensor<1x2x2x2xf32>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "pool"(%x)
// CHECK-NEXT: kernel.cuda "[[K:pool_[0-9a-f]{12}]]"(%[[Y]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x2x2xf32> {
// CHECK-NEXT: | // pool max 2-d [1, 2, 4, 4] -> [1, 2, 2, 2] kernel=[2, 2] strides=[2, 2] pads=[0, 0, 0, 0] dilations=[1, 1]
// CHECK-NEXT: | // tactic: one thread per output element walking its window
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |                     if (v > acc || v != v) acc = v;
// CHECK:      |         out0[i] = acc;
