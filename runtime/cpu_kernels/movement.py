"""Data-movement kernels (ONNX semantics): reshape, shape_of, transpose, slice, concat, gather,
gather_elements, expand, tile, pad, resize, range, trilu, cumsum, squeeze, unsqueeze.

Parameters ONNX may compute at run time come as extra inputs after the data input; for ops with
several optional ones, params["dynamic"] names the present ones in order. The helpers that turn
ONNX's parameter forms into per-dim ones (slice_params, full_pads, resize_params, squeeze_dims,
...) work on dims that may be symbolic (strings) too, so the compiler uses them as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ember.errors import ShapeError
from ember.runtime.cpu_kernels.common import (
    BIG,
    INT64_MAX,
    dynamic_values,
    known_floats,
    known_ints,
    normalize_axis,
    one,
    out_shape,
)

Dim = Any  # int, or a symbolic dim (str)


def ints(name: str, values: Sequence[int], rank: int, op: str) -> list[int]:
    values = [int(v) for v in values]
    if len(values) != rank:
        raise ShapeError(f"{op}: {name} has {len(values)} entries for rank {rank}")
    return values


# -- reshape and shapes --------------------------------------------------------------------------

def copy_zero_dims(input_shape: Sequence[Dim], target: Sequence[Dim],
                   allowzero: bool = False) -> list[Dim]:
    """ONNX Reshape's target with each 0 replaced by the input's dim (unless allowzero)."""
    out = []
    for i, d in enumerate(target):
        if isinstance(d, int) and d == 0 and not allowzero:
            if i >= len(input_shape):
                raise ShapeError(
                    f"reshape: dim #{i} is 0 but the input has rank {len(input_shape)}")
            out.append(input_shape[i])
        else:
            out.append(d)
    if out.count(-1) > 1:
        raise ShapeError("reshape: more than one -1 in the target shape")
    if any(isinstance(d, int) and d < -1 for d in out):
        raise ShapeError(f"reshape: invalid target dim in {list(target)}")
    return out


def reshape(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Same elements, new shape: the run-time shape operand (0 copies, -1 infers), else the
    result shape (one unknown dim is inferred)."""
    x = np.asarray(inputs[0])
    if len(inputs) > 1:
        target = copy_zero_dims(x.shape, [int(d) for d in np.asarray(inputs[1]).reshape(-1)],
                                bool(params.get("allowzero")))
        result = x.reshape(target)
        planned = out_shape(params)
        if planned is not None and all(isinstance(d, int) for d in planned) \
                and list(result.shape) != list(planned):
            raise ShapeError(f"nn.reshape: the run-time shape operand gives "
                             f"{list(result.shape)} where the plan has {list(planned)}")
        return [result]
    shape = out_shape(params)
    target = [-1 if d is None else d for d in shape or ()]
    if shape is None or target.count(-1) > 1:
        raise ShapeError(f"nn.reshape: cannot resolve the result shape {shape} at run time")
    return [x.reshape(target)]


def shape_of(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """The dims start:end of the input's shape (int64)."""
    dims = np.shape(inputs[0])[slice(params.get("start", 0), params.get("end"))]
    return [np.array(dims, np.int64)]


def transpose(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    return [np.ascontiguousarray(np.transpose(inputs[0], params["perm"]))]


# -- slices ---------------------------------------------------------------------------------------

def slice_bounds(start: int, end: int, step: int, dim: int) -> tuple[int, int]:
    """ONNX Slice's clamping of one axis: negative starts/ends count from the end; the result
    lies in [0, dim] for positive steps and [-1, dim - 1] for negative ones."""
    if step == 0:
        raise ShapeError("nn.slice: a step must not be 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)


def slice_length(start: int, end: int, step: int) -> int:
    """Number of elements of a clamped slice."""
    if step > 0:
        return max(0, -(-(end - start) // step))
    return max(0, -(-(start - end) // -step))


def slice_params(shape: Sequence[Dim], starts: Sequence[int], ends: Sequence[int],
                 axes: Sequence[int] | None = None, steps: Sequence[int] | None = None,
                 ) -> tuple[list[int], list[int], list[int]]:
    """ONNX Slice's starts/ends/axes/steps as nn.slice's per-dim starts/ends/steps: static dims
    clamped to [0, dim] ("through index 0 backwards" as -(dim + 1)), symbolic ones kept."""
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError("nn.slice: starts, ends, axes and steps differ in length")
    axes = [normalize_axis(int(a), rank, "nn.slice") for a in axes]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"nn.slice: repeated axes {axes}")
    by_axis = {a: (int(s), int(e), int(st)) for a, s, e, st in zip(axes, starts, ends, steps,
                                                                    strict=True)}
    s_all, e_all, st_all = [], [], []
    for i, d in enumerate(shape):
        s, e, st = by_axis.get(i, (0, INT64_MAX, 1))
        if st == 0:
            raise ShapeError(f"nn.slice: step 0 on axis {i}")
        if isinstance(d, int):
            s, e = slice_bounds(s, e, st, d)
            if e < 0:  # "through index 0" going backwards: -1 would count from the end
                e = -d - 1
        else:
            s, e = max(min(s, INT64_MAX), -INT64_MAX), max(min(e, INT64_MAX), -INT64_MAX)
            if st > 0 and e >= BIG:
                e = INT64_MAX
        s_all.append(s)
        e_all.append(e)
        st_all.append(st)
    return s_all, e_all, st_all


_SLICE_OPERANDS = ("dyn_starts", "dyn_ends", "dyn_axes", "dyn_steps")


def slice_(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """x[starts:ends:steps] per dim, or ONNX Slice's run-time starts/ends/axes/steps."""
    x = np.asarray(inputs[0])
    if params.get("dynamic"):
        values = dynamic_values(inputs, params)
        got = {n: known_ints(values.get(n)) for n in _SLICE_OPERANDS}
        if any(got[n] is None for n in values):
            raise ShapeError("nn.slice: starts/ends/axes/steps must be integers")
        if got["dyn_starts"] is None or got["dyn_ends"] is None:
            raise ShapeError("nn.slice: run-time slicing needs starts and ends")
        starts, ends, steps = slice_params(x.shape, got["dyn_starts"], got["dyn_ends"],
                                           got["dyn_axes"], got["dyn_steps"])
    else:
        starts, ends, steps = params["starts"], params["ends"], params["steps"]
    index = []
    for d, s, e, st in zip(x.shape, starts, ends, steps, strict=True):
        s, e = slice_bounds(int(s), int(e), int(st), d)
        index.append(slice(s, None if e < 0 else e, int(st)))
    return [np.ascontiguousarray(x[tuple(index)])]


def concat(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    return [np.concatenate(inputs, axis=params["axis"])]


# -- gathers --------------------------------------------------------------------------------------

def fix_indices(indices: np.ndarray, dim: int, op: str) -> np.ndarray:
    """Indices as int64 in [0, dim) (negative ones count from the end); out of range raises."""
    indices = np.asarray(indices).astype(np.int64)
    if indices.size and (indices.min() < -dim or indices.max() >= dim):
        raise ShapeError(f"{op}: an index is out of range for a dim of {dim}")
    return np.where(indices < 0, indices + dim, indices)


def gather(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    data, indices = np.asarray(inputs[0]), inputs[1]
    axis = normalize_axis(params["axis"], data.ndim, "nn.gather")
    return [np.take(data, fix_indices(indices, data.shape[axis], "nn.gather"), axis=axis)]


def gather_elements(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    data, indices = inputs
    axis = normalize_axis(params["axis"], data.ndim, "nn.gather_elements")
    idx = fix_indices(indices, data.shape[axis], "nn.gather_elements")
    return [np.take_along_axis(data, idx, axis=axis)]


SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")
_COMBINE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter(out: np.ndarray, where: tuple, updates: np.ndarray, reduction: str) -> np.ndarray:
    """out[where] = updates (duplicates: the last wins, which ONNX leaves undefined), or
    combined with `reduction` one update at a time (duplicates accumulate)."""
    if reduction == "none":
        out[where] = updates
    else:
        _COMBINE[reduction].at(out, where, updates)
    return out


def scatter_elements(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    data, indices, updates = (np.asarray(a) for a in inputs)
    axis = normalize_axis(params["axis"], data.ndim, "nn.scatter_elements")
    idx = fix_indices(indices, data.shape[axis], "nn.scatter_elements")
    where = list(np.indices(idx.shape, sparse=True))
    where[axis] = idx
    return [_scatter(data.copy(), tuple(where), updates, params["reduction"])]


def scatter_nd(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    data, indices, updates = (np.asarray(a) for a in inputs)
    k = indices.shape[-1]
    tuples = indices.reshape(-1, k).astype(np.int64)
    cols = [fix_indices(tuples[:, d], data.shape[d], "nn.scatter_nd") for d in range(k)]
    slices = updates.reshape((-1, *data.shape[k:]))
    return [_scatter(data.copy(), tuple(cols), slices, params["reduction"])]


def gather_nd(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    data, indices = np.asarray(inputs[0]), np.asarray(inputs[1])
    b = params["batch_dims"]
    k = indices.shape[-1]
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    flat_data = data.reshape((batch, *data.shape[b:]))
    flat_idx = indices.reshape((batch, -1, k)).astype(np.int64)
    rows = []
    for n in range(batch):
        cols = tuple(fix_indices(flat_idx[n, :, d], flat_data.shape[1 + d], "nn.gather_nd")
                     for d in range(k))
        rows.append(flat_data[n][cols])
    out = np.stack(rows) if rows else np.zeros((0,), data.dtype)
    return [out.reshape((*indices.shape[:-1], *data.shape[b + k:]))]


# -- broadcasts and repeats ------------------------------------------------------------------------

def expand(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Broadcast (both ways) with the run-time shape operand, else the result shape."""
    x = np.asarray(inputs[0])
    if len(inputs) > 1:
        target = [int(d) for d in np.asarray(inputs[1]).reshape(-1)]
    else:
        target = [1 if d is None or d < 0 else d for d in out_shape(params) or ()]
    shape = np.broadcast_shapes(x.shape, tuple(target))
    return [np.ascontiguousarray(np.broadcast_to(x, shape))]


def tile(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    x = np.asarray(inputs[0])
    if len(inputs) == 1:
        return [np.tile(x, params["repeats"])]
    repeats = ints("repeats", known_ints(inputs[1]) or [], x.ndim, "nn.tile")
    if any(r < 0 for r in repeats):
        raise ShapeError(f"nn.tile: negative repeats {repeats}")
    return [np.tile(x, repeats)]


PAD_MODES = ("constant", "reflect", "edge", "wrap")


def full_pads(rank: int, pads: Sequence[int], axes: Sequence[int] | None = None) -> list[int]:
    """ONNX Pad's `pads` (for `axes`, default all) as [begin_0..begin_n, end_0..end_n]."""
    pads = [int(p) for p in pads]
    if axes is None:
        if len(pads) != 2 * rank:
            raise ShapeError(f"nn.pad: {len(pads)} pads for rank {rank}")
        return pads
    axes = [normalize_axis(int(a), rank, "nn.pad") for a in axes]
    if len(pads) != 2 * len(axes):
        raise ShapeError(f"nn.pad: {len(pads)} pads for {len(axes)} axes")
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[rank + a] = pads[i], pads[len(axes) + i]
    return full


def pad(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Pads [begin..., end...] (negative crops) with mode constant / reflect / edge / wrap."""
    x = np.asarray(inputs[0])
    rank = x.ndim
    values = dynamic_values(inputs, params)
    if "dyn_pads" in values:
        pads = known_ints(values["dyn_pads"])
        axes = known_ints(values["dyn_axes"]) if "dyn_axes" in values else None
        if pads is None or ("dyn_axes" in values and axes is None):
            raise ShapeError("nn.pad: pads and axes must be integers")
        pads = full_pads(rank, pads, axes)
    else:
        pads = [int(p) for p in params["pads"]]
    for i in range(rank):
        if x.shape[i] + pads[i] + pads[rank + i] < 0:
            raise ShapeError(f"nn.pad: pads {pads} crop dim {i} below zero")
    crop = tuple(slice(max(-pads[i], 0), x.shape[i] - max(-pads[rank + i], 0))
                 for i in range(rank))
    x = x[crop]
    width = [(max(pads[i], 0), max(pads[rank + i], 0)) for i in range(rank)]
    mode = params["mode"]
    if mode == "constant":
        if "dyn_value" in values:
            flat = np.asarray(values["dyn_value"]).reshape(-1)
            value = (flat[0] if flat.size else np.zeros((), x.dtype)).astype(x.dtype)
        else:
            value = np.array(params.get("value", 0.0)).astype(x.dtype)
        return [np.pad(x, width, mode="constant", constant_values=value)]
    if mode not in PAD_MODES:
        raise ShapeError(f"nn.pad: unknown mode '{mode}'")
    return [np.pad(x, width, mode=mode)]


# -- resize ---------------------------------------------------------------------------------------

RESIZE_MODES = ("nearest", "linear", "cubic")


def _nearest_weights(ratio: np.ndarray, rule: str) -> np.ndarray:
    """Weights of the two neighbours [floor, floor + 1] of each source coordinate."""
    if rule == "round_prefer_floor":
        up = ratio > 0.5
    elif rule == "round_prefer_ceil":
        up = ratio >= 0.5
    elif rule == "floor":
        up = np.zeros_like(ratio, dtype=bool)
    elif rule == "ceil":
        up = ratio > 0
    else:
        raise ShapeError(f"nn.resize: unknown nearest_mode '{rule}'")
    return np.stack([~up, up], axis=-1).astype(np.float64)


def _cubic_kernel(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _source_coords(mode: str, out_len: int, in_len: int, scale: float,
                   roi: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Source coordinate of each output index along one axis (and where it extrapolates)."""
    y = np.arange(out_len, dtype=np.float64)
    scaled_len = scale * in_len
    outside = None
    if mode == "align_corners":
        x = np.zeros(out_len) if scaled_len == 1 else y * (in_len - 1) / (scaled_len - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        lo, hi = roi if roi is not None else (0.0, 1.0)
        if scaled_len == 1:
            x = np.full(out_len, (hi - lo) * (in_len - 1) / 2)
        else:
            x = y * (hi - lo) * (in_len - 1) / (scaled_len - 1)
        x = x + lo * (in_len - 1)
        outside = (x < 0) | (x > in_len - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out_len, -0.5) if scaled_len == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / scaled_len)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        raise ShapeError(f"nn.resize: unknown coordinate_transformation_mode '{mode}'")
    return x, outside


def resize_taps(params: dict[str, Any], in_len: int, out_len: int, scale: float,
                roi: tuple[float, float] | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One axis of a resize: for each output position, the input indices it reads (clipped to
    the input, [out, taps]), their weights ([out, taps]) and which positions fall outside the
    ROI (tf_crop_and_resize; None otherwise). The CUDA template bakes the same tables in."""
    x, outside = _source_coords(params.get("coordinate_transformation_mode", "half_pixel"),
                                out_len, in_len, scale, roi)
    base = np.floor(x)
    ratio = x - base
    base = base.astype(np.int64)
    mode = params.get("mode", "nearest")
    antialias = bool(params.get("antialias", False)) and scale < 1
    if mode == "nearest":
        weights = _nearest_weights(ratio, params.get("nearest_mode", "round_prefer_floor"))
        offsets = np.array([0, 1])
    elif mode in ("linear", "cubic"):
        half = 1 if mode == "linear" else 2  # the kernel's support radius
        s = min(scale, 1.0) if antialias else 1.0
        first = int(np.floor(-half / s)) + 1
        offsets = np.arange(first, 1 - first + 1) if antialias else np.arange(1 - half, half + 1)
        dist = (offsets[None, :] - ratio[:, None]) * s
        if mode == "linear":
            weights = np.clip(1 - np.abs(dist), 0, None)
        else:
            weights = _cubic_kernel(dist, params.get("cubic_coeff_a", -0.75))
        if antialias:
            weights = weights / weights.sum(axis=1, keepdims=True)
    else:
        raise ShapeError(f"nn.resize: unknown mode '{mode}'")
    index = base[:, None] + offsets[None, :]
    if params.get("exclude_outside", False):
        weights = np.where((index < 0) | (index >= in_len), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(index, 0, in_len - 1), weights, outside


def _resize_axis(data: np.ndarray, axis: int, out_len: int, scale: float,
                 params: dict[str, Any], roi: tuple[float, float] | None) -> np.ndarray:
    in_len = data.shape[axis]
    if out_len == 0 or in_len == 0:
        shape = list(data.shape)
        shape[axis] = out_len
        return np.zeros(shape, data.dtype)
    index, weights, outside = resize_taps(params, in_len, out_len, scale, roi)
    gathered = np.take(data, index, axis=axis)
    w_shape = (1,) * axis + weights.shape + (1,) * (data.ndim - axis - 1)
    result = (gathered * weights.reshape(w_shape)).sum(axis=axis + 1)
    if outside is not None and outside.any():
        m_shape = (1,) * axis + (out_len,) + (1,) * (data.ndim - axis - 1)
        result = np.where(outside.reshape(m_shape), params.get("extrapolation_value", 0.0),
                          result)
    return result


def resize_params(shape: Sequence[Dim], scales: Sequence[float] | None,
                  sizes: Sequence[int] | None, axes: Sequence[int] | None = None,
                  roi: Sequence[float] | None = None, policy: str = "stretch",
                  crop: bool = False) -> tuple[list[float], list[int] | None, list[float] | None]:
    """ONNX Resize's scales / sizes / roi (for `axes`, default all; with keep_aspect_ratio_policy)
    as nn.resize's per-dim scales, sizes (-1 where not static) and roi (only with `crop`, i.e.
    tf_crop_and_resize). `sizes` win over `scales`; an empty list counts as not given."""
    rank = len(shape)
    axes = list(range(rank)) if axes is None else [normalize_axis(int(a), rank, "nn.resize")
                                                   for a in axes]
    sizes = list(sizes) if sizes else None
    scales = list(scales) if scales else None
    full_scales = [1.0] * rank
    full_sizes: list[int] | None = None
    if sizes is not None:
        if len(sizes) != len(axes):
            raise ShapeError(f"nn.resize: {len(sizes)} sizes for {len(axes)} axes")
        for a in axes:
            if not isinstance(shape[a], int):
                raise ShapeError(f"nn.resize: sizes on symbolic dim '{shape[a]}' are not "
                                 "supported")
        ratios = [s / shape[a] for s, a in zip(sizes, axes, strict=True)]
        full_sizes = [d if isinstance(d, int) else -1 for d in shape]
        if policy == "stretch":
            for a, s, r in zip(axes, sizes, ratios, strict=True):
                full_scales[a], full_sizes[a] = r, int(s)
        else:
            if policy not in ("not_larger", "not_smaller"):
                raise ShapeError(f"nn.resize: keep_aspect_ratio_policy '{policy}' is not "
                                 "supported")
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            for a in axes:
                full_scales[a] = scale
                full_sizes[a] = int(scale * shape[a] + 0.5)
    elif scales is not None:
        if len(scales) != len(axes):
            raise ShapeError(f"nn.resize: {len(scales)} scales for {len(axes)} axes")
        for a, s in zip(axes, scales, strict=True):
            full_scales[a] = float(s)
    else:
        raise ShapeError("nn.resize: one of scales and sizes must be given")
    full_roi = None
    if crop:
        if not roi:
            raise ShapeError("nn.resize: tf_crop_and_resize needs a roi")
        full_roi = [0.0] * rank + [1.0] * rank
        n = len(axes)
        if len(roi) != 2 * n:
            raise ShapeError(f"nn.resize: roi has {len(roi)} entries for {n} axes")
        for i, a in enumerate(axes):
            full_roi[a], full_roi[rank + a] = float(roi[i]), float(roi[n + i])
    return full_scales, full_sizes, full_roi


def resize(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Interpolated resize (ONNX Resize): per-dim scales and sizes (-1: floor(dim * scale)), or
    ONNX's run-time roi / scales / sizes."""
    x = np.asarray(inputs[0])
    if params.get("dynamic"):
        values = dynamic_values(inputs, params)
        got = {"dyn_roi": known_floats(values.get("dyn_roi")),
               "dyn_scales": known_floats(values.get("dyn_scales")),
               "dyn_sizes": known_ints(values.get("dyn_sizes"))}
        if any(got[n] is None for n in values):
            raise ShapeError("nn.resize: roi, scales and sizes must be numbers")
        crop = params.get("coordinate_transformation_mode") == "tf_crop_and_resize"
        scales, sizes, roi = resize_params(x.shape, got["dyn_scales"], got["dyn_sizes"],
                                           params.get("axes"), got["dyn_roi"],
                                           params.get("keep_aspect_ratio_policy", "stretch"),
                                           crop)
    else:
        scales, sizes, roi = ([float(s) for s in params["scales"]], params.get("sizes"),
                              params.get("roi"))
    sizes = [int(n) if n >= 0 else int(math.floor(d * s))
             for d, s, n in zip(x.shape, scales, sizes or [-1] * x.ndim, strict=True)]
    rank = x.ndim
    result = x.astype(np.float64)
    for axis in range(rank):
        axis_roi = None if roi is None else (float(roi[axis]), float(roi[rank + axis]))
        trivial_roi = axis_roi is None or (math.isclose(axis_roi[0], 0.0)
                                           and math.isclose(axis_roi[1], 1.0))
        if math.isclose(scales[axis], 1.0) and sizes[axis] == x.shape[axis] and trivial_roi:
            continue
        result = _resize_axis(result, axis, sizes[axis], scales[axis], params, axis_roi)
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        result = np.clip(np.round(result), info.min, info.max)
    return [result.astype(x.dtype)]


# -- generators and triangular/cumulative ops ---------------------------------------------------

def range_values(start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """ONNX Range: max(ceil((limit - start) / delta), 0) elements start + i * delta."""
    dtype = np.asarray(start).dtype
    if delta == 0:
        raise ShapeError("nn.range: delta must not be 0")
    return np.arange(start, limit, delta).astype(dtype)


def range_(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    start, limit, delta = (np.asarray(v).reshape(()) for v in inputs)
    out = (params.get("out_shapes") or [None])[0]
    if out and out[0] is not None and limit == start:  # the static-length form: see nn.range
        if not isinstance(out[0], int):
            raise ShapeError("nn.range: its length is a symbolic dim its result type holds, "
                             "and no value is bound for it here")
        return [start + np.arange(out[0], dtype=start.dtype) * delta]
    return [range_values(start, limit, delta)]


def trilu(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Upper or lower triangle of the last two dims from diagonal k; the rest zero."""
    fn = np.triu if params.get("upper") else np.tril
    k = params.get("k", 0) if len(inputs) == 1 else int(one(inputs[1], "k", "nn.trilu"))
    return [fn(inputs[0], k)]


def cumsum(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Running sum (product with `product`) along axis; `exclusive` leaves the element out,
    `reverse` runs from the end."""
    x = np.asarray(inputs[0])
    axis = params.get("axis") if len(inputs) == 1 else int(one(inputs[1], "axis", "nn.cumsum"))
    axis = normalize_axis(axis, x.ndim, "nn.cumsum")
    if params.get("reverse"):
        x = np.flip(x, axis)
    running = np.cumprod if params.get("product") else np.cumsum
    out = running(x, axis=axis, dtype=x.dtype)
    if params.get("exclusive"):  # shifted by one: [identity, x0, x0 (+|*) x1, ...]
        first = (np.ones_like if params.get("product") else np.zeros_like)(
            np.take(out, [0], axis=axis))
        out = np.concatenate([first, np.delete(out, -1, axis=axis)], axis=axis) \
            if x.shape[axis] else out
    if params.get("reverse"):
        out = np.flip(out, axis)
    return [np.ascontiguousarray(out)]


# -- squeeze / unsqueeze by run-time axes ------------------------------------------------------

def unsqueeze_dims(shape: Sequence[Dim], axes: Sequence[int]) -> list[Dim]:
    """ONNX Unsqueeze: size-1 dims at `axes` (in terms of the result's rank)."""
    rank = len(shape) + len(axes)
    axes = sorted(normalize_axis(int(a), rank, "nn.unsqueeze") for a in axes)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"nn.unsqueeze: repeated axes {axes}")
    dims = iter(shape)
    return [1 if i in axes else next(dims) for i in range(rank)]


def squeeze_dims(shape: Sequence[Dim], axes: Sequence[int]) -> list[Dim]:
    """ONNX Squeeze: the dims at `axes` (each of size 1) left out."""
    picked = {normalize_axis(int(a), len(shape), "nn.squeeze") for a in axes}
    for a in sorted(picked):
        if isinstance(shape[a], int) and shape[a] != 1:
            raise ShapeError(f"nn.squeeze: cannot squeeze axis {a} of size {shape[a]}")
    return [d for i, d in enumerate(shape) if i not in picked]


def _axes_reshape(dims_of, name: str):
    def kernel(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
        x, axes = np.asarray(inputs[0]), known_ints(inputs[1])
        if axes is None:
            raise ShapeError(f"{name}: axes must be integers")
        return [x.reshape(dims_of(x.shape, axes))]
    return kernel


KERNELS = {
    "reshape": reshape, "shape_of": shape_of, "transpose": transpose, "slice": slice_,
    "concat": concat, "gather": gather, "gather_elements": gather_elements, "expand": expand,
    "scatter_elements": scatter_elements, "scatter_nd": scatter_nd, "gather_nd": gather_nd,
    "tile": tile, "pad": pad, "resize": resize, "range": range_, "trilu": trilu,
    "cumsum": cumsum, "squeeze": _axes_reshape(squeeze_dims, "nn.squeeze"),
    "unsqueeze": _axes_reshape(unsqueeze_dims, "nn.unsqueeze"),
}


def reverse_sequence(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX ReverseSequence: for each batch row b (along `batch_axis`), its first
    sequence_lens[b] elements along `time_axis` reversed, the rest as they are."""
    x, lens = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(np.int64).reshape(-1)
    batch_axis, time_axis = int(params["batch_axis"]), int(params["time_axis"])
    batch, steps = x.shape[batch_axis], x.shape[time_axis]
    if lens.shape != (batch,) or (lens < 0).any() or (lens > steps).any():
        raise ShapeError(f"nn.reverse_sequence: sequence_lens {lens.tolist()} for {batch} rows "
                         f"of {steps} steps")
    t = np.arange(steps)
    # source time index per (row, t): reversed inside the row's length
    source = np.where(t[None, :] < lens[:, None], lens[:, None] - 1 - t[None, :], t[None, :])
    moved = np.moveaxis(x, (batch_axis, time_axis), (0, 1))
    rows = np.arange(batch)[:, None]
    out = moved[rows, source]
    return [np.ascontiguousarray(np.moveaxis(out, (0, 1), (batch_axis, time_axis)))]


KERNELS["reverse_sequence"] = reverse_sequence
