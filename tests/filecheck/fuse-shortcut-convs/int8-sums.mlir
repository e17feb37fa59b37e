// RUN: ember-opt %s -p "fuse-shortcut-convs{arch=sm_90}" | filecheck %s

// A QDQ ResNet block's conv3 (y, 16 channels) whose epilogue adds the downsample conv's
// (x, 64 channels, stride 2) quantized result: one conv over both inputs, the downsample's
// weights first, its int32 sums the epilogue's input 3 (operand x), its own quantize first in
// the region, then conv3's reading that byte where it read the residual; the downsample's
// per-channel scale and bias appended.
builtin.module {
  func.func @block(%y: tensor<1x16x2x2xi8, #nn.layout<NHWC>>, %x: tensor<1x64x4x4xi8, #nn.layout<NHWC>>) -> tensor<1x16x2x2xi8, #nn.layout<NHWC>> {
    %wd = nn.weight "wd" : tensor<16x64x1x1xi8, #nn.layout<NHWC>>
    %w3 = nn.weight "w3" : tensor<16x16x1x1xi8, #nn.layout<NHWC>>
    %sd = nn.constant dense<0.001> : tensor<1x16x1x1xf32, #nn.layout<NHWC>>
    %bd = nn.constant dense<0.5> : tensor<1x16x1x1xf32, #nn.layout<NHWC>>
    %d = kernel.launch "conv"(%x, %wd, %sd, %bd) {format = "NHWC", params = {strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 4, 4, 64>, array<i64: 16, 1, 1, 64>], in_dtypes = ["int8", "int8"], out_shapes = [array<i64: 1, 2, 2, 16>], out_dtypes = ["int32"], layout = "NHWC"}, origin = ["down"]} : (tensor<1x64x4x4xi8, #nn.layout<NHWC>>, tensor<16x64x1x1xi8, #nn.layout<NHWC>>, tensor<1x16x1x1xf32, #nn.layout<NHWC>>, tensor<1x16x1x1xf32, #nn.layout<NHWC>>) -> tensor<1x16x2x2xi8, #nn.layout<NHWC>> epilogue {
    ^bb0(%0: i32, %1: f32, %2: f32):
      %3 = kernel.scalar "cast" %0 : (i32) -> f32
      %4 = kernel.scalar "mul" %3, %1 : (f32, f32) -> f32
      %5 = kernel.scalar "add" %4, %2 : (f32, f32) -> f32
      %6 = kernel.scalar "round" %5 : (f32) -> f32
      %7 = kernel.scalar "clip" %6 {alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : (f32) -> f32
      %8 = kernel.scalar "cast" %7 : (f32) -> i8
      kernel.yield %8 : i8
    }
    %s3 = nn.constant dense<0.002> : tensor<1x16x1x1xf32, #nn.layout<NHWC>>
    %b3 = nn.constant dense<0.25> : tensor<1x16x1x1xf32, #nn.layout<NHWC>>
    %k3 = nn.constant dense<0.75> : tensor<f32>
    %kd = nn.constant dense<0.5> : tensor<f32>
    %o = kernel.launch "conv"(%y, %w3, %s3, %b3, %k3, %d, %kd) {format = "NHWC", params = {strides = array<i64: 1, 1>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 2, 2, 16>, array<i64: 16, 1, 1, 16>], in_dtypes = ["int8", "int8"], out_shapes = [array<i64: 1, 2, 2, 16>], out_dtypes = ["int32"], layout = "NHWC"}, origin = ["conv3", "add"]} : (tensor<1x16x2x2xi8, #nn.layout<NHWC>>, tensor<16x16x1x1xi8, #nn.layout<NHWC>>, tensor<1x16x1x1xf32, #nn.layout<NHWC>>, tensor<1x16x1x1xf32, #nn.layout<NHWC>>, tensor<f32>, tensor<1x16x2x2xi8, #nn.layout<NHWC>>, tensor<f32>) -> tensor<1x16x2x2xi8, #nn.layout<NHWC>> epilogue {
    ^bb0(%0: i32, %1: f32, %2: f32, %3: f32, %4: i8, %5: f32):
      %6 = kernel.scalar "cast" %4 : (i8) -> f32
      %7 = kernel.scalar "mul" %6, %5 : (f32, f32) -> f32
      %8 = kernel.scalar "cast" %0 : (i32) -> f32
      %9 = kernel.scalar "mul" %8, %1 : (f32, f32) -> f32
      %10 = kernel.scalar "add" %9, %2 : (f32, f32) -> f32
      %11 = kernel.scalar "round" %10 : (f32) -> f32
      %12 = kernel.scalar "clip" %11 {alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : (f32) -> f32
      %13 = kernel.scalar "cast" %12 : (f32) -> i8
      %14 = kernel.scalar "cast" %13 : (i8) -> f32
      %15 = kernel.scalar "mul" %14, %3 : (f32, f32) -> f32
      %16 = kernel.scalar "add" %15, %7 : (f32, f32) -> f32
      %17 = kernel.scalar "relu" %16 : (f32) -> f32
      %18 = kernel.scalar "round" %17 : (f32) -> f32
      %19 = kernel.scalar "clip" %18 {alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : (f32) -> f32
      %20 = kernel.scalar "cast" %19 : (f32) -> i8
      kernel.yield %20 : i8
    }
    func.return %o : tensor<1x16x2x2xi8, #nn.layout<NHWC>>
  }
}

{-#
  dialect_resources: {
    ember: {
      "w3": "0x0400000001010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101",
      "wd": "0x04000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    }
  }
#-}

// CHECK-LABEL: func.func @block
// CHECK-NOT:     kernel.launch "conv"(%x
// CHECK:         %[[W:.*]] = nn.weight "w3.shortcut_sums" : tensor<16x80x1x1xi8, #nn.layout<NHWC>>
// CHECK-NEXT:    %{{.*}} = kernel.launch "conv"(%y, %[[W]], %s3, %b3, %k3, %x, %kd, %sd, %bd)
// CHECK-SAME:      in_shapes = [array<i64: 1, 2, 2, 16>, array<i64: 16, 1, 1, 80>]
// CHECK-SAME:      shortcut = {strides = array<i64: 2, 2>, sums = 3 : i64}
// CHECK-SAME:      origin = ["down", "conv3", "add"]
// CHECK-NEXT:    ^bb0(%[[ACC:.*]]: i32, %[[S3:.*]]: f32, %[[B3:.*]]: f32, %[[K3:.*]]: f32, %[[SUMS:.*]]: i32, %[[KD:.*]]: f32, %[[SD:.*]]: f32, %[[BD:.*]]: f32):
// CHECK-NEXT:      %[[D0:.*]] = kernel.scalar "cast" %[[SUMS]] : (i32) -> f32
// CHECK-NEXT:      %[[D1:.*]] = kernel.scalar "mul" %[[D0]], %[[SD]]
// CHECK-NEXT:      %[[D2:.*]] = kernel.scalar "add" %[[D1]], %[[BD]]
// CHECK-NEXT:      %[[D3:.*]] = kernel.scalar "round" %[[D2]]
// CHECK-NEXT:      %[[D4:.*]] = kernel.scalar "clip" %[[D3]]
// CHECK-NEXT:      %[[DQ:.*]] = kernel.scalar "cast" %[[D4]] : (f32) -> i8
// CHECK-NEXT:      %[[R0:.*]] = kernel.scalar "cast" %[[DQ]] : (i8) -> f32
// CHECK-NEXT:      %[[R1:.*]] = kernel.scalar "mul" %[[R0]], %[[KD]]
// CHECK-NEXT:      %{{.*}} = kernel.scalar "cast" %[[ACC]] : (i32) -> f32
// CHECK:           %{{.*}} = kernel.scalar "add" %{{.*}}, %[[R1]]
// CHECK:           kernel.yield %{{.*}} : i8
// CHECK-NOT:     kernel.launch "conv"
// CHECK:         func.return
