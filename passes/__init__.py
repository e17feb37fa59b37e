"""ember's passes, registered by name, and the named pipelines.

A pipeline is a list of pass names; `--passes a,b,c` spells one by hand. Every pass is a
`ModulePass` in its own module, named after the pass (`fold_constants.py` -> `fold-constants`).
"""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass
from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination
from xdsl.transforms.dead_code_elimination import DeadCodeElimination

from ember.errors import PipelineError


def _ember_passes() -> list[type[ModulePass]]:
    # select-tactics, fuse-shortcut-convs and fuse-attention-kernels read the templates (tactic
    # spaces, kernel steps) and emit-cuda runs them, so they live in codegen (DESIGN §1)
    from ember.codegen.emit_cuda import EmitCuda
    from ember.codegen.fuse_attention_kernels import FuseAttentionKernels
    from ember.codegen.fuse_shortcut_convs import FuseShortcutConvs
    from ember.codegen.select_tactics import SelectTactics
    from ember.passes.assign_layouts import AssignLayouts
    from ember.passes.assign_precision import AssignPrecision
    from ember.passes.cancel_requantize import CancelRequantize
    from ember.passes.cancel_transposes import CancelTransposes
    from ember.passes.canonicalize import Canonicalize
    from ember.passes.choose_formats import ChooseFormats
    from ember.passes.convert_nn_to_kernel import ConvertNNToKernel
    from ember.passes.convert_onnx_to_nn import ConvertOnnxToNN
    from ember.passes.fold_batch_norm import FoldBatchNorm
    from ember.passes.fold_channel_pad import FoldChannelPad
    from ember.passes.fold_constants import FoldConstants
    from ember.passes.fold_pad import FoldPad
    from ember.passes.fold_qdq import FoldQDQ
    from ember.passes.fold_quantize_scales import FoldQuantizeScales
    from ember.passes.fold_scale_shift import FoldScaleShift
    from ember.passes.fuse_attention import FuseAttention
    from ember.passes.fuse_elementwise import FuseElementwise
    from ember.passes.fuse_epilogues import FuseEpilogues
    from ember.passes.fuse_normalization import FuseNormalization
    from ember.passes.fuse_strided_reads import FuseStridedReads
    from ember.passes.infer_shapes import InferShapes
    from ember.passes.kmajor_matmul_operands import KMajorMatmulOperands
    from ember.passes.kmajor_matmul_weights import KMajorMatmulWeights
    from ember.passes.merge_parallel_matmuls import MergeParallelMatmuls
    from ember.passes.pad_conv_channels import PadConvChannels
    from ember.passes.plan_memory import PlanMemory
    from ember.passes.space_to_depth_stem import SpaceToDepthStem
    from ember.passes.tabulate_int8_chains import TabulateInt8Chains

    return [ConvertOnnxToNN, InferShapes, FoldConstants, FoldBatchNorm, Canonicalize,
            ConvertNNToKernel, FuseElementwise, FuseEpilogues, FuseShortcutConvs, CancelRequantize,
            CommonSubexpressionElimination,
            DeadCodeElimination, AssignLayouts, FoldPad, CancelTransposes, MergeParallelMatmuls,
            FuseAttention, FuseNormalization, FoldScaleShift, SelectTactics, KMajorMatmulWeights,
            KMajorMatmulOperands, TabulateInt8Chains, FuseAttentionKernels,
            PadConvChannels, FoldChannelPad, SpaceToDepthStem, FuseStridedReads,
            EmitCuda, AssignPrecision, ChooseFormats, PlanMemory, FoldQDQ, FoldQuantizeScales]


def available_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass name -> a function returning its class (xDSL's registry shape)."""
    return {p.name: (lambda p=p: p) for p in _ember_passes()}


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
