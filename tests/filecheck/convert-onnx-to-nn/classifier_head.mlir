// RUN: ember-opt %s -p convert-onnx-to-nn | filecheck %s

// A classifier head at opset 11: global pooling is a mean reduction, Gemm a matmul with its
// transpose as a flag and alpha/beta as elementwise ops; the ONNX types refine to static ones.
builtin.module attributes {onnx.opset = 11 : i64} {
  func.func @main(%x: tensor<2x8x4x4xf32>) -> tensor<*xf32> {
    %w = onnx.weight "fc.weight" : tensor<5x8xf32>
    %b = onnx.weight "fc.bias" : tensor<5xf32>
    %g = "onnx.GlobalAveragePool"(%x) : (tensor<2x8x4x4xf32>) -> tensor<*xf32>
    %f = "onnx.Flatten"(%g) : (tensor<*xf32>) -> tensor<*xf32>
    %y = "onnx.Gemm"(%f, %w, %b) <{transB = 1 : i64, alpha = 2.0 : f32}> : (tensor<*xf32>, tensor<5x8xf32>, tensor<5xf32>) -> tensor<*xf32>
    %s = "onnx.Softmax"(%y) : (tensor<*xf32>) -> tensor<*xf32>
    func.return %s : tensor<*xf32>
  }
}

// CHECK:      func.func @main(%{{.*}}: tensor<2x8x4x4xf32>) -> tensor<2x5xf32> {
// CHECK:        %[[G:.*]] = nn.reduce "mean" %{{.*}} {axes = array<i64: 2, 3>, keepdims = true} : (tensor<2x8x4x4xf32>) -> tensor<2x8x1x1xf32>
// CHECK-NEXT:   %[[F:.*]] = nn.reshape %[[G]] : (tensor<2x8x1x1xf32>) -> tensor<2x8xf32>
// CHECK-NEXT:   %[[M:.*]] = nn.matmul %[[F]], %{{.*}} {transpose_b = true} : (tensor<2x8xf32>, tensor<5x8xf32>) -> tensor<2x5xf32>
// CHECK-NEXT:   %[[A:.*]] = nn.constant dense<2.000000e+00> : tensor<f32>
// CHECK-NEXT:   %[[S:.*]] = nn.binary "mul" %[[M]], %[[A]]
// CHECK-NEXT:   %[[Y:.*]] = nn.binary "add" %[[S]], %{{.*}} : tensor<2x5xf32>, tensor<5xf32> -> tensor<2x5xf32>
// CHECK-NEXT:   nn.softmax %[[Y]] {axis = 1 : i64, log = false} : tensor<2x5xf32> -> tensor<2x5xf32>
