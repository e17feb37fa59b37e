// RUN: ember-opt %s -p fuse-epilogues | filecheck %s

// A QDQ transformer's layer norm whose only user quantizes it for the next int8 GEMM: the
// quantize becomes the layer norm's epilogue and the launch stores int8 (its params keep the
// FP16 it computes in); the scale joins its operands.
builtin.module {
  func.func @ln_q(%x: tensor<4x64xf16>, %g: tensor<64xf16>, %b: tensor<64xf16>) -> tensor<4x64xi8> {
    %s = nn.constant dense<0.02> : tensor<f32>
    %n = kernel.launch "layer_norm"(%x, %g, %b) {params = {axis = 1 : i64, epsilon = 1.0e-05 : f64, in_shapes = [array<i64: 4, 64>, array<i64: 64>, array<i64: 64>], in_dtypes = ["float16", "float16", "float16"], out_shapes = [array<i64: 4, 64>], out_dtypes = ["float16"]}, origin = ["ln"]} : (tensor<4x64xf16>, tensor<64xf16>, tensor<64xf16>) -> tensor<4x64xf16>
    %q = kernel.elementwise(%n, %s) attributes {origin = ["ln_QuantizeLinear"]} : (tensor<4x64xf16>, tensor<f32>) -> tensor<4x64xi8> {
    ^bb0(%0: f16, %1: f32):
      %2 = kernel.scalar "cast" %0 : (f16) -> f32
      %3 = kernel.scalar "div" %2, %1 : (f32, f32) -> f32
      %4 = kernel.scalar "round" %3 : (f32) -> f32
      %5 = kernel.scalar "clip" %4 {alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : (f32) -> f32
      %6 = kernel.scalar "cast" %5 : (f32) -> i8
      kernel.yield %6 : i8
    }
    func.return %q : tensor<4x64xi8>
  }
}

// CHECK-LABEL: func.func @ln_q
// CHECK:         %[[Q:.*]] = kernel.launch "layer_norm"(%x, %g, %b, %s) {params = {{{.*}}out_dtypes = ["float16"]}, origin = ["ln", "ln_QuantizeLinear"]} : (tensor<4x64xf16>, tensor<64xf16>, tensor<64xf16>, tensor<f32>) -> tensor<4x64xi8> epilogue {
// CHECK-NEXT:    ^bb0(%{{.*}}: f16, %{{.*}}: f32):
// CHECK:           kernel.scalar "cast" %{{.*}} : (f32) -> i8
// CHECK:         func.return %[[Q]] : tensor<4x64xi8>

// The same quantize of an FP16 softmax: its kernels store each element through the epilogue as
// the layer norm's do, so it fuses and the softmax stores int8.
builtin.module {
  func.func @softmax_q(%x: tensor<4x64xf16>) -> tensor<4x64xi8> {
    %s = nn.constant dense<0.02> : tensor<f32>
    %n = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = [array<i64: 4, 64>], in_dtypes = ["float16"], out_shapes = [array<i64: 4, 64>], out_dtypes = ["float16"]}} : (tensor<4x64xf16>) -> tensor<4x64xf16>
    %q = kernel.elementwise(%n, %s) : (tensor<4x64xf16>, tensor<f32>) -> tensor<4x64xi8> {
    ^bb0(%0: f16, %1: f32):
      %2 = kernel.scalar "cast" %0 : (f16) -> f32
      %3 = kernel.scalar "div" %2, %1 : (f32, f32) -> f32
      %6 = kernel.scalar "cast" %3 : (f32) -> i8
      kernel.yield %6 : i8
    }
    func.return %q : tensor<4x64xi8>
  }
}

// CHECK-LABEL: func.func @softmax_q
// CHECK:         %[[P:.*]] = kernel.launch "softmax"(%x, %s) {params = {{{.*}}out_dtypes = ["float16"]}} : (tensor<4x64xf16>, tensor<f32>) -> tensor<4x64xi8> epilogue {
// CHECK:           kernel.scalar "cast" %{{.*}} : (f32) -> i8
// CHECK-NOT:     kernel.elementwise
// CHECK:         func.return %[[P]] : tensor<4x64xi8>

// A QDQ attention's probabilities: the softmax's fake-quantize (quantize, then dequantize back to
// FP16 for the FP16 P x V GEMM) becomes its epilogue; the launch keeps storing FP16.
builtin.module {
  func.func @softmax_fake_quant(%x: tensor<2x128xf16>) -> tensor<2x128xf16> {
    %s = nn.constant dense<0.0039> : tensor<f32>
    %n = kernel.launch "softmax"(%x) {params = {axis = 1 : i64, log = false, in_shapes = [array<i64: 2, 128>], in_dtypes = ["float16"], out_shapes = [array<i64: 2, 128>], out_dtypes = ["float16"]}, origin = ["sm"]} : (tensor<2x128xf16>) -> tensor<2x128xf16>
    %q = kernel.elementwise(%n, %s) attributes {origin = ["sm_QuantizeLinear", "sm_DequantizeLinear"]} : (tensor<2x128xf16>, tensor<f32>) -> tensor<2x128xf16> {
    ^bb0(%0: f16, %1: f32):
      %2 = kernel.scalar "cast" %0 : (f16) -> f32
      %3 = kernel.scalar "div" %2, %1 : (f32, f32) -> f32
      %4 = kernel.scalar "round" %3 : (f32) -> f32
      %5 = kernel.scalar "clip" %4 {alpha = 0.000000e+00 : f64, beta = 2.550000e+02 : f64} : (f32) -> f32
      %6 = kernel.scalar "mul" %5, %1 : (f32, f32) -> f32
      %7 = kernel.scalar "cast" %6 : (f32) -> f16
      kernel.yield %7 : f16
    }
    func.return %q : tensor<2x128xf16>
  }
}

// CHECK-LABEL: func.func @softmax_fake_quant
// CHECK:         %[[F:.*]] = kernel.launch "softmax"(%x, %s) {{.*}}origin = ["sm", "sm_QuantizeLinear", "sm_DequantizeLinear"]} : (tensor<2x128xf16>, tensor<f32>) -> tensor<2x128xf16> epilogue {
// CHECK:           kernel.scalar "round"
// CHECK-NOT:     kernel.elementwise
// CHECK:         func.return %[[F]] : tensor<2x128xf16>
