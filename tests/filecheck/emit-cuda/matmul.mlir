// RUN: ember-opt %s -p convert-nn-to-kernel,fuse-epilogues,select-tactics,emit-cuda | filecheck %s

// A matmul with its relu fused as the epilogue: the cost model's tactic (select-tactics) is the
// one emitted, named in the kernel's tactic comment; split-K gives the kernel its zeroed scratch
// (counters and workspace) as two trailing pointers, and `scratch` records their bytes.
builtin.module {
  func.func @main(%a: tensor<64x256xf32>, %b: tensor<256x64xf32>) -> tensor<64x64xf32> {
    %m = nn.matmul %a, %b : (tensor<64x256xf32>, tensor<256x64xf32>) -> tensor<64x64xf32>
    %r = nn.unary "relu" %m : tensor<64x64xf32> -> tensor<64x64xf32>
    func.return %r : tensor<64x64xf32>
  }
}

// CHECK:      %[[R:.*]] = kernel.launch "matmul"(%a, %b) {{.*}} tactic = {tile = array<i64: 16, 16, 16, 1, 1>, splits = 4 : i64}} {{.*}} epilogue {
// CHECK:      kernel.cuda "[[K:matmul_[0-9a-f]{12}]]"(%[[R]]) grid [4, 4, 4] block [256, 1, 1] shared 0 scratch [64, 65536] : tensor<64x64xf32> {
// CHECK-NEXT: | // matmul [1 x (64 x 256) @ (256 x 64)] transpose_a=0 transpose_b=0 float32
// CHECK-NEXT: | // tactic: {{.*}}16x16x16 tile{{.*}}split-K x4
// CHECK-NEXT: | // epilogue fused: [relu]
// CHECK:      | extern "C" __global__ void {{.*}}[[K]](const float* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0, unsigned int* __restrict__ counters, unsigned char* __restrict__ ws) {
// CHECK:      |             const float e1 = fmaxf(e0, 0.0f);  // relu
// CHECK:      func.return %[[R]]
