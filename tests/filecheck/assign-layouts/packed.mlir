// RUN: ember-opt %s -p 'convert-nn-to-kernel,assign-layouts{packed=true}' | filecheck %s
// RUN: ember-opt %s -p 'convert-nn-to-kernel,assign-layouts' | filecheck %s --check-prefix=OFF

// Three depthwise convs over C % 4 == 0 channels prefer NC4HW4 and outnumber the two reformats
// they need: they run packed ([1, 2, 6, 6, 4]), the bias add and relu follow (the bias [8, 1, 1]
// is the same bytes as [1, 8, 1, 1] packed: a view). The weights are not in a store (text): they
// stay OIHW, no weight_layout. Without `packed` nothing changes format.
builtin.module {
  func.func @dw(%x: tensor<1x8x6x6xf32>) -> tensor<1x8x6x6xf32> {
    %w = nn.weight "w" : tensor<8x1x3x3xf32>
    %b = nn.weight "b" : tensor<8x1x1xf32>
    %c0 = nn.conv %x, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 8 : i64} : (tensor<1x8x6x6xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x6x6xf32>
    %a = nn.binary "add" %c0, %b : tensor<1x8x6x6xf32>, tensor<8x1x1xf32> -> tensor<1x8x6x6xf32>
    %r = nn.unary "relu" %a : tensor<1x8x6x6xf32> -> tensor<1x8x6x6xf32>
    %c1 = nn.conv %r, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 8 : i64} : (tensor<1x8x6x6xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x6x6xf32>
    %c2 = nn.conv %c1, %w {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 8 : i64} : (tensor<1x8x6x6xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x6x6xf32>
    func.return %c2 : tensor<1x8x6x6xf32>
  }
}

// CHECK-LABEL: func.func @dw(%x: tensor<1x8x6x6xf32, #nn.layout<NCHW>>) -> tensor<1x8x6x6xf32, #nn.layout<NCHW>>
// CHECK-NEXT:    %[[X:.*]] = kernel.launch "reformat"(%x) {params = {reformat = "NCHW->NC4HW4", channels = 8 : i64, in_shapes = [array<i64: 1, 8, 6, 6>], {{.*}}out_shapes = [array<i64: 1, 2, 6, 6, 4>]
// CHECK-SAME:      -> tensor<1x8x6x6xf32, #nn.layout<NC4HW4>>
// CHECK:         %[[B:.*]] = kernel.view %b : tensor<8x1x1xf32> -> tensor<1x8x1x1xf32, #nn.layout<NC4HW4>>
// CHECK-NEXT:    %[[C0:.*]] = kernel.launch "conv"(%[[X]], %w) {params = {{{.*}}in_shapes = [array<i64: 1, 2, 6, 6, 4>, array<i64: 8, 1, 3, 3>], {{.*}}out_shapes = [array<i64: 1, 2, 6, 6, 4>], out_dtypes = ["float32"], layout = "NC4HW4", channels = 8 : i64}}
// CHECK-NEXT:    %[[A:.*]] = kernel.elementwise(%[[C0]], %[[B]]) : (tensor<1x8x6x6xf32, #nn.layout<NC4HW4>>, tensor<1x8x1x1xf32, #nn.layout<NC4HW4>>) -> tensor<1x8x6x6xf32, #nn.layout<NC4HW4>>
// CHECK:         kernel.elementwise(%[[A]]) : (tensor<1x8x6x6xf32, #nn.layout<NC4HW4>>) -> tensor<1x8x6x6xf32, #nn.layout<NC4HW4>>
// CHECK:         kernel.launch "conv"({{.*}}layout = "NC4HW4"
// CHECK:         %[[C2:.*]] = kernel.launch "conv"({{.*}}layout = "NC4HW4"
// CHECK-NEXT:    %[[Y:.*]] = kernel.launch "reformat"(%[[C2]]) {params = {reformat = "NC4HW4->NCHW", channels = 8 : i64
// CHECK-SAME:      -> tensor<1x8x6x6xf32, #nn.layout<NCHW>>
// CHECK-NEXT:    func.return %[[Y]]

// OFF-NOT: NC4HW4
// OFF-NOT: reformat
