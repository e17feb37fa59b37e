// RUN: ember-opt %s -p emit-cuda | filecheck %s

// A matmul whose tactic feeds wgmma from the bulk tensor copy engine (the autotuner's choice
// where it is faster; the cost model never picks it): the kernel takes one tensor map per
// operand after its pointers (`__grid_constant__`), the op records how to encode each (`tmaps`:
// A's 256 rows of 128 halves in boxes of 64 x 128, B's 192 rows in boxes of 64 x 64), and the
// block is two consumer warpgroups and the producer warp. K = 128 halves is two k-tiles of 64:
// the kernel allocates two of the tile's eight stages (2 x (128 + 64) x 128 bytes + 1 KB to
// align them), the rest never filled.
builtin.module {
  func.func @main(%a: tensor<256x128xf16>, %b: tensor<192x128xf16>) -> tensor<256x192xf16> {
    %c = kernel.launch "matmul"(%a, %b) {params = {transpose_b = true, in_shapes = [array<i64: 256, 128>, array<i64: 192, 128>], in_dtypes = ["float16", "float16"], out_shapes = [array<i64: 256, 192>], out_dtypes = ["float16"]}, tactic = {wgmma = array<i64: 128, 64, 8>, copy = "tma"}} : (tensor<256x128xf16>, tensor<192x128xf16>) -> tensor<256x192xf16>
    func.return %c : tensor<256x192xf16>
  }
}

// CHECK:      kernel.cuda "[[K:matmul_[0-9a-f]{12}]]"(%c) grid [3, 2, 1] block [288, 1, 1] shared 50176 tmaps [{operand = 0 : i64, dtype = "u16", dims = array<i64: 128, 256>, row_bytes = 256 : i64, box = array<i64: 64, 128>}, {operand = 1 : i64, dtype = "u16", dims = array<i64: 128, 192>, row_bytes = 256 : i64, box = array<i64: 64, 64>}] : tensor<256x192xf16> {
// CHECK-NEXT: | // matmul [1 x (256 x 128) @ (128 x 192)] transpose_a=0 transpose_b=1 float16
// CHECK-NEXT: | // tactic: float16 tensor cores, wgmma (sm_90a), 128x64 tile x 128 bytes of k, 2 warpgroup(s) of m64n64 fed by a TMA producer warp, 8 stages, FP32 accumulation; batch on grid z
// CHECK-NEXT: | // target: sm_90a (wgmma)
// CHECK:      | extern "C" __global__ void __launch_bounds__(288, 1) [[K]](const ember_half* __restrict__ in0, const ember_half* __restrict__ in1, ember_half* __restrict__ out0, const __grid_constant__ TmaDesc tmap_a, const __grid_constant__ TmaDesc tmap_b) {
// CHECK:      |     unsigned char* Bs = As + 32768;
// CHECK:      |     if (warp == 8) {
// CHECK:      |                 mbar_expect_tx(&full[s], 24576);
// CHECK-NEXT: |                 tma_load(As + s * 16384, &tmap_a, kt * 64, a_row, &full[s]);
// CHECK-NEXT: |                 tma_load(Bs + s * 8192, &tmap_b, kt * 64, b_row, &full[s]);
// CHECK:      |             mbar_wait(&full[s], (kt / 8) & 1);
// CHECK:      |             if (kt > 0 && lane == 0) mbar_arrive(&empty[(kt - 1) % 8]);
