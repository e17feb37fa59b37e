// RUN: ember-opt %s -p 'convert-nn-to-kernel,select-tactics{sms=8}' | filecheck %s --check-prefix=SMS
// RUN: sed 's/f32/f16/g' %s | ember-opt -p 'convert-nn-to-kernel,select-tactics{sms=8}' | filecheck %s --check-prefix=HALF8
// RUN: sed 's/f32/f16/g' %s | ember-opt -p 'convert-nn-to-kernel,select-tactics' | filecheck %s --check-prefix=HALF
// RUN: ember-opt %s -p 'convert-nn-to-kernel,select-tactics{tile="64,64,8,4,8"}' | filecheck %s --check-prefix=TILE
// RUN: not ember-opt %s -p 'convert-nn-to-kernel,select-tactics{tile="64,64,8,4,7"}' 2>&1 | filecheck %s --check-prefix=UNKNOWN

// `sms`: the GPU the cost models fill. With 8 multiprocessors instead of 132, 1024^3 needs
// no split-K to fill them and takes the biggest tile; the thin GEMM splits K in two, not 16.
// The same in FP16 (the mma.sync tiles' cost model): 128x256 without split-K where 132
// multiprocessors want 128x128 split in two; the thin GEMM 64x128 where 132 want split-K x8.
// `tile`: one register tile (a sweep's, from SWEEP_TILES here) forced on every GEMM, without
// split-K; a tile that is not one of gemm_tiles' is an error.
builtin.module {
  func.func @main(%a: tensor<1024x1024xf32>, %b: tensor<1024x1024xf32>, %v: tensor<1x4096xf32>, %w: tensor<4096x1024xf32>) -> (tensor<1024x1024xf32>, tensor<1x1024xf32>) {
    %m = nn.matmul %a, %b : (tensor<1024x1024xf32>, tensor<1024x1024xf32>) -> tensor<1024x1024xf32>
    %t = nn.matmul %v, %w : (tensor<1x4096xf32>, tensor<4096x1024xf32>) -> tensor<1x1024xf32>
    func.return %m, %t : tensor<1024x1024xf32>, tensor<1x1024xf32>
  }
}

// SMS:      kernel.launch "matmul"(%a, %b) {{{.*}}params = {{.*}}, tactic = {tile = array<i64: 128, 128, 16, 8, 8>, splits = 1 : i64}}
// SMS-NEXT: kernel.launch "matmul"(%v, %w) {{{.*}}params = {{.*}}, tactic = {tile = array<i64: 64, 64, 16, 8, 4>, splits = 2 : i64}}

// HALF8:      kernel.launch "matmul"(%a, %b) {{{.*}}tactic = {mma = array<i64: 128, 256, 32, 2, 4, 3>, splits = 1 : i64}}
// HALF8-NEXT: kernel.launch "matmul"(%v, %w) {{{.*}}tactic = {mma = array<i64: 64, 128, 32, 2, 2, 4>, splits = 1 : i64}}

// HALF:      kernel.launch "matmul"(%a, %b) {{{.*}}tactic = {mma = array<i64: 128, 128, 32, 2, 2, 4>, splits = 2 : i64}}
// HALF-NEXT: kernel.launch "matmul"(%v, %w) {{{.*}}tactic = {mma = array<i64: 32, 64, 32, 1, 2, 4>, splits = 8 : i64}}

// TILE:      kernel.launch "matmul"(%a, %b) {{{.*}}params = {{.*}}, tactic = {tile = array<i64: 64, 64, 8, 4, 8>, splits = 1 : i64}}
// TILE-NEXT: kernel.launch "matmul"(%v, %w) {{{.*}}params = {{.*}}, tactic = {tile = array<i64: 64, 64, 8, 4, 8>, splits = 1 : i64}}

// UNKNOWN: error: select-tactics: tile '64,64,8,4,7' is not one of the GEMM tiles (128,128,16,8,8 64,64,16,8,4
