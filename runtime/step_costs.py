"""What a plan step must compute and move: its FLOPs (a multiply-add counts 2) and the bytes of
its operands and results, each read or written once — the two numbers a roofline divides by.
`ember bench --dumpProfile` turns them into achieved TFLOP/s, GB/s and % of the roofline. Counted
from the step's params (in/out shapes and dtypes) at the run's symbol values; numpy/stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ember.runtime.manifest import ML_DTYPES
from ember.runtime.symbolic import dim_value

# per-element FLOPs of the templates that are not a product of sizes: an approximation of the
# arithmetic each output (or input) element needs, as roofline tools count it
_PER_INPUT_ELEMENT = {"softmax": 5, "reduce": 1, "arg_reduce": 1, "batch_norm": 2,
                      "layer_norm": 8, "group_norm": 8, "cumsum": 1}


@dataclass(frozen=True)
class StepCost:
    """One step's work: `flops` (None where a dim is unknown) and `bytes` moved; `math`: the
    unit the FLOPs run on ("int8" for 8-bit integer operands, "fp8" for E4M3 ones, "fp16" for
    half types, "tf32" for FP32 on tensor cores, "fp32")."""

    flops: int | None
    bytes: int | None
    math: str


def _numel(shape: Sequence[Any] | None, values: Mapping[str, int]) -> int | None:
    if shape is None or any(d is None for d in shape):
        return None
    return math.prod(dim_value(d, values) for d in shape)


def _nbytes(shapes: Sequence[Any], dtypes: Sequence[str], values: Mapping[str, int]
            ) -> int | None:
    total = 0
    for shape, dtype in zip(shapes, dtypes, strict=False):
        n = _numel(shape, values)
        if n is None:
            return None
        if dtype in ML_DTYPES:  # numpy knows their names once ml_dtypes is imported
            import ml_dtypes  # noqa: F401  (an onnx dependency)
        total += n * np.dtype(dtype).itemsize
    return total


def _einsum_flops(equation: str, shapes: Sequence[Sequence[int]]) -> int | None:
    lhs = equation.replace(" ", "").split("->")[0]
    if "..." in lhs:
        return None
    sizes: dict[str, int] = {}
    for letters, shape in zip(lhs.split(","), shapes, strict=False):
        if len(letters) != len(shape):
            return None
        sizes.update(zip(letters, shape, strict=True))
    return 2 * math.prod(sizes.values())


def _core_flops(template: str, params: Mapping[str, Any], ins: list[Any], out: int | None
                ) -> int | None:
    """The template's own FLOPs (without its epilogue); None where it cannot be counted."""
    shapes = params.get("in_shapes") or []
    if template == "conv":
        w = ins[1] if len(ins) > 1 else None
        if out is None or w is None:
            return None
        taps = w[1] * w[2] if params.get("weight_layout") == "C4RS4" else math.prod(w[1:])
        return 2 * out * taps
    if template == "conv_transpose":
        if ins[0] is None or len(ins) < 2 or ins[1] is None:
            return None
        return 2 * math.prod(ins[0]) * math.prod(ins[1][1:])
    if template == "matmul":
        a = ins[0]
        if out is None or a is None:
            return None
        k = a[-2] if params.get("transpose_a") and len(a) > 1 else a[-1]
        return 2 * out * k
    if template == "attention":
        q, k = ins[0], ins[1]
        if q is None or k is None:
            return None
        heads, dim = int(params["num_heads"]), int(params["head_dim"])
        return 4 * q[0] * heads * q[1] * k[1] * dim  # QK^T and PV, 2 FLOPs per MAC each
    if template == "einsum":
        if any(s is None for s in ins) or "equation" not in params:
            return None
        return _einsum_flops(str(params["equation"]), ins)
    if template == "elementwise":
        return None if out is None else out * len(params["region"]["ops"])
    if template == "pool":
        kernel = params.get("kernel")
        if out is None or not kernel:
            return None if out is None or ins[0] is None else math.prod(ins[0])
        return out * math.prod(kernel)
    if template == "lrn":
        return None if out is None else out * (int(params.get("size", 1)) + 3)
    per = _PER_INPUT_ELEMENT.get(template)
    if per is not None:
        return None if not shapes or ins[0] is None else per * math.prod(ins[0])
    return 0  # data movement: copies, reformats, gathers, pads, ...


def step_cost(step: Mapping[str, Any], values: Mapping[str, int] | None = None) -> StepCost:
    """FLOPs and bytes of one manifest step at these symbol values (`values`: symbol -> int)."""
    values = values or {}
    params = step.get("params") or {}
    template = str(step.get("template", ""))
    in_shapes = list(params.get("in_shapes") or [])
    in_dtypes = list(params.get("in_dtypes") or [])
    out_shapes = list(params.get("out_shapes") or [])
    out_dtypes = list(params.get("out_dtypes") or [])
    epilogue = params.get("epilogue") or {}
    read = list(in_shapes)
    for view in params.get("in_views") or ():  # read through strides: one element per output
        read[int(view["input"])] = out_shapes[0]
    moved = [_nbytes(read, in_dtypes, values), _nbytes(out_shapes, out_dtypes, values),
             _nbytes(epilogue.get("in_shapes") or [], epilogue.get("in_dtypes") or [], values)]
    nbytes = None if None in moved else sum(moved)  # type: ignore[arg-type]

    def concrete(shape: Sequence[Any] | None) -> list[int] | None:
        if shape is None or any(d is None for d in shape):
            return None
        return [dim_value(d, values) for d in shape]

    ins = [concrete(s) for s in in_shapes]
    out = _numel(out_shapes[0], values) if out_shapes else None
    flops = _core_flops(template, params, ins or [None], out)
    if flops is not None and epilogue.get("ops"):
        flops = None if out is None else flops + out * len(epilogue["ops"])
    dtypes = set(in_dtypes[:2]) | set(out_dtypes[:1])
    tactic = params.get("tactic")
    on_tensor_cores = isinstance(tactic, Mapping) and any(k in tactic for k in ("mma", "wgmma"))
    if dtypes & {"int8", "uint8"}:
        unit = "int8"
    elif "float8_e4m3fn" in in_dtypes[:2]:
        unit = "fp8"  # fold-qdq's FP8 convs and matmuls (E4M3 operands, float32 sums)
    elif dtypes & {"float16", "bfloat16"}:
        unit = "fp16"
    elif params.get("tf32") and on_tensor_cores:
        unit = "tf32"
    else:
        unit = "fp32"
    return StepCost(flops, nbytes, unit)


__all__ = ["StepCost", "step_cost"]
