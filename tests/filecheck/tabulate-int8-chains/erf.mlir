// RUN: ember-opt %s -p tabulate-int8-chains | filecheck %s

// An int8 value dequantized (times 0.5), through erf, quantized at 0.25: a function of the int8
// value alone, so one lookup of its 256 results (-4 for -128, -2 / 0 / 2 for -1 / 0 / 1, 4 for 127)
// replaces the seven ops. Left alone: a dequantize alone (two ops: cheaper than a table read),
// and a chain that also reads a tensor (%x varies by element).
builtin.module {
  func.func @erf(%q: tensor<64xi8>, %x: tensor<64xf32>) -> (tensor<64xi8>, tensor<64xf32>, tensor<64xi8>) {
    %s = nn.constant dense<0.5> : tensor<f32>
    %t = nn.constant dense<0.25> : tensor<f32>
    %y = kernel.elementwise(%q, %s, %t) : (tensor<64xi8>, tensor<f32>, tensor<f32>) -> tensor<64xi8> {
    ^bb0(%0: i8, %1: f32, %2: f32):
      %3 = kernel.scalar "cast" %0 : (i8) -> f32
      %4 = kernel.scalar "mul" %3, %1 : (f32, f32) -> f32
      %5 = kernel.scalar "erf" %4 : (f32) -> f32
      %6 = kernel.scalar "div" %5, %2 : (f32, f32) -> f32
      %7 = kernel.scalar "round" %6 : (f32) -> f32
      %8 = kernel.scalar "clip" %7 {alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : (f32) -> f32
      %9 = kernel.scalar "cast" %8 : (f32) -> i8
      kernel.yield %9 : i8
    }
    %d = kernel.elementwise(%q, %s) : (tensor<64xi8>, tensor<f32>) -> tensor<64xf32> {
    ^bb0(%0: i8, %1: f32):
      %2 = kernel.scalar "cast" %0 : (i8) -> f32
      %3 = kernel.scalar "mul" %2, %1 : (f32, f32) -> f32
      kernel.yield %3 : f32
    }
    %z = kernel.elementwise(%q, %s, %x, %t) : (tensor<64xi8>, tensor<f32>, tensor<64xf32>, tensor<f32>) -> tensor<64xi8> {
    ^bb0(%0: i8, %1: f32, %2: f32, %3: f32):
      %4 = kernel.scalar "cast" %0 : (i8) -> f32
      %5 = kernel.scalar "mul" %4, %1 : (f32, f32) -> f32
      %6 = kernel.scalar "add" %5, %2 : (f32, f32) -> f32
      %7 = kernel.scalar "div" %6, %3 : (f32, f32) -> f32
      %8 = kernel.scalar "round" %7 : (f32) -> f32
      %9 = kernel.scalar "cast" %8 : (f32) -> i8
      kernel.yield %9 : i8
    }
    func.return %y, %d, %z : tensor<64xi8>, tensor<64xf32>, tensor<64xi8>
  }
}

// CHECK-LABEL: func.func @erf
// CHECK:         ^bb0(%[[Q:.*]]: i8, %{{.*}}: f32, %{{.*}}: f32):
// CHECK-NEXT:      %[[L:.*]] = kernel.scalar "lookup" %[[Q]] {table = array<i64: -4, -4, {{.*}}, -3, -2, 0, 2, 3, {{.*}}, 4, 4>} : (i8) -> i8
// CHECK-NEXT:      kernel.yield %[[L]] : i8
// CHECK:         ^bb0(%{{.*}}: i8, %{{.*}}: f32):
// CHECK-NEXT:      kernel.scalar "cast"
// CHECK-NEXT:      kernel.scalar "mul"
// CHECK-NEXT:      kernel.yield
// CHECK:         ^bb0(%{{.*}}: i8, %{{.*}}: f32, %{{.*}}: f32, %{{.*}}: f32):
// CHECK-NEXT:      kernel.scalar "cast"
// CHECK-NEXT:      kernel.scalar "mul"
// CHECK-NEXT:      kernel.scalar "add"
