// RUN: ember-opt %s --split-input-file --verify-diagnostics | filecheck %s

// kernel.launch's params are checked against its template's descriptor
// (dialects/kernel_templates.py) whenever the IR verifies: after parsing and after every pass.

// An unknown template.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "softmx"(%x) {params = {axis = 1 : i64, in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch: unknown template 'softmx' (templates: arg_reduce, {{.*}}, softmax, {{.*}})

// -----

// A key the template does not declare (the tactic is a property of the op, not a param).
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, tactic = {splits = 1 : i64}, in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'softmax': unknown param 'tactic' (softmax takes: axis, in_dtypes, in_shapes, log, out_dtypes, out_shapes)

// -----

// A required key missing.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "conv"(%x, %x) {params = {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, groups = 1 : i64, in_shapes = [array<i64: 2, 8>, array<i64: 2, 8>], in_dtypes = ["float32", "float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'conv': missing required param 'dilations' (an int list (array<i64: ...>))

// -----

// A flag given as an int.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = 0 : i64, in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'softmax': param 'log' must be a bool, got 0 : i64

// -----

// A closed string outside its values.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x1xf32> {
    %y = kernel.launch "reduce"(%x) {params = {fn = "median", axes = array<i64: 1>, keepdims = true, in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'reduce': param 'fn' must be one of sum, mean, max, min, prod, l1, l2, sum_square, log_sum, log_sum_exp, got "median"

// -----

// A format the pool template has no form for.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "pool"(%x) {params = {fn = "max", kernel = array<i64: 2>, strides = array<i64: 1>, pads = array<i64: 0, 0>, dilations = array<i64: 1>, ceil_mode = false, layout = "NWHC", in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'pool': param 'layout' must be one of NCHW, NHWC, NC4HW4, got "NWHC"

// -----

// A shape with an unknown dim.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = [["?", 8]], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'softmax': param 'in_shapes' must be a shape list (one entry per tensor, each array<i64: ...> or a list of ints and symbolic dims such as "768*N"), got {{\[\[}}"?", 8 : i64]]

// -----

// A dtype name that is none.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = [array<i64: 2, 8>], in_dtypes = ["f32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'softmax': param 'in_dtypes' must be a dtype name list (bfloat16, bool, {{.*}}), got ["f32"]

// -----

// One out_shape per result.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'softmax': param 'out_shapes' has 0 entries for 1 result(s)

// -----

// An epilogue on a template that takes none.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x1xf32> {
    %y = kernel.launch "reduce"(%x) {params = {fn = "sum", axes = array<i64: 1>, keepdims = true, in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 1>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x1xf32> epilogue {
    ^bb0(%a: f32):
      kernel.yield %a : f32
    }
    func.return %y : tensor<2x1xf32>
  }
}

// CHECK: kernel.launch 'reduce': this template takes no epilogue (those that do: conv, matmul, softmax, layer_norm)

// -----

// Scalar regions are kernel.elementwise ops, not launches.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "elementwise"(%x) {params = {in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'elementwise': this template is a kernel.elementwise op, not a launch

// -----

// A dtype that is not the operand's.
builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = [array<i64: 2, 8>], in_dtypes = ["float16"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %y : tensor<2x8xf32>
  }
}

// CHECK: kernel.launch 'softmax': param 'in_dtypes' says operand #0 is "float16", but its type is tensor<2x8xf32>
