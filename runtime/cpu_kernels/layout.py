"""Tensor formats in numpy: the `reformat` kernel (NCHW, NHWC and the channel-packed NC4HW4)
and the pack / unpack helpers the other kernels' NC4HW4 forms use.

NC4HW4 (TensorRT's kCHW4): a logical [N, C, H, W] tensor stored as [N, ceil(C/4), H, W, 4],
channel c at (c // 4, lane c % 4). Pad lanes (C % 4 != 0) are "don't care": packing writes
zeros there, every reader ignores them, unpacking drops them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.errors import PlanError
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


def space_to_depth_weight(w: np.ndarray, block: int, channels: int, padded: int) -> np.ndarray:
    """An OHWI conv weight [O, KH, KW, C'] (its first `channels` channels real) as the weight of
    the same conv over the space-to-depth input (`space_to_depth_input`): [O, ceil(KH / block),
    ceil(KW / block), padded], channel (bh * block + bw) * channels + c of tap (i, j) holding
    tap (block * i + bh, block * j + bw) of channel c (zero past the kernel's edge)."""
    o, kh, kw, _ = w.shape
    th, tw = -(-kh // block), -(-kw // block)
    full = np.zeros((o, th * block, tw * block, channels), w.dtype)
    full[:, :kh, :kw] = w[..., :channels]
    taps = full.reshape(o, th, block, tw, block, channels).transpose(0, 1, 3, 2, 4, 5)
    out = np.zeros((o, th, tw, padded), w.dtype)
    out[..., :block * block * channels] = taps.reshape(o, th, tw, block * block * channels)
    return out


def space_to_depth_input(x: np.ndarray, block: int, pads: list[int], shape: list[int]
                         ) -> np.ndarray:
    """The NCHW `x` [N, C, H, W] zero-padded by `pads` (top, left) and as much as `shape`
    asks on the other sides, as NHWC blocks: [N, H', W', C'] = `shape`, element (n, J, I,
    (bh * block + bw) * C + c) = x[n, c, block * J + bh - top, block * I + bw - left], zeros
    past C * block^2 channels."""
    n, c, h, w = x.shape
    _, hs, ws, padded = shape
    top, left = int(pads[0]), int(pads[1])
    full = np.zeros((n, c, hs * block, ws * block), x.dtype)
    rows = slice(max(top, 0), min(top + h, hs * block))
    cols = slice(max(left, 0), min(left + w, ws * block))
    full[:, :, rows, cols] = x[:, :, rows.start - top:rows.stop - top,
                               cols.start - left:cols.stop - left]
    blocks = full.reshape(n, c, hs, block, ws, block).transpose(0, 2, 4, 3, 5, 1)
    out = np.zeros((n, hs, ws, padded), x.dtype)
    out[..., :block * block * c] = blocks.reshape(n, hs, ws, block * block * c)
    return out


def space_to_depth_params(params: dict[str, Any]) -> tuple[int, int, int] | None:
    """(block, top, left) of a reformat's `space_to_depth` (None without it), its params
    checked against each other: NCHW -> NHWC, `pads` two ints, `channels` the input's C,
    `padded_channels` the result's, room for block^2 x C channels; `pads` without
    `space_to_depth` takes no effect anywhere, so it is an error too."""
    block = params.get("space_to_depth")
    if block is None:
        if params.get("pads") is not None:
            raise PlanError("reformat: `pads` is only read with `space_to_depth`")
        return None
    pads = list(params.get("pads") or [])
    in_c = params["in_shapes"][0][1]
    out_c = params["out_shapes"][0][-1]
    if params["reformat"] != "NCHW->NHWC" or len(pads) != 2 or int(block) < 1 \
            or params.get("channels") != in_c or params.get("padded_channels") != out_c \
            or out_c < int(block) ** 2 * in_c:
        raise PlanError(f"reformat: space_to_depth {block} with reformat "
                        f"{params['reformat']}, pads {pads}, channels "
                        f"{params.get('channels')} of {in_c}, padded_channels "
                        f"{params.get('padded_channels')} of {out_c}: they do not agree")
    return int(block), int(pads[0]), int(pads[1])


def reformat(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """params["reformat"] = "SRC->DST" over NCHW / NHWC / NC4HW4; params["channels"] = the
    logical C (the pad lanes of an NC4HW4 source are dropped, those of a result are zero);
    `padded_channels` (NCHW->NHWC): the result's channels, zeros after the first C;
    `space_to_depth` (NCHW->NHWC, with `pads`): the input as blocks of that many pixels a side
    (`space_to_depth_input`: a strided stem conv's input, `space-to-depth-stem`). The result is
    stored in out_dtypes[0] (a float input cast, where the two differ)."""
    src, dst = params["reformat"].split("->")
    out_dtype = np.dtype(params["out_dtypes"][0]) if "out_dtypes" in params else None
    blocks = space_to_depth_params(params)
    if blocks is not None:
        block, top, left = blocks
        out = space_to_depth_input(inputs[0], block, [top, left], params["out_shapes"][0])
        return [out.astype(out_dtype) if out_dtype is not None else out]
    logical = to_logical(inputs[0], src, int(params["channels"]))
    padded = params.get("padded_channels")
    if padded is not None:
        extra = int(padded) - logical.shape[1]
        logical = np.pad(logical, [(0, 0), (0, extra), (0, 0), (0, 0)])
    out = from_logical(logical, dst)
    return [out.astype(out_dtype) if out_dtype is not None and out.dtype != out_dtype else out]


KERNELS = {"reformat": reformat}
