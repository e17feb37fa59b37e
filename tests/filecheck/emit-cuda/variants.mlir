// RUN: ember-opt %s -p emit-cuda | filecheck %s

// The profile's ranges travel with the module (`ember.symbols`: min, opt, max, as the builder
// records them), so emit-cuda needs no option. A matmul over a symbolic batch N gets its kernel
// for the opt shapes (here the autotuner's `tactic`) and, since N may go well below opt, a
// kernel for N's min with its `small_tactics` entry, which runs while N <= ⌊√(1 · 64)⌋ = 8:
// a second kernel.cuda with `when`. The tactics differ, so the kernels do.
builtin.module attributes {ember.symbols = {N = array<i64: 1, 64, 256>}} {
  func.func @main(%x: tensor<?x96xf32, #nn.layout<["N"]>>, %w: tensor<96x128xf32>) -> tensor<?x128xf32, #nn.layout<["N"]>> {
    %y = kernel.launch "matmul"(%x, %w) {params = {in_shapes = [["N", 96 : i64], array<i64: 96, 128>], in_dtypes = ["float32", "float32"], out_shapes = [["N", 128 : i64]], out_dtypes = ["float32"]}, tactic = {tile = array<i64: 32, 32, 16, 2, 2>, splits = 3 : i64}, small_tactics = {N = {tile = array<i64: 16, 16, 16, 1, 1>, splits = 1 : i64}}} : (tensor<?x96xf32, #nn.layout<["N"]>>, tensor<96x128xf32>) -> tensor<?x128xf32, #nn.layout<["N"]>>
    func.return %y : tensor<?x128xf32, #nn.layout<["N"]>>
  }
}

// CHECK:      %[[Y:.*]] = kernel.launch "matmul"(%x, %w)
// CHECK:      kernel.cuda "[[K:matmul_[0-9a-f]{12}]]"(%[[Y]]) grid [4, "cdiv(N, 32)", 3] block [256, 1, 1] shared 0 scratch [128, 393216] sizes ["N"] : tensor<?x128xf32, #nn.layout<["N"]>> {
// CHECK:      | extern "C" __global__ void {{.*}}[[K]](
// CHECK:      kernel.cuda "[[V:matmul_[0-9a-f]{12}]]"(%[[Y]]) grid [8, "cdiv(N, 16)", 1] block [256, 1, 1] shared 0 sizes ["N"] when {N = 8 : i64} : tensor<?x128xf32, #nn.layout<["N"]>> {
// CHECK:      | extern "C" __global__ void {{.*}}[[V]](
