// RUN: ember-opt %s -p convert-nn-to-kernel,fuse-elementwise,fuse-strided-reads | filecheck %s

// Columns 4..8 of %x, split into 2 heads of 2 and transposed to [2, 2, 4, 2], then a relu: the
// relu's kernel reads %x itself at element 4 + c0*48 + c1*2 + c2*12 + c3; the slice and the
// transpose kernels (and the view between them) are gone.
builtin.module {
  func.func @main(%x: tensor<2x4x12xf32>) -> tensor<2x2x4x2xf32> {
    %s = nn.slice %x {starts = array<i64: 0, 0, 4>, ends = array<i64: 2, 4, 8>, steps = array<i64: 1, 1, 1>} : tensor<2x4x12xf32> -> tensor<2x4x4xf32>
    %r = nn.reshape %s : (tensor<2x4x4xf32>) -> tensor<2x4x2x2xf32>
    %t = nn.transpose %r {perm = array<i64: 0, 2, 1, 3>} : tensor<2x4x2x2xf32> -> tensor<2x2x4x2xf32>
    %y = nn.unary "relu" %t : tensor<2x2x4x2xf32> -> tensor<2x2x4x2xf32>
    func.return %y : tensor<2x2x4x2xf32>
  }
}

// CHECK:      func.func @main(%x: tensor<2x4x12xf32>) -> tensor<2x2x4x2xf32> {
// CHECK-NEXT:   %{{.*}} = kernel.elementwise(%x) attributes {{{.*}}views = [{input = 0 : i64, offset = 4 : i64, strides = array<i64: 48, 2, 12, 1>}]} : (tensor<2x4x12xf32>) -> tensor<2x2x4x2xf32> {
// CHECK:        kernel.scalar "relu"
// CHECK-NOT:  kernel.launch
// CHECK:        func.return
