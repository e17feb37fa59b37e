// RUN: ember-opt %s -p "fuse-shortcut-convs{arch=sm_90}" | filecheck %s

// The block of int8-sums.mlir with a downsample over 32 channels: its sums would not end on a
// k-tile of the fused loop (64 bytes), so the pair stays apart.
builtin.module {
  func.func @block(%y: tensor<1x16x2x2xi8, #nn.layout<NHWC>>, %x: tensor<1x32x4x4xi8, #nn.layout<NHWC>>) -> tensor<1x16x2x2xi8, #nn.layout<NHWC>> {
    %wd = nn.weight "wd" : tensor<16x32x1x1xi8, #nn.layout<NHWC>>
    %w3 = nn.weight "w3" : tensor<16x16x1x1xi8, #nn.layout<NHWC>>
    %sd = nn.constant dense<0.001> : tensor<1x16x1x1xf32, #nn.layout<NHWC>>
    %bd = nn.constant dense<0.5> : tensor<1x16x1x1xf32, #nn.layout<NHWC>>
    %d = kernel.launch "conv"(%x, %wd, %sd, %bd) {format = "NHWC", params = {strides = array<i64: 2, 2>, pads = array<i64: 0, 0, 0, 0>, dilations = array<i64: 1, 1>, groups = 1 : i64, in_shapes = [array<i64: 1, 4, 4, 32>, array<i64: 16, 1, 1, 32>], in_dtypes = ["int8", "int8"], out_shapes = [array<i64: 1, 2, 2, 16>], out_dtypes = ["int32"], layout = "NHWC"}, origin = ["down"]} : (tensor<1x32x4x4xi8, #nn.layout<NHWC>>, tensor<16x32x1x1xi8, #nn.layout<NHWC>>, tensor<1x16x1x1xf32, #nn.layout<NHWC>>, tensor<1x16x1x1xf32, #nn.layout<NHWC>>) -> tensor<1x16x2x2xi8, #nn.layout<NHWC>> epilogue {
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
      "wd": "0x04000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    }
  }
#-}

// CHECK-LABEL: func.func @block
// CHECK:         %[[D:.*]] = kernel.launch "conv"(%x, %wd, %sd, %bd)
// CHECK:         kernel.launch "conv"(%y, %w3, %s3, %b3, %k3, %[[D]], %kd)
// CHECK-NOT:     shortcut
