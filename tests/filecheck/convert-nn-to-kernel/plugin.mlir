// RUN: ember-opt %s -p convert-nn-to-kernel,cse,dce | filecheck %s

// A plugin call is its own op at every level: `nn.plugin` becomes `kernel.launch "plugin"` with
// the plugin's name, version and attributes as params (the plugin need not be registered to
// replay this stage: the declared types stand). Two identical calls are one (it is Pure); an
// unused one goes.
builtin.module {
  func.func @main(%x: tensor<2x8xf32>) -> (tensor<2x8xf32>, tensor<2x8xf32>) {
    %a = nn.plugin "my.domain::ScaledSoftplus"(%x) {version = "1", attrs = {alpha = 5.000000e-01 : f64}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    %b = nn.plugin "my.domain::ScaledSoftplus"(%x) {version = "1", attrs = {alpha = 5.000000e-01 : f64}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    %unused = nn.plugin "my.domain::ScaledSoftplus"(%x) {version = "2", attrs = {alpha = 1.000000e+00 : f64}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
    func.return %a, %b : tensor<2x8xf32>, tensor<2x8xf32>
  }
}

// CHECK:      %[[A:.*]] = kernel.launch "plugin"(%{{.*}}) {params = {plugin = "my.domain::ScaledSoftplus", version = "1", attrs = {alpha = 5.000000e-01 : f64}, in_shapes = [array<i64: 2, 8>], in_dtypes = ["float32"], out_shapes = [array<i64: 2, 8>], out_dtypes = ["float32"]}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
// CHECK-NEXT: func.return %[[A]], %[[A]] : tensor<2x8xf32>, tensor<2x8xf32>
