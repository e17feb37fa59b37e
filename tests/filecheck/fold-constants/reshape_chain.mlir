// RUN: python %models reshape_chain_static %t.onnx
// RUN: ember-opt %t.onnx -p convert-onnx-to-nn,fold-constants,dce | filecheck %s --check-prefix=STATIC
// RUN: python %models reshape_chain_symbolic %t2.onnx
// RUN: ember-opt %t2.onnx -p convert-onnx-to-nn,fold-constants,dce | filecheck %s --check-prefix=SYMBOLIC

// PyTorch's x.view(x.size(0), -1) exports as Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
// Folding evaluates the shape arithmetic (symbolically where the batch is "N"); dce removes it.

// STATIC:      func.func @main(%{{.*}}: tensor<2x8x4x4xf32> {ember.name = "x"}) -> (tensor<2x128xf32> {ember.name = "y"}) {
// STATIC-NEXT:   %[[Y:.*]] = nn.reshape %{{.*}} : (tensor<2x8x4x4xf32>) -> tensor<2x128xf32>
// STATIC-NEXT:   func.return %[[Y]] : tensor<2x128xf32>

// SYMBOLIC:      func.func @main(%{{.*}}: tensor<?x8x4x4xf32, #nn.layout<["N"]>> {ember.name = "x"}) -> (tensor<?x128xf32, #nn.layout<["N"]>> {ember.name = "y"}) {
// SYMBOLIC-NEXT:   %[[Y:.*]] = nn.reshape %{{.*}} : (tensor<?x8x4x4xf32, #nn.layout<["N"]>>) -> tensor<?x128xf32, #nn.layout<["N"]>>
// SYMBOLIC-NEXT:   func.return %[[Y]]
