// RUN: python %models conv_relu_softmax %t.onnx
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{fp16=true constraints="obey" layer_precisions="relu1:fp32"}' | filecheck %s
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{fp16=true constraints="obey" layer_precisions="conv1:fp32,softmax1:fp32"}' | filecheck %s --check-prefix=TWO
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{layer_precisions="relu1:fp16"}' | filecheck %s --check-prefix=FP32BUILD

// A layer pinned to FP32 under OBEY stays FP32 in an FP16 build, with casts around it.
// CHECK:         %[[C:.*]] = nn.conv {{.*}} -> tensor<1x4x8x8xf16>
// CHECK-NEXT:    %[[C32:.*]] = nn.cast %[[C]] {to = f32} : tensor<1x4x8x8xf16> -> tensor<1x4x8x8xf32>
// CHECK-NEXT:    %[[R:.*]] = nn.unary "relu" %[[C32]] : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
// CHECK-NEXT:    %[[R16:.*]] = nn.cast %[[R]] {to = f16} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf16>
// CHECK-NEXT:    %[[S:.*]] = nn.softmax %[[R16]] {{.*}} : tensor<1x4x8x8xf16> -> tensor<1x4x8x8xf16>
// CHECK-NEXT:    nn.cast %[[S]] {to = f32} : tensor<1x4x8x8xf16> -> tensor<1x4x8x8xf32>

// Two layers pinned: the conv keeps its f32 weights and reads the f32 input with no cast; the
// softmax is the f32 output itself.
// TWO:           %[[W:.*]] = nn.weight "conv1.weight" : tensor<4x3x3x3xf32>
// TWO:           %[[C:.*]] = nn.conv %0, %[[W]], {{.*}} -> tensor<1x4x8x8xf32>
// TWO-NEXT:      %[[C16:.*]] = nn.cast %[[C]] {to = f16}
// TWO-NEXT:      %[[R:.*]] = nn.unary "relu" %[[C16]] : tensor<1x4x8x8xf16> -> tensor<1x4x8x8xf16>
// TWO-NEXT:      %[[R32:.*]] = nn.cast %[[R]] {to = f32}
// TWO-NEXT:      %[[S:.*]] = nn.softmax %[[R32]] {{.*}} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
// TWO-NEXT:      func.return %[[S]]

// In an FP32 build a layer pinned to FP16 runs in FP16, the rest in FP32.
// FP32BUILD:     nn.conv {{.*}} -> tensor<1x4x8x8xf32>
// FP32BUILD-NEXT: nn.cast {{.*}} {to = f16}
// FP32BUILD-NEXT: nn.unary "relu" {{.*}} : tensor<1x4x8x8xf16> -> tensor<1x4x8x8xf16>
// FP32BUILD-NEXT: nn.cast {{.*}} {to = f32}
// FP32BUILD-NEXT: nn.softmax {{.*}} : tensor<1x4x8x8xf32> -> tensor<1x4x8x8xf32>
