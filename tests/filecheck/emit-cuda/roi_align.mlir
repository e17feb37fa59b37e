// RUN: ember-opt %s -p 'convert-nn-to-kernel,emit-cuda{symbols="R=1:8:100"}' | filecheck %s

// RoiAlign: one thread per (roi, channel, bin); the roi picks its image by its batch index
// and is scaled by spatial_scale. half_pixel shifts the corners by 0.5 (output_half_pixel does
// not, and clamps the roi to at least 1x1); sampling_ratio 2 samples a fixed 2x2 grid per bin,
// 0 ceil(bin size) samples per dim. Each sample is bilinear (its four corners, 0 outside);
// avg sums and divides by the sample count, max keeps the NaN-propagating maximum of the
// weighted corners. A symbolic roi count R bounds the loop through `sz_R`.
builtin.module {
  func.func @main(%x: tensor<1x2x8x8xf32>, %rois: tensor<?x4xf32, #nn.layout<["R"]>>, %idx: tensor<?xi64, #nn.layout<["R"]>>, %r3: tensor<3x4xf32>, %i3: tensor<3xi64>) -> (tensor<?x2x2x2xf32, #nn.layout<["R"]>>, tensor<3x2x2x2xf32>) {
    %a = nn.roi_align %x, %rois, %idx {mode = "avg", coordinate_transformation_mode = "half_pixel", output_height = 2 : i64, output_width = 2 : i64, sampling_ratio = 2 : i64, spatial_scale = 5.000000e-01 : f64} : (tensor<1x2x8x8xf32>, tensor<?x4xf32, #nn.layout<["R"]>>, tensor<?xi64, #nn.layout<["R"]>>) -> tensor<?x2x2x2xf32, #nn.layout<["R"]>>
    %m = nn.roi_align %x, %r3, %i3 {mode = "max", coordinate_transformation_mode = "output_half_pixel", output_height = 2 : i64, output_width = 2 : i64, sampling_ratio = 0 : i64, spatial_scale = 1.000000e+00 : f64} : (tensor<1x2x8x8xf32>, tensor<3x4xf32>, tensor<3xi64>) -> tensor<3x2x2x2xf32>
    func.return %a, %m : tensor<?x2x2x2xf32, #nn.layout<["R"]>>, tensor<3x2x2x2xf32>
  }
}

// CHECK:      %[[A:.*]] = kernel.launch "roi_align"(%x, %rois, %idx)
// CHECK-NEXT: kernel.cuda "[[KA:roi_align_[0-9a-f]{12}]]"(%[[A]]) grid ["min(cdiv(8*R, 256), 65536)", 1, 1] block [256, 1, 1] shared 0 sizes ["R"] : tensor<?x2x2x2xf32, #nn.layout<["R"]>> {
// CHECK-NEXT: | // roi_align avg [1, 2, 8, 8] -> [sz_R, 2, 2, 2] scale=0.5 sampling_ratio=2 half_pixel
// CHECK:      | extern "C" __global__ void [[KA]](const float* __restrict__ in0, const float* __restrict__ in1, const long long* __restrict__ in2, float* __restrict__ out0, const int sz_R) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < (sz_R*8); i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const float* roi = in1 + (size_t)c0 * 4;
// CHECK-NEXT: |         const long long b = in2[c0];
// CHECK-NEXT: |         const double shift = 0.5;
// CHECK-NEXT: |         const double x1 = (double)roi[0] * 0.5 - shift, y1 = (double)roi[1] * 0.5 - shift;
// CHECK-NEXT: |         double rw = (double)roi[2] * 0.5 - shift - x1, rh = (double)roi[3] * 0.5 - shift - y1;
// CHECK-NEXT: |         const double bh = rh / 2, bw = rw / 2;
// CHECK-NEXT: |         const int gh = 2 > 0 ? 2 : (int)ceil(rh / 2);
// CHECK-NEXT: |         const int gw = 2 > 0 ? 2 : (int)ceil(rw / 2);
// CHECK-NEXT: |         const float* image = in0 + ((size_t)b * 2 + c1) * 64;
// CHECK:      |                 const bool inside = axis_sample(y, 8, &ylo, &yhi, &ly) && axis_sample(x, 8, &xlo, &xhi, &lx);
// CHECK:      |                 acc += v1 + v2 + v3 + v4;
// CHECK:      |         acc /= (gh * gw > 1 ? gh * gw : 1);
// CHECK-NEXT: |         out0[i] = (float)acc;

// CHECK:      %[[M:.*]] = kernel.launch "roi_align"(%x, %r3, %i3)
// CHECK-NEXT: kernel.cuda "[[KM:roi_align_[0-9a-f]{12}]]"(%[[M]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<3x2x2x2xf32> {
// CHECK-NEXT: | // roi_align max [1, 2, 8, 8] -> [3, 2, 2, 2] scale=1.0 sampling_ratio=0 output_half_pixel
// CHECK:      | static __device__ __forceinline__ double nan_max(double a, double b) {
// CHECK:      | extern "C" __global__ void [[KM]](const float* __restrict__ in0, const float* __restrict__ in1, const long long* __restrict__ in2, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 24; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const double shift = 0.0;
// CHECK:      |         rw = rw > 1.0 ? rw : 1.0; rh = rh > 1.0 ? rh : 1.0;
// CHECK:      |         const int gh = 0 > 0 ? 0 : (int)ceil(rh / 2);
// CHECK:      |                 const double m = nan_max(nan_max(v1, v2), nan_max(v3, v4));
// CHECK-NEXT: |                 acc = first ? m : nan_max(acc, m);
// CHECK:      |         out0[i] = (float)acc;
// CHECK:      func.return %[[A]], %[[M]]
