// RUN: ember-opt %s -p convert-nn-to-kernel,fuse-elementwise,emit-cuda | filecheck %s
// RUN: ember-opt %s -p convert-nn-to-kernel,fuse-elementwise,emit-cuda | ember-opt | filecheck %s

// A bias add and relu fused into one elementwise kernel: one thread per output element (a
// grid-stride loop), the bias read through its broadcast strides, the region as C expressions.
// The kernel.cuda op parses back (second RUN line).
builtin.module {
  func.func @main(%x: tensor<2x3xf32>, %b: tensor<3xf32>) -> tensor<2x3xf32> {
    %a = nn.binary "add" %x, %b : tensor<2x3xf32>, tensor<3xf32> -> tensor<2x3xf32>
    %r = nn.unary "relu" %a : tensor<2x3xf32> -> tensor<2x3xf32>
    func.return %r : tensor<2x3xf32>
  }
}

// CHECK:      %[[R:.*]] = kernel.elementwise(%x, %b)
// CHECK:      kernel.yield
// CHECK-NEXT: }
// CHECK-NEXT: kernel.cuda "[[K:elementwise_[0-9a-f]{12}]]"(%[[R]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x3xf32> {
// CHECK-NEXT: | // elementwise [add, relu] -> float32[2, 3]
// CHECK-NEXT: | // tactic: one thread per output element, grid-stride loop, block 256;
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 6; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const float v1 = in1[vc1];
// CHECK-NEXT: |         const float v2 = (v0 + v1);  // add
// CHECK-NEXT: |         const float v3 = fmaxf(v2, 0.0f);  // relu
// CHECK-NEXT: |         out0[i] = (float)v3;
// CHECK-NEXT: |     }
// CHECK-NEXT: | }
// CHECK-NEXT: }
// CHECK-NEXT: func.return %[[R]]
