// RUN: ember-opt %s -p fuse-normalization,dce | filecheck %s

// Softmax written out: exp(x - max) / sum (@stable, axis 1 of three), exp(x) / sum(exp(x))
// (@unstable, symbolic batch), exp(t) · reciprocal(sum) (@reciprocal); log-softmax
// (x - max) - log(sum(exp(x - max))) (@log_stable) and x - log(sum(exp(x))) (@log_unstable).
builtin.module {
  func.func @stable(%x: tensor<2x6x3xf32>) -> tensor<2x6x3xf32> {
    %m = nn.reduce "max" %x {axes = array<i64: 1>, keepdims = true} : (tensor<2x6x3xf32>) -> tensor<2x1x3xf32>
    %t = nn.binary "sub" %x, %m : tensor<2x6x3xf32>, tensor<2x1x3xf32> -> tensor<2x6x3xf32>
    %e = nn.unary "exp" %t : tensor<2x6x3xf32> -> tensor<2x6x3xf32>
    %s = nn.reduce "sum" %e {axes = array<i64: 1>, keepdims = true} : (tensor<2x6x3xf32>) -> tensor<2x1x3xf32>
    %y = nn.binary "div" %e, %s : tensor<2x6x3xf32>, tensor<2x1x3xf32> -> tensor<2x6x3xf32>
    func.return %y : tensor<2x6x3xf32>
  }
  func.func @unstable(%x: tensor<?x10xf32, #nn.layout<["N"]>>) -> tensor<?x10xf32, #nn.layout<["N"]>> {
    %e = nn.unary "exp" %x : tensor<?x10xf32, #nn.layout<["N"]>> -> tensor<?x10xf32, #nn.layout<["N"]>>
    %s = nn.reduce "sum" %e {axes = array<i64: 1>, keepdims = true} : (tensor<?x10xf32, #nn.layout<["N"]>>) -> tensor<?x1xf32, #nn.layout<["N"]>>
    %y = nn.binary "div" %e, %s : tensor<?x10xf32, #nn.layout<["N"]>>, tensor<?x1xf32, #nn.layout<["N"]>> -> tensor<?x10xf32, #nn.layout<["N"]>>
    func.return %y : tensor<?x10xf32, #nn.layout<["N"]>>
  }
  func.func @reciprocal(%x: tensor<4x10xf32>) -> tensor<4x10xf32> {
    %m = nn.reduce "max" %x {axes = array<i64: 1>, keepdims = true} : (tensor<4x10xf32>) -> tensor<4x1xf32>
    %t = nn.binary "sub" %x, %m : tensor<4x10xf32>, tensor<4x1xf32> -> tensor<4x10xf32>
    %e = nn.unary "exp" %t : tensor<4x10xf32> -> tensor<4x10xf32>
    %s = nn.reduce "sum" %e {axes = array<i64: 1>, keepdims = true} : (tensor<4x10xf32>) -> tensor<4x1xf32>
    %r = nn.unary "reciprocal" %s : tensor<4x1xf32> -> tensor<4x1xf32>
    %y = nn.binary "mul" %r, %e : tensor<4x1xf32>, tensor<4x10xf32> -> tensor<4x10xf32>
    func.return %y : tensor<4x10xf32>
  }
  func.func @log_stable(%x: tensor<4x10xf32>) -> tensor<4x10xf32> {
    %m = nn.reduce "max" %x {axes = array<i64: 1>, keepdims = true} : (tensor<4x10xf32>) -> tensor<4x1xf32>
    %t = nn.binary "sub" %x, %m : tensor<4x10xf32>, tensor<4x1xf32> -> tensor<4x10xf32>
    %e = nn.unary "exp" %t : tensor<4x10xf32> -> tensor<4x10xf32>
    %s = nn.reduce "sum" %e {axes = array<i64: 1>, keepdims = true} : (tensor<4x10xf32>) -> tensor<4x1xf32>
    %l = nn.unary "log" %s : tensor<4x1xf32> -> tensor<4x1xf32>
    %y = nn.binary "sub" %t, %l : tensor<4x10xf32>, tensor<4x1xf32> -> tensor<4x10xf32>
    func.return %y : tensor<4x10xf32>
  }
  func.func @log_unstable(%x: tensor<4x10xf32>) -> tensor<4x10xf32> {
    %e = nn.unary "exp" %x : tensor<4x10xf32> -> tensor<4x10xf32>
    %s = nn.reduce "sum" %e {axes = array<i64: 1>, keepdims = true} : (tensor<4x10xf32>) -> tensor<4x1xf32>
    %l = nn.unary "log" %s : tensor<4x1xf32> -> tensor<4x1xf32>
    %y = nn.binary "sub" %x, %l : tensor<4x10xf32>, tensor<4x1xf32> -> tensor<4x10xf32>
    func.return %y : tensor<4x10xf32>
  }
}

// CHECK-LABEL: func.func @stable
// CHECK-NEXT:    %[[Y:.*]] = nn.softmax %x {axis = 1 : i64, log = false} : tensor<2x6x3xf32> -> tensor<2x6x3xf32>
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @unstable
// CHECK-NEXT:    %[[Y:.*]] = nn.softmax %x {axis = 1 : i64, log = false} : tensor<?x10xf32, #nn.layout<["N"]>> -> tensor<?x10xf32, #nn.layout<["N"]>>
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @reciprocal
// CHECK-NEXT:    %[[Y:.*]] = nn.softmax %x {axis = 1 : i64, log = false}
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @log_stable
// CHECK-NEXT:    %[[Y:.*]] = nn.softmax %x {axis = 1 : i64, log = true}
// CHECK-NEXT:    func.return %[[Y]]
// CHECK-LABEL: func.func @log_unstable
// CHECK-NEXT:    %[[Y:.*]] = nn.softmax %x {axis = 1 : i64, log = true}
// CHECK-NEXT:    func.return %[[Y]]
