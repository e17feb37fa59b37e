// RUN: ember-opt %s -p 'convert-nn-to-kernel,emit-cuda{symbols="N=1:4:64"}' | filecheck %s

// Generators. Range of static length 5 reads start and delta (delta taken as (start + delta) -
// start in float, as numpy's arange fills) and writes start + i * delta; the limit operand is
// not read. Fill writes one value to each element (an FP16 1.5 rounded by ember_to_half); its
// shape operand is not read. shape_of over a symbolic batch N: one thread writes the dims, N
// from the kernel's `sz_N` argument, 8 as a constant.
builtin.module {
  func.func @main(%start: tensor<f32>, %limit: tensor<f32>, %delta: tensor<f32>, %shape: tensor<2xi64>, %x: tensor<?x8xf32, #nn.layout<["N"]>>) -> (tensor<5xf32>, tensor<2x3xf16>, tensor<2xi64>) {
    %r = nn.range %start, %limit, %delta : (tensor<f32>, tensor<f32>, tensor<f32>) -> tensor<5xf32>
    %f = nn.fill %shape {value = 1.5 : f64} : (tensor<2xi64>) -> tensor<2x3xf16>
    %s = nn.shape_of %x : tensor<?x8xf32, #nn.layout<["N"]>> -> tensor<2xi64>
    func.return %r, %f, %s : tensor<5xf32>, tensor<2x3xf16>, tensor<2xi64>
  }
}

// CHECK:      %[[R:.*]] = kernel.launch "range"(%start, %limit, %delta)
// CHECK-NEXT: kernel.cuda "[[KR:range_[0-9a-f]{12}]]"(%[[R]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<5xf32> {
// CHECK-NEXT: | // range of 5 float32
// CHECK:      | extern "C" __global__ void [[KR]](const float* __restrict__ in0, const float* __restrict__ in1, const float* __restrict__ in2, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     const float start = in0[0];
// CHECK-NEXT: |     const float delta = (float)(start + in2[0]) - start;
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 5; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         out0[i] = start + (float)i * delta;
// CHECK-NEXT: |     }

// CHECK:      %[[F:.*]] = kernel.launch "fill"(%shape)
// CHECK-NEXT: kernel.cuda "[[KF:fill_[0-9a-f]{12}]]"(%[[F]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x3xf16> {
// CHECK-NEXT: | // fill [2, 3] float16 with 1.5
// CHECK:      | extern "C" __global__ void [[KF]](const long long* __restrict__ in0, ember_half* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 6; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         out0[i] = ember_to_half(1.5f);
// CHECK-NEXT: |     }

// CHECK:      %[[S:.*]] = kernel.launch "shape_of"(%x)
// CHECK-NEXT: kernel.cuda "[[KS:shape_of_[0-9a-f]{12}]]"(%[[S]]) grid [1, 1, 1] block [32, 1, 1] shared 0 sizes ["N"] : tensor<2xi64> {
// CHECK-NEXT: | // shape_of dims 0:
// CHECK:      | extern "C" __global__ void [[KS]](const float* __restrict__ in0, long long* __restrict__ out0, const int sz_N) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     if (blockIdx.x != 0 || threadIdx.x != 0) return;
// CHECK-NEXT: |     out0[0] = (long long)(sz_N);
// CHECK-NEXT: |     out0[1] = (long long)(8);
// CHECK-NEXT: | }
// CHECK:      func.return %[[R]], %[[F]], %[[S]]
