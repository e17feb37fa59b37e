"""numpy kernels of max pooling with its indices and of max unpooling (ONNX MaxPool's Indices
output, MaxUnpool): SegNet-style decoders put each pooled maximum back where it came from."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ember.runtime.cpu_kernels.reduction import pool_output_dim


def max_pool_indices(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """N-d max pooling and, per output, the flat index of the maximum in the input: over
    N, C and the spatial dims (row-major, or with `storage_order` 1 column-major over the
    spatial dims), the first maximum of the window (in row-major window order) where several
    tie, as ONNX's reference."""
    x = np.asarray(inputs[0])
    kernel, strides = list(params["kernel"]), list(params["strides"])
    pads, dilations = list(params["pads"]), list(params["dilations"])
    n = len(kernel)
    spatial = x.shape[2:]
    outs = [pool_output_dim(spatial[i], kernel[i], strides[i], dilations[i], pads[i],
                            pads[n + i], bool(params["ceil_mode"]), "nn.max_pool_indices")
            for i in range(n)]
    if params.get("storage_order"):  # column-major: the first spatial dim varies fastest
        weights = [int(np.prod(spatial[:i], dtype=np.int64)) for i in range(n)]
    else:
        weights = [int(np.prod(spatial[i + 1:], dtype=np.int64)) for i in range(n)]
    best = np.zeros((*x.shape[:2], *outs), x.dtype)
    where = np.full(best.shape, -1, np.int64)
    found = np.zeros(best.shape, bool)
    grids = np.meshgrid(*(np.arange(o) for o in outs), indexing="ij")
    for offsets in itertools.product(*(range(k) for k in kernel)):
        coords = [g * s - p + o * d for g, s, p, o, d in
                  zip(grids, strides, pads[:n], offsets, dilations, strict=True)]
        valid = np.ones(outs, bool)
        for c, size in zip(coords, spatial, strict=True):
            valid &= (c >= 0) & (c < size)
        clipped = [np.clip(c, 0, size - 1) for c, size in zip(coords, spatial, strict=True)]
        v = x[(slice(None), slice(None), *clipped)]
        take = valid & (~found | (v > best))
        best = np.where(take, v, best)
        flat = sum(c * w for c, w in zip(clipped, weights, strict=True))
        where = np.where(take, flat, where)
        found |= valid
    planes = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[:2])
    base = planes.reshape(*x.shape[:2], *([1] * n)) * int(np.prod(spatial, dtype=np.int64))
    return [best, np.where(where >= 0, where + base, where)]


def unpooled_shape(shape: Any, kernel: list[int], strides: list[int], pads: list[int]
                   ) -> list[Any]:
    """MaxUnpool's output shape without an output_shape: each spatial dim (in - 1) * stride -
    pads + kernel (ints; a dim that is not gives "?")."""
    n = len(kernel)
    out = list(shape[:2])
    for i in range(n):
        d = shape[2 + i]
        out.append((d - 1) * strides[i] - pads[i] - pads[n + i] + kernel[i]
                   if isinstance(d, int | np.integer) else "?")
    return out


def max_unpool(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX MaxUnpool: zeros of the unpooled shape, each input element written at its flat
    index (a later element overwrites an earlier one), then placed at the start of a larger
    `output_shape` (the rest zeros), as ONNX's reference."""
    x, indices = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(np.int64)
    if x.shape != indices.shape:
        raise ValueError(f"the indices {list(indices.shape)} do not match the input "
                         f"{list(x.shape)}")
    inferred = unpooled_shape(x.shape, list(params["kernel"]), list(params["strides"]),
                              list(params["pads"]))
    out_shape = list(params.get("output_shape") or inferred)
    if len(inputs) > 2:  # a run-time output_shape: the one the plan was built for
        given = [int(v) for v in np.asarray(inputs[2]).reshape(-1)]
        if given != out_shape:
            raise ValueError(f"output_shape {given} at run time, where the plan was built for "
                             f"{out_shape}")
    if len(out_shape) != x.ndim or any(o < i for o, i in zip(out_shape, inferred, strict=True)):
        raise ValueError(f"output_shape {out_shape} is smaller than the unpooled "
                         f"{inferred}")
    flat = np.zeros(int(np.prod(inferred, dtype=np.int64)), x.dtype)
    where, values = indices.reshape(-1), x.reshape(-1)
    if where.size and (where.min() < 0 or where.max() >= flat.size):
        raise ValueError(f"an index is outside the unpooled {inferred} ({flat.size} elements)")
    _, last = np.unique(where[::-1], return_index=True)  # a repeated index: its last element
    keep = where.size - 1 - last
    flat[where[keep]] = values[keep]
    out = np.zeros(out_shape, x.dtype)
    out[tuple(slice(0, i) for i in inferred)] = flat.reshape(inferred)
    return [out]


KERNELS = {"max_pool_indices": max_pool_indices, "max_unpool": max_unpool}
