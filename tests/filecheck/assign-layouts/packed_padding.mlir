// RUN: ember-opt %s -p 'convert-nn-to-kernel,assign-layouts{packed=true}' | filecheck %s

// C % 4 != 0: the 6-channel input is packed into [1, 2, 5, 5, 4] (two pad lanes), a per-channel
// scale [6, 1, 1] not in a store is padded by a run-time reformat, the expand conv reads the
// padded input (channels = 6), three depthwise convs over 8 run packed, the project conv writes
// 6 channels packed, the residual add reads the packed input itself, one unpack at the end.
builtin.module {
  func.func @pad(%x: tensor<1x6x5x5xf32>) -> tensor<1x6x5x5xf32> {
    %s = nn.weight "s" : tensor<6x1x1xf32>
    %w0 = nn.weight "w0" : tensor<8x6x1x1xf32>
    %wd = nn.weight "wd" : tensor<8x1x3x3xf32>
    %w1 = nn.weight "w1" : tensor<6x8x1x1xf32>
    %m = nn.binary "mul" %x, %s : tensor<1x6x5x5xf32>, tensor<6x1x1xf32> -> tensor<1x6x5x5xf32>
    %e = nn.conv %m, %w0 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x6x5x5xf32>, tensor<8x6x1x1xf32>) -> tensor<1x8x5x5xf32>
    %d0 = nn.conv %e, %wd {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 8 : i64} : (tensor<1x8x5x5xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x5x5xf32>
    %d1 = nn.conv %d0, %wd {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 8 : i64} : (tensor<1x8x5x5xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x5x5xf32>
    %d2 = nn.conv %d1, %wd {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 8 : i64} : (tensor<1x8x5x5xf32>, tensor<8x1x3x3xf32>) -> tensor<1x8x5x5xf32>
    %p = nn.conv %d2, %w1 {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x8x5x5xf32>, tensor<6x8x1x1xf32>) -> tensor<1x6x5x5xf32>
    %y = nn.binary "add" %p, %x : tensor<1x6x5x5xf32>, tensor<1x6x5x5xf32> -> tensor<1x6x5x5xf32>
    func.return %y : tensor<1x6x5x5xf32>
  }
}

// CHECK-LABEL: func.func @pad
// CHECK-NEXT:    %[[X:.*]] = kernel.launch "reformat"(%x) {params = {reformat = "NCHW->NC4HW4", channels = 6 : i64, in_shapes = [array<i64: 1, 6, 5, 5>], {{.*}}out_shapes = [array<i64: 1, 2, 5, 5, 4>]
// CHECK:         %[[S4:.*]] = kernel.view %s : tensor<6x1x1xf32> -> tensor<1x6x1x1xf32, #nn.layout<NCHW>>
// CHECK-NEXT:    %[[S:.*]] = kernel.launch "reformat"(%[[S4]]) {params = {reformat = "NCHW->NC4HW4", channels = 6 : i64, {{.*}}out_shapes = [array<i64: 1, 2, 1, 1, 4>]
// CHECK:         %[[M:.*]] = kernel.elementwise(%[[X]], %[[S]]) : (tensor<1x6x5x5xf32, #nn.layout<NC4HW4>>, tensor<1x6x1x1xf32, #nn.layout<NC4HW4>>)
// CHECK:         kernel.launch "conv"(%[[M]], %w0) {params = {{{.*}}in_shapes = [array<i64: 1, 2, 5, 5, 4>, array<i64: 8, 6, 1, 1>], {{.*}}layout = "NC4HW4", channels = 6 : i64}}
// CHECK-COUNT-3: kernel.launch "conv"({{.*}}groups = 8 : i64{{.*}}layout = "NC4HW4", channels = 8 : i64}}
// CHECK:         %[[P:.*]] = kernel.launch "conv"({{.*}}, %w1) {{.*}}out_shapes = [array<i64: 1, 2, 5, 5, 4>]{{.*}}-> tensor<1x6x5x5xf32, #nn.layout<NC4HW4>>
// CHECK-NEXT:    %[[Y:.*]] = kernel.elementwise(%[[P]], %[[X]])
// CHECK:         %[[O:.*]] = kernel.launch "reformat"(%[[Y]]) {params = {reformat = "NC4HW4->NCHW", channels = 6 : i64, in_shapes = [array<i64: 1, 2, 5, 5, 4>], {{.*}}out_shapes = [array<i64: 1, 6, 5, 5>]
// CHECK-NEXT:    func.return %[[O]]
