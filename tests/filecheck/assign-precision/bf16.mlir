// RUN: python %models conv_relu_softmax %t.onnx
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{bf16=true}' | filecheck %s
// RUN: ember-opt %t.onnx -p 'convert-onnx-to-nn,fold-constants,assign-precision{fp16=true bf16=true}' | filecheck %s --check-prefix=BOTH

// BF16: the same chain in bfloat16 (the weight converted at build time, rounded to bf16).
// CHECK:         %[[X:.*]] = nn.cast %0 {to = bf16} : tensor<1x3x8x8xf32> -> tensor<1x3x8x8xbf16>
// CHECK-NEXT:    %[[W:.*]] = nn.weight "conv1.weight.bf16" : tensor<4x3x3x3xbf16>
// CHECK-NEXT:    %[[B:.*]] = nn.constant dense<{{.*}}> : tensor<4xbf16>
// CHECK-NEXT:    %[[C:.*]] = nn.conv %[[X]], %[[W]], %[[B]] {{.*}} -> tensor<1x4x8x8xbf16>
// CHECK-NEXT:    %[[R:.*]] = nn.unary "relu" %[[C]] : tensor<1x4x8x8xbf16> -> tensor<1x4x8x8xbf16>
// CHECK-NEXT:    %[[S:.*]] = nn.softmax %[[R]] {{.*}} : tensor<1x4x8x8xbf16> -> tensor<1x4x8x8xbf16>
// CHECK-NEXT:    %[[Y:.*]] = nn.cast %[[S]] {to = f32} : tensor<1x4x8x8xbf16> -> tensor<1x4x8x8xf32>
// CHECK-NEXT:    func.return %[[Y]]

// FP16 and BF16 both allowed: FP16 (more mantissa).
// BOTH:          nn.conv {{.*}} -> tensor<1x4x8x8xf16>
