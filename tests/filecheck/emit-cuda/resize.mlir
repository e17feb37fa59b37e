// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// Resize as a separable gather with per-axis tables baked into the kernel. Nearest, asymmetric,
// floor, 2x on both spatial axes: output coordinates 0, 1, 2, 3 read source 0, 0, 1, 1 (weight
// 1 on the first tap). Linear, half_pixel, 2x on the last axis of [1, 2, 3]: source coordinate
// (o + 0.5) / 2 - 0.5, so weights 0.25 / 0.75 alternate, clamped at the edges (index 0, 0 and
// 2, 2); the unresized dims enter through `base`.
builtin.module {
  func.func @main(%x: tensor<1x1x2x2xf32>, %y: tensor<1x2x3xf32>) -> (tensor<1x1x4x4xf32>, tensor<1x2x6xf32>) {
    %n = nn.resize %x {scales = array<f64: 1.000000e+00, 1.000000e+00, 2.000000e+00, 2.000000e+00>, mode = "nearest", coordinate_transformation_mode = "asymmetric", nearest_mode = "floor", cubic_coeff_a = -7.500000e-01 : f64, exclude_outside = false, extrapolation_value = 0.000000e+00 : f64} : tensor<1x1x2x2xf32> -> tensor<1x1x4x4xf32>
    %l = nn.resize %y {scales = array<f64: 1.000000e+00, 1.000000e+00, 2.000000e+00>, mode = "linear", coordinate_transformation_mode = "half_pixel", nearest_mode = "round_prefer_floor", cubic_coeff_a = -7.500000e-01 : f64, exclude_outside = false, extrapolation_value = 0.000000e+00 : f64} : tensor<1x2x3xf32> -> tensor<1x2x6xf32>
    func.return %n, %l : tensor<1x1x4x4xf32>, tensor<1x2x6xf32>
  }
}

// CHECK:      %[[N:.*]] = kernel.launch "resize"(%x)
// CHECK-NEXT: kernel.cuda "[[KN:resize_[0-9a-f]{12}]]"(%[[N]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x1x4x4xf32> {
// CHECK-NEXT: | // resize nearest [1, 1, 2, 2] -> [1, 1, 4, 4] float32 coordinate_transformation_mode=asymmetric nearest_mode=floor
// CHECK-NEXT: | // tactic: separable gather
// CHECK-NEXT: | // resized axes [2, 3] with [2, 2] taps each
// CHECK:      | __device__ const int index2[8] = {
// CHECK-NEXT: |     0, 1, 0, 1, 1, 1, 1, 1
// CHECK:      | __device__ const double weight2[8] = {
// CHECK-NEXT: |     1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0
// CHECK:      | __device__ const int index3[8] = {
// CHECK-NEXT: |     0, 1, 0, 1, 1, 1, 1, 1
// CHECK:      | extern "C" __global__ void [[KN]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |         const size_t base = (size_t)o0 * 4 + (size_t)o1 * 4;
// CHECK-NEXT: |         double acc = 0;
// CHECK-NEXT: |         for (int t2 = 0; t2 < 2; ++t2) {
// CHECK-NEXT: |             const int e2 = (int)o2 * 2 + t2;
// CHECK-NEXT: |             for (int t3 = 0; t3 < 2; ++t3) {
// CHECK-NEXT: |                 const int e3 = (int)o3 * 2 + t3;
// CHECK-NEXT: |                 acc += weight2[e2] * weight3[e3] * (double)in0[base + (size_t)index2[e2] * 2 + (size_t)index3[e3] * 1];
// CHECK:      |         out0[i] = (float)acc;

// CHECK:      %[[L:.*]] = kernel.launch "resize"(%y)
// CHECK-NEXT: kernel.cuda "[[KL:resize_[0-9a-f]{12}]]"(%[[L]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x6xf32> {
// CHECK-NEXT: | // resize linear [1, 2, 3] -> [1, 2, 6] float32 coordinate_transformation_mode=half_pixel
// CHECK-NEXT: | // tactic: separable gather
// CHECK-NEXT: | // resized axes [2] with [2] taps each
// CHECK:      | __device__ const int index2[12] = {
// CHECK-NEXT: |     0, 0, 0, 1, 0, 1, 1, 2, 1, 2, 2, 2
// CHECK:      | __device__ const double weight2[12] = {
// CHECK-NEXT: |     0.25, 0.75, 0.75, 0.25, 0.25, 0.75, 0.75, 0.25, 0.25, 0.75, 0.75, 0.25
// CHECK-NOT:  index3
// CHECK:      | extern "C" __global__ void [[KL]](const float* __restrict__ in0, float* __restrict__ out0) {
// CHECK:      |         const size_t base = (size_t)o0 * 6 + (size_t)o1 * 3;
// CHECK-NEXT: |         double acc = 0;
// CHECK-NEXT: |         for (int t2 = 0; t2 < 2; ++t2) {
// CHECK-NEXT: |             const int e2 = (int)o2 * 2 + t2;
// CHECK-NEXT: |             acc += weight2[e2] * (double)in0[base + (size_t)index2[e2] * 1];
// CHECK-NEXT: |         }
// CHECK-NEXT: |         out0[i] = (float)acc;
// CHECK:      func.return %[[N]], %[[L]]
