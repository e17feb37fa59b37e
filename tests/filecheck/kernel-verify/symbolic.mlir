// RUN: ember-opt %s | filecheck %s

// Params that verify print back unchanged: symbolic dims are strings ("8*N"), static shapes
// dense arrays, flags bools, closed strings among their values.
builtin.module {
  func.func @f(%x: tensor<?x8xf32, #nn.layout<["N"]>>) -> tensor<?x8xf32, #nn.layout<["N"]>> {
    %y = kernel.launch "reduce"(%x) {params = {fn = "sum", axes = array<i64: 1>, keepdims = true, in_shapes = [["N", 8]], in_dtypes = ["float32"], out_shapes = [["N", 1]], out_dtypes = ["float32"]}} : (tensor<?x8xf32, #nn.layout<["N"]>>) -> tensor<?x1xf32, #nn.layout<["N"]>>
    %z = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = [["N", 8]], in_dtypes = ["float32"], out_shapes = [["N", 8]], out_dtypes = ["float32"]}} : (tensor<?x8xf32, #nn.layout<["N"]>>) -> tensor<?x8xf32, #nn.layout<["N"]>>
    func.return %z : tensor<?x8xf32, #nn.layout<["N"]>>
  }
}

// CHECK: kernel.launch "reduce"(%x) {params = {fn = "sum", axes = array<i64: 1>, keepdims = true, in_shapes = {{\[\[}}"N", 8 : i64]], in_dtypes = ["float32"], out_shapes = {{\[\[}}"N", 1 : i64]], out_dtypes = ["float32"]}}
// CHECK: kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = {{\[\[}}"N", 8 : i64]]
