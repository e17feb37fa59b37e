// RUN: ember-opt %s -p emit-cuda | filecheck %s

// The reformats assign-layouts inserts around packed (NC4HW4) convs, written at the kernel level:
// 6 channels packed into 2 blocks of 4 (the last block zero-padded) and back.
builtin.module {
  func.func @main(%x: tensor<1x6x4x4xf32>) -> tensor<1x6x4x4xf32> {
    %a = kernel.launch "reformat"(%x) {params = {reformat = "NCHW->NC4HW4", channels = 6 : i64, in_shapes = [array<i64: 1, 6, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 2, 4, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x6x4x4xf32>) -> tensor<1x6x4x4xf32, #nn.layout<NC4HW4>>
    %b = kernel.launch "reformat"(%a) {params = {reformat = "NC4HW4->NCHW", channels = 6 : i64, in_shapes = [array<i64: 1, 2, 4, 4, 4>], in_dtypes = ["float32"], out_shapes = [array<i64: 1, 6, 4, 4>], out_dtypes = ["float32"]}} : (tensor<1x6x4x4xf32, #nn.layout<NC4HW4>>) -> tensor<1x6x4x4xf32>
    func.return %b : tensor<1x6x4x4xf32>
  }
}

// CHECK:      %[[A:.*]] = kernel.launch "reformat"(%x)
// CHECK-NEXT: kernel.cuda "[[K:reformat_[0-9a-f]{12}]]"(%[[A]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x6x4x4xf32, #nn.layout<NC4HW4>> {
// CHECK-NEXT: | // reformat NCHW->NC4HW4 [1, 6, 4, 4] -> [1, 2, 4, 4, 4] float32
// CHECK-NEXT: | // tactic: {{.*}}; pad lanes written as zeros
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |         if (c >= 6) { out0[i] = (float)0; continue; }
// CHECK:      %[[B:.*]] = kernel.launch "reformat"(%[[A]])
// CHECK-NEXT: kernel.cuda "[[K2:reformat_[0-9a-f]{12}]]"(%[[B]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x6x4x4xf32> {
// CHECK-NEXT: | // reformat NC4HW4->NCHW [1, 2, 4, 4, 4] -> [1, 6, 4, 4] float32
// CHECK:      | extern "C" __global__ void [[K2]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      func.return %[[B]]
