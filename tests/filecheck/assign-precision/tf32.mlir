// RUN: python %models conv_relu_softmax %t.onnx
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{tf32=true}' | filecheck %s
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{tf32=true},convert-nn-to-kernel' | filecheck %s --check-prefix=KERNEL
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{fp16=true tf32=true}' | filecheck %s --check-prefix=FP16
// RUN: ember-opt %s -p 'assign-precision{tf32=true}' | filecheck %s --check-prefix=MATMUL

// TF32 allowed: the FP32 conv gets the `tf32` marker (no cast, no type change), and the kernel
// reads it from its params; relu and softmax are not tensor-core ops.
// CHECK:         nn.conv %0, {{.*}}groups = 1 : i64, tf32} : {{.*}} -> tensor<1x4x8x8xf32>
// CHECK-NOT:     nn.cast
// CHECK-NOT:     tf32
// KERNEL:        kernel.launch "conv"{{.*}}tf32 = true
// An FP16 conv is not TF32.
// FP16:          ember.precision = {low = "fp16", tf32 = true, constraints = "none", pins = {}}
// FP16-NOT:      tf32}

// MATMUL:        nn.matmul %a, %b {tf32} : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
// MATMUL-NEXT:   nn.matmul %c, %d : (tensor<2x3xi32>, tensor<3x4xi32>) -> tensor<2x4xi32>
builtin.module {
  func.func @mm(%a: tensor<2x3xf32>, %b: tensor<3x4xf32>, %c: tensor<2x3xi32>, %d: tensor<3x4xi32>) -> (tensor<2x4xf32>, tensor<2x4xi32>) {
    %y = nn.matmul %a, %b : (tensor<2x3xf32>, tensor<3x4xf32>) -> tensor<2x4xf32>
    %z = nn.matmul %c, %d : (tensor<2x3xi32>, tensor<3x4xi32>) -> tensor<2x4xi32>
    func.return %y, %z : tensor<2x4xf32>, tensor<2x4xi32>
  }
}
