// RUN: ember-opt %s -p convert-nn-to-kernel,plan-memory | filecheck %s
// RUN: sed 's/ attributes {ember.data_symbols = {nonzero0 = 12 : i64}}//' %s | not ember-opt -p convert-nn-to-kernel,plan-memory 2>&1 | filecheck %s --check-prefix=NOBOUND

// NonZero's result length is a data-dependent symbol (its `size`), bounded by the input's 12
// elements (`ember.data_symbols`): the [2, nonzero0] i64 result and its transpose are planned
// for 2 x 12 x 8 = 192 bytes each (256 aligned), the [nonzero0, 2] f32 cast for 12 x 2 x 4 = 96,
// in the result's bytes once they are dead. The nonzero step binds the symbol when the plan
// runs. Without the bound there is no size.
builtin.module attributes {ember.data_symbols = {nonzero0 = 12 : i64}} {
  func.func @main(%x: tensor<3x4xf32>) -> tensor<?x2xf32, #nn.layout<["nonzero0"]>> {
    %nz = nn.nonzero %x {size = "nonzero0"} : (tensor<3x4xf32>) -> tensor<2x?xi64, #nn.layout<["nonzero0"]>>
    %t = nn.transpose %nz {perm = array<i64: 1, 0>} : tensor<2x?xi64, #nn.layout<["nonzero0"]>> -> tensor<?x2xi64, #nn.layout<["nonzero0"]>>
    %y = nn.cast %t {to = f32} : tensor<?x2xi64, #nn.layout<["nonzero0"]>> -> tensor<?x2xf32, #nn.layout<["nonzero0"]>>
    func.return %y : tensor<?x2xf32, #nn.layout<["nonzero0"]>>
  }
}

// CHECK:      attributes {ember.arena_bytes = 512 : i64, ember.activation_bytes = 480 : i64}
// CHECK-NEXT:   %nz = kernel.launch "nonzero"(%x) {params = {size = "nonzero0", {{.*}}}, arena = array<i64: 0>}
// CHECK-NEXT:   %t = kernel.launch "transpose"(%nz) {{.*}} arena = array<i64: 256>}
// CHECK-NEXT:   %y = kernel.elementwise(%t) attributes {arena = array<i64: 0>}

// NOBOUND: error: plan-memory: cannot size tensor<2x?xi64, #nn.layout<["nonzero0"]>>
