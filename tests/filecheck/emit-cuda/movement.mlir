// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Data movement: transpose, concat, slice, gather and pad each launch their own template; a
// reshape is a view and gets no kernel.
builtin.module {
  func.func @main(%x: tensor<2x3xf32>, %z: tensor<2x5xf32>, %w: tensor<4x8xf32>, %t: tensor<5x4xf32>) -> (tensor<3x2xf32>, tensor<2x8xf32>, tensor<4x4xf32>, tensor<2x4xf32>, tensor<4x5xf32>) {
    %tr = nn.transpose %x {perm = array<i64: 1, 0>} : tensor<2x3xf32> -> tensor<3x2xf32>
    %cc = nn.concat %x, %z {axis = 1 : i64} : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
    %sl = nn.slice %w {starts = array<i64: 0, 2>, ends = array<i64: 4, 6>, steps = array<i64: 1, 1>} : tensor<4x8xf32> -> tensor<4x4xf32>
    %i = nn.constant dense<[3, 1]> : tensor<2xi64>
    %ga = nn.gather %t, %i {axis = 0 : i64} : (tensor<5x4xf32>, tensor<2xi64>) -> tensor<2x4xf32>
    %pd = nn.pad %x {pads = array<i64: 1, 1, 1, 1>, mode = "constant", value = 0.000000e+00 : f64} : tensor<2x3xf32> -> tensor<4x5xf32>
    func.return %tr, %cc, %sl, %ga, %pd : tensor<3x2xf32>, tensor<2x8xf32>, tensor<4x4xf32>, tensor<2x4xf32>, tensor<4x5xf32>
  }
}

// CHECK:      %[[TR:.*]] = kernel.launch "transpose"(%x)
// CHECK-NEXT: kernel.cuda "[[T:transpose_[0-9a-f]{12}]]"(%[[TR]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<3x2xf32> {
// CHECK-NEXT: | // transpose perm=[1, 0]: [2, 3] -> [3, 2] float32
// CHECK:      | extern "C" __global__ void [[T]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      %[[CC:.*]] = kernel.launch "concat"(%x, %z)
// CHECK-NEXT: kernel.cuda "[[C:concat_[0-9a-f]{12}]]"(%[[CC]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x8xf32> {
// CHECK-NEXT: | // concat axis 1 of 2 inputs -> [2, 8] float32
// CHECK:      | extern "C" __global__ void [[C]](const float* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0) {
// CHECK:      %[[SL:.*]] = kernel.launch "slice"(%w)
// CHECK-NEXT: kernel.cuda "[[S:slice_[0-9a-f]{12}]]"(%[[SL]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<4x4xf32> {
// CHECK-NEXT: | // slice starts=[0, 2] steps=[1, 1]: [4, 8] -> [4, 4] float32
// CHECK:      | extern "C" __global__ void [[S]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      %[[GA:.*]] = kernel.launch "gather"(%t, %i)
// CHECK-NEXT: kernel.cuda "[[G:gather_[0-9a-f]{12}]]"(%[[GA]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x4xf32> {
// CHECK-NEXT: | // gather axis 0: data [5, 4], indices [2] -> [2, 4] float32
// CHECK:      | extern "C" __global__ void [[G]](const float* __restrict__ in0, const long long* __restrict__ in1, float* __restrict__ out0) {
// CHECK:      |         out0[i] = (k >= 0 && k < 5) ? in0[(outer * 5 + k) * 4 + r] : in0[0] * 0;
// CHECK:      %[[PD:.*]] = kernel.launch "pad"(%x)
// CHECK-NEXT: kernel.cuda "[[P:pad_[0-9a-f]{12}]]"(%[[PD]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<4x5xf32> {
// CHECK-NEXT: | // pad constant pads=[1, 1, 1, 1] [2, 3] -> [4, 5] float32
// CHECK:      | extern "C" __global__ void [[P]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      func.return %[[TR]], %[[CC]], %[[SL]], %[[GA]], %[[PD]]
