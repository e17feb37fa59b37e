"""Reduction, normalization and pooling kernels: reduce, arg_reduce, softmax, batch/layer/group
norm, LRN and N-d pooling. Layouts are ONNX's: channels on dim 1, spatial dims after it."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ember.errors import ShapeError
from ember.runtime.cpu_kernels.common import (
    UNKNOWN,
    is_floating,
    is_storage_only,
    normalize_axis,
)
from ember.runtime.cpu_kernels.elementwise import with_epilogue
from ember.runtime.cpu_kernels.layout import pack, unpack

REDUCE_FUNCTIONS = ("sum", "mean", "max", "min", "prod", "l1", "l2", "sum_square", "log_sum",
                    "log_sum_exp")


def _empty_value(fn: str, dtype: np.dtype):
    """What max/min/log_sum/log_sum_exp give over an empty set (ONNX reference)."""
    if fn in ("log_sum", "log_sum_exp"):
        return -np.inf
    if dtype == np.bool_:
        return fn == "min"
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return info.min if fn == "max" else info.max
    return -np.inf if fn == "max" else np.inf


def reduce_array(fn: str, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """ONNX Reduce* semantics in numpy; the result has x's dtype. FP16 / BF16 tensors are
    reduced in float64 (their kernels accumulate in FP32) and rounded to the storage type."""
    dtype = x.dtype
    if dtype.itemsize == 2 and is_floating(dtype):
        return reduce_array(fn, x.astype(np.float64), axes, keepdims).astype(dtype)
    if x.size == 0 and fn in ("max", "min", "log_sum", "log_sum_exp"):
        shape = [1 if i in axes else d for i, d in enumerate(x.shape)
                 if keepdims or i not in axes]
        return np.full(shape, _empty_value(fn, dtype), dtype=dtype)
    with np.errstate(all="ignore"):
        if fn == "sum":
            out = np.sum(x, axis=axes, keepdims=keepdims, dtype=dtype)
        elif fn == "mean":
            out = np.mean(x, axis=axes, keepdims=keepdims, dtype=dtype)
        elif fn == "max":
            out = np.maximum.reduce(x, axis=axes, keepdims=keepdims)
        elif fn == "min":
            out = np.minimum.reduce(x, axis=axes, keepdims=keepdims)
        elif fn == "prod":
            out = np.prod(x, axis=axes, keepdims=keepdims, dtype=dtype)
        elif fn == "l1":
            out = np.sum(np.abs(x), axis=axes, keepdims=keepdims)
        elif fn == "l2":
            out = np.sqrt(np.sum(np.square(x), axis=axes, keepdims=keepdims))
        elif fn == "sum_square":
            out = np.sum(np.square(x), axis=axes, keepdims=keepdims)
        elif fn == "log_sum":
            out = np.log(np.sum(x, axis=axes, keepdims=keepdims))
        elif fn == "log_sum_exp":
            finite = np.where(np.isinf(x), -np.inf, x)
            m = np.max(finite, axis=axes, keepdims=True)
            m = np.where(np.isfinite(m), m, 0).astype(dtype)
            s = np.sum(np.exp(x - m), axis=axes, keepdims=True, dtype=dtype)
            out = np.log(s) + m
            if not keepdims:
                out = np.squeeze(out, axis=axes)
        else:
            raise ShapeError(f"nn.reduce: unknown function '{fn}'")
    return np.asarray(out).astype(dtype)


def reduce(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """`fn` over `axes` (or the run-time axes operand: negative counts from the end)."""
    x = inputs[0]
    if len(inputs) > 1:
        axes = sorted({normalize_axis(int(a), x.ndim, "nn.reduce")
                       for a in np.asarray(inputs[1]).reshape(-1)})
    else:
        axes = params["axes"]
    return [reduce_array(params["fn"], x, tuple(axes), bool(params["keepdims"]))]


def arg_reduce(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Index (int64) of the max/min along `axis` (the last one with `select_last_index`)."""
    x, axis = inputs[0], params["axis"]
    fn = np.argmax if params["fn"] == "max" else np.argmin
    if params.get("select_last_index"):
        index = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis, keepdims=True)
    else:
        index = fn(x, axis=axis, keepdims=True)
    if not params.get("keepdims"):
        index = np.squeeze(index, axis=axis)
    return [np.asarray(index).astype(np.int64)]


def softmax(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """exp(x) / sum(exp(x)) along `axis` (`log`: its logarithm, computed stably)."""
    x = inputs[0]
    axis = params["axis"] if x.ndim else None
    xf = x.astype(np.float64)
    with np.errstate(all="ignore"):
        shifted = xf - np.max(xf, axis=axis, keepdims=True)
        e = np.exp(shifted)
        s = np.sum(e, axis=axis, keepdims=True)
        out = shifted - np.log(s) if params.get("log") else e / s
    return [out.astype(x.dtype)]


def _per_channel(p: np.ndarray, rank: int) -> np.ndarray:
    return p.astype(np.float64).reshape((1, -1) + (1,) * (rank - 2))


def batch_norm(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """(x - mean) / sqrt(var + epsilon) * scale + bias, per channel (dim 1)."""
    x, scale, bias, mean, var = inputs
    r = x.ndim
    y = ((x.astype(np.float64) - _per_channel(mean, r))
         / np.sqrt(_per_channel(var, r) + params["epsilon"])
         * _per_channel(scale, r) + _per_channel(bias, r))
    return [y.astype(x.dtype)]


def layer_norm(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Normalize over dims `axis`..end, then * scale (+ bias); `rms`: divide by the root mean
    square instead of centring and dividing by the standard deviation."""
    x = inputs[0]
    axes = tuple(range(params["axis"], x.ndim))
    xf = x.astype(np.float64)
    mean = 0.0 if params.get("rms") else xf.mean(axis=axes, keepdims=True)
    var = np.square(xf - mean).mean(axis=axes, keepdims=True)
    y = (xf - mean) / np.sqrt(var + params["epsilon"]) * inputs[1].astype(np.float64)
    if len(inputs) > 2:
        y = y + inputs[2].astype(np.float64)
    return [y.astype(x.dtype)]


def group_norm(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Normalize each group of channels over its channels and spatial dims; scale/shift per
    channel."""
    x, scale, bias = inputs
    g = x.astype(np.float64).reshape(x.shape[0], params["groups"], -1)
    mean = g.mean(axis=2, keepdims=True)
    var = np.square(g - mean).mean(axis=2, keepdims=True)
    y = ((g - mean) / np.sqrt(var + params["epsilon"])).reshape(x.shape)
    y = y * _per_channel(scale, x.ndim) + _per_channel(bias, x.ndim)
    return [y.astype(x.dtype)]


def lrn(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels) ^ beta."""
    x = inputs[0]
    size, channels = params["size"], x.shape[1]
    lo, hi = (size - 1) // 2, math.ceil((size - 1) / 2)
    square = np.square(x.astype(np.float64))
    padded = np.pad(square, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    total = sum(padded[:, i:i + channels] for i in range(size))
    y = x / (params["bias"] + params["alpha"] / size * total) ** params["beta"]
    return [y.astype(x.dtype)]


def pool_output_dim(size: Any, kernel: int, stride: int, dilation: int, pad_begin: int,
                    pad_end: int, ceil_mode: bool, op: str = "nn.pool") -> Any:
    """ONNX's pooled size of one spatial dim (ceil mode drops a window starting in the end pad);
    a dim that is not an int gives "?"."""
    if not isinstance(size, int):
        return UNKNOWN
    extent = size + pad_begin + pad_end - ((kernel - 1) * dilation + 1)
    if extent < 0:
        raise ShapeError(f"{op}: a window of {kernel} (dilation {dilation}) does not fit in "
                         f"{size} + {pad_begin + pad_end} padding")
    if not ceil_mode:
        return extent // stride + 1
    out = -(-extent // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def pool_array(x: np.ndarray, fn: str, kernel: list[int], strides: list[int], pads: list[int],
               dilations: list[int], ceil_mode: bool, count_include_pad: bool,
               p: float) -> np.ndarray:
    """ONNX MaxPool / AveragePool / LpPool on an (N, C, *spatial) array."""
    n = len(kernel)
    sizes = x.shape[2:]
    outs = [pool_output_dim(int(sizes[i]), kernel[i], strides[i], dilations[i], pads[i],
                            pads[n + i], ceil_mode) for i in range(n)]
    widths = []
    for i in range(n):
        need = (outs[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        widths.append((pads[i], max(0, need - sizes[i] - pads[i])))
    if fn == "max":
        # float8 / float4 (ml_dtypes) in float32: E4M3 has no -inf to pad with (a NaN it would be)
        data = x.astype(np.float32) if is_storage_only(x.dtype) else x
        if x.dtype == np.bool_:
            fill = False
        elif np.issubdtype(x.dtype, np.integer):
            fill = np.iinfo(x.dtype).min
        else:
            fill = -np.inf
    else:
        data = x.astype(np.float64)
        if fn == "lp":
            data = np.abs(data) ** p
        fill = 0
    padded = np.pad(data, [(0, 0), (0, 0), *widths], constant_values=fill)
    real, inside = [], []  # per dim, over padded positions: in the input / in input + pads
    for i in range(n):
        length = padded.shape[2 + i]
        r = np.zeros(length)
        r[pads[i]:pads[i] + sizes[i]] = 1
        s = np.zeros(length)
        s[:pads[i] + sizes[i] + pads[n + i]] = 1
        real.append(r)
        inside.append(s)
    acc = None
    count = np.zeros(outs)
    for offsets in itertools.product(*(range(k) for k in kernel)):
        sl = tuple(slice(o * d, o * d + (m - 1) * s + 1, s)
                   for o, d, m, s in zip(offsets, dilations, outs, strides, strict=True))
        window = padded[(slice(None), slice(None), *sl)]
        if acc is None:
            acc = window.copy()
        elif fn == "max":
            acc = np.maximum(acc, window)
        else:
            acc = acc + window
        masks = inside if count_include_pad else real
        c = np.ones(())
        for mask, s in zip(masks, sl, strict=True):
            c = np.multiply.outer(c, mask[s])
        count = count + c
    if fn == "avg":
        with np.errstate(all="ignore"):
            acc = acc / count
    elif fn == "lp":
        acc = acc ** (1.0 / p)
    return np.asarray(acc).astype(x.dtype)


def pool(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """N-d max / avg / lp pooling with explicit pads [begin..., end...]; `layout: NHWC`: the
    input and result are [N, H, W, C]; `layout: NC4HW4`: [N, C4, H, W, 4], every lane pooled
    on its own (pad lanes too: readers ignore them)."""
    if params.get("layout") == "NC4HW4":
        x = inputs[0]
        (out,) = pool([unpack(x)], {**params, "layout": "NCHW"})
        return [pack(out)]
    if params.get("layout") == "NHWC":
        (out,) = pool([np.transpose(inputs[0], (0, 3, 1, 2))], {**params, "layout": "NCHW"})
        return [np.ascontiguousarray(np.transpose(out, (0, 2, 3, 1)))]
    return [pool_array(inputs[0], params["fn"], list(params["kernel"]), list(params["strides"]),
                       list(params["pads"]), list(params["dilations"]),
                       bool(params["ceil_mode"]), bool(params.get("count_include_pad")),
                       float(params.get("p", 2.0)))]




def topk(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """The k largest (or smallest) along `axis`, in order, equal values by lower index; NaN
    counts as the largest value (first for largest, last for smallest, as onnxruntime). k from
    params or the run-time scalar operand."""
    x = np.asarray(inputs[0])
    axis = normalize_axis(params["axis"], x.ndim, "nn.topk")
    k = params.get("k") if len(inputs) == 1 else int(np.asarray(inputs[1]).reshape(-1)[0])
    if not 0 <= k <= x.shape[axis]:
        raise ShapeError(f"nn.topk: k={k} is out of range for a dim of {x.shape[axis]}")
    # rank the values (NaNs one rank, above every number): ranks negate without overflow
    _, rank = np.unique(x.astype(np.float64) if is_floating(x.dtype) else x,
                        return_inverse=True)
    rank = rank.reshape(x.shape).astype(np.int64)
    order = np.argsort(-rank if params["largest"] else rank, axis=axis, kind="stable")
    index = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, index, axis=axis), index.astype(np.int64)]


KERNELS = {"topk": topk, "reduce": reduce, "arg_reduce": arg_reduce,
           "batch_norm": batch_norm, "group_norm": group_norm, "lrn": lrn, "pool": pool,
           # a fused epilogue (fuse-epilogues: the quantize of its output) runs after these
           "softmax": with_epilogue(softmax), "layer_norm": with_epilogue(layer_norm)}
