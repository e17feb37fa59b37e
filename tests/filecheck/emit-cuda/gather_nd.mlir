// RUN: ember-opt %s -p convert-nn-to-kernel,emit-cuda | filecheck %s

// GatherND: one thread per output element; index row `row` picks a slice of data, its k
// indices each wrapped once if negative and checked (an out-of-range row reads 0). With
// batch_dims 0, rows of 2 indices into [2, 3, 4] pick 4-element slices (strides 12 and 4);
// with batch_dims 1 each sample's 5 rows of 1 index stay inside their batch (12 elements on).
builtin.module {
  func.func @main(%x: tensor<2x3x4xf32>, %i: tensor<5x2xi64>, %j: tensor<2x5x1xi64>) -> (tensor<5x4xf32>, tensor<2x5x4xf32>) {
    %a = nn.gather_nd %x, %i {batch_dims = 0 : i64} : (tensor<2x3x4xf32>, tensor<5x2xi64>) -> tensor<5x4xf32>
    %b = nn.gather_nd %x, %j {batch_dims = 1 : i64} : (tensor<2x3x4xf32>, tensor<2x5x1xi64>) -> tensor<2x5x4xf32>
    func.return %a, %b : tensor<5x4xf32>, tensor<2x5x4xf32>
  }
}

// CHECK:      %[[A:.*]] = kernel.launch "gather_nd"(%x, %i)
// CHECK-NEXT: kernel.cuda "[[KA:gather_nd_[0-9a-f]{12}]]"(%[[A]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<5x4xf32> {
// CHECK-NEXT: | // gather_nd batch_dims 0: data [2, 3, 4], indices [5, 2] float32
// CHECK:      | extern "C" __global__ void [[KA]](const float* __restrict__ in0, const long long* __restrict__ in1, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 20; i += (int)blockDim.x * gridDim.x) {
// CHECK-NEXT: |         const int r = i % 4;
// CHECK-NEXT: |         const int row = i / 4;
// CHECK-NEXT: |         const int batch = row / 5;
// CHECK-NEXT: |         size_t offset = (size_t)batch * 24 + r;
// CHECK-NEXT: |         bool inside = true;
// CHECK-NEXT: |         long long i0 = (long long)in1[(size_t)row * 2 + 0];
// CHECK-NEXT: |         if (i0 < 0) i0 += 2;
// CHECK-NEXT: |         inside = inside && i0 >= 0 && i0 < 2;
// CHECK-NEXT: |         offset += (size_t)i0 * 12;
// CHECK-NEXT: |         long long i1 = (long long)in1[(size_t)row * 2 + 1];
// CHECK-NEXT: |         if (i1 < 0) i1 += 3;
// CHECK-NEXT: |         inside = inside && i1 >= 0 && i1 < 3;
// CHECK-NEXT: |         offset += (size_t)i1 * 4;
// CHECK-NEXT: |         out0[i] = inside ? in0[offset] : in0[0] * 0;

// CHECK:      %[[B:.*]] = kernel.launch "gather_nd"(%x, %j)
// CHECK-NEXT: kernel.cuda "[[KB:gather_nd_[0-9a-f]{12}]]"(%[[B]]) grid [1, 1, 1] block [256, 1, 1] shared 0 : tensor<2x5x4xf32> {
// CHECK-NEXT: | // gather_nd batch_dims 1: data [2, 3, 4], indices [2, 5, 1] float32
// CHECK:      | extern "C" __global__ void [[KB]](const float* __restrict__ in0, const long long* __restrict__ in1, float* __restrict__ out0) {
// CHECK-NEXT: |     ember_pdl_sync();
// CHECK-NEXT: |     for (int i = (int)blockIdx.x * blockDim.x + threadIdx.x; i < 40; i += (int)blockDim.x * gridDim.x) {
// CHECK:      |         const int batch = row / 5;
// CHECK-NEXT: |         size_t offset = (size_t)batch * 12 + r;
// CHECK-NEXT: |         bool inside = true;
// CHECK-NEXT: |         long long i0 = (long long)in1[(size_t)row * 1 + 0];
// CHECK-NEXT: |         if (i0 < 0) i0 += 3;
// CHECK-NEXT: |         inside = inside && i0 >= 0 && i0 < 3;
// CHECK-NEXT: |         offset += (size_t)i0 * 4;
// CHECK-NEXT: |         out0[i] = inside ? in0[offset] : in0[0] * 0;
// CHECK:      func.return %[[A]], %[[B]]
