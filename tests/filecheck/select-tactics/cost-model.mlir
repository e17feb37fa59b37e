// RUN: ember-opt %s -p convert-nn-to-kernel,select-tactics | filecheck %s

// Without a GPU the cost model picks each GEMM's tactic and it prints as the launch's
// `tactic` (the same choice as `gemm_tiles.choose`, for 132 multiprocessors): 1024^3 takes
// 64x64 tiles with K split in two to fill the GPU, a thin one (batch 1) small tiles with K split
// 16 ways; a tiny conv runs the direct kernel (no GEMM tactic); elementwise ops have none.
// `tactic_candidates`: what the choice was made among, best estimated first (`ember inspect
// --explain` shows them).
builtin.module {
  func.func @main(%a: tensor<1024x1024xf32>, %b: tensor<1024x1024xf32>, %v: tensor<1x4096xf32>, %x: tensor<1x2x4x4xf32>) -> (tensor<1024x1024xf32>, tensor<1x1024xf32>, tensor<1x2x4x4xf32>) {
    %m = nn.matmul %a, %b : (tensor<1024x1024xf32>, tensor<1024x1024xf32>) -> tensor<1024x1024xf32>
    %r = nn.unary "relu" %m : tensor<1024x1024xf32> -> tensor<1024x1024xf32>
    %w = nn.weight "fc.weight" : tensor<4096x1024xf32>
    %t = nn.matmul %v, %w : (tensor<1x4096xf32>, tensor<4096x1024xf32>) -> tensor<1x1024xf32>
    %cw = nn.weight "conv.weight" : tensor<2x2x3x3xf32>
    %c = nn.conv %x, %cw {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x4x4xf32>
    func.return %r, %t, %c : tensor<1024x1024xf32>, tensor<1x1024xf32>, tensor<1x2x4x4xf32>
  }
}

// CHECK:      kernel.launch "matmul"(%a, %b) {tactic_candidates = [{tile = array<i64: 64, 64, 16, 8, 4>, splits = 2 : i64}, {tile = array<i64: 128, 128, 16, 8, 8>, splits = 4 : i64}, {{.*}}], params = {{.*}}, tactic = {tile = array<i64: 64, 64, 16, 8, 4>, splits = 2 : i64}}
// CHECK-NEXT: kernel.elementwise(%m) : (tensor<1024x1024xf32>) -> tensor<1024x1024xf32> {
// CHECK:      kernel.launch "matmul"(%v, %{{.*}}) {{{.*}}params = {{.*}}, tactic = {tile = array<i64: 32, 64, 8, 2, 4>, splits = 16 : i64}}
// CHECK-NEXT: nn.weight "conv.weight"
// CHECK-NEXT: kernel.launch "conv"(%x, %cw) {params = {{.*}} out_dtypes = ["float32"]}} : (tensor<1x2x4x4xf32>
// CHECK-NEXT: func.return
