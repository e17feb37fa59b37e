"""What the CPU kernels share: axis normalization, accumulation dtypes, dtype names."""

from __future__ import annotations

from typing import Any

import numpy as np

from ember.errors import ShapeError

# ONNX uses INT64_MAX / INT64_MIN for "to the end" in Slice; anything this large is "unbounded".
BIG = 2**62
INT64_MAX = 2**63 - 1
UNKNOWN = "?"


def normalize_axis(axis: int, rank: int, op: str = "") -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def is_floating(dtype: np.dtype) -> bool:
    """A floating-point dtype, ml_dtypes' bfloat16, float8 and float4 included (numpy's
    `np.floating` test says False for them)."""
    dtype = np.dtype(dtype)
    return np.issubdtype(dtype, np.floating) or dtype.name == "bfloat16" \
        or dtype.name.startswith(("float8", "float4", "float6"))


def is_storage_only(dtype: np.dtype) -> bool:
    """ml_dtypes' float8 / float4 / float6: stored, cast and quantized to, never computed in (a
    weight of such a type takes no folded scale: fold-qdq's E4M3 convs sum its values)."""
    return np.dtype(dtype).name.startswith(("float8", "float4", "float6"))


def accumulate_dtype(dtype: np.dtype) -> np.dtype:
    """Floats accumulate in float64: this is the reference semantics, and a sum computed the
    same way for every output element keeps equal inputs giving bit-equal outputs (BLAS blocking
    in float32 does not). Integers accumulate in their own type."""
    return np.dtype(np.float64) if is_floating(dtype) else dtype


def out_dtype(params: dict[str, Any], index: int = 0) -> np.dtype | None:
    """The numpy dtype of result #index (None where the params do not say)."""
    names = params.get("out_dtypes") or []
    if index >= len(names) or names[index] is None:
        return None
    return np.dtype(names[index])


def stored_dtype(params: dict[str, Any]) -> str:
    """The dtype name a conv / matmul step stores its result in: its epilogue's `out_dtype` where
    the epilogue ends in a cast to another type (fuse-epilogues), else `out_dtypes[0]`, the type
    the kernel itself computes its result in."""
    epilogue = params.get("epilogue") or {}
    return epilogue.get("out_dtype") or params["out_dtypes"][0]


def out_shape(params: dict[str, Any], index: int = 0) -> list[int | None] | None:
    """Result #index's shape; None (unranked) or None entries where not known."""
    shapes = params.get("out_shapes") or []
    return shapes[index] if index < len(shapes) else None


def to_dtype(x: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
    """x in `dtype` (object arrays of symbolic dims are left alone)."""
    x = np.asarray(x)
    if dtype is None or x.dtype == dtype or x.dtype == object:
        return x
    return x.astype(dtype)


def known_ints(array: Any) -> list[int] | None:
    """The ints of a known value; None if unknown or symbolic (dims as strings)."""
    if array is None:
        return None
    flat = np.asarray(array).reshape(-1)
    if not all(isinstance(v, int | np.integer) for v in flat.tolist()):
        return None
    return [int(v) for v in flat.tolist()]


def known_floats(array: Any) -> list[float] | None:
    if array is None:
        return None
    flat = np.asarray(array).reshape(-1)
    if flat.dtype == object:
        return None
    return [float(v) for v in flat.tolist()]


def one(array: Any, name: str, op: str) -> Any:
    flat = np.asarray(array).reshape(-1)
    if flat.size != 1:
        raise ShapeError(f"{op}: {name} must hold one value, got {flat.size}")
    return flat[0]


def dynamic_values(inputs: list[np.ndarray], params: dict[str, Any]) -> dict[str, np.ndarray]:
    """The run-time parameter operands by name (params["dynamic"] lists the present ones, in
    operand order after the input)."""
    names = params.get("dynamic") or []
    return dict(zip(names, inputs[1:], strict=False))
