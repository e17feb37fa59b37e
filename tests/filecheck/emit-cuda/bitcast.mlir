// RUN: ember-opt %s -p 'convert-nn-to-kernel,emit-cuda{symbols="N=1:4:64"}' | filecheck %s

// BitCast copies each element's bits as an unsigned word of the element's width, no
// conversion: float32 -> int32 moves `unsigned int`s, float16 -> int16 `unsigned short`s. Over a
// symbolic batch N the element count and the grid are expressions in N, its value the trailing
// `const int sz_N` argument.
builtin.module {
  func.func @main(%x: tensor<2x3xf32>, %h: tensor<?x4xf16, #nn.layout<["N"]>>) -> (tensor<2x3xi32>, tensor<?x4xi16, #nn.layout<["N"]>>) {
    %a = nn.bitcast %x {to = i32} : tensor<2x3xf32> -> tensor<2x3xi32>
    %b = nn.bitcast %h {to = i16} : tensor<?x4xf16, #nn.layout<["N"]>> -> tensor<?x4xi16, #nn.layout<["N"]>>
    func.return %a, %b : tensor<2x3xi32>, tensor<?x4xi16, #nn.layout<["N"]>>
  }
}

// CHECK:      %[[A:.*]] = kernel.launch "bitcast"(%x)
// CHECK-NEXT: kernel.cuda "[[KA:bitcast_[0-9a-f]{12}]]"(%[[A]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x3xi32> {
// CHECK-NEXT: | // bitcast float32 -> int32: 6 elements
// CHECK:      | extern "C" __global__ void [[KA]](const unsigned int* __restrict__ in0, unsigned int* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 6; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         out0[i] = in0[i];

// CHECK:      %[[B:.*]] = kernel.launch "bitcast"(%h)
// CHECK-NEXT: kernel.cuda "[[KB:bitcast_[0-9a-f]{12}]]"(%[[B]]) grid ["min(cdiv(4*N, 256), 65536)", 1, 1] block [256, 1, 1] shared 0 sizes ["N"] : tensor<?x4xi16, #nn.layout<["N"]>> {
// CHECK-NEXT: | // bitcast float16 -> int16: (sz_N*4) elements
// CHECK:      | extern "C" __global__ void [[KB]](const unsigned short* __restrict__ in0, unsigned short* __restrict__ out0, const int sz_N) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < (sz_N*4); i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         out0[i] = in0[i];
// CHECK:      func.return %[[A]], %[[B]]
