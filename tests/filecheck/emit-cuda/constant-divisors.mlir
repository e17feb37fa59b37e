// RUN: ember-opt %s -p emit-cuda | filecheck %s

// Divisions by a scale: the scale's reciprocal is computed once per thread, at the top of the
// kernel. Where the scale is a constant of the build (an `nn.constant`) in [2^-90, 2^120] and
// the quotient is only rounded and clipped (a quantize), the division has no branch
// (`ember_div_near`); a scale read from a weight the module does not hold (no weights given
// here) keeps `ember_div_by`, whose branch takes the full division where Markstein's step is
// not exact. Codegen still reads the constant from its buffer. (Float32 in, int8 out, 64
// elements: four elements a thread, each lane's values `l<lane>_<n>`; only the cast reads the
// round, so it drops the zero's sign.)
builtin.module {
  func.func @quantize(%x: tensor<64xf32>, %w: tensor<64xf32>) -> (tensor<64xi8>, tensor<64xi8>) {
    %s = nn.constant dense<0.02> : tensor<f32>
    %t = nn.weight "t" : tensor<f32>
    %a = kernel.elementwise(%x, %s) : (tensor<64xf32>, tensor<f32>) -> tensor<64xi8> {
    ^bb0(%0: f32, %1: f32):
      %2 = kernel.scalar "div" %0, %1 : (f32, f32) -> f32
      %3 = kernel.scalar "round" %2 : (f32) -> f32
      %4 = kernel.scalar "clip" %3 {alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : (f32) -> f32
      %5 = kernel.scalar "cast" %4 : (f32) -> i8
      kernel.yield %5 : i8
    }
    %b = kernel.elementwise(%w, %t) : (tensor<64xf32>, tensor<f32>) -> tensor<64xi8> {
    ^bb0(%0: f32, %1: f32):
      %2 = kernel.scalar "div" %0, %1 : (f32, f32) -> f32
      %3 = kernel.scalar "round" %2 : (f32) -> f32
      %4 = kernel.scalar "clip" %3 {alpha = -1.280000e+02 : f64, beta = 1.270000e+02 : f64} : (f32) -> f32
      %5 = kernel.scalar "cast" %4 : (f32) -> i8
      kernel.yield %5 : i8
    }
    func.return %a, %b : tensor<64xi8>, tensor<64xi8>
  }
}

// CHECK:      kernel.cuda "[[KA:elementwise_[0-9a-f]{12}]]"
// CHECK:      | extern "C" __global__ void [[KA]](const float* __restrict__ in0, const float* __restrict__ in1, signed char* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     const float ember_rcp_in1 = __frcp_rn(in1[0]);  // once per thread
// CHECK-NEXT: |     for (int q
// CHECK:      |         const float l0_2 = ember_div_near(l0_0, l0_1, ember_rcp_in1);  // div
// CHECK-NEXT: |         const float l0_3 = ember_rint_unsigned(l0_2, -128.0f, 127.0f);  // round

// CHECK:      kernel.cuda "[[KB:elementwise_[0-9a-f]{12}]]"
// CHECK:      | extern "C" __global__ void [[KB]](const float* __restrict__ in0, const float* __restrict__ in1, signed char* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     const float ember_rcp_in1 = __frcp_rn(in1[0]);  // once per thread
// CHECK-NEXT: |     for (int q
// CHECK:      |         const float l0_2 = ember_div_by(l0_0, l0_1, ember_rcp_in1);  // div
