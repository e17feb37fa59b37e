// RUN: ember-opt %s -p convert-nn-to-kernel,fuse-elementwise,emit-cuda | filecheck %s

// Half precisions. A cast f32 -> f16 is an elementwise kernel that rounds to nearest even
// (cvt.rn.f16.f32) on the store; an odd last dim keeps one element per thread. A BF16 add + relu
// (last dim even) takes two neighbouring elements per thread with 4-byte loads and stores of bf16
// pairs, computes in float and rounds the add to bf16 as the numpy reference does (relu is exact);
// the bias [4] is read at column c1. A BF16 softmax loads each value into a float
// (bits << 16), reduces in float (a warp per row) and rounds once on the store
// (ember_to_bf16: round to nearest even, NaN kept quiet).
builtin.module {
  func.func @main(%x: tensor<2x3xf32>, %a: tensor<2x4xbf16>, %b: tensor<4xbf16>, %n: tensor<2x8xbf16>) -> (tensor<2x3xf16>, tensor<2x4xbf16>, tensor<2x8xbf16>) {
    %h = nn.cast %x {to = f16} : tensor<2x3xf32> -> tensor<2x3xf16>
    %s = nn.binary "add" %a, %b : tensor<2x4xbf16>, tensor<4xbf16> -> tensor<2x4xbf16>
    %r = nn.unary "relu" %s : tensor<2x4xbf16> -> tensor<2x4xbf16>
    %y = nn.softmax %n {axis = 1 : i64, log = false} : tensor<2x8xbf16> -> tensor<2x8xbf16>
    func.return %h, %r, %y : tensor<2x3xf16>, tensor<2x4xbf16>, tensor<2x8xbf16>
  }
}

// CHECK:      %[[H:.*]] = kernel.elementwise(%x) : (tensor<2x3xf32>) -> tensor<2x3xf16> {
// CHECK:        kernel.scalar "cast" %{{.*}} : (f32) -> f16
// CHECK:      kernel.cuda "[[KH:elementwise_[0-9a-f]{12}]]"(%[[H]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x3xf16> {
// CHECK-NEXT: | // elementwise [cast] -> float16[2, 3]
// CHECK-NEXT: | // tactic: one thread per output element, grid-stride loop, block 256;
// CHECK:      | __device__ __forceinline__ ember_half ember_to_half(float f) {  // round to nearest even
// CHECK-NEXT: |     ember_half h;
// CHECK-NEXT: |     asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
// CHECK:      | extern "C" __global__ void [[KH]](const float* __restrict__ in0, ember_half* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 6; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const float v0 = in0[i];
// CHECK-NEXT: |         const float v1 = ember_round_half((float)(v0));  // cast
// CHECK-NEXT: |         out0[i] = ember_to_half(v1);
// CHECK-NEXT: |     }

// CHECK:      %[[R:.*]] = kernel.elementwise(%a, %b) : (tensor<2x4xbf16>, tensor<4xbf16>) -> tensor<2x4xbf16> {
// CHECK:      kernel.cuda "[[KR:elementwise_[0-9a-f]{12}]]"(%[[R]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x4xbf16> {
// CHECK-NEXT: | // elementwise [add, relu] -> bfloat16[2, 4]
// CHECK-NEXT: | // tactic: two neighbouring elements per thread (4-byte loads and stores of half pairs), computed in float
// CHECK:      | __device__ __forceinline__ float ember_load(ember_bf16 h) {
// CHECK-NEXT: |     return __uint_as_float((unsigned int)h.bits << 16);
// CHECK:      | __device__ __forceinline__ ember_bf16 ember_to_bf16(float f) {  // round to nearest even
// CHECK:      |     if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a (quiet) NaN
// CHECK:      |     u += 0x7fffu + ((u >> 16) & 1u);
// CHECK-NEXT: |     h.bits = (unsigned short)(u >> 16);
// CHECK:      | extern "C" __global__ void [[KR]](const ember_bf16* __restrict__ in0, const ember_bf16* __restrict__ in1, ember_bf16* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int p = (int)blockIdx.x * blockDim.x + threadIdx.x; p < 4; p += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const int i = 2 * p;
// CHECK:      |         int c1 = crest % 4;
// CHECK:      |         const ember_bf162 p0 = *(const ember_bf162*)(in0 + i);
// CHECK-NEXT: |         const float a0 = ember_load(p0.x), b0 = ember_load(p0.y);
// CHECK-NEXT: |         const ember_bf162 p1 = *(const ember_bf162*)(in1 + c1);
// CHECK-NEXT: |         const float a1 = ember_load(p1.x), b1 = ember_load(p1.y);
// CHECK-NEXT: |         const float a2 = ember_round_bf16((a0 + a1));  // add
// CHECK-NEXT: |         const float a3 = fmaxf(a2, 0.0f);  // relu
// CHECK-NEXT: |         const float b2 = ember_round_bf16((b0 + b1));  // add
// CHECK-NEXT: |         const float b3 = fmaxf(b2, 0.0f);  // relu
// CHECK-NEXT: |         *(ember_bf162*)(out0 + i) = ember_bf162{ember_to_bf16(a3), ember_to_bf16(b3)};

// CHECK:      %[[Y:.*]] = kernel.launch "softmax"(%n)
// CHECK-NEXT: kernel.cuda "[[KY:softmax_[0-9a-f]{12}]]"(%[[Y]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x8xbf16> {
// CHECK-NEXT: | // softmax axis 1 of [2, 8] bfloat16
// CHECK:      | extern "C" __global__ void [[KY]](const ember_bf16* __restrict__ in0, ember_bf16* __restrict__ out0) {
// CHECK:      |         const ember_bf16* x = in0 + (size_t)row * 8;
// CHECK:      |             v[i] = j < 8 ? ember_load(x[j]) : -__int_as_float(0x7f800000);
// CHECK:      |         const float m = warp_max(mx);
// CHECK:      |         s = warp_sum(s);
// CHECK:      |             if (j < 8) y[j] = ember_to_bf16(v[i] * inv);
// CHECK:      func.return %[[H]], %[[R]], %[[Y]]
