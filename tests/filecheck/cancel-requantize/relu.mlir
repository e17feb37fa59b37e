// RUN: ember-opt %s -p cancel-requantize | filecheck %s

// An int8 value dequantized (cast, times the scale), through a ReLU, quantized at the same scale
// (divided, rounded, clipped, cast): the ReLU of the int8 value itself, exactly. The division,
// the multiply and the rounding go; the clip and the cast stay (they are exact on an integer).
builtin.module {
  func.func @relu(%q: tensor<64xi8>) -> tensor<64xi8> {
    %s = nn.constant dense<0.0237> : tensor<f32>
    %y = kernel.elementwise(%q, %s) : (tensor<64xi8>, tensor<f32>) -> tensor<64xi8> {
    ^bb0(%0: i8, %1: f32):
      %2 = kernel.scalar "cast" %0 : (i8) -> f32
      %3 = kernel.scalar "mul" %2, %1 : (f32, f32) -> f32
      %4 = kernel.scalar "relu" %3 : (f32) -> f32
      %5 = kernel.scalar "div" %4, %1 : (f32, f32) -> f32
      %6 = kernel.scalar "round" %5 : (f32) -> f32
      %7 = kernel.scalar "clip" %6 {alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : (f32) -> f32
      %8 = kernel.scalar "cast" %7 : (f32) -> i8
      kernel.yield %8 : i8
    }
    func.return %y : tensor<64xi8>
  }
}

// CHECK-LABEL: func.func @relu
// CHECK:         ^bb0(%[[Q:.*]]: i8, %{{.*}}: f32):
// CHECK-NEXT:      %[[F:.*]] = kernel.scalar "cast" %[[Q]] : (i8) -> f32
// CHECK-NEXT:      %[[R:.*]] = kernel.scalar "relu" %[[F]] : (f32) -> f32
// CHECK-NEXT:      %[[C:.*]] = kernel.scalar "clip" %[[R]] {{.*}} : (f32) -> f32
// CHECK-NEXT:      %[[I:.*]] = kernel.scalar "cast" %[[C]] : (f32) -> i8
// CHECK-NEXT:      kernel.yield %[[I]] : i8

// Without the ReLU (a quantize right after a dequantize at the same scale), in a conv's epilogue:
// the int8 value as it was. Argument 0 is the launch's own value, so the scale is argument 2.
builtin.module {
  func.func @pair(%x: tensor<1x4x4x64xi8>, %w: tensor<64x1x1x64xi8>, %r: tensor<1x4x4x64xi8>) -> tensor<1x4x4x64xi8> {
    %s = nn.constant dense<[0.5, 0.25]> : tensor<2xf32>
    %c = kernel.launch "conv"(%x, %w, %r, %s) {params = {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 4, 4, 64>, array<i64: 64, 1, 1, 64>], in_dtypes = ["int8", "int8"], out_shapes = [array<i64: 1, 4, 4, 64>], out_dtypes = ["int32"], layout = "NHWC"}} : (tensor<1x4x4x64xi8>, tensor<64x1x1x64xi8>, tensor<1x4x4x64xi8>, tensor<2xf32>) -> tensor<1x4x4x64xi8> epilogue {
    ^bb0(%0: i32, %1: i8, %2: f32):
      %3 = kernel.scalar "cast" %1 : (i8) -> f32
      %4 = kernel.scalar "mul" %3, %2 : (f32, f32) -> f32
      %5 = kernel.scalar "div" %4, %2 : (f32, f32) -> f32
      %6 = kernel.scalar "round" %5 : (f32) -> f32
      %7 = kernel.scalar "cast" %0 : (i32) -> f32
      %8 = kernel.scalar "add" %6, %7 : (f32, f32) -> f32
      %9 = kernel.scalar "cast" %8 : (f32) -> i8
      kernel.yield %9 : i8
    }
    func.return %c : tensor<1x4x4x64xi8>
  }
}

// CHECK-LABEL: func.func @pair
// CHECK:         ^bb0(%[[ACC:.*]]: i32, %[[R:.*]]: i8, %{{.*}}: f32):
// CHECK-NEXT:      %[[F:.*]] = kernel.scalar "cast" %[[R]] : (i8) -> f32
// CHECK-NEXT:      %[[A:.*]] = kernel.scalar "cast" %[[ACC]] : (i32) -> f32
// CHECK-NEXT:      %{{.*}} = kernel.scalar "add" %[[F]], %[[A]] : (f32, f32) -> f32

// Left alone: the scale of the multiply is not the divisor's (%1 vs %2); a scale that is not a
// constant of the build (a function argument); a scale below 2^-100 (q * s would lose bits); a
// quotient that is not rounded (the result would differ by an ulp); the product of a float
// that is not an integer's; arithmetic in float16 (100 x 1000 overflows there).
builtin.module {
  func.func @kept(%q: tensor<64xi8>, %t: tensor<f32>, %x: tensor<64xf32>) -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf16>) {
    %s = nn.constant dense<0.5> : tensor<f32>
    %u = nn.constant dense<0.25> : tensor<f32>
    %tiny = nn.constant dense<1.0e-31> : tensor<f32>
    %a = kernel.elementwise(%q, %s, %u) : (tensor<64xi8>, tensor<f32>, tensor<f32>) -> tensor<64xf32> {
    ^bb0(%0: i8, %1: f32, %2: f32):
      %3 = kernel.scalar "cast" %0 : (i8) -> f32
      %4 = kernel.scalar "mul" %3, %1 : (f32, f32) -> f32
      %5 = kernel.scalar "div" %4, %2 : (f32, f32) -> f32
      %6 = kernel.scalar "round" %5 : (f32) -> f32
      kernel.yield %6 : f32
    }
    %b = kernel.elementwise(%q, %t) : (tensor<64xi8>, tensor<f32>) -> tensor<64xf32> {
    ^bb0(%0: i8, %1: f32):
      %3 = kernel.scalar "cast" %0 : (i8) -> f32
      %4 = kernel.scalar "mul" %3, %1 : (f32, f32) -> f32
      %5 = kernel.scalar "div" %4, %1 : (f32, f32) -> f32
      %6 = kernel.scalar "round" %5 : (f32) -> f32
      kernel.yield %6 : f32
    }
    %c = kernel.elementwise(%q, %tiny) : (tensor<64xi8>, tensor<f32>) -> tensor<64xf32> {
    ^bb0(%0: i8, %1: f32):
      %3 = kernel.scalar "cast" %0 : (i8) -> f32
      %4 = kernel.scalar "mul" %3, %1 : (f32, f32) -> f32
      %5 = kernel.scalar "div" %4, %1 : (f32, f32) -> f32
      %6 = kernel.scalar "round" %5 : (f32) -> f32
      kernel.yield %6 : f32
    }
    %d = kernel.elementwise(%q, %s) : (tensor<64xi8>, tensor<f32>) -> tensor<64xf32> {
    ^bb0(%0: i8, %1: f32):
      %3 = kernel.scalar "cast" %0 : (i8) -> f32
      %4 = kernel.scalar "mul" %3, %1 : (f32, f32) -> f32
      %5 = kernel.scalar "div" %4, %1 : (f32, f32) -> f32
      kernel.yield %5 : f32
    }
    %e = kernel.elementwise(%x, %s) : (tensor<64xf32>, tensor<f32>) -> tensor<64xf32> {
    ^bb0(%0: f32, %1: f32):
      %4 = kernel.scalar "mul" %0, %1 : (f32, f32) -> f32
      %5 = kernel.scalar "div" %4, %1 : (f32, f32) -> f32
      %6 = kernel.scalar "round" %5 : (f32) -> f32
      kernel.yield %6 : f32
    }
    %big = nn.constant dense<1000.0> : tensor<f16>
    %f = kernel.elementwise(%q, %big) : (tensor<64xi8>, tensor<f16>) -> tensor<64xf16> {
    ^bb0(%0: i8, %1: f16):
      %3 = kernel.scalar "cast" %0 : (i8) -> f16
      %4 = kernel.scalar "mul" %3, %1 : (f16, f16) -> f16
      %5 = kernel.scalar "div" %4, %1 : (f16, f16) -> f16
      %6 = kernel.scalar "round" %5 : (f16) -> f16
      kernel.yield %6 : f16
    }
    func.return %a, %b, %c, %d, %e, %f : tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf16>
  }
}

// CHECK-LABEL: func.func @kept
// CHECK-COUNT-6: kernel.scalar "div"
