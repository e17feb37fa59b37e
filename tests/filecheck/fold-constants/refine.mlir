// RUN: ember-opt %s -p fold-constants | filecheck %s

// A fill shaped by a constant becomes static, and the shapes it decides flow to its users.
builtin.module {
  func.func @main(%x: tensor<?x4xf32, #nn.layout<["N"]>>) -> tensor<?x?xf32> {
    %s = nn.constant dense<[2, 4]> : tensor<2xi64>
    %f = nn.fill %s {value = 1.0 : f32} : (tensor<2xi64>) -> tensor<?x?xf32>
    %y = nn.binary "mul" %f, %f : tensor<?x?xf32>, tensor<?x?xf32> -> tensor<?x?xf32>
    func.return %y : tensor<?x?xf32>
  }
}

// CHECK:      func.func @main(%{{.*}}: tensor<?x4xf32, #nn.layout<["N"]>>) -> tensor<2x4xf32>
// CHECK:        %[[K:.*]] = nn.constant dense<1.000000e+00> : tensor<2x4xf32>
// CHECK-NEXT:   func.return %[[K]] : tensor<2x4xf32>
