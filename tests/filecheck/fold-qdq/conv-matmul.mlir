// RUN: ember-opt %s -p fold-qdq | filecheck %s
// RUN: ember-opt %s -p 'fold-qdq{multiple=16}' | filecheck %s --check-prefix=GPU
// RUN: ember-opt %s -p 'fold-qdq{multiple=16 int8=false}' | filecheck %s --check-prefix=PRE

// A conv between dequantizes of an int8 activation (one scale, zero point 0) and an int8
// weight (a scale per output channel) becomes the integer conv (int32 sums), a cast, a
// multiply by sx * sw[channel] (0.5 * [0.25, 0.125] = [0.125, 0.0625]) and the bias add; the
// matmul likewise, its weight scaled per column (axis 1). The cast, multiply and add carry
// `ember.qdq_math`: assign-precision keeps them FP32 under FP16 (an int32 sum overflows half).
// A conv reading uint8 data (or with a
// non-zero zero point) stays float; its per-tensor dequantize becomes arithmetic (quantize.mlir).
builtin.module {
  func.func @main(%xq: tensor<1x2x4x4xi8>, %aq: tensor<3x4xi8>, %uq: tensor<1x2x4x4xui8>) -> (tensor<1x2x2x2xf32>, tensor<3x2xf32>, tensor<1x2x2x2xf32>) {
    %sx = nn.constant dense<5.000000e-01> : tensor<f32>
    %zx = nn.constant dense<0> : tensor<i8>
    %x = nn.dequantize %xq, %sx, %zx {axis = 1 : i64} : (tensor<1x2x4x4xi8>, tensor<f32>, tensor<i8>) -> tensor<1x2x4x4xf32>
    %wq = nn.constant dense<1> : tensor<2x2x3x3xi8>
    %sw = nn.constant dense<[2.500000e-01, 1.250000e-01]> : tensor<2xf32>
    %w = nn.dequantize %wq, %sw {axis = 0 : i64} : (tensor<2x2x3x3xi8>, tensor<2xf32>) -> tensor<2x2x3x3xf32>
    %b = nn.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
    %y = nn.conv %x, %w, %b {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
    %a = nn.dequantize %aq, %sx {axis = 1 : i64} : (tensor<3x4xi8>, tensor<f32>) -> tensor<3x4xf32>
    %mq = nn.constant dense<2> : tensor<4x2xi8>
    %ms = nn.constant dense<[1.000000e+00, 4.000000e+00]> : tensor<2xf32>
    %m = nn.dequantize %mq, %ms {axis = 1 : i64} : (tensor<4x2xi8>, tensor<2xf32>) -> tensor<4x2xf32>
    %r = nn.matmul %a, %m : (tensor<3x4xf32>, tensor<4x2xf32>) -> tensor<3x2xf32>
    %u = nn.dequantize %uq, %sx {axis = 1 : i64} : (tensor<1x2x4x4xui8>, tensor<f32>) -> tensor<1x2x4x4xf32>
    %v = nn.conv %u, %w {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x2x2xf32>
    func.return %y, %r, %v : tensor<1x2x2x2xf32>, tensor<3x2xf32>, tensor<1x2x2x2xf32>
  }
}

// CHECK:      %[[ACC:.*]] = nn.conv %xq, %wq {{{.*}}} : (tensor<1x2x4x4xi8>, tensor<2x2x3x3xi8>) -> tensor<1x2x2x2xi32>
// CHECK-NEXT: %[[F:.*]] = nn.cast %[[ACC]] {ember.qdq_math, to = f32} : tensor<1x2x2x2xi32> -> tensor<1x2x2x2xf32>
// CHECK-NEXT: %[[S:.*]] = nn.constant dense<{{\[}}[{{\[}}[1.250000e-01]], {{\[}}[6.250000e-02]]]]> : tensor<1x2x1x1xf32>
// CHECK-NEXT: %[[M:.*]] = nn.binary "mul" %[[F]], %[[S]] {ember.qdq_math} : tensor<1x2x2x2xf32>, tensor<1x2x1x1xf32> -> tensor<1x2x2x2xf32>
// CHECK-NEXT: %[[B:.*]] = nn.constant dense<{{\[}}[{{\[}}[1.000000e+00]], {{\[}}[2.000000e+00]]]]> : tensor<1x2x1x1xf32>
// CHECK-NEXT: %[[Y:.*]] = nn.binary "add" %[[M]], %[[B]] {ember.qdq_math}
// CHECK:      %[[MACC:.*]] = nn.matmul %aq, %mq : (tensor<3x4xi8>, tensor<4x2xi8>) -> tensor<3x2xi32>
// CHECK-NEXT: %[[MF:.*]] = nn.cast %[[MACC]] {ember.qdq_math, to = f32}
// CHECK-NEXT: %[[MS:.*]] = nn.constant dense<{{\[}}[5.000000e-01, 2.000000e+00]]> : tensor<1x2xf32>
// CHECK-NEXT: %[[R:.*]] = nn.binary "mul" %[[MF]], %[[MS]] {ember.qdq_math}
// CHECK:      %[[UF:.*]] = nn.cast %uq {ember.qdq_math, to = f32}
// CHECK:      %[[U:.*]] = nn.binary "mul" %[[UF]]
// CHECK:      %[[V:.*]] = nn.conv %[[U]], %w {{{.*}}} : (tensor<1x2x4x4xf32>, tensor<2x2x3x3xf32>) -> tensor<1x2x2x2xf32>
// CHECK:      func.return %[[Y]], %[[R]], %[[V]]

// With multiple=16 (GPU builds: what the INT8 tensor cores read at a time) the 2-channel conv
// reads its int8 input and weight zero-padded to 16 channels (pad-channels.mlir); the K = 4
// matmul stays float.
// GPU:      nn.pad %xq {{.*}} -> tensor<1x16x4x4xi8>
// GPU:      nn.conv {{.*}} : (tensor<1x16x4x4xi8>, tensor<2x16x3x3xi8>) -> tensor<1x2x2x2xi32>
// GPU:      nn.matmul %a, %m : (tensor<3x4xf32>, tensor<4x2xf32>)

// With int8=false (GPU builds for targets before sm_80: no INT8 tensor cores) nothing folds onto
// int8: the conv and matmul take the dequantized input and weight, in float32.
// PRE-NOT:  xi32>
// PRE:      %[[X:.*]] = nn.binary "mul" {{.*}} {ember.qdq_math}
// PRE:      %[[W:.*]] = nn.dequantize %wq
// PRE:      nn.conv %[[X]], %[[W]], %b {{.*}} -> tensor<1x2x2x2xf32>
// PRE:      nn.matmul %a, %m : (tensor<3x4xf32>, tensor<4x2xf32>)
// PRE-NOT:  xi32>
