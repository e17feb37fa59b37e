// RUN: ember-opt %s -p fuse-elementwise | filecheck %s

// A chain x -> relu -> add bias (broadcast) -> sigmoid -> mul x becomes one kernel; x feeds it
// twice but is one input. Origins are the union in program order.
builtin.module {
  func.func @chain(%x: tensor<2x3xf32>, %b: tensor<3xf32>) -> tensor<2x3xf32> {
    %r = kernel.elementwise(%x) attributes {origin = ["relu"]} : (tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%0: f32):
      %1 = kernel.scalar "relu" %0 : (f32) -> f32
      kernel.yield %1 : f32
    }
    %a = kernel.elementwise(%r, %b) attributes {origin = ["add"]} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32> {
    ^bb0(%2: f32, %3: f32):
      %4 = kernel.scalar "add" %2, %3 : (f32, f32) -> f32
      kernel.yield %4 : f32
    }
    %s = kernel.elementwise(%a) attributes {origin = ["sigmoid"]} : (tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%5: f32):
      %6 = kernel.scalar "sigmoid" %5 : (f32) -> f32
      kernel.yield %6 : f32
    }
    %m = kernel.elementwise(%s, %x) attributes {origin = ["mul"]} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%7: f32, %8: f32):
      %9 = kernel.scalar "mul" %7, %8 : (f32, f32) -> f32
      kernel.yield %9 : f32
    }
    func.return %m : tensor<2x3xf32>
  }
}

// CHECK-LABEL: func.func @chain
// CHECK-NEXT:    %[[M:.*]] = kernel.elementwise(%x, %b) attributes {origin = ["relu", "add", "sigmoid", "mul"]} : (tensor<2x3xf32>, tensor<3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    ^bb0(%[[X:.*]]: f32, %[[B:.*]]: f32):
// CHECK-NEXT:      %[[R:.*]] = kernel.scalar "relu" %[[X]] : (f32) -> f32
// CHECK-NEXT:      %[[A:.*]] = kernel.scalar "add" %[[R]], %[[B]] : (f32, f32) -> f32
// CHECK-NEXT:      %[[S:.*]] = kernel.scalar "sigmoid" %[[A]] : (f32) -> f32
// CHECK-NEXT:      %[[Y:.*]] = kernel.scalar "mul" %[[S]], %[[X]] : (f32, f32) -> f32
// CHECK-NEXT:      kernel.yield %[[Y]] : f32
// CHECK-NEXT:    }
// CHECK-NEXT:    func.return %[[M]] : tensor<2x3xf32>

// The diamond a = relu(x); b = exp(a); c = add(a, b): `a` is used by two kernels, so it is not
// copied into both. Once b is inlined into c, c's only input is `a` (twice, now one block
// argument), so a fuses too and relu runs once: one kernel.
builtin.module {
  func.func @diamond(%x: tensor<2x3xf32>) -> tensor<2x3xf32> {
    %a = kernel.elementwise(%x) attributes {origin = ["a"]} : (tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%0: f32):
      %1 = kernel.scalar "relu" %0 : (f32) -> f32
      kernel.yield %1 : f32
    }
    %b = kernel.elementwise(%a) attributes {origin = ["b"]} : (tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%2: f32):
      %3 = kernel.scalar "exp" %2 : (f32) -> f32
      kernel.yield %3 : f32
    }
    %c = kernel.elementwise(%a, %b) attributes {origin = ["c"]} : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%4: f32, %5: f32):
      %6 = kernel.scalar "add" %4, %5 : (f32, f32) -> f32
      kernel.yield %6 : f32
    }
    func.return %c : tensor<2x3xf32>
  }
}

// CHECK-LABEL: func.func @diamond
// CHECK-NEXT:    %[[C:.*]] = kernel.elementwise(%x) attributes {origin = ["a", "b", "c"]} : (tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK-NEXT:    ^bb0(%[[X:.*]]: f32):
// CHECK-NEXT:      %[[A:.*]] = kernel.scalar "relu" %[[X]] : (f32) -> f32
// CHECK-NEXT:      %[[E:.*]] = kernel.scalar "exp" %[[A]] : (f32) -> f32
// CHECK-NEXT:      %[[S:.*]] = kernel.scalar "add" %[[A]], %[[E]] : (f32, f32) -> f32
// CHECK-NEXT:      kernel.yield %[[S]] : f32
// CHECK-NEXT:    }
// CHECK-NEXT:    func.return %[[C]] : tensor<2x3xf32>

// Kept apart: `a` feeds two kernels; `n` is also a function result; `s` (shape 3) would need
// broadcasting to 2x3; `l` is a launch, not an elementwise kernel.
builtin.module {
  func.func @kept(%x: tensor<2x3xf32>, %v: tensor<3xf32>) -> (tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>) {
    %a = kernel.elementwise(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%0: f32):
      %1 = kernel.scalar "relu" %0 : (f32) -> f32
      kernel.yield %1 : f32
    }
    %e = kernel.elementwise(%a) : (tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%2: f32):
      %3 = kernel.scalar "exp" %2 : (f32) -> f32
      kernel.yield %3 : f32
    }
    %n = kernel.elementwise(%a) : (tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%4: f32):
      %5 = kernel.scalar "neg" %4 : (f32) -> f32
      kernel.yield %5 : f32
    }
    %t = kernel.elementwise(%n) : (tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%6: f32):
      %7 = kernel.scalar "tanh" %6 : (f32) -> f32
      kernel.yield %7 : f32
    }
    %s = kernel.elementwise(%v) : (tensor<3xf32>) -> tensor<3xf32> {
    ^bb0(%8: f32):
      %9 = kernel.scalar "abs" %8 : (f32) -> f32
      kernel.yield %9 : f32
    }
    %l = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = [array<i64: 2, 3>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 3>], out_dtypes = ["float32"]}} : (tensor<2x3xf32>) -> tensor<2x3xf32>
    %u = kernel.elementwise(%s, %l) : (tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32> {
    ^bb0(%10: f32, %11: f32):
      %12 = kernel.scalar "mul" %10, %11 : (f32, f32) -> f32
      kernel.yield %12 : f32
    }
    func.return %e, %n, %t, %u : tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>, tensor<2x3xf32>
  }
}

// CHECK-LABEL: func.func @kept
// CHECK-NEXT:    %[[A:.*]] = kernel.elementwise(%x) : (tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK:         %[[E:.*]] = kernel.elementwise(%[[A]]) : (tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK:         %[[N:.*]] = kernel.elementwise(%[[A]]) : (tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK:         %[[T:.*]] = kernel.elementwise(%[[N]]) : (tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK:         %[[S:.*]] = kernel.elementwise(%v) : (tensor<3xf32>) -> tensor<3xf32> {
// CHECK:         %[[L:.*]] = kernel.launch "softmax"(%x)
// CHECK-NEXT:    %[[U:.*]] = kernel.elementwise(%[[S]], %[[L]]) : (tensor<3xf32>, tensor<2x3xf32>) -> tensor<2x3xf32> {
// CHECK:         func.return %[[E]], %[[N]], %[[T]], %[[U]]
