"""Elementwise kernels: `elementwise` (a scalar region over broadcast inputs) and the one-op
templates unary / binary / select / cast / fill that the nn ops of those names evaluate with;
`with_epilogue` runs the same region evaluator as a conv's / matmul's epilogue."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ember.errors import PlanError, ShapeError
from ember.runtime.cpu_kernels.common import (
    is_floating,
    out_dtype,
    out_shape,
    stored_dtype,
    to_dtype,
)
from ember.runtime.cpu_kernels.functions import BINARY, UNARY


def cast(x: np.ndarray, dtype: np.dtype, saturate: bool = False) -> np.ndarray:
    """ONNX Cast: float -> int truncates; anything -> bool is `!= 0`. The storage-only types
    (ml_dtypes' float8/float4/int4/int2) convert through float32 (integers through int64) with
    round-to-nearest-even; float4 and the 4-/2-bit integers saturate, as ONNX's reference does.
    `saturate` (float8 results): values beyond the range become the largest finite value, and
    infinities too where the type has none but is not FNUZ (ONNX's saturation table)."""
    x = np.asarray(x)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return x != 0
    if _narrow(x.dtype):  # through a wide type: ml_dtypes converts to few others directly
        x = x.astype(np.float32 if is_floating(x.dtype) else np.int64)
    floating = is_floating(x.dtype)
    if floating and (np.issubdtype(dtype, np.integer) or _narrow_int(dtype)):
        with np.errstate(invalid="ignore"):
            x = np.trunc(x)
    if _narrow(dtype):
        x = x.astype(np.float32) if floating or is_floating(dtype) else x.astype(np.int64)
        if dtype.name == "float8_e8m0fnu":
            return _to_e8m0(x, dtype, saturate)
        x = _narrow_range(x, dtype, floating, saturate)
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype)


def _narrow_range(x: np.ndarray, dtype: np.dtype, floating: bool, saturate: bool) -> np.ndarray:
    """x brought into the storage-only type's range as ONNX's reference does: a float out of
    a 4-/2-bit integer's range becomes 0 (the conversion is undefined; the reference gives 0),
    an integer wraps; float4 clamps; float8 clamps (infinities included) when saturating."""
    import ml_dtypes  # the storage-only dtypes are ml_dtypes' (an onnx dependency)

    if _narrow_int(dtype):
        info = ml_dtypes.iinfo(dtype)
        if floating:
            return np.where((x >= info.min) & (x <= info.max), x, 0)
        span = int(info.max) - int(info.min) + 1
        return (x - int(info.min)) % span + int(info.min)
    if dtype.name.startswith("float4") or saturate:
        top = float(ml_dtypes.finfo(dtype).max)
        return np.clip(x, -top, top)  # NaN stays NaN
    return x


def _to_e8m0(x: np.ndarray, dtype: np.dtype, saturate: bool) -> np.ndarray:
    """float32 -> float8_e8m0fnu (a power of two: float32's exponent byte), rounding up (ONNX
    Cast's default round_mode); NaN and infinities become its NaN (0xFF); a value rounding past
    the largest power becomes it when saturating, else NaN. The sign is dropped."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    exponent = ((bits >> 23) & 0xFF).astype(np.int64)
    special = exponent == 0xFF
    exponent = exponent + ((bits & 0x7FFFFF) != 0)
    exponent = np.where(exponent > 0xFE, 0xFE if saturate else 0xFF, exponent)
    exponent = np.where(special, 0xFF, exponent)
    return exponent.astype(np.uint8).view(dtype)


def _narrow(dtype: np.dtype) -> bool:
    """One of ml_dtypes' storage-only types (not bfloat16, which converts like a float)."""
    return dtype.name.startswith(("float8", "float4", "float6", "int4", "uint4", "int2",
                                  "uint2"))


def _narrow_int(dtype: np.dtype) -> bool:
    return dtype.name in ("int4", "uint4", "int2", "uint2")


def scalar_fn(fn: str, args: list[np.ndarray], dtype: np.dtype | None,
              alpha: float | None = None, beta: float | None = None) -> np.ndarray:
    """One scalar function (UNARY / BINARY tables, select, cast) applied with broadcasting; the
    result in `dtype` where given."""
    if fn == "select":
        out = np.where(args[0], args[1], args[2])
    elif fn in ("cast", "saturate_cast"):
        if dtype is None:
            raise ShapeError("cast: the result dtype is not known")
        return cast(args[0], dtype, saturate=fn == "saturate_cast")
    elif fn in UNARY:
        f = UNARY[fn][0]
        out = np.asarray(f(np.asarray(args[0]), 0.0 if alpha is None else alpha,
                           0.0 if beta is None else beta))
    elif fn in BINARY:
        f, is_bool = BINARY[fn]
        x, y = np.asarray(args[0]), np.asarray(args[1])
        out = np.asarray(f(x, y))
        if not is_bool:
            out = to_dtype(out, x.dtype)
    else:
        raise ShapeError(f"elementwise: unknown function '{fn}'")
    return to_dtype(out, dtype)


def _one_op(fn_of: Any):
    def kernel(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
        return [scalar_fn(fn_of(params), inputs, out_dtype(params), params.get("alpha"),
                          params.get("beta"))]
    return kernel


def elementwise(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """params["region"] = {"ops": [{"fn", "args", "dtype", "alpha"?, "beta"?}], "result": i};
    values are numbered inputs first, then each op's result."""
    region = params["region"]
    values = [np.asarray(a) for a in inputs]
    for view in params.get("in_views") or ():  # fuse-strided-reads: a buffer read by strides
        values[view["input"]] = strided(values[view["input"]], view, out_shape(params))
    for op in region["ops"]:
        dtype = np.dtype(op["dtype"]) if op.get("dtype") else None
        if op["fn"] == "lookup":
            values.append(lookup(values[op["args"][0]], op["table"], dtype))
            continue
        values.append(scalar_fn(op["fn"], [values[i] for i in op["args"]], dtype,
                                op.get("alpha"), op.get("beta")))
    result = to_dtype(values[region["result"]], out_dtype(params))
    shape = out_shape(params)
    if shape is not None and all(isinstance(d, int) for d in shape):
        result = np.broadcast_to(result, tuple(shape))
    return [result]


def table_values(table: list[int], dtype: np.dtype) -> np.ndarray:
    """A lookup table's entries as `dtype` values (floats are stored as their bit patterns)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or dtype.name == "bfloat16":
        return np.asarray(table, np.uint64).astype(f"uint{8 * dtype.itemsize}").view(dtype)
    return np.asarray(table, np.int64).astype(dtype)


def lookup(codes: np.ndarray, table: list[int], dtype: np.dtype) -> np.ndarray:
    """Entry q - min of `table` for each 8-bit integer q (a `lookup` scalar op)."""
    codes = np.asarray(codes)
    if codes.dtype not in (np.int8, np.uint8) or len(table) != 256:
        raise PlanError(f"lookup: reads a 256-entry table at 8-bit integers, not {codes.dtype} "
                        f"with {len(table)} entries")
    low = -128 if codes.dtype == np.int8 else 0
    return table_values(table, dtype)[codes.astype(np.int64) - low]


def view_reach(offset: int, strides: list[int], shape: Any) -> tuple[int, int]:
    """The lowest and highest element a strided view of a non-empty `shape` reads (strides
    may be negative: a slice with a negative step)."""
    spans = [s * (int(d) - 1) for s, d in zip(strides, shape, strict=True)]
    return (offset + sum(x for x in spans if x < 0), offset + sum(x for x in spans if x > 0))


def strided(buffer: np.ndarray, view: dict[str, Any], shape: Any) -> np.ndarray:
    """The elements of `buffer` (its bytes in row-major order) at `offset + sum(c_d *
    strides[d])` for each coordinate `c` of `shape`: what a transpose / slice chain absorbed by
    an elementwise kernel would have made (a read-only view, no copy)."""
    flat = np.ascontiguousarray(buffer).reshape(-1)
    if any(int(d) == 0 for d in shape):
        return np.empty(tuple(int(d) for d in shape), flat.dtype)
    strides = [int(s) for s in view["strides"]]
    offset = int(view["offset"])
    low, high = view_reach(offset, strides, shape)
    if low < 0 or high >= flat.size:
        raise PlanError(f"elementwise view {view} reads outside its input's {flat.size} "
                        "elements")
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=tuple(int(d) for d in shape),
        strides=[s * flat.itemsize for s in strides], writeable=False)


def with_epilogue(kernel: Any) -> Any:
    """`kernel` followed by its step's `epilogue` region, if any: the trailing inputs the
    epilogue reads are split off first, and the region maps the kernel's result (value 0, in
    the kernel's own type) to the type the step stores (`stored_dtype`)."""
    @functools.wraps(kernel)
    def run(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
        epilogue = params.get("epilogue")
        if epilogue is None:
            return kernel(inputs, params)
        own = len(inputs) - len(epilogue["in_shapes"])
        (result,) = kernel(inputs[:own], params)
        region = {"ops": epilogue["ops"], "result": epilogue["result"]}
        (out,) = elementwise([result, *inputs[own:]],
                             {**params, "region": region, "out_dtypes": [stored_dtype(params)]})
        return [np.ascontiguousarray(out)]
    return run


def fill(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """A tensor of one value, shaped by the shape operand or the result's (static) shape."""
    if inputs:
        shape = tuple(int(d) for d in np.asarray(inputs[0]).reshape(-1))
    else:
        shape = out_shape(params)
        if shape is None or not all(isinstance(d, int) for d in shape):
            raise ShapeError("fill: the result shape is not static")
        shape = tuple(shape)
    return [np.full(shape, params["value"], dtype=out_dtype(params))]


def bitcast(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """The bits of each element as `to` (same width; numpy's little-endian view)."""
    return [np.ascontiguousarray(inputs[0]).view(np.dtype(params["to"]))]


KERNELS = {
    "elementwise": elementwise,
    "bitcast": bitcast,
    "unary": _one_op(lambda p: p["fn"]),
    "binary": _one_op(lambda p: p["fn"]),
    "select": _one_op(lambda p: "select"),
    "cast": _one_op(lambda p: "saturate_cast" if p.get("saturate") else "cast"),
    "fill": fill,
}
