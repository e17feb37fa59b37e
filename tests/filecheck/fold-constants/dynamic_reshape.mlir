// RUN: ember-opt %s -p fold-constants,dce | filecheck %s

// The same chain written in nn: shape_of of a symbolic tensor is tracked dim by dim.
builtin.module {
  func.func @main(%x: tensor<?x8x4xf32, #nn.layout<["batch"]>>) -> tensor<?x?xf32> {
    %s = nn.shape_of %x : tensor<?x8x4xf32, #nn.layout<["batch"]>> -> tensor<3xi64>
    %i = nn.constant dense<[0]> : tensor<1xi64>
    %n = nn.gather %s, %i {axis = 0 : i64} : (tensor<3xi64>, tensor<1xi64>) -> tensor<1xi64>
    %m = nn.constant dense<[-1]> : tensor<1xi64>
    %t = nn.concat %n, %m {axis = 0 : i64} : (tensor<1xi64>, tensor<1xi64>) -> tensor<2xi64>
    %y = nn.reshape %x, %t : (tensor<?x8x4xf32, #nn.layout<["batch"]>>, tensor<2xi64>) -> tensor<?x?xf32>
    func.return %y : tensor<?x?xf32>
  }
}

// CHECK:      func.func @main(%{{.*}}: tensor<?x8x4xf32, #nn.layout<["batch"]>>) -> tensor<?x32xf32, #nn.layout<["batch"]>> {
// CHECK-NEXT:   %[[Y:.*]] = nn.reshape %{{.*}} : (tensor<?x8x4xf32, #nn.layout<["batch"]>>) -> tensor<?x32xf32, #nn.layout<["batch"]>>
// CHECK-NEXT:   func.return %[[Y]]
