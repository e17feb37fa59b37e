// RUN: ember-opt %s -p convert-nn-to-kernel,fuse-epilogues,plan-memory -t manifest | filecheck %s --check-prefix=CPU
// RUN: ember-opt %s -p 'convert-nn-to-kernel,fuse-epilogues,select-tactics{arch="sm_90"},plan-memory,emit-cuda' -t 'manifest{arch="sm_90"}' | filecheck %s --check-prefix=GPU
// RUN: not ember-opt %s -p convert-nn-to-kernel,plan-memory -t 'manifest{arch="sm_90"}' 2>&1 | filecheck %s --check-prefix=NOEMIT

// The packer turns the final kernel IR into the plan's manifest in one step (-t manifest shows
// it): I/O and buffers (arena offsets as plan-memory set them), each kernel op a step with its
// params (the epilogue region as ops over numbered values) and, in a GPU plan, the tactic that
// select-tactics chose and the launch of the kernel that emit-cuda recorded (name = template +
// hash of its source), each kernel once. Without emit-cuda's records there is no GPU plan.
builtin.module {
  func.func @main(%x: tensor<64x96xf32> {ember.name = "x"}, %w: tensor<96x128xf32> {ember.name = "w"}) -> (tensor<64x128xf32> {ember.name = "y"}) {
    %y = nn.matmul %x, %w : (tensor<64x96xf32>, tensor<96x128xf32>) -> tensor<64x128xf32>
    %r = nn.unary "relu" %y : tensor<64x128xf32> -> tensor<64x128xf32>
    func.return %r : tensor<64x128xf32>
  }
}

// CPU:      "target": {"device": "any"},
// CPU:      "inputs": [
// CPU-NEXT:   {"name": "x", "dtype": "float32", "shape": [64, 96], "format": "", "buffer": 0},
// CPU-NEXT:   {"name": "w", "dtype": "float32", "shape": [96, 128], "format": "", "buffer": 1}
// CPU:      "buffers": [
// CPU-NEXT:   {"id": 0, "kind": "input", "dtype": "float32", "shape": [64, 96], "name": "x"},
// CPU-NEXT:   {"id": 1, "kind": "input", "dtype": "float32", "shape": [96, 128], "name": "w"},
// CPU-NEXT:   {"id": 2, "kind": "arena", "dtype": "float32", "shape": [64, 128], "offset": 0}
// CPU-NEXT: ],
// CPU-NEXT: "arena_bytes": 32768,
// CPU-NEXT: "activation_bytes": 32768,
// CPU:      "steps": [
// CPU-NEXT:   {"name": "matmul_0", "template": "matmul", "params": {"in_shapes": [[64, 96], [96, 128]], "in_dtypes": ["float32", "float32"], "out_shapes": [[64, 128]], "out_dtypes": ["float32"], "epilogue": {"ops": [{"fn": "relu", "args": [0], "dtype": "float32"}], "result": 1, "in_shapes": [], "in_dtypes": []}}, "inputs": [0, 1], "outputs": [2], "origin": []}
// CPU-NEXT: ]
// CPU-NOT:  "kernels"

// GPU:      "target": {"device": "cuda", "arch": "sm_90", "nvrtc": [{{[0-9]+}}, {{[0-9]+}}]},
// GPU:      "steps": [
// GPU-NEXT:   {"name": "matmul_0", "template": "matmul", "params": {{{.*}} "tactic": {"tile": [16, 16, 16, 1, 1], "splits": 3}, "epilogue": {{{.*}}}}, "inputs": [0, 1], "outputs": [2], "origin": [], "cuda": {"kernel": "[[K:matmul_[0-9a-f]{12}]]", "grid": [8, 4, 3], "block": [256, 1, 1], "shared": 0, "counters": 128, "workspace": 98304, "pdl": true}}
// GPU-NEXT: ],
// GPU-NEXT: "kernels": [
// GPU-NEXT:   {"name": "[[K]]", "cubin_offset": 0, "cubin_size": {{[0-9]+}}, "ptx_offset": 0, "ptx_size": {{[0-9]+}}, "source_offset": 0, "source_size": {{[0-9]+}}}
// GPU-NEXT: ]

// NOEMIT: error: step 'matmul_0' has no CUDA kernel: run emit-cuda before packing a plan for sm_90
