// RUN: not ember-opt %s -p 'convert-nn-to-kernel,select-tactics{tile="128,128,16,8,8"}' 2>&1 | filecheck %s --check-prefix=F64
// RUN: sed 's/f64/f32/g' %s | not ember-opt -p 'convert-nn-to-kernel,select-tactics{tile="64,64,16,8,4"}' 2>&1 | filecheck %s --check-prefix=DIRECT

// A forced tile that cannot take effect on a kernel is an error naming it: a float64 GEMM whose
// tile's shared memory does not fit; a conv with 2 output channels, which runs the direct
// kernel (no GEMM tile).
builtin.module {
  func.func @main(%a: tensor<64x64xf64>, %b: tensor<64x64xf64>, %x: tensor<1x2x4x4xf64>) -> (tensor<64x64xf64>, tensor<1x2x4x4xf64>) {
    %m = nn.matmul %a, %b : (tensor<64x64xf64>, tensor<64x64xf64>) -> tensor<64x64xf64> loc("fc")
    %cw = nn.weight "conv.weight" : tensor<2x2x3x3xf64>
    %c = nn.conv %x, %cw {strides = array<i64: 1, 1>, pads = array<i64: 1, 1, 1, 1>, dilations = array<i64: 1, 1>, groups = 1 : i64} : (tensor<1x2x4x4xf64>, tensor<2x2x3x3xf64>) -> tensor<1x2x4x4xf64> loc("conv")
    func.return %m, %c : tensor<64x64xf64>, tensor<1x2x4x4xf64>
  }
}

// F64: error: select-tactics: tile '128,128,16,8,8' cannot be forced on kernel.launch 'matmul' (ONNX fc): tactic tile 128x128x16 tile, 8x8 per thread needs more than 49152 bytes of shared memory for float64
// DIRECT: error: select-tactics: tile '64,64,16,8,4' cannot be forced on kernel.launch 'conv' (ONNX conv): it has no GEMM tactic (a direct kernel)
