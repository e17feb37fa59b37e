// RUN: ember-opt %s -p fold-constants,dce | filecheck %s

// Arithmetic on constants is evaluated; what depends on %x stays.
builtin.module {
  func.func @main(%x: tensor<2xf32>) -> tensor<2xf32> {
    %a = nn.constant dense<[1.0, 2.0]> : tensor<2xf32>
    %b = nn.constant dense<3.0> : tensor<f32>
    %c = nn.binary "mul" %a, %b : tensor<2xf32>, tensor<f32> -> tensor<2xf32>
    %d = nn.unary "neg" %c : tensor<2xf32> -> tensor<2xf32>
    %y = nn.binary "add" %x, %d : tensor<2xf32>, tensor<2xf32> -> tensor<2xf32>
    func.return %y : tensor<2xf32>
  }
}

// CHECK:      %[[K:.*]] = nn.constant dense<[-3.000000e+00, -6.000000e+00]> : tensor<2xf32>
// CHECK-NEXT: %[[Y:.*]] = nn.binary "add" %{{.*}}, %[[K]]
// CHECK-NEXT: func.return %[[Y]]
// CHECK-NOT:  nn.unary
