// RUN: ember-opt %s -p 'convert-nn-to-kernel,emit-cuda{symbols="N=1:4:64"}' | filecheck %s
// RUN: not ember-opt %s -p convert-nn-to-kernel,emit-cuda 2>&1 | filecheck %s --check-prefix=NORANGE

// A kernel over a symbolic batch N takes its value as a trailing `const int sz_N` argument
// (declared by the template's signature, listed in `sizes`); its sizes and its grid are
// expressions over it. Without N's range (min:opt:max, as a profile gives it) there is no
// kernel to emit.
builtin.module {
  func.func @main(%x: tensor<?x8xf32, #nn.layout<["N"]>>) -> tensor<?x8xf32, #nn.layout<["N"]>> {
    %y = nn.unary "relu" %x : tensor<?x8xf32, #nn.layout<["N"]>> -> tensor<?x8xf32, #nn.layout<["N"]>>
    func.return %y : tensor<?x8xf32, #nn.layout<["N"]>>
  }
}

// CHECK:      %[[Y:.*]] = kernel.elementwise(%x)
// CHECK:      kernel.cuda "[[K:elementwise_[0-9a-f]{12}]]"(%[[Y]]) grid ["min(cdiv(8*N, 256), 65536)", 1, 1] block [256, 1, 1] shared 0 sizes ["N"] : tensor<?x8xf32, #nn.layout<["N"]>> {
// CHECK:      | extern "C" __global__ void [[K]](const float* __restrict__ in0, float* __restrict__ out0, const int sz_N) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < (sz_N*8); i += (int)blockDim.x * gridDim.x) {

// NORANGE: error: emit-cuda: kernel.elementwise (kernel 0) has symbolic sizes ['N'] that the module's profile (ember.symbols) does not bound: give their ranges, as in emit-cuda{symbols="N=MIN:OPT:MAX"}
