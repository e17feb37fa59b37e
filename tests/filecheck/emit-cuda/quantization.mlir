// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// QuantizeLinear and DequantizeLinear, one thread per element. Quantize to int8 with a
// per-tensor scale and zero point: round half to even (rintf) of x / scale, plus the zero point,
// saturated to [-128, 127]. Dequantize from uint8 per axis 0 (scale and zero point at
// (i / 4) % 2) and per block of 2 along axis 1 (scale [2, 2] at row c0, column c1 / 2, no zero
// point).
builtin.module {
  func.func @main(%x: tensor<2x4xf32>, %q: tensor<2x4xui8>) -> (tensor<2x4xi8>, tensor<2x4xf32>, tensor<2x4xf32>) {
    %s = nn.weight "s" : tensor<f32>
    %z = nn.weight "z" : tensor<i8>
    %a = nn.quantize %x, %s, %z : (tensor<2x4xf32>, tensor<f32>, tensor<i8>) -> tensor<2x4xi8>
    %cs = nn.weight "row.scale" : tensor<2xf32>
    %cz = nn.weight "row.zero" : tensor<2xui8>
    %b = nn.dequantize %q, %cs, %cz {axis = 0 : i64} : (tensor<2x4xui8>, tensor<2xf32>, tensor<2xui8>) -> tensor<2x4xf32>
    %bs = nn.weight "block.scale" : tensor<2x2xf32>
    %c = nn.dequantize %q, %bs {axis = 1 : i64, block_size = 2 : i64} : (tensor<2x4xui8>, tensor<2x2xf32>) -> tensor<2x4xf32>
    func.return %a, %b, %c : tensor<2x4xi8>, tensor<2x4xf32>, tensor<2x4xf32>
  }
}

// CHECK:      %[[A:.*]] = kernel.launch "quantize"(%x, %s, %z)
// CHECK-NEXT: kernel.cuda "[[KA:quantize_[0-9a-f]{12}]]"(%[[A]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x4xi8> {
// CHECK-NEXT: | // quantize [2, 4] float32 -> int8, scale per tensor, zero point
// CHECK:      | extern "C" __global__ void [[KA]](const float* __restrict__ in0, const float* __restrict__ in1, const signed char* __restrict__ in2, signed char* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 8; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const long long q = (long long)rintf((float)in0[i] / (float)in1[0]) + (long long)in2[0];
// CHECK-NEXT: |         out0[i] = (signed char)(q < -128LL ? -128LL : q > 127LL ? 127LL : q);
// CHECK-NEXT: |     }

// CHECK:      %[[B:.*]] = kernel.launch "dequantize"(%q, %cs, %cz)
// CHECK-NEXT: kernel.cuda "[[KB:dequantize_[0-9a-f]{12}]]"(%[[B]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x4xf32> {
// CHECK-NEXT: | // dequantize [2, 4] uint8 -> float32, scale per axis 0, zero point
// CHECK:      | extern "C" __global__ void [[KB]](const unsigned char* __restrict__ in0, const float* __restrict__ in1, const unsigned char* __restrict__ in2, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 8; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         out0[i] = (float)((float)((float)(float)in0[i] - (float)in2[(i / 4) % 2]) * (float)in1[(i / 4) % 2]);
// CHECK-NEXT: |     }

// CHECK:      %[[C:.*]] = kernel.launch "dequantize"(%q, %bs)
// CHECK-NEXT: kernel.cuda "[[KC:dequantize_[0-9a-f]{12}]]"(%[[C]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x4xf32> {
// CHECK-NEXT: | // dequantize [2, 4] uint8 -> float32, scale per block of 2 along axis 1
// CHECK:      | extern "C" __global__ void [[KC]](const unsigned char* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 8; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         int crest = i;
// CHECK-NEXT: |         int c1 = crest % 4;
// CHECK-NEXT: |         crest /= 4;
// CHECK-NEXT: |         int c0 = crest;
// CHECK-NEXT: |         c1 /= 2;
// CHECK-NEXT: |         out0[i] = (float)((float)((float)(float)in0[i]) * (float)in1[c0 * 2 + c1]);
// CHECK-NEXT: |     }
// CHECK:      func.return %[[A]], %[[B]], %[[C]]
