// RUN: ember-opt %s -p convert-onnx-to-nn | filecheck %s

// Activations become nn.unary with their ONNX defaults spelled out; binary ops broadcast.
builtin.module attributes {onnx.opset = 17 : i64} {
  func.func @main(%x: tensor<?x3xf32, #nn.layout<["N"]>>, %b: tensor<3xf32>) -> tensor<*xf32> {
    %0 = "onnx.LeakyRelu"(%x) : (tensor<?x3xf32, #nn.layout<["N"]>>) -> tensor<?x3xf32, #nn.layout<["N"]>>
    %1 = "onnx.HardSigmoid"(%0) : (tensor<?x3xf32, #nn.layout<["N"]>>) -> tensor<?x3xf32, #nn.layout<["N"]>>
    %2 = "onnx.Add"(%1, %b) : (tensor<?x3xf32, #nn.layout<["N"]>>, tensor<3xf32>) -> tensor<*xf32>
    %3 = "onnx.Less"(%2, %b) : (tensor<*xf32>, tensor<3xf32>) -> tensor<*xi1>
    %4 = "onnx.Where"(%3, %2, %x) : (tensor<*xi1>, tensor<*xf32>, tensor<?x3xf32, #nn.layout<["N"]>>) -> tensor<*xf32>
    func.return %4 : tensor<*xf32>
  }
}

// CHECK:      func.func @main(%{{.*}}: tensor<?x3xf32, #nn.layout<["N"]>>, %{{.*}}: tensor<3xf32>) -> tensor<?x3xf32, #nn.layout<["N"]>> {
// CHECK-NEXT:   %[[A:.*]] = nn.unary "leaky_relu" %{{.*}} {alpha = 0.0099999997764825821 : f64}
// CHECK-NEXT:   %[[H:.*]] = nn.unary "hard_sigmoid" %[[A]] {alpha = 0.20000000298023224 : f64, beta = 5.000000e-01 : f64}
// CHECK-NEXT:   %[[S:.*]] = nn.binary "add" %[[H]], %{{.*}} : tensor<?x3xf32, #nn.layout<["N"]>>, tensor<3xf32> -> tensor<?x3xf32, #nn.layout<["N"]>>
// CHECK-NEXT:   %[[C:.*]] = nn.binary "lt" %[[S]], %{{.*}} : {{.*}} -> tensor<?x3xi1, #nn.layout<["N"]>>
// CHECK-NEXT:   %[[W:.*]] = nn.select %[[C]], %[[S]], %{{.*}}
// CHECK-NEXT:   func.return %[[W]] : tensor<?x3xf32, #nn.layout<["N"]>>
// CHECK-NOT:  onnx.
