"""What a kernel costs in each format, and a reformat between two: choose-formats' cost sources.

`ModelCosts` estimates seconds without a GPU: a kernel takes the longer of its memory floor
(the bytes it reads and writes, in that format, over `BANDWIDTH`) and, for a conv, its GEMM's
time by the templates' own tactic cost models (`gemm_tiles`, `gemm_mma`, `gemm_wgmma`: the best
candidate's estimate, scaled to seconds by the rate measured for their best tile) slowed by what
the format does to its loads. A reformat is memory-bound: a launch plus reading and writing the
tensor over `BANDWIDTH`. `MeasuredCosts` times conv and pool kernels and the reformats on the
GPU present (`autotune.time_kernels`: every candidate tactic of the kernel in that format, the
fastest counts) and takes the model's estimate for the rest (memory-bound kernels cost the same
in every format but for NC4HW4's pad lanes, which the model counts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from xdsl.ir import Operation, SSAValue

from ember.codegen.templates import gemm_mma, gemm_tiles, gemm_wgmma
from ember.codegen.templates.conv import DIRECT_BELOW
from ember.dialects.attributes import attribute_value
from ember.dialects.dtypes import numpy_dtype
from ember.dialects.kernel import LaunchOp
from ember.dialects.tensor_types import element_type_of, static_shape
from ember.errors import EmberError
from ember.runtime.formats import NC4HW4, NCHW, NHWC, PERMS, physical_of

# the device the estimates are for (H100/H200 SXM; only the ratios between formats matter)
BANDWIDTH = 3.0e12   # bytes/s a memory-bound kernel moves (HBM3, ~90% of the H100's peak)
LAUNCH_S = 2e-6      # a kernel launch inside a CUDA graph, what a reformat adds besides bytes
# multiply-adds per second per multiprocessor at a tile efficiency of 1.0: the best tile's
# measured rate on a 4096^3 GEMM (FP32 register tile 42.5 TFLOP/s on the H100, session 2;
# FP16 mma.sync 277 TFLOP/s on the H200, session 5), over 2 flops and 132 SMs
FP32_MACS_PER_SM = 42.5e12 / 2 / gemm_tiles.SM_COUNT
MMA_MACS_PER_SM = 277e12 / 2 / gemm_tiles.SM_COUNT
# TF32 tensor cores run at half the FP16 rate (H100: 495 vs 990 dense TFLOP/s)
TF32_SLOWDOWN = 2.0
# the FP32 implicit-GEMM conv in NHWC against NCHW (ResNet-50 batch 32 on the H100: 9.93 ms
# vs 9.58, NOTES session 2): the same tiles, channels-fastest im2col gathers
FP32_NHWC_SLOWDOWN = 9.93 / 9.58
# a tensor-core conv whose im2col cannot be copied in 16-byte chunks (NCHW, or fewer than 8
# channels a group) loads element by element: ResNet-50 batch 32 FP16 on the H200, conv1
# (C = 3, NCHW) 28 TFLOP/s against layer1's NHWC 3x3 conv 114 (NOTES session 5)
SCATTERED_LOADS_SLOWDOWN = 4.0
# the GEMM conv reading NC4HW4 through its address functions (stride-4 channel reads): an
# estimate from MobileNetV2 batch 32 FP32, 2.51 ms packed vs 1.84 NCHW (NOTES session 2)
PACKED_GEMM_SLOWDOWN = 1.5
# the direct conv (depthwise and other narrow groups), multiply-adds per second over the GPU
DIRECT_MACS = 8e12
# depthwise FP32 in NC4HW4 with packed weights runs 4 channels a thread on float4s (estimate)
PACKED_DEPTHWISE_SPEEDUP = 1.4
HALF = ("float16", "bfloat16")
# INT8 tensor cores do twice the MACs of FP16 per instruction (m16n8k32 vs m16n8k16)
INT8_SPEEDUP = 2.0
# a step with no CUDA kernel in a format runs on the host: MAC/s of the numpy conv, roughly
HOST_MACS = 2e10


def _itemsize(v: SSAValue) -> int:
    try:
        return np.dtype(numpy_dtype(element_type_of(v))).itemsize
    except (EmberError, TypeError, KeyError):
        return 4


def value_bytes(v: SSAValue, fmt: str = NCHW) -> int:
    """The bytes of a value's buffer, a 4-D one in `fmt` (0 where its shape is symbolic)."""
    shape = static_shape(v)
    if shape is None:
        return 0
    if len(shape) == 4:
        shape = physical_of(shape, fmt)
    return int(np.prod(shape, dtype=np.int64)) * _itemsize(v)


def _is_activation(op: Operation, index: int, v: SSAValue) -> bool:
    shape = static_shape(v)
    return (shape is not None and len(shape) == 4
            and not (isinstance(op, LaunchOp) and op.template.data == "conv" and index == 1))


class ConvGeometry:
    """A conv op's GEMM in logical terms: per group, M = out channels, N = output pixels,
    K = channels x taps."""

    def __init__(self, op: LaunchOp) -> None:
        p = attribute_value(op.params)
        x, w = static_shape(op.inputs[0]), static_shape(op.inputs[1])
        out = static_shape(op.results[0])
        self.groups = int(p.get("groups", 1))
        self.channels, self.cout = x[1], w[0]
        self.cg, self.mg = x[1] // self.groups, w[0] // self.groups
        self.k = self.cg * int(np.prod(w[2:]))
        self.positions = out[0] * int(np.prod(out[2:]))
        self.dtype = p["out_dtypes"][0]
        self.dtypes = {*p["in_dtypes"], self.dtype}
        self.tf32 = bool(p.get("tf32"))
        self.depthwise = self.groups == self.channels == self.cout and w[1] == 1

    def chunks(self, lanes: int) -> bool:
        """Whether NHWC im2col copies a pixel's channels `lanes` at a time."""
        return self.cg % lanes == 0 and self.channels % lanes == 0


def _fp32_tile_seconds(m: int, n: int, k: int, batch: int, itemsize: int) -> float:
    best = min(gemm_tiles.estimated_cost(g, eff, regs, m, n, k, batch)
               for tile, eff, regs in gemm_tiles.TILES
               if tile.shared_bytes(itemsize) <= gemm_tiles.SHARED_LIMIT
               for g in gemm_tiles.split_choices(gemm_tiles.Gemm, tile, k))
    return best / FP32_MACS_PER_SM


def _mma_seconds(m: int, n: int, k: int, batch: int) -> float:
    g = gemm_mma.ranked(m, n, k, batch)[0]
    return gemm_mma.estimated_cost(g, dict(gemm_mma.MMA_TILES)[g.tile], m, n, k,
                                   batch) / MMA_MACS_PER_SM


def _wgmma_seconds(m: int, n: int, k: int, batch: int) -> float:
    best = min(gemm_wgmma.estimated_cost(t, e, m, n, k, batch) for t, e in gemm_wgmma.WGMMA_TILES)
    return best / gemm_wgmma.SPEEDUP_OVER_MMA / MMA_MACS_PER_SM


def conv_seconds(cv: ConvGeometry, fmt: str, arch: str | None) -> float:
    """The compute time of a conv in `fmt` by the tactic cost models (memory not counted)."""
    if cv.mg < DIRECT_BELOW:
        seconds = cv.positions * cv.cout * cv.k / DIRECT_MACS
        if fmt == NC4HW4 and cv.depthwise and cv.dtype == "float32":
            seconds /= PACKED_DEPTHWISE_SPEEDUP
        return seconds
    if fmt == NHWC:
        m, n = cv.positions, cv.mg
    else:
        m, n = cv.mg, cv.positions
    if cv.dtypes in ({"int8", "int32"}, {"float8_e4m3fn", "float32"}):
        # INT8 / FP8 tensor cores: NHWC over 16k channels only
        if fmt == NHWC and cv.chunks(16) and cv.groups == 1:
            return _mma_seconds(m, n, cv.k // 2, cv.groups) / INT8_SPEEDUP
        return cv.positions * cv.cout * cv.k / HOST_MACS
    if len(cv.dtypes) == 1 and cv.dtype in HALF and fmt != NC4HW4:
        seconds = _mma_seconds(m, n, cv.k, cv.groups)
        if fmt == NHWC and cv.chunks(8):
            if gemm_wgmma.targets(arch):
                seconds = min(seconds, _wgmma_seconds(m, n, cv.k, cv.groups))
        else:
            seconds *= SCATTERED_LOADS_SLOWDOWN
        return seconds
    # CUDA-core register tiles: the same GEMM in every format, transposed in NHWC
    itemsize = 8 if cv.dtype == "float64" else 4
    seconds = _fp32_tile_seconds(cv.mg, cv.positions, cv.k, cv.groups, itemsize)
    if fmt == NHWC:
        seconds *= FP32_NHWC_SLOWDOWN
        if cv.tf32 and cv.chunks(4) and gemm_wgmma.targets(arch):
            # the register tile stays a candidate in NHWC (the autotuner times both; without
            # it select-tactics runs the best wgmma tile there)
            seconds = min(seconds, _wgmma_seconds(m, n, cv.k, cv.groups) * TF32_SLOWDOWN)
    elif fmt == NC4HW4:
        seconds *= PACKED_GEMM_SLOWDOWN
    return seconds


class ModelCosts:
    """The cost model: seconds estimated from shapes, without a GPU."""

    source = "model"
    launch_seconds = LAUNCH_S

    def __init__(self, arch: str | None = None) -> None:
        self.arch = arch or None
        self._bytes: dict[tuple[SSAValue, str], int] = {}  # (reading a type's shape is slow)

    def bytes(self, v: SSAValue, fmt: str) -> int:
        if (v, fmt) not in self._bytes:
            self._bytes[(v, fmt)] = value_bytes(v, fmt)
        return self._bytes[(v, fmt)]

    def kernel(self, op: Operation, fmt: str) -> float:
        moved = sum(self.bytes(v, fmt if _is_activation(op, i, v) else NCHW)
                    for i, v in enumerate(op.operands))
        moved += sum(self.bytes(r, fmt) for r in op.results)
        seconds = moved / BANDWIDTH
        if isinstance(op, LaunchOp) and op.template.data == "conv":
            seconds = max(seconds, conv_seconds(ConvGeometry(op), fmt, self.arch))
        return seconds

    def reformat(self, v: SSAValue, src: str, dst: str) -> float:
        if src == dst or static_shape(v) is None:
            return 0.0  # (the pass asks nothing of a value whose formats share their bytes)
        return LAUNCH_S + (self.bytes(v, src) + self.bytes(v, dst)) / BANDWIDTH

    def kernels(self, requests: Sequence[tuple[Operation, str]]) -> list[float]:
        return [self.kernel(op, fmt) for op, fmt in requests]

    def reformats(self, requests: Sequence[tuple[SSAValue, str, str]]) -> list[float]:
        return [self.reformat(v, src, dst) for v, src, dst in requests]


# templates whose time depends on the format beyond the bytes they move: timed on the GPU
MEASURED = ("conv", "pool")


def format_params(op: LaunchOp, fmt: str) -> dict[str, Any]:
    """A conv or pool op's params (logical, before assign-layouts) as the kernel in `fmt`
    reads them (assign-layouts' physical terms): shapes in byte order, conv weights OHWI in
    NHWC (OIHW in NC4HW4), `layout`, and a packed conv's logical `channels`."""
    p = attribute_value(op.params)
    if fmt == NCHW:
        return p
    own = len(p.get("in_shapes", []))
    shapes = []
    for i, v in enumerate(op.inputs[:own]):
        shape = static_shape(v)
        if _is_activation(op, i, v) or (i == 1 and fmt == NHWC and len(shape) == 4):
            shape = physical_of(shape, fmt)  # a weight OIHW -> OHWI as NCHW -> NHWC
        shapes.append(list(shape))
    p["in_shapes"] = shapes
    p["out_shapes"] = [list(physical_of(static_shape(r), fmt)) for r in op.results]
    p["layout"] = fmt
    if fmt == NC4HW4 and op.template.data == "conv":
        p["channels"] = static_shape(op.inputs[0])[1]
    return p


def reformat_step(v: SSAValue, src: str, dst: str) -> dict[str, Any]:
    """The kernel that reformats `v` from `src` to `dst`, as assign-layouts inserts it."""
    shape, dtype = static_shape(v), np.dtype(numpy_dtype(element_type_of(v))).name
    io = {"in_shapes": [list(physical_of(shape, src))], "in_dtypes": [dtype],
          "out_shapes": [list(physical_of(shape, dst))], "out_dtypes": [dtype]}
    label = f"{src}->{dst}"
    if src in PERMS and dst in PERMS:
        inverse = [PERMS[src].index(d) for d in range(4)]
        perm = [inverse[PERMS[dst][k]] for k in range(4)]
        return {"template": "transpose", "params": {"perm": perm, "reformat": label, **io}}
    return {"template": "reformat", "params": {"reformat": label, "channels": shape[1], **io}}


class MeasuredCosts(ModelCosts):
    """Conv and pool kernels with a choice of formats, and reformats, timed on the GPU present
    (which must be `arch`); the model for the rest and wherever nothing could be timed."""

    source = "measured"

    def __init__(self, arch: str) -> None:
        super().__init__(arch)
        if not arch:
            raise EmberError("choose-formats{source=\"measured\"} needs the build's arch (the "
                             "GPU to time kernels on)")

    def kernels(self, requests: Sequence[tuple[Operation, str]]) -> list[float]:
        from ember.codegen.autotune import time_kernels

        out = super().kernels(requests)
        # only kernels with a choice to make, of static shapes
        formats = Counter(op for op, _ in requests)
        timed = [i for i, (op, _) in enumerate(requests)
                 if isinstance(op, LaunchOp) and op.template.data in MEASURED
                 and formats[op] > 1 and all(static_shape(v) is not None
                                             for v in (*op.operands, *op.results))]
        steps = [{"name": f"{requests[i][0].template.data}_{requests[i][1]}",
                  "template": requests[i][0].template.data,
                  "params": format_params(requests[i][0], requests[i][1])} for i in timed]
        for i, ms in zip(timed, time_kernels(steps, self.arch), strict=True):
            if ms is not None:
                out[i] = ms * 1e-3
        return out

    def reformats(self, requests: Sequence[tuple[SSAValue, str, str]]) -> list[float]:
        from ember.codegen.autotune import time_kernels

        out = super().reformats(requests)
        timed = [i for i, cost in enumerate(out) if cost > 0]
        steps = [dict(reformat_step(*requests[i]), name=f"reformat_{i}") for i in timed]
        for i, ms in zip(timed, time_kernels(steps, self.arch), strict=True):
            if ms is not None:
                out[i] = ms * 1e-3
        return out


__all__ = ["BANDWIDTH", "ConvGeometry", "MeasuredCosts", "ModelCosts", "conv_seconds",
           "format_params", "reformat_step", "value_bytes"]
