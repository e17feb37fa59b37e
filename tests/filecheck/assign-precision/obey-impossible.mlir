// RUN: not ember-opt %s -p 'assign-precision{fp16=true constraints="obey" layer_precisions="rs:fp16"}' 2>&1 | filecheck %s
// RUN: ember-opt %s -p 'assign-precision{fp16=true constraints="prefer" layer_precisions="rs:fp16"}' 2>&1 | filecheck %s --check-prefix=PREFER

// Resize stays FP32 (its coordinate math): pinning it to FP16 is an error under OBEY and a
// warning under PREFER (the op keeps FP32).
builtin.module {
  func.func @f(%x: tensor<1x1x2x2xf32>) -> tensor<1x1x4x4xf32> {
    %y = nn.resize %x {mode = "nearest", scales = array<f64: 1.0, 1.0, 2.0, 2.0>} : tensor<1x1x2x2xf32> -> tensor<1x1x4x4xf32> loc("rs")
    func.return %y : tensor<1x1x4x4xf32>
  }
}

// CHECK: node 'rs' (nn.resize): cannot run in fp16: ember keeps nn.resize in FP32 (OBEY_PRECISION_CONSTRAINTS)
// PREFER: Warning: assign-precision: node 'rs' (nn.resize): cannot run in fp16{{.*}}keeps the precision ember assigns
// PREFER: nn.resize %x {{.*}} : tensor<1x1x2x2xf32> -> tensor<1x1x4x4xf32>
