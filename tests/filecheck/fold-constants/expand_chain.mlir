// RUN: python %models expand_chain %t.onnx
// RUN: ember-opt %t.onnx -p convert-onnx-to-nn,fold-constants,dce | filecheck %s

// PyTorch's t.expand(x.size(0), 4) with a dynamic batch: the target [N, 4] comes from Shape,
// and ConstantOfShape/Mul/Equal/Where turn a -1 into 1. Equal of "N" with -1 is false for every
// N (a symbolic dim is at least 1), so Where picks "N" and the expand gets its static form; it
// is not folded into a constant: its result's size is the input's batch.

// CHECK:      func.func @main(%{{.*}}: tensor<?x3xf32, #nn.layout<["N"]>> {ember.name = "x"}) -> (tensor<?x4xf32, #nn.layout<["N"]>> {ember.name = "y"}) {
// CHECK-NEXT:   %[[T:.*]] = nn.weight "t" : tensor<1x4xf32>
// CHECK-NEXT:   %[[Y:.*]] = nn.expand %[[T]] : (tensor<1x4xf32>) -> tensor<?x4xf32, #nn.layout<["N"]>>
// CHECK-NEXT:   func.return %[[Y]]
