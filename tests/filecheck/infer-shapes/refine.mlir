// RUN: ember-opt %s -p infer-shapes | filecheck %s

// Result types written loosely are replaced by what each op infers; symbols are kept.
builtin.module {
  func.func @main(%x: tensor<?x3xf32, #nn.layout<["batch"]>>, %y: tensor<3xf32>) -> tensor<?x?xi1> {
    %0 = nn.binary "add" %x, %y : tensor<?x3xf32, #nn.layout<["batch"]>>, tensor<3xf32> -> tensor<?x?xf32>
    %1 = nn.binary "ge" %0, %y : tensor<?x?xf32>, tensor<3xf32> -> tensor<?x?xi1>
    func.return %1 : tensor<?x?xi1>
  }
}

// CHECK:      func.func @main(%{{.*}}: tensor<?x3xf32, #nn.layout<["batch"]>>, %{{.*}}: tensor<3xf32>) -> tensor<?x3xi1, #nn.layout<["batch"]>>
// CHECK-NEXT:   %[[S:.*]] = nn.binary "add" {{.*}} -> tensor<?x3xf32, #nn.layout<["batch"]>>
// CHECK-NEXT:   nn.binary "ge" %[[S]], {{.*}} -> tensor<?x3xi1, #nn.layout<["batch"]>>
