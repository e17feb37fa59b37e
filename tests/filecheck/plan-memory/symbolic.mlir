// RUN: ember-opt %s -p convert-nn-to-kernel,plan-memory | filecheck %s
// RUN: sed 's/ attributes {ember.symbols = {N = \[1, 6, 6\]}}//' %s | not ember-opt -p convert-nn-to-kernel,plan-memory 2>&1 | filecheck %s --check-prefix=NOMAX

// A buffer with a symbolic dim is sized at the symbol's profile max, which the module records
// (`ember.symbols`, the profile's [min, opt, max], as the builder sets it): %a, [N, 100] f32, takes 6 x 400 = 2400 bytes
// (2560 aligned) and %b, NC4HW4 [N, 5, 2, 2] -> [N, 2, 2, 2, 4], f32, 6 x 128 = 768; both live
// together. Without the max there is no size to plan.
builtin.module attributes {ember.symbols = {N = [1, 6, 6]}} {
  func.func @main(%x: tensor<?x100xf32, #nn.layout<["N"]>>, %y: tensor<?x5x2x2xf32, #nn.layout<NC4HW4, ["N"]>>) -> (tensor<?x100xf32, #nn.layout<["N"]>>, tensor<?x5x2x2xf32, #nn.layout<NC4HW4, ["N"]>>) {
    %a = nn.unary "relu" %x : tensor<?x100xf32, #nn.layout<["N"]>> -> tensor<?x100xf32, #nn.layout<["N"]>>
    %b = nn.unary "relu" %y : tensor<?x5x2x2xf32, #nn.layout<NC4HW4, ["N"]>> -> tensor<?x5x2x2xf32, #nn.layout<NC4HW4, ["N"]>>
    func.return %a, %b : tensor<?x100xf32, #nn.layout<["N"]>>, tensor<?x5x2x2xf32, #nn.layout<NC4HW4, ["N"]>>
  }
}

// CHECK:      attributes {ember.arena_bytes = 3328 : i64, ember.activation_bytes = 3168 : i64}
// CHECK-NEXT:   %a = kernel.elementwise(%x) attributes {arena = array<i64: 0>}
// CHECK:        %b = kernel.elementwise(%y) attributes {arena = array<i64: 2560>}

// NOMAX: error: plan-memory: cannot size tensor<?x100xf32, #nn.layout<["N"]>> (kernel.elementwise 'elementwise'): every dim must be static or a product of symbols with a profile max; the module records no symbol maxima (ember.symbols): give the model static input shapes or an optimization profile
