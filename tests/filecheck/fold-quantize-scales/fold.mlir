// RUN: ember-opt %s -p fold-quantize-scales | filecheck %s

// An int8 conv's dequantizing tail, then the quantize of the next layer's input (as fold-qdq
// writes them): (cast(acc) * c + b) / s folds into cast(acc) * (c / s) + b / s, divided in
// float64 and rounded once (0.75 / 0.5 = 1.5, 0.2 / 0.5 = 0.4); the division goes.
builtin.module {
  func.func @conv_tail(%acc: tensor<1x2x4x4xi32>) -> tensor<1x2x4x4xi8> {
    %c = nn.constant dense<[[[[0.75]], [[0.25]]]]> : tensor<1x2x1x1xf32>
    %b = nn.constant dense<[[[[0.2]], [[-1.0]]]]> : tensor<1x2x1x1xf32>
    %s = nn.constant dense<0.5> : tensor<f32>
    %0 = nn.cast %acc {ember.qdq_math, to = f32} : tensor<1x2x4x4xi32> -> tensor<1x2x4x4xf32>
    %1 = nn.binary "mul" %0, %c {ember.qdq_math} : tensor<1x2x4x4xf32>, tensor<1x2x1x1xf32> -> tensor<1x2x4x4xf32>
    %2 = nn.binary "add" %1, %b {ember.qdq_math} : tensor<1x2x4x4xf32>, tensor<1x2x1x1xf32> -> tensor<1x2x4x4xf32>
    %3 = nn.binary "div" %2, %s {ember.qdq_math} : tensor<1x2x4x4xf32>, tensor<f32> -> tensor<1x2x4x4xf32>
    %4 = nn.unary "round" %3 {ember.qdq_math} : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xf32>
    %5 = nn.unary "clip" %4 {ember.qdq_math, alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xf32>
    %6 = nn.cast %5 {ember.qdq_math, to = i8} : tensor<1x2x4x4xf32> -> tensor<1x2x4x4xi8>
    func.return %6 : tensor<1x2x4x4xi8>
  }
}

// CHECK-LABEL: func.func @conv_tail
// CHECK:         %[[F:.*]] = nn.cast %acc
// CHECK-NEXT:    %[[C:.*]] = nn.constant dense<{{\[\[\[\[}}1.500000e+00]], {{\[\[}}5.000000e-01]]]]> : tensor<1x2x1x1xf32>
// CHECK-NEXT:    %[[M:.*]] = nn.binary "mul" %[[F]], %[[C]]
// CHECK-NEXT:    %[[B:.*]] = nn.constant dense<{{\[\[\[\[}}4.000000e-01]], {{\[\[}}-2.000000e+00]]]]> : tensor<1x2x1x1xf32>
// CHECK-NEXT:    %[[A:.*]] = nn.binary "add" %[[M]], %[[B]]
// CHECK-NEXT:    %[[R:.*]] = nn.unary "round" %[[A]]
// CHECK-NOT:     "div"
// CHECK:         func.return

// A QDQ residual block's tail: relu(cast(q) * sq + cast(r) * sr) / so with both terms
// dequantized int8 values: each term's scale divided by so (0.25 / 0.125 = 2, 0.5 / 0.125 = 4).
builtin.module {
  func.func @residual(%q: tensor<8xi8>, %r: tensor<8xi8>) -> tensor<8xi8> {
    %sq = nn.constant dense<0.25> : tensor<f32>
    %sr = nn.constant dense<0.5> : tensor<f32>
    %so = nn.constant dense<0.125> : tensor<f32>
    %0 = nn.cast %q {ember.qdq_math, to = f32} : tensor<8xi8> -> tensor<8xf32>
    %1 = nn.binary "mul" %0, %sq {ember.qdq_math} : tensor<8xf32>, tensor<f32> -> tensor<8xf32>
    %2 = nn.cast %r {ember.qdq_math, to = f32} : tensor<8xi8> -> tensor<8xf32>
    %3 = nn.binary "mul" %2, %sr {ember.qdq_math} : tensor<8xf32>, tensor<f32> -> tensor<8xf32>
    %4 = nn.binary "add" %1, %3 : tensor<8xf32>, tensor<8xf32> -> tensor<8xf32>
    %5 = nn.unary "relu" %4 : tensor<8xf32> -> tensor<8xf32>
    %6 = nn.binary "div" %5, %so {ember.qdq_math} : tensor<8xf32>, tensor<f32> -> tensor<8xf32>
    %7 = nn.unary "round" %6 {ember.qdq_math} : tensor<8xf32> -> tensor<8xf32>
    %8 = nn.unary "clip" %7 {ember.qdq_math, alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : tensor<8xf32> -> tensor<8xf32>
    %9 = nn.cast %8 {ember.qdq_math, to = i8} : tensor<8xf32> -> tensor<8xi8>
    func.return %9 : tensor<8xi8>
  }
}

// CHECK-LABEL: func.func @residual
// CHECK:         %[[SQ:.*]] = nn.constant dense<2.000000e+00> : tensor<f32>
// CHECK-NEXT:    %[[Q:.*]] = nn.binary "mul" %{{.*}}, %[[SQ]]
// CHECK:         %[[SR:.*]] = nn.constant dense<4.000000e+00> : tensor<f32>
// CHECK-NEXT:    %[[R:.*]] = nn.binary "mul" %{{.*}}, %[[SR]]
// CHECK-NEXT:    %[[A:.*]] = nn.binary "add" %[[Q]], %[[R]]
// CHECK-NEXT:    %[[U:.*]] = nn.unary "relu" %[[A]]
// CHECK-NEXT:    nn.unary "round" %[[U]]
// CHECK-NOT:     "div"
// CHECK:         func.return

// A dividend that is no multiple of a constant (a model input), and one whose multiply has a
// second user: x / s becomes x * (1 / s) (1 / 0.3 rounded to float32). An int8 value
// dequantized and quantized again at the same scale stays for cancel-requantize (exact).
builtin.module {
  func.func @reciprocal(%x: tensor<8xf32>, %q: tensor<8xi8>) -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>) {
    %s = nn.constant dense<0.3> : tensor<f32>
    %0 = nn.binary "div" %x, %s {ember.qdq_math} : tensor<8xf32>, tensor<f32> -> tensor<8xf32>
    %1 = nn.unary "round" %0 {ember.qdq_math} : tensor<8xf32> -> tensor<8xf32>
    %2 = nn.binary "mul" %x, %s : tensor<8xf32>, tensor<f32> -> tensor<8xf32>
    %3 = nn.binary "div" %2, %s {ember.qdq_math} : tensor<8xf32>, tensor<f32> -> tensor<8xf32>
    %4 = nn.unary "round" %3 {ember.qdq_math} : tensor<8xf32> -> tensor<8xf32>
    %5 = nn.cast %q {ember.qdq_math, to = f32} : tensor<8xi8> -> tensor<8xf32>
    %6 = nn.binary "mul" %5, %s {ember.qdq_math} : tensor<8xf32>, tensor<f32> -> tensor<8xf32>
    %7 = nn.unary "relu" %6 : tensor<8xf32> -> tensor<8xf32>
    %8 = nn.binary "div" %7, %s {ember.qdq_math} : tensor<8xf32>, tensor<f32> -> tensor<8xf32>
    %9 = nn.unary "round" %8 {ember.qdq_math} : tensor<8xf32> -> tensor<8xf32>
    func.return %1, %4, %2, %9 : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>
  }
}

// CHECK-LABEL: func.func @reciprocal
// CHECK:         %[[S:.*]] = nn.constant dense<3.000000e-01> : tensor<f32>
// CHECK-NEXT:    %[[Y:.*]] = nn.constant dense<3.33333325> : tensor<f32>
// CHECK-NEXT:    %[[M:.*]] = nn.binary "mul" %x, %[[Y]] {ember.qdq_math}
// CHECK-NEXT:    %[[R1:.*]] = nn.unary "round" %[[M]]
// CHECK-NEXT:    %[[X:.*]] = nn.binary "mul" %x, %[[S]]
// CHECK-NEXT:    %[[Y2:.*]] = nn.constant dense<3.33333325> : tensor<f32>
// CHECK-NEXT:    %[[M2:.*]] = nn.binary "mul" %[[X]], %[[Y2]] {ember.qdq_math}
// CHECK-NEXT:    %[[R2:.*]] = nn.unary "round" %[[M2]]
// CHECK:         %[[D:.*]] = nn.binary "div" %{{.*}}, %[[S]] {ember.qdq_math}
// CHECK-NEXT:    nn.unary "round" %[[D]]
// CHECK:         func.return %[[R1]], %[[R2]], %[[X]]

// A divisor with one value per column (a merged Q/K/V GEMM's output scales) folds into terms
// of the dividend's shape (0.5 / [0.25, 2] = [2, 0.25]); a term of another shape would take
// the columns' values (a [4, 1] multiply becoming [4, 2]): that division multiplies by the
// reciprocals ([4, 0.5]) instead.
builtin.module {
  func.func @columns(%a: tensor<4x2xi32>, %b: tensor<4x1xf32>) -> (tensor<4x2xf32>, tensor<4x2xf32>) {
    %c = nn.constant dense<0.5> : tensor<f32>
    %s = nn.constant dense<[0.25, 2.0]> : tensor<2xf32>
    %0 = nn.cast %a {ember.qdq_math, to = f32} : tensor<4x2xi32> -> tensor<4x2xf32>
    %1 = nn.binary "mul" %0, %c {ember.qdq_math} : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %2 = nn.binary "div" %1, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<2xf32> -> tensor<4x2xf32>
    %3 = nn.unary "round" %2 {ember.qdq_math} : tensor<4x2xf32> -> tensor<4x2xf32>
    %4 = nn.binary "mul" %b, %c : tensor<4x1xf32>, tensor<f32> -> tensor<4x1xf32>
    %5 = nn.cast %a {ember.qdq_math, to = f32} : tensor<4x2xi32> -> tensor<4x2xf32>
    %6 = nn.binary "mul" %5, %c : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
    %7 = nn.binary "add" %6, %4 : tensor<4x2xf32>, tensor<4x1xf32> -> tensor<4x2xf32>
    %8 = nn.binary "div" %7, %s {ember.qdq_math} : tensor<4x2xf32>, tensor<2xf32> -> tensor<4x2xf32>
    %9 = nn.unary "round" %8 {ember.qdq_math} : tensor<4x2xf32> -> tensor<4x2xf32>
    func.return %3, %9 : tensor<4x2xf32>, tensor<4x2xf32>
  }
}

// CHECK-LABEL: func.func @columns
// CHECK:         %[[Q:.*]] = nn.constant dense<[2.000000e+00, 2.500000e-01]> : tensor<2xf32>
// CHECK-NEXT:    %[[M:.*]] = nn.binary "mul" %{{.*}}, %[[Q]] {ember.qdq_math} : tensor<4x2xf32>, tensor<2xf32> -> tensor<4x2xf32>
// CHECK-NEXT:    %[[R1:.*]] = nn.unary "round" %[[M]]
// CHECK:         %[[B:.*]] = nn.binary "mul" %b, %c : tensor<4x1xf32>, tensor<f32> -> tensor<4x1xf32>
// CHECK:         %[[T:.*]] = nn.binary "mul" %{{.*}}, %c : tensor<4x2xf32>, tensor<f32> -> tensor<4x2xf32>
// CHECK-NEXT:    %[[A:.*]] = nn.binary "add" %[[T]], %[[B]]
// CHECK-NEXT:    %[[Y:.*]] = nn.constant dense<[4.000000e+00, 5.000000e-01]> : tensor<2xf32>
// CHECK-NEXT:    %[[M2:.*]] = nn.binary "mul" %[[A]], %[[Y]] {ember.qdq_math}
// CHECK-NEXT:    %[[R2:.*]] = nn.unary "round" %[[M2]]
// CHECK:         func.return %[[R1]], %[[R2]]
