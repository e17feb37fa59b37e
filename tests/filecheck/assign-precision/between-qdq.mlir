// RUN: ember-opt %s -p "assign-precision{fp16=true}" | filecheck %s

// Under FP16, an elementwise op between a dequantize and a quantize (the bias add of an int8
// matmul's tail) stays FP32 like the quantize arithmetic around it: FP16 would only round the
// value the quantize rounds again. The same add feeding a float consumer (the relu) runs in FP16.
builtin.module {
  func.func @main(%x: tensor<4x8xi8>, %w: tensor<8x2xi8>) -> (tensor<4x2xi8>, tensor<4x2xf32>) {
    %s = nn.constant dense<0.5> : tensor<f32>
    %b = nn.constant dense<[1.0, 2.0]> : tensor<2xf32>
    %m = nn.matmul %x, %w : (tensor<4x8xi8>, tensor<8x2xi8>) -> tensor<4x2xi32>
    %c = nn.cast %m {ember.qdq_math, to = f32} : tensor<4x2xi32> -> tensor<4x2xf32>
    %d = nn.binary "mul" %c, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %a = nn.binary "add" %b, %d : tensor<2xf32>, tensor<4x2xf32> -> tensor<4x2xf32>
    %q = nn.binary "div" %a, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %r = nn.unary "round" %q {ember.qdq_math} : tensor<4x2xf32> -> tensor<4x2xf32>
    %i = nn.cast %r {ember.qdq_math, to = i8} : tensor<4x2xf32> -> tensor<4x2xi8>
    %a2 = nn.binary "add" %b, %d : tensor<2xf32>, tensor<4x2xf32> -> tensor<4x2xf32>
    %y = nn.unary "relu" %a2 : tensor<4x2xf32> -> tensor<4x2xf32>
    func.return %i, %y : tensor<4x2xi8>, tensor<4x2xf32>
  }
}

// CHECK:      %[[D:.*]] = nn.binary "mul" %{{.*}}, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
// CHECK:      %[[A:.*]] = nn.binary "add" %b, %[[D]] : tensor<2xf32>, tensor<4x2xf32> -> tensor<4x2xf32>
// CHECK-NEXT: nn.binary "div" %[[A]], %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
// CHECK:      nn.binary "add" %{{.*}}, %{{.*}} : tensor<2xf16>, tensor<4x2xf16> -> tensor<4x2xf16>
// CHECK:      nn.unary "relu" %{{.*}} : tensor<4x2xf16> -> tensor<4x2xf16>

// An add of a dequantized value and a float activation (not a constant, not dequantized) feeding
// a quantize is not between Q/DQ only: it runs in FP16 like any add.
builtin.module {
  func.func @mixed(%x: tensor<4x2xi8>, %f: tensor<4x2xf32>) -> tensor<4x2xi8> {
    %s = nn.constant dense<0.5> : tensor<f32>
    %c = nn.cast %x {ember.qdq_math, to = f32} : tensor<4x2xi8> -> tensor<4x2xf32>
    %d = nn.binary "mul" %c, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %a = nn.binary "add" %d, %f : tensor<4x2xf32>, tensor<4x2xf32> -> tensor<4x2xf32>
    %q = nn.binary "div" %a, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %i = nn.cast %q {ember.qdq_math, to = i8} : tensor<4x2xf32> -> tensor<4x2xi8>
    func.return %i : tensor<4x2xi8>
  }
}

// CHECK-LABEL: func.func @mixed
// CHECK:       nn.binary "add" %{{.*}}, %{{.*}} : tensor<4x2xf16>, tensor<4x2xf16> -> tensor<4x2xf16>

// The erf GELU between a dequantize and a quantize: div, erf, add and mul form one group whose
// outside operands are the dequantized value and constants and whose result only feeds the
// quantize. The whole group stays FP32 (no cast in or out of FP16).
builtin.module {
  func.func @gelu(%x: tensor<4x2xi8>) -> tensor<4x2xi8> {
    %s = nn.constant dense<0.5> : tensor<f32>
    %r2 = nn.constant dense<1.41421354> : tensor<f32>
    %one = nn.constant dense<1.0> : tensor<f32>
    %c = nn.cast %x {ember.qdq_math, to = f32} : tensor<4x2xi8> -> tensor<4x2xf32>
    %d = nn.binary "mul" %c, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %t = nn.binary "div" %d, %r2 : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %e = nn.unary "erf" %t : tensor<4x2xf32> -> tensor<4x2xf32>
    %p = nn.binary "add" %e, %one : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %g = nn.binary "mul" %d, %p : tensor<4x2xf32>, tensor<4x2xf32> -> tensor<4x2xf32>
    %q = nn.binary "div" %g, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %i = nn.cast %q {ember.qdq_math, to = i8} : tensor<4x2xf32> -> tensor<4x2xi8>
    func.return %i : tensor<4x2xi8>
  }
}

// CHECK-LABEL: func.func @gelu
// CHECK-NOT:   f16
// CHECK:       nn.binary "div" %{{.*}}, %{{.*}} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
// CHECK-NEXT:  nn.unary "erf" %{{.*}} : tensor<4x2xf32> -> tensor<4x2xf32>
// CHECK-NEXT:  nn.binary "add" %{{.*}}, %{{.*}} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
// CHECK-NEXT:  nn.binary "mul" %{{.*}}, %{{.*}} : tensor<4x2xf32>, tensor<4x2xf32> -> tensor<4x2xf32>
// CHECK-NOT:   f16
// CHECK:       func.return

// The same GELU where the erf's result also feeds a float output: the group leaks into a
// float consumer, so it runs in FP16 as usual.
builtin.module {
  func.func @leaks(%x: tensor<4x2xi8>) -> (tensor<4x2xi8>, tensor<4x2xf32>) {
    %s = nn.constant dense<0.5> : tensor<f32>
    %r2 = nn.constant dense<1.41421354> : tensor<f32>
    %c = nn.cast %x {ember.qdq_math, to = f32} : tensor<4x2xi8> -> tensor<4x2xf32>
    %d = nn.binary "mul" %c, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %t = nn.binary "div" %d, %r2 : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %e = nn.unary "erf" %t : tensor<4x2xf32> -> tensor<4x2xf32>
    %q = nn.binary "div" %e, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %i = nn.cast %q {ember.qdq_math, to = i8} : tensor<4x2xf32> -> tensor<4x2xi8>
    %y = nn.unary "sigmoid" %e : tensor<4x2xf32> -> tensor<4x2xf32>
    func.return %i, %y : tensor<4x2xi8>, tensor<4x2xf32>
  }
}

// CHECK-LABEL: func.func @leaks
// CHECK:       nn.binary "div" %{{.*}}, %{{.*}} : tensor<4x2xf16>, tensor<f16> -> tensor<4x2xf16>
// CHECK:       nn.unary "erf" %{{.*}} : tensor<4x2xf16> -> tensor<4x2xf16>
