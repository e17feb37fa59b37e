// RUN: ember opt %s --plugins %S/Inputs/scaled_softplus.py --passes convert-nn-to-kernel,emit-cuda | filecheck %s
// RUN: not ember-opt %s -p convert-nn-to-kernel,emit-cuda 2>&1 | filecheck %s --check-prefix=UNREGISTERED

// A plugin's kernel comes from its registration (`ember.plugin.aot_impl`), which lives in the
// Python process: `ember opt --plugins FILE.py` runs the file that registers it, then the
// passes. emit-cuda shows the plugin's own CUDA C, renamed to the step's kernel name, with
// the launch geometry it asked for (block 128) and its attributes in a comment. A plugin
// registered without a kernel gets `cuda_fallback` (its numpy reference runs on the host).
// ember-opt registers no plugins, so there the plugin's kernel cannot be emitted at all.
builtin.module {
  func.func @main(%x: tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>) {
    %a = nn.plugin "my.domain::ScaledSoftplus"(%x) {version = "1", attrs = {alpha = 5.000000e-01 : f64}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    %b = nn.plugin "my.domain::HostSoftplus"(%x) {version = "1", attrs = {}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %a, %b : tensor<2x8xf32>, tensor<2x8xf32>
  }
}

// CHECK:      %[[A:.*]] = kernel.launch "plugin"(%x) {params = {plugin = "my.domain::ScaledSoftplus", version = "1", attrs = {alpha = 5.000000e-01 : f64}
// CHECK-NEXT: kernel.cuda "[[K:plugin_[0-9a-f]{12}]]"(%[[A]]) grid [1, 1, 1] block [128, 1, 1] shared 0 : tensor<2x8xf32> {
// CHECK-NEXT: | // plugin 'my.domain::ScaledSoftplus' (version 1): kernel 'scaled_softplus'
// CHECK-NEXT: | // attributes: {'alpha': 0.5}
// CHECK-NEXT: | extern "C" __global__ void [[K]](const float* __restrict__ x, float* __restrict__ y) {
// CHECK-NEXT: |     int i = blockIdx.x * blockDim.x + threadIdx.x;
// CHECK-NEXT: |     if (i < 16) y[i] = 0.5f * log1pf(expf(x[i]));
// CHECK-NEXT: | }
// CHECK-NEXT: }
// CHECK-NEXT: %[[B:.*]] = kernel.launch "plugin"(%x) {cuda_fallback = "step 'plugin_1': template 'plugin': plugin 'my.domain::HostSoftplus' (version 1) has no CUDA kernel (ember.plugin.aot_impl): it runs on the host with its numpy reference", params = {{.*}}}
// CHECK-NEXT: func.return %[[A]], %[[B]]

// UNREGISTERED: ember-opt: error: plugin 'my.domain::ScaledSoftplus' (version 1) is not registered in this process: register it (ember.plugin.register and aot_impl) before building or emitting its kernel
