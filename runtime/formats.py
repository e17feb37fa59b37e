"""Tensor formats of 4-D activations, defined once for every layer (passes, codegen, runtime).

A format orders a logical NCHW tensor's bytes: NCHW (ONNX's), NHWC (channels last) and NC4HW4
(TensorRT's kCHW4: [N, ceil(C/4), H, W, 4], channel c at block c // 4, lane c % 4; the pad lanes
of a C % 4 != 0 tensor are "don't care"). Imports: the standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence

NCHW, NHWC, NC4HW4 = "NCHW", "NHWC", "NC4HW4"
LANES = 4
FORMATS = (NCHW, NHWC, NC4HW4)
# physical dim k of a 4-D tensor in a permuting format is its logical (NCHW) dim PERMS[format][k]
PERMS: dict[str, tuple[int, ...]] = {NCHW: (0, 1, 2, 3), NHWC: (0, 2, 3, 1)}
# TensorRT's names of the formats
ALIASES = {"LINEAR": NCHW, "HWC": NHWC, "CHW4": NC4HW4, "NC/4HW4": NC4HW4}


def blocks(channels: int) -> int:
    """ceil(C / 4): the channel blocks of an NC4HW4 tensor."""
    return -(-int(channels) // LANES)


def physical_of(shape: Sequence, fmt: str) -> tuple:
    """A logical 4-D shape's byte-order shape in `fmt` (NC4HW4 is 5-D)."""
    if fmt == NC4HW4:
        n, c, h, w = shape
        return (n, blocks(c), h, w, LANES)
    return tuple(shape[p] for p in PERMS.get(fmt, PERMS[NCHW]))
