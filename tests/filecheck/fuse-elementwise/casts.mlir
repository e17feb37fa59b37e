// RUN: ember-opt %s -p fuse-elementwise | filecheck %s

// Casts are elementwise kernels like any other: an input's cast to f16 joins the FP16 add
// after it, and the cast of its result back to f32 (an FP32 output) joins it too, so the
// kernel reads f32 and f16 and writes f32 in one pass. The scalar types change inside the
// region.
builtin.module {
  func.func @casts(%x: tensor<2x3xf32>, %b: tensor<2x3xf16>) -> tensor<2x3xf32> {
    %h = kernel.elementwise(%x) attributes {origin = ["cast(input:x)"]} : (tensor<2x3xf32>) -> tensor<2x3xf16> {
    ^bb0(%0: f32):
      %1 = kernel.scalar "cast" %0 : (f32) -> f16
      kernel.yield %1 : f16
    }
    %a = kernel.elementwise(%h, %b) attributes {origin = ["add"]} : (tensor<2x3xf16>, tensor<2x3xf16>) -> tensor<2x3xf16> {
    ^bb0(%2: f16, %3: f16):
      %4 = kernel.scalar "add" %2, %3 : (f16, f16) -> f16
      kernel.yield %4 : f16
    }
    %y = kernel.elementwise(%a) attributes {origin = ["cast(output:y)"]} : (tensor<2x3xf16>) -> tensor<2x3xf32> {
    ^bb0(%5: f16):
      %6 = kernel.scalar "cast" %5 : (f16) -> f32
      kernel.yield %6 : f32
    }
    func.return %y : tensor<2x3xf32>
  }
}

// CHECK-LABEL: func.func @casts
// CHECK-NEXT:    %[[Y:.*]] = kernel.elementwise(%x, %b) attributes {origin = ["cast(input:x)", "add", "cast(output:y)"]} : (tensor<2x3xf32>, tensor<2x3xf16>) -> tensor<2x3xf32> {
// CHECK-NEXT:    ^bb0(%[[X:.*]]: f32, %[[B:.*]]: f16):
// CHECK-NEXT:      %[[H:.*]] = kernel.scalar "cast" %[[X]] : (f32) -> f16
// CHECK-NEXT:      %[[A:.*]] = kernel.scalar "add" %[[H]], %[[B]] : (f16, f16) -> f16
// CHECK-NEXT:      %[[C:.*]] = kernel.scalar "cast" %[[A]] : (f16) -> f32
// CHECK-NEXT:      kernel.yield %[[C]] : f32
// CHECK-NEXT:    }
// CHECK-NEXT:    func.return %[[Y]] : tensor<2x3xf32>
