"""ember's passes, registered by name, and the named pipelines.

A pipeline is a list of pass names; `--passes a,b,c` spells one by hand. Every pass is a
`ModulePass` in its own module, named after the pass (`fold_constants.py` -> `fold-constants`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from xdsl.passes import ModulePass

from ember.errors import PipelineError

# pass name -> (module, class), imported when the pass is asked for: an IR test's `ember-opt`
# runs one or two, and importing all of them (onnx's dialect among what they read) took ~2 s of
# its start. select-tactics, fuse-shortcut-convs, fuse-attention-kernels and emit-cuda read the
# templates (tactic spaces, kernel steps), so they live in codegen (DESIGN §1). A value may also
# be the class itself. tests/passes/test_pass_registry.py checks each name against its class.
REGISTRY: dict[str, tuple[str, str] | type[ModulePass]] = {
    "convert-onnx-to-nn": ("ember.passes.convert_onnx_to_nn", "ConvertOnnxToNN"),
    "infer-shapes": ("ember.passes.infer_shapes", "InferShapes"),
    "fold-constants": ("ember.passes.fold_constants", "FoldConstants"),
    "fold-batch-norm": ("ember.passes.fold_batch_norm", "FoldBatchNorm"),
    "canonicalize": ("ember.passes.canonicalize", "Canonicalize"),
    "convert-nn-to-kernel": ("ember.passes.convert_nn_to_kernel", "ConvertNNToKernel"),
    "fuse-elementwise": ("ember.passes.fuse_elementwise", "FuseElementwise"),
    "fuse-epilogues": ("ember.passes.fuse_epilogues", "FuseEpilogues"),
    "fuse-shortcut-convs": ("ember.codegen.fuse_shortcut_convs", "FuseShortcutConvs"),
    "cancel-requantize": ("ember.passes.cancel_requantize", "CancelRequantize"),
    "cse": ("xdsl.transforms.common_subexpression_elimination",
            "CommonSubexpressionElimination"),
    "dce": ("xdsl.transforms.dead_code_elimination", "DeadCodeElimination"),
    "assign-layouts": ("ember.passes.assign_layouts", "AssignLayouts"),
    "fold-pad": ("ember.passes.fold_pad", "FoldPad"),
    "cancel-transposes": ("ember.passes.cancel_transposes", "CancelTransposes"),
    "merge-parallel-matmuls": ("ember.passes.merge_parallel_matmuls", "MergeParallelMatmuls"),
    "fuse-attention": ("ember.passes.fuse_attention", "FuseAttention"),
    "fuse-normalization": ("ember.passes.fuse_normalization", "FuseNormalization"),
    "fold-scale-shift": ("ember.passes.fold_scale_shift", "FoldScaleShift"),
    "select-tactics": ("ember.codegen.select_tactics", "SelectTactics"),
    "kmajor-matmul-weights": ("ember.passes.kmajor_matmul_weights", "KMajorMatmulWeights"),
    "kmajor-matmul-operands": ("ember.passes.kmajor_matmul_operands", "KMajorMatmulOperands"),
    "tabulate-int8-chains": ("ember.passes.tabulate_int8_chains", "TabulateInt8Chains"),
    "fuse-attention-kernels": ("ember.codegen.fuse_attention_kernels", "FuseAttentionKernels"),
    "pad-conv-channels": ("ember.passes.pad_conv_channels", "PadConvChannels"),
    "fold-channel-pad": ("ember.passes.fold_channel_pad", "FoldChannelPad"),
    "space-to-depth-stem": ("ember.passes.space_to_depth_stem", "SpaceToDepthStem"),
    "fuse-strided-reads": ("ember.passes.fuse_strided_reads", "FuseStridedReads"),
    "emit-cuda": ("ember.codegen.emit_cuda", "EmitCuda"),
    "assign-precision": ("ember.passes.assign_precision", "AssignPrecision"),
    "choose-formats": ("ember.passes.choose_formats", "ChooseFormats"),
    "plan-memory": ("ember.passes.plan_memory", "PlanMemory"),
    "fold-qdq": ("ember.passes.fold_qdq", "FoldQDQ"),
    "fold-quantize-scales": ("ember.passes.fold_quantize_scales", "FoldQuantizeScales"),
}


def _load(entry: Any) -> type[ModulePass]:
    if isinstance(entry, type):
        return entry
    module, cls = entry
    return getattr(importlib.import_module(module), cls)


def available_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass name -> a function returning its class (xDSL's registry shape; the class's module
    is imported when it is called)."""
    return {name: (lambda entry=entry: _load(entry)) for name, entry in REGISTRY.items()}


PIPELINES: dict[str, list[str]] = {
    # ONNX import -> nn, every shape inferred, constants and shape arithmetic folded, BatchNorm
    # and multiplies/adds by constants folded into conv/matmul weights, zero pads folded into
    # convs/pools, transposes/reshapes composed (or absorbed by matmuls), decomposed
    # normalizations and softmax recognized, dead code gone
    "default": ["convert-onnx-to-nn", "fold-constants", "fold-batch-norm", "fold-scale-shift",
                "fold-pad", "cancel-transposes", "fuse-normalization", "canonicalize", "cse", "dce",
                "merge-parallel-matmuls", "fuse-attention"],
    "legalize": ["convert-onnx-to-nn"],
    # only what a plan needs: nn ops with static shapes, then one kernel per nn op (no BatchNorm
    # or pad folding, no fusion, NCHW throughout); BuilderConfig(optimize=False) builds with it
    "unoptimized": ["convert-onnx-to-nn", "fold-constants", "convert-nn-to-kernel"],
    # default, then each nn op becomes the kernel that runs it, each 4-D activation gets the
    # format its kernels prefer (reformats where they differ), elementwise chains fused, and
    # those that post-process a conv / matmul moved into it as its epilogue, int8 values
    # dequantized and quantized again at the same scale left as they were, transposes and
    # slices read by an elementwise kernel through strides; each conv / matmul
    # then gets the cost model's tactic (printed as its `tactic` attribute)
    "kernels": ["convert-onnx-to-nn", "fold-constants", "fold-batch-norm", "fold-scale-shift",
                "fold-pad", "cancel-transposes", "fuse-normalization", "canonicalize", "cse", "dce",
                "merge-parallel-matmuls", "fuse-attention", "convert-nn-to-kernel",
                "assign-layouts", "fuse-elementwise", "fuse-epilogues", "cancel-requantize",
                "fuse-strided-reads", "select-tactics"],
    "none": [],
}


def pass_names(spec: str) -> list[str]:
    """Names in a comma-separated pass list, checked against the registry."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    known = available_passes()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PipelineError(f"unknown pass(es): {', '.join(unknown)}; "
                            f"available: {', '.join(sorted(known))}")
    return names


def pipeline_names(name: str) -> list[str]:
    if name not in PIPELINES:
        raise PipelineError(f"unknown pipeline '{name}'; available: {', '.join(sorted(PIPELINES))}")
    return list(PIPELINES[name])


def make_pass(name: str) -> ModulePass:
    return available_passes()[name]()()
