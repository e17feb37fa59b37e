// RUN: python %models conv_relu_softmax %t.onnx
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{fp16=true}' | filecheck %s
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{fp16=true},convert-nn-to-kernel,fuse-elementwise,fuse-epilogues' | filecheck %s --check-prefix=KERNEL

// FP16: the input is cast once at the edge, the conv's weight and bias are converted at build
// time (a new f16 weight, an inline f16 constant: no run-time cast), conv, relu and softmax
// compute on f16 tensors (softmax accumulates in FP32 inside its kernel), and the output is
// cast back to its declared f32.
// CHECK:         func.func @main(%0: tensor<1x3x8x8xf32> {ember.name = "x"}) -> (tensor<1x4x8x8xf32> {ember.name = "y"}) {
// CHECK-NEXT:    %[[X:.*]] = nn.cast %0 {to = f16} : tensor<1x3x8x8xf32> -> tensor<1x3x8x8xf16>
// CHECK-NEXT:    %[[W:.*]] = nn.weight "conv1.weight.fp16" : tensor<4x3x3x3xf16>
// CHECK-NEXT:    %[[B:.*]] = nn.constant dense<{{.*}}> : tensor<4xf16>
// CHECK-NEXT:    %[[C:.*]] = nn.conv %[[X]], %[[W]], %[[B]] {{.*}} : (tensor<1x3x8x8xf16>, tensor<4x3x3x3xf16>, tensor<4xf16>) -> tensor<1x4x8x8xf16>
// CHECK-NEXT:    %[[R:.*]] = nn.unary "relu" %[[C]] : tensor<1x4x8x8xf16> -> tensor<1x4x8x8xf16>
// CHECK-NEXT:    %[[S:.*]] = nn.softmax %[[R]] {axis = 1 : i64, log = false} : tensor<1x4x8x8xf16> -> tensor<1x4x8x8xf16>
// CHECK-NEXT:    %[[Y:.*]] = nn.cast %[[S]] {to = f32} : tensor<1x4x8x8xf16> -> tensor<1x4x8x8xf32>
// CHECK-NEXT:    func.return %[[Y]] : tensor<1x4x8x8xf32>
// CHECK-NOT:     nn.weight "conv1.weight" :

// The casts are kernels like any elementwise op (relu joins the conv as its epilogue, the output
// cast the softmax, which then stores FP32); the edge casts, which no ONNX node made, are named
// after the tensor they serve.
// KERNEL:        kernel.elementwise(%0) attributes {origin = ["cast(input:x)"]} : (tensor<1x3x8x8xf32>) -> tensor<1x3x8x8xf16>
// KERNEL:          kernel.scalar "cast" {{.*}} : (f32) -> f16
// KERNEL:        kernel.launch "conv"{{.*}}in_dtypes = ["float16", "float16", "float16"]{{.*}}out_dtypes = ["float16"]{{.*}}origin = ["conv1", "relu1"]
// KERNEL:        kernel.launch "softmax"{{.*}}out_dtypes = ["float16"]{{.*}}origin = ["softmax1", "cast(output:y)"]} : (tensor<1x4x8x8xf16>) -> tensor<1x4x8x8xf32> epilogue {
