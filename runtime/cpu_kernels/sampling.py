"""Sampling and spectral kernels (ONNX semantics): grid_sample (ONNX GridSample, opsets 16, 20,
22: any number of spatial dims; nearest, linear and cubic; zeros, border and reflection
padding) and dft (ONNX DFT, below).

X is [N, C, D1, ..., Dr], the grid [N, O1, ..., Ok, r] with normalized coordinates in [-1, 1]
whose last entry indexes D1 and whose first indexes Dr (x before y, as in PyTorch); the result
is [N, C, O1, ..., Ok]. Coordinates are computed in float32 (float64 for a float64 X), as ONNX's
reference does: denormalized (align_corners: -1 and 1 are the centres of the corner pixels;
else their outer edges), for nearest rounded half to even, then brought inside the border
(clamped, or reflected back and forth) where padding says so; each tap reads the pixel at its
index under the same padding rule (zeros: 0 outside).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ember.errors import ShapeError

MODES = ("linear", "nearest", "cubic")
PADDING_MODES = ("zeros", "border", "reflection")
CUBIC_A = -0.75  # Keys' cubic convolution, as PyTorch and ONNX


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """x reflected by the nearer border until it lies in [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, lo)
    below, above = x < lo, x > hi
    d = np.where(below, lo - x, np.where(above, x - hi, 0))
    flips = np.trunc(d / span)
    r = d - flips * span
    even = flips % 2 == 0
    out = np.where(below, np.where(even, lo + r, hi - r), x)
    return np.where(above, np.where(even, hi - r, lo + r), out).astype(x.dtype)


def _cubic(t: np.ndarray) -> list[np.ndarray]:
    """The four cubic weights of taps floor-1 .. floor+2 at fraction t."""
    a = CUBIC_A
    x = np.abs(t)
    return [((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a,
            ((a + 2) * x - (a + 3)) * x * x + 1,
            ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1,
            ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a]


def grid_sample_array(x: np.ndarray, grid: np.ndarray, mode: str, padding_mode: str,
                      align_corners: bool) -> np.ndarray:
    if mode not in MODES or padding_mode not in PADDING_MODES:
        raise ShapeError(f"nn.grid_sample: mode '{mode}' / padding_mode '{padding_mode}' (modes "
                         f"{', '.join(MODES)}; padding {', '.join(PADDING_MODES)})")
    r = x.ndim - 2
    if r < 1 or grid.ndim != r + 2 or grid.shape[-1] != r or grid.shape[0] != x.shape[0]:
        raise ShapeError(f"nn.grid_sample: X {list(x.shape)} and grid {list(grid.shape)} do not "
                         f"fit ([N, C, D1..Dr] and [N, ..., r])")
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    out_shape = (n, c, *grid.shape[1:-1])
    if 0 in out_shape:
        return np.zeros(out_shape, x.dtype)
    ftype = np.float64 if x.dtype == np.float64 else np.float32
    grid = grid.astype(ftype)
    lo = [0.0 if align_corners else -0.5] * r
    hi = [d - 1.0 if align_corners else d - 0.5 for d in spatial]
    coords = []
    for i, size in enumerate(spatial):
        g = grid[..., r - 1 - i]
        v = (g + 1) / 2 * (size - 1) if align_corners else ((g + 1) * size - 1) / 2
        v = v.astype(ftype)
        if mode == "nearest":
            v = np.rint(v)
        outside = (v < lo[i]) | (v > hi[i])
        if padding_mode == "border":
            v = np.where(outside, np.clip(v, 0, size - 1), v)
        elif padding_mode == "reflection":
            v = np.where(outside, _reflect(v, lo[i], hi[i]), v)
        coords.append(v.astype(ftype))
    # channels last, so one gather reads every channel of a tap: [N, D1..Dr, C]
    data = np.moveaxis(x, 1, -1)
    batch = np.arange(n).reshape((n,) + (1,) * (grid.ndim - 2))

    def tap(indices: list[np.ndarray]) -> np.ndarray:
        """X at integer indices per spatial dim (each [N, O...]) under the padding rule:
        [N, O..., C]."""
        valid = np.ones(indices[0].shape, bool)
        fixed = []
        for i, (k, size) in enumerate(zip(indices, spatial, strict=True)):
            if padding_mode == "zeros":
                valid &= (k >= 0) & (k < size)
                k = np.clip(k, 0, size - 1)
            elif padding_mode == "border":
                k = np.clip(k, 0, size - 1)
            else:
                k = np.clip(np.trunc(_reflect(k.astype(ftype), lo[i], hi[i])).astype(np.int64),
                            0, size - 1)
            fixed.append(k)
        values = data[(batch, *fixed)]
        return np.where(valid[..., None], values, np.zeros((), x.dtype))

    if mode == "nearest":
        out = tap([np.trunc(v).astype(np.int64) for v in coords])
    else:
        floors = [np.floor(v) for v in coords]
        fracs = [(v - f).astype(ftype) for v, f in zip(coords, floors, strict=True)]
        if mode == "linear":
            offsets, weights = (0, 1), [[1 - t, t] for t in fracs]
        else:
            offsets, weights = (-1, 0, 1, 2), [_cubic(t) for t in fracs]
        out = np.zeros((*grid.shape[:-1], c), ftype)
        for corner in itertools.product(range(len(offsets)), repeat=r):
            w = np.ones(grid.shape[:-1], ftype)
            for i, j in enumerate(corner):
                w = w * weights[i][j]
            indices = [f.astype(np.int64) + offsets[j] for f, j in zip(floors, corner,
                                                                         strict=True)]
            out += w[..., None] * tap(indices).astype(ftype)
    return np.moveaxis(out, -1, 1).astype(x.dtype)


def grid_sample(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    x, grid = (np.asarray(a) for a in inputs)
    return [grid_sample_array(x, grid, params["mode"], params["padding_mode"],
                              bool(params["align_corners"]))]


KERNELS = {"grid_sample": grid_sample}


# -- dft -----------------------------------------------------------------------------------------

def dft_shape(shape: list, axis: int, length: int | None, inverse: bool,
              onesided: bool) -> list:
    """ONNX DFT's result shape: the signal axis `length` long (half plus one for a one-sided
    forward transform), the last dim 2 (real, imaginary), or 1 for a one-sided inverse (a real
    signal)."""
    out = list(shape)
    if length is None:
        length = 2 * (shape[axis] - 1) if inverse and onesided else shape[axis]
    out[axis] = length // 2 + 1 if onesided and not inverse else length
    out[-1] = 1 if inverse and onesided else 2
    return out


def dft(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX DFT (opsets 17-20) along `axis` (or the run-time `dyn_axis`), `dft_length` long (or
    the run-time `dyn_length`; zero-padded or cut), inverse (normalized by 1 / length) and
    one-sided forms; complex values as [..., 2] (real, imaginary), a real input as [..., 1]."""
    from ember.runtime.cpu_kernels.common import dynamic_values, normalize_axis, one

    x = np.asarray(inputs[0])
    dynamic = dynamic_values(inputs, params)
    axis = int(one(dynamic["dyn_axis"], "axis", "nn.dft")) if "dyn_axis" in dynamic \
        else params["axis"]
    axis = normalize_axis(axis, x.ndim, "nn.dft")
    if axis == x.ndim - 1:
        raise ShapeError("nn.dft: the axis must not be the last (real, imaginary) dim")
    inverse, onesided = bool(params.get("inverse")), bool(params.get("onesided"))
    length = int(one(dynamic["dyn_length"], "dft_length", "nn.dft")) if "dyn_length" in dynamic \
        else params.get("dft_length")
    if length is None:
        length = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    if length < 1:
        raise ShapeError(f"nn.dft: dft_length {length} must be positive")
    if x.shape[-1] == 1:
        signal = x[..., 0].astype(np.complex128)
    elif x.shape[-1] == 2:
        signal = x[..., 0].astype(np.float64) + 1j * x[..., 1].astype(np.float64)
    else:
        raise ShapeError(f"nn.dft: the last dim is {x.shape[-1]}, not 1 (real) or 2 (complex)")
    if inverse and onesided:
        out = np.fft.irfft(signal, n=length, axis=axis)[..., None]
    elif inverse:
        out = np.fft.ifft(signal, n=length, axis=axis)
    else:
        out = np.fft.fft(signal, n=length, axis=axis)
        if onesided:
            out = np.take(out, np.arange(length // 2 + 1), axis=axis)
    if np.iscomplexobj(out):
        out = np.stack([out.real, out.imag], axis=-1)
    return [np.ascontiguousarray(out.astype(x.dtype))]


KERNELS["dft"] = dft


def stft(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX STFT: frames of the signal [batch, length, 1 or 2] every `frame_step` samples, each
    `frame_length` long (else the window's length, else the signal's), weighted by the window
    (else ones) and transformed (one-sided with `onesided`): [batch, frames, bins, 2]."""
    from ember.runtime.cpu_kernels.common import dynamic_values, one

    x = np.asarray(inputs[0])
    given = dynamic_values(inputs, params)
    step = int(one(given["frame_step"], "frame_step", "nn.stft"))
    window = given.get("window")
    if "frame_length" in given:
        length = int(one(given["frame_length"], "frame_length", "nn.stft"))
    else:
        length = len(window) if window is not None else x.shape[-2]
    if window is None:
        window = np.ones(length, x.dtype)
    if x.ndim != 3 or x.shape[-1] not in (1, 2) or step < 1 or length < 1 \
            or length > x.shape[1] or np.ndim(window) != 1:
        raise ShapeError(f"nn.stft: signal {list(x.shape)}, frame_step {step}, frame_length "
                         f"{length}, window {list(np.shape(window))} do not fit")
    size = len(window)
    frames = 1 + (x.shape[1] - length) // step
    signal = x[..., 0].astype(np.float64) + (1j * x[..., 1] if x.shape[-1] == 2 else 0)
    padded = np.concatenate([signal, np.zeros((x.shape[0], size), signal.dtype)], axis=1)
    starts = np.arange(frames) * step
    framed = padded[:, starts[:, None] + np.arange(size)] * np.asarray(window, np.float64)
    out = np.fft.fft(framed, n=length, axis=-1)
    if params.get("onesided"):
        out = out[..., : length // 2 + 1]
    return [np.ascontiguousarray(np.stack([out.real, out.imag], -1).astype(x.dtype))]


KERNELS["stft"] = stft
