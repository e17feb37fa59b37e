"""The scalar functions of `nn.unary` and `nn.binary` (and `kernel.scalar`): names, numpy
semantics and result kinds.

One table for the whole compiler and runtime: legalization picks names from it, verifiers check
against it, the CPU kernels and constant folding evaluate through it (and codegen prints C from a
table keyed the same way). `ember.dialects.nn.functions` re-exports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _f(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Evaluate in float64 and return the input's dtype."""
    def run(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return np.asarray(fn(x.astype(np.float64), a, b)).astype(x.dtype)
    return run


def _selu(x, a, g):
    return np.where(x > 0, g * x, g * (a * np.exp(x) - a))


def _gelu_tanh(x, a, b):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


# name -> (numpy fn(x, alpha, beta), result is bool); alpha/beta default per function below
UNARY: dict[str, tuple[Callable[..., np.ndarray], bool]] = {
    "relu": (lambda x, a, b: np.maximum(x, np.zeros_like(x)), False),
    "leaky_relu": (_f(lambda x, a, b: np.where(x >= 0, x, a * x)), False),
    "elu": (_f(lambda x, a, b: np.where(x > 0, x, a * (np.exp(x) - 1))), False),
    "celu": (_f(lambda x, a, b: np.maximum(0, x) + np.minimum(0, a * (np.exp(x / a) - 1))), False),
    "selu": (_f(_selu), False),
    "sigmoid": (_f(lambda x, a, b: 1 / (1 + np.exp(-x))), False),
    "hard_sigmoid": (_f(lambda x, a, b: np.clip(a * x + b, 0, 1)), False),
    "hard_swish": (_f(lambda x, a, b: x * np.clip(x / 6 + 0.5, 0, 1)), False),
    "softplus": (_f(lambda x, a, b: np.log1p(np.exp(x))), False),
    "softsign": (_f(lambda x, a, b: x / (1 + np.abs(x))), False),
    "mish": (_f(lambda x, a, b: x * np.tanh(np.log1p(np.exp(x)))), False),
    "thresholded_relu": (_f(lambda x, a, b: np.where(x > a, x, 0)), False),
    "shrink": (_f(lambda x, a, b: np.where(x < -b, x + a, np.where(x > b, x - a, 0))), False),
    "tanh": (_f(lambda x, a, b: np.tanh(x)), False),
    "exp": (_f(lambda x, a, b: np.exp(x)), False),
    "log": (_f(lambda x, a, b: np.log(x)), False),
    "sqrt": (_f(lambda x, a, b: np.sqrt(x)), False),
    "reciprocal": (_f(lambda x, a, b: 1 / x), False),
    "abs": (lambda x, a, b: np.abs(x), False),
    "neg": (lambda x, a, b: np.negative(x), False),
    "sign": (lambda x, a, b: np.sign(x), False),
    "erf": (_f(lambda x, a, b: _erf(x)), False),
    "gelu": (_f(lambda x, a, b: 0.5 * x * (1 + _erf(x / np.sqrt(2)))), False),
    "gelu_tanh": (_f(_gelu_tanh), False),
    "clip": (lambda x, a, b: np.clip(x, np.asarray(a).astype(x.dtype),
                                     np.asarray(b).astype(x.dtype)), False),
    "floor": (lambda x, a, b: np.floor(x), False),
    "ceil": (lambda x, a, b: np.ceil(x), False),
    "round": (lambda x, a, b: np.round(x), False),
    "sin": (_f(lambda x, a, b: np.sin(x)), False),
    "cos": (_f(lambda x, a, b: np.cos(x)), False),
    "tan": (_f(lambda x, a, b: np.tan(x)), False),
    "asin": (_f(lambda x, a, b: np.arcsin(x)), False),
    "acos": (_f(lambda x, a, b: np.arccos(x)), False),
    "atan": (_f(lambda x, a, b: np.arctan(x)), False),
    "sinh": (_f(lambda x, a, b: np.sinh(x)), False),
    "cosh": (_f(lambda x, a, b: np.cosh(x)), False),
    "asinh": (_f(lambda x, a, b: np.arcsinh(x)), False),
    "acosh": (_f(lambda x, a, b: np.arccosh(x)), False),
    "atanh": (_f(lambda x, a, b: np.arctanh(x)), False),
    "not": (lambda x, a, b: np.logical_not(x), True),
    "bitwise_not": (lambda x, a, b: np.invert(x), False),
    "isnan": (lambda x, a, b: np.isnan(x), True),
    "isinf": (lambda x, a, b: np.isinf(x), True),
    "isposinf": (lambda x, a, b: np.isposinf(x), True),
    "isneginf": (lambda x, a, b: np.isneginf(x), True),
}


def _div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):  # ONNX integer division truncates toward zero
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.trunc(x.astype(np.float64) / y.astype(np.float64))
        return q.astype(x.dtype)
    return np.divide(x, y)


def _pow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        return np.power(x.astype(np.float64), y.astype(np.float64)).astype(x.dtype)
    return np.power(x, y.astype(x.dtype))


# name -> (numpy fn(x, y), result is bool)
BINARY: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], bool]] = {
    "add": (np.add, False),
    "sub": (np.subtract, False),
    "mul": (np.multiply, False),
    "div": (_div, False),
    "pow": (_pow, False),
    "max": (np.maximum, False),
    "min": (np.minimum, False),
    "mod": (np.mod, False),
    "fmod": (np.fmod, False),
    "prelu": (lambda x, s: np.where(x < 0, x * s, x), False),
    "eq": (np.equal, True),
    "lt": (np.less, True),
    "gt": (np.greater, True),
    "le": (np.less_equal, True),
    "ge": (np.greater_equal, True),
    "and": (np.logical_and, True),
    "or": (np.logical_or, True),
    "xor": (np.logical_xor, True),
    "bitwise_and": (np.bitwise_and, False),
    "bitwise_or": (np.bitwise_or, False),
    "bitwise_xor": (np.bitwise_xor, False),
    "shl": (np.left_shift, False),
    "shr": (np.right_shift, False),
}
# Binary functions whose operands may differ in element type (the second is the exponent).
MIXED_TYPES = frozenset({"pow"})
