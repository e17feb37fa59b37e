"""Elementwise kernels: `elementwise` (a scalar region over broadcast inputs) and the one-op
templates unary / binary / select / cast / fill that the nn ops of those names evaluate with;
`with_epilogue` runs the same region evaluator as a conv's / matmul's epilogue."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ember.errors import ShapeError
from ember.runtime.cpu_kernels.common import out_dtype, out_shape, stored_dtype, to_dtype
from ember.runtime.cpu_kernels.functions import BINARY, UNARY


def cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """ONNX Cast: float -> int truncates; anything -> bool is `!= 0`."""
    x = np.asarray(x)
    if dtype == np.bool_:
        return x != 0
    if np.issubdtype(x.dtype, np.floating) and np.issubdtype(dtype, np.integer):
        with np.errstate(invalid="ignore"):
            x = np.trunc(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype)


def scalar_fn(fn: str, args: list[np.ndarray], dtype: np.dtype | None,
              alpha: float | None = None, beta: float | None = None) -> np.ndarray:
    """One scalar function (UNARY / BINARY tables, select, cast) applied with broadcasting; the
    result in `dtype` where given."""
    if fn == "select":
        out = np.where(args[0], args[1], args[2])
    elif fn == "cast":
        if dtype is None:
            raise ShapeError("cast: the result dtype is not known")
        return cast(args[0], dtype)
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
    for op in region["ops"]:
        dtype = np.dtype(op["dtype"]) if op.get("dtype") else None
        values.append(scalar_fn(op["fn"], [values[i] for i in op["args"]], dtype,
                                op.get("alpha"), op.get("beta")))
    result = to_dtype(values[region["result"]], out_dtype(params))
    shape = out_shape(params)
    if shape is not None and all(isinstance(d, int) for d in shape):
        result = np.broadcast_to(result, tuple(shape))
    return [result]


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


KERNELS = {
    "elementwise": elementwise,
    "unary": _one_op(lambda p: p["fn"]),
    "binary": _one_op(lambda p: p["fn"]),
    "select": _one_op(lambda p: "select"),
    "cast": _one_op(lambda p: "cast"),
    "fill": fill,
}
