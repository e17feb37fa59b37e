// RUN: ember-opt %s -p 'kmajor-matmul-weights,convert-nn-to-kernel,fuse-epilogues,select-tactics{arch="sm_90"},emit-cuda' | filecheck %s
// RUN: ember-opt %s -p 'kmajor-matmul-weights,convert-nn-to-kernel,fuse-epilogues,select-tactics{arch="sm_80"},emit-cuda' | filecheck %s --check-prefix=AMPERE

// FP16 matmuls with their relu fused: in an sm_90 build the big K-major one takes Hopper's
// wgmma fed by the bulk tensor copy engine (its source marked for sm_90a, a tensor map per
// operand, dynamic shared memory for the swizzled stages, two consumer warpgroups and a producer
// warp), the small one mma.sync with split-K; an sm_80 build keeps mma.sync for both. The
// outputs are staged in shared memory, the epilogue computes in float and 16 bytes are stored
// at a time.
builtin.module {
  func.func @main(%a: tensor<1024x768xf16>, %b: tensor<3072x768xf16>, %c: tensor<16x512xf16>, %d: tensor<512x64xf16>) -> (tensor<1024x3072xf16>, tensor<16x64xf16>) {
    %m = nn.matmul %a, %b {transpose_b = true} : (tensor<1024x768xf16>, tensor<3072x768xf16>) -> tensor<1024x3072xf16>
    %r = nn.unary "relu" %m : tensor<1024x3072xf16> -> tensor<1024x3072xf16>
    %n = nn.matmul %c, %d : (tensor<16x512xf16>, tensor<512x64xf16>) -> tensor<16x64xf16>
    func.return %r, %n : tensor<1024x3072xf16>, tensor<16x64xf16>
  }
}

// CHECK:      kernel.launch "matmul"(%a, %b) {{.*}}tactic = {wgmma = array<i64: 128, 192, 5>, copy = "tma"}}
// CHECK:      kernel.cuda "[[K:matmul_[0-9a-f]{12}]]"(%{{.*}}) grid [16, 8, 1] block [288, 1, 1] shared 205824 tmaps [{operand = 0 : i64, dtype = "u16", dims = array<i64: 768, 1024>, row_bytes = 1536 : i64, box = array<i64: 64, 128>}, {operand = 1 : i64, dtype = "u16", dims = array<i64: 768, 3072>, row_bytes = 1536 : i64, box = array<i64: 64, 192>}] : tensor<1024x3072xf16> {
// CHECK-NEXT: | // matmul [1 x (1024 x 768) @ (768 x 3072)] transpose_a=0 transpose_b=1 float16
// CHECK-NEXT: | // tactic: float16 tensor cores, wgmma (sm_90a), 128x192 tile x 128 bytes of k, 2 warpgroup(s) of m64n192 fed by a TMA producer warp, 5 stages, FP32 accumulation; batch on grid z
// CHECK-NEXT: | // epilogue fused: [relu]
// CHECK-NEXT: | // target: sm_90a (wgmma)
// CHECK:      "wgmma.mma_async.sync.aligned.m64n192k16.f32.f16.f16
// CHECK:      | extern "C" __global__ void __launch_bounds__(288, 1) [[K]](const ember_half* __restrict__ in0, const ember_half* __restrict__ in1, ember_half* __restrict__ out0, const __grid_constant__ TmaDesc tmap_a, const __grid_constant__ TmaDesc tmap_b) {
// CHECK:      |     __syncthreads();  // the pipeline's shared memory is free: stage the outputs
// CHECK:      |                 h.e[e] = ember_to_half(acc);
// CHECK:      |             ember_store16(&out0[oi], h.v);
// CHECK:      kernel.launch "matmul"(%c, %d) {{.*}}tactic = {mma = array<i64: {{.*}}>, splits = {{[0-9]+}} : i64}}
// CHECK:      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// CHECK:      ldsm_x4_trans(

// AMPERE-NOT: wgmma
// AMPERE:     tactic = {mma = array<i64: {{.*}}>
// AMPERE:     mma.sync.aligned.m16n8k16
