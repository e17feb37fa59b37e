// RUN: python %models conv_relu_add %t.onnx
// RUN: ember-opt %t.onnx | filecheck %s --check-prefix=ONNX
// RUN: ember-opt %t.onnx -p convert-onnx-to-nn | filecheck %s --check-prefix=NN

// Import is faithful: one op per node, node names kept, weights by name, I/O names on @main.
// ONNX:      builtin.module attributes {onnx.opset = 17 : i64} {
// ONNX-NEXT:   func.func @main(%0: tensor<?x4x8x8xf32, #nn.layout<["N"]>> {ember.name = "x"}) -> (tensor<?x4x8x8xf32, #nn.layout<["N"]>> {ember.name = "y"}) {
// ONNX-NEXT:     %1 = onnx.weight "conv1.weight" : tensor<4x4x3x3xf32>
// ONNX-NEXT:     %2 = onnx.weight "conv1.bias" : tensor<4xf32>
// ONNX-NEXT:     %3 = "onnx.Conv"(%0, %1, %2) <{pads = array<i64: 1, 1, 1, 1>}> {ember.node = "conv1"}
// ONNX-NEXT:     %4 = "onnx.Relu"(%3) {ember.node = "relu1"}
// ONNX-NEXT:     %5 = "onnx.Add"(%4, %0) {ember.node = "add1"}
// ONNX-NEXT:     func.return %5

// NN:      %1 = nn.weight "conv1.weight" : tensor<4x4x3x3xf32>
// NN-NEXT: %2 = nn.weight "conv1.bias" : tensor<4xf32>
// NN-NEXT: %3 = nn.conv %0, %1, %2 {{.*}}pads = array<i64: 1, 1, 1, 1>{{.*}} -> tensor<?x4x8x8xf32, #nn.layout<["N"]>>
// NN-NEXT: %4 = nn.unary "relu" %3
// NN-NEXT: %5 = nn.binary "add" %4, %0
