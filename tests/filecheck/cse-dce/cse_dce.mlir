// RUN: ember-opt %s -p cse,dce | filecheck %s

// Two identical relus become one; the unused exp and its weight disappear.
builtin.module {
  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {
    %w = nn.weight "unused.weight" : tensor<4xf32>
    %e = nn.unary "exp" %w : tensor<4xf32> -> tensor<4xf32>
    %a = nn.unary "relu" %x : tensor<4xf32> -> tensor<4xf32>
    %b = nn.unary "relu" %x : tensor<4xf32> -> tensor<4xf32>
    %y = nn.binary "add" %a, %b : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    func.return %y : tensor<4xf32>
  }
}

// CHECK:      %[[A:.*]] = nn.unary "relu" %{{.*}}
// CHECK-NEXT: %[[Y:.*]] = nn.binary "add" %[[A]], %[[A]]
// CHECK-NEXT: func.return %[[Y]]
// CHECK-NOT:  nn.weight
