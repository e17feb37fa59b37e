// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// GridSample: one thread per output element. The grid's last dim holds (x, y), so the height
// coordinate v0 reads gbase + 1 and the width v1 gbase + 0; each is unnormalized to pixels as
// ((g + 1) * size - 1) / 2 without align_corners and (g + 1) / 2 * (size - 1) with it.
// Bilinear with zeros padding sums 2x2 taps, a tap outside the 4x4 image dropped (`ok`);
// nearest with reflection padding rounds half to even (rint), reflects the coordinate into
// [0, 3] and reads one tap.
builtin.module {
  func.func @main(%x: tensor<1x2x4x4xf32>, %g: tensor<1x3x3x2xf32>) -> (tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>) {
    %l = nn.grid_sample "linear" "zeros" %x, %g {align_corners = false} : (tensor<1x2x4x4xf32>, tensor<1x3x3x2xf32>) -> tensor<1x2x3x3xf32>
    %n = nn.grid_sample "nearest" "reflection" %x, %g {align_corners = true} : (tensor<1x2x4x4xf32>, tensor<1x3x3x2xf32>) -> tensor<1x2x3x3xf32>
    func.return %l, %n : tensor<1x2x3x3xf32>, tensor<1x2x3x3xf32>
  }
}

// CHECK:      %[[L:.*]] = kernel.launch "grid_sample"(%x, %g)
// CHECK-NEXT: kernel.cuda "[[KL:grid_sample_[0-9a-f]{12}]]"(%[[L]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x3x3xf32> {
// CHECK-NEXT: | // grid_sample linear padding=zeros align_corners=0 [1, 2, 4, 4] at [1, 3, 3, 2] float32
// CHECK:      | // a tap's index along a dim of `size` under zeros padding (ok: false where it reads 0)
// CHECK-NEXT: | __device__ __forceinline__ int gs_index(int k, int size, float lo, float hi, bool& ok) {
// CHECK-NEXT: |     ok = ok && k >= 0 && k < size;
// CHECK:      | extern "C" __global__ void [[KL]](const float* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 18; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const size_t gbase = (size_t)o0 * 18 + (size_t)o2 * 6 + (size_t)o3 * 2;
// CHECK-NEXT: |         const size_t xbase = (size_t)o0 * 32 + (size_t)o1 * 16;
// CHECK-NEXT: |         float v0 = (float)((((float)in1[gbase + 1] + 1) * 4 - 1) / 2);
// CHECK-NEXT: |         const float lo0 = -0.5, hi0 = 3.5;
// CHECK-NEXT: |         float v1 = (float)((((float)in1[gbase + 0] + 1) * 4 - 1) / 2);
// CHECK:      |         w0[0] = 1 - t0; w0[1] = t0;
// CHECK:      |         w1[0] = 1 - t1; w1[1] = t1;
// CHECK-NEXT: |         float acc = 0;
// CHECK-NEXT: |         for (int j0 = 0; j0 < 2; ++j0) {
// CHECK-NEXT: |             bool ok0 = true;
// CHECK-NEXT: |             const int k0 = gs_index((int)f0 + j0 + (0), 4, lo0, hi0, ok0);
// CHECK-NEXT: |             for (int j1 = 0; j1 < 2; ++j1) {
// CHECK-NEXT: |                 bool ok1 = ok0;
// CHECK-NEXT: |                 const int k1 = gs_index((int)f1 + j1 + (0), 4, lo1, hi1, ok1);
// CHECK-NEXT: |                 if (ok1) acc += w0[j0] * w1[j1] * (float)in0[xbase + (size_t)k0 * 4 + (size_t)k1 * 1];
// CHECK:      |         out0[i] = (float)acc;

// CHECK:      %[[N:.*]] = kernel.launch "grid_sample"(%x, %g)
// CHECK-NEXT: kernel.cuda "[[KN:grid_sample_[0-9a-f]{12}]]"(%[[N]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<1x2x3x3xf32> {
// CHECK-NEXT: | // grid_sample nearest padding=reflection align_corners=1 [1, 2, 4, 4] at [1, 3, 3, 2] float32
// CHECK:      | // a tap's index along a dim of `size` under reflection padding (ok: false where it reads 0)
// CHECK-NEXT: | __device__ __forceinline__ int gs_index(int k, int size, float lo, float hi, bool& ok) {
// CHECK-NEXT: |     int r = (int)trunc(gs_reflect((float)k, lo, hi));
// CHECK:      | extern "C" __global__ void [[KN]](const float* __restrict__ in0, const float* __restrict__ in1, float* __restrict__ out0) {
// CHECK:      |         float v0 = (float)(((float)in1[gbase + 1] + 1) / 2 * 3);
// CHECK-NEXT: |         const float lo0 = 0.0, hi0 = 3.0;
// CHECK-NEXT: |         v0 = rint(v0);
// CHECK-NEXT: |         if (v0 < lo0 || v0 > hi0) v0 = gs_reflect(v0, lo0, hi0);
// CHECK:      |         bool ok = true;
// CHECK-NEXT: |         const int k0 = gs_index((int)trunc(v0), 4, lo0, hi0, ok);
// CHECK-NEXT: |         const int k1 = gs_index((int)trunc(v1), 4, lo1, hi1, ok);
// CHECK-NEXT: |         const float acc = ok ? (float)in0[xbase + (size_t)k0 * 4 + (size_t)k1 * 1] : 0;
// CHECK:      func.return %[[L]], %[[N]]
