"""Quantization kernels with ONNX QuantizeLinear / DequantizeLinear semantics: per-tensor,
per-axis (1-D scale along `axis`) and blocked (`block_size` along `axis`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.runtime.cpu_kernels.common import is_floating, normalize_axis, out_dtype
from ember.runtime.cpu_kernels.elementwise import cast


def _expand(params: dict[str, Any], value: np.ndarray, shape: tuple[int, ...],
            op: str) -> np.ndarray:
    """A scale or zero point broadcastable to `shape` (ONNX's reshape_input)."""
    value = np.asarray(value)
    if value.ndim == 0:
        return value
    if value.size == 1:
        return value.reshape(-1)[0]
    axis = normalize_axis(params.get("axis", 1), len(shape), op)
    block = params.get("block_size", 0) or 0
    if not block:
        dims = [1] * len(shape)
        dims[axis] = value.size
        return value.reshape(dims)
    value = np.repeat(value, block, axis=axis)
    return value.take(indices=range(shape[axis]), axis=axis)


def quantize(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """saturate(round_half_even(x / scale) + zero_point) in the result dtype."""
    x, scale = inputs[0], inputs[1]
    dtype = out_dtype(params) or (inputs[2].dtype if len(inputs) > 2 else np.dtype(np.uint8))
    y = x / _expand(params, scale, x.shape, "nn.quantize")
    if is_floating(dtype):  # float8 / float4: no integer rounding; the cast rounds
        if len(inputs) > 2:
            y = y + _expand(params, inputs[2], x.shape, "nn.quantize").astype(np.float32)
        return [cast(y, dtype, saturate=bool(params.get("saturate", True)))]
    q = np.rint(y).astype(np.int64)
    if len(inputs) > 2:
        q = q + _expand(params, inputs[2], x.shape, "nn.quantize").astype(np.int64)
    info = _iinfo(dtype)
    return [np.clip(q, int(info.min), int(info.max)).astype(dtype)]


def _iinfo(dtype: np.dtype) -> Any:
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(dtype)
    import ml_dtypes  # int4 / int2 (an onnx dependency)

    return ml_dtypes.iinfo(dtype)


def dequantize(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """(x - zero_point) * scale in the result dtype."""
    x, scale = inputs[0], inputs[1]
    dx = x.astype(np.float32)
    if len(inputs) > 2:
        dx = dx - _expand(params, inputs[2], x.shape, "nn.dequantize")
    y = dx * _expand(params, scale, x.shape, "nn.dequantize")
    return [np.asarray(y).astype(out_dtype(params) or scale.dtype)]


KERNELS = {"quantize": quantize, "dequantize": dequantize}
