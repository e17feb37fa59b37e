"""Tensor formats in numpy: the `reformat` kernel (NCHW, NHWC and the channel-packed NC4HW4)
and the pack / unpack helpers the other kernels' NC4HW4 forms use.

NC4HW4 (TensorRT's kCHW4): a logical [N, C, H, W] tensor stored as [N, ceil(C/4), H, W, 4],
channel c at (c // 4, lane c % 4). Pad lanes (C % 4 != 0) are "don't care": packing writes
zeros there, every reader ignores them, unpacking drops them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.runtime.formats import LANES, NC4HW4, NHWC


def pack(x: np.ndarray) -> np.ndarray:
    """Logical NCHW [N, C, H, W] -> NC4HW4 [N, ceil(C/4), H, W, 4], pad lanes zero."""
    n, c, h, w = x.shape
    blocks = -(-c // LANES)
    if blocks * LANES != c:
        x = np.pad(x, [(0, 0), (0, blocks * LANES - c), (0, 0), (0, 0)])
    return np.ascontiguousarray(x.reshape(n, blocks, LANES, h, w).transpose(0, 1, 3, 4, 2))


def unpack(x: np.ndarray, channels: int | None = None) -> np.ndarray:
    """NC4HW4 [N, C4, H, W, 4] -> logical NCHW [N, C, H, W] (pad lanes dropped; all 4*C4
    channels without `channels`)."""
    n, blocks, h, w, lanes = x.shape
    out = x.transpose(0, 1, 4, 2, 3).reshape(n, blocks * lanes, h, w)
    return np.ascontiguousarray(out if channels is None else out[:, :channels])


def to_logical(x: np.ndarray, fmt: str, channels: int | None = None) -> np.ndarray:
    """A 4-D tensor's bytes in `fmt` -> logical NCHW."""
    if fmt == NHWC:
        return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
    if fmt == NC4HW4:
        return unpack(x, channels)
    return x


def from_logical(x: np.ndarray, fmt: str) -> np.ndarray:
    """Logical NCHW -> the bytes of `fmt`."""
    if fmt == NHWC:
        return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))
    if fmt == NC4HW4:
        return pack(x)
    return x


def pack_depthwise_weight(w: np.ndarray) -> np.ndarray:
    """A depthwise conv weight [C, 1, R, S] -> [ceil(C/4), R, S, 4] (channel c at block c // 4,
    lane c % 4; pad channels zero)."""
    c, _, r, s = w.shape
    blocks = -(-c // LANES)
    out = np.zeros((blocks * LANES, r, s), w.dtype)
    out[:c] = w[:, 0]
    return np.ascontiguousarray(out.reshape(blocks, LANES, r, s).transpose(0, 2, 3, 1))


def reformat(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """params["reformat"] = "SRC->DST" over NCHW / NHWC / NC4HW4; params["channels"] = the
    logical C (the pad lanes of an NC4HW4 source are dropped, those of a result are zero);
    `padded_channels` (NCHW->NHWC): the result's channels, zeros after the first C."""
    src, dst = params["reformat"].split("->")
    logical = to_logical(inputs[0], src, int(params["channels"]))
    padded = params.get("padded_channels")
    if padded is not None:
        extra = int(padded) - logical.shape[1]
        logical = np.pad(logical, [(0, 0), (0, extra), (0, 0), (0, 0)])
    return [from_logical(logical, dst)]


KERNELS = {"reformat": reformat}
