"""Legalizers of ONNX's elementwise operators: activations, arithmetic, comparisons, casts."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import Float8E8M0FNUType, UnitAttr
from xdsl.ir import Attribute, SSAValue

from ember.dialects.dtypes import (
    FLOAT8_SATURATING,
    element_type_from_onnx,
    numpy_dtype,
)
from ember.dialects.nn.elementwise import BitCastOp, CastOp, SelectOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of
from ember.errors import UnsupportedError
from ember.passes.convert_onnx_to_nn.builder import NNBuilder
from ember.passes.convert_onnx_to_nn.registry import legalizes
from ember.runtime.cpu_kernels.common import is_floating

# ONNX op -> (nn.unary function, ONNX attribute for alpha, ONNX attribute for beta)
_UNARY = {
    "Relu": ("relu", None, None),
    "LeakyRelu": ("leaky_relu", "alpha", None),
    "Elu": ("elu", "alpha", None),
    "Celu": ("celu", "alpha", None),
    "Selu": ("selu", "alpha", "gamma"),
    "Sigmoid": ("sigmoid", None, None),
    "HardSigmoid": ("hard_sigmoid", "alpha", "beta"),
    "HardSwish": ("hard_swish", None, None),
    "Softplus": ("softplus", None, None),
    "Softsign": ("softsign", None, None),
    "Mish": ("mish", None, None),
    "ThresholdedRelu": ("thresholded_relu", "alpha", None),
    "Shrink": ("shrink", "bias", "lambd"),
    "Tanh": ("tanh", None, None),
    "Exp": ("exp", None, None),
    "Log": ("log", None, None),
    "Sqrt": ("sqrt", None, None),
    "Reciprocal": ("reciprocal", None, None),
    "Abs": ("abs", None, None),
    "Neg": ("neg", None, None),
    "Sign": ("sign", None, None),
    "Erf": ("erf", None, None),
    "Floor": ("floor", None, None),
    "Ceil": ("ceil", None, None),
    "Round": ("round", None, None),
    "Sin": ("sin", None, None),
    "Cos": ("cos", None, None),
    "Tan": ("tan", None, None),
    "Asin": ("asin", None, None),
    "Acos": ("acos", None, None),
    "Atan": ("atan", None, None),
    "Sinh": ("sinh", None, None),
    "Cosh": ("cosh", None, None),
    "Asinh": ("asinh", None, None),
    "Acosh": ("acosh", None, None),
    "Atanh": ("atanh", None, None),
    "Not": ("not", None, None),
    "BitwiseNot": ("bitwise_not", None, None),
    "IsNaN": ("isnan", None, None),
}

_BINARY = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
    "Equal": "eq", "Less": "lt", "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge",
    "And": "and", "Or": "or", "Xor": "xor", "PRelu": "prelu",
    "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor",
}


def _first_input(op: OnnxOp) -> SSAValue:
    return op.operands[0]


@legalizes(*_UNARY)
def unary(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    fn, alpha, beta = _UNARY[op.ONNX_TYPE]
    a = float(op.attr(alpha)) if alpha else None
    c = float(op.attr(beta)) if beta else None
    return [b.unary(fn, _first_input(op), a, c)]


@legalizes("IsInf")
def is_inf(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    pos, neg = op.attr("detect_positive", 1), op.attr("detect_negative", 1)
    x = _first_input(op)
    if pos and neg:
        return [b.unary("isinf", x)]
    if pos or neg:
        return [b.unary("isposinf" if pos else "isneginf", x)]
    inf = b.unary("isinf", x)  # neither sign asked for: false everywhere, shaped like x
    return [b.binary("and", inf, b.unary("not", inf))]


@legalizes("Gelu")
def gelu(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    approximate = op.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise b.unsupported(f"approximate='{approximate}' is not supported")
    return [b.unary("gelu" if approximate == "none" else "gelu_tanh", _first_input(op))]


def _legacy_broadcast(b: NNBuilder, op: OnnxOp, x: SSAValue, y: SSAValue) -> SSAValue:
    """Opset < 7 `broadcast=1, axis=k`: align y's dims to x's starting at axis k."""
    if not op.attr("broadcast", 0):
        return y
    xs, ys = b.shape(x), b.shape(y)
    axis = op.attr("axis")
    if axis is None:
        return y
    axis = axis % len(xs) if xs else 0
    target = [1] * axis + list(ys) + [1] * (len(xs) - axis - len(ys))
    return b.reshape(y, target)


@legalizes(*_BINARY)
def binary(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, y = op.operands[0], op.operands[1]
    y = _legacy_broadcast(b, op, x, y)
    return [b.binary(_BINARY[op.ONNX_TYPE], x, y)]


@legalizes("Mod")
def mod(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """fmod=1: C's fmod (the dividend's sign); fmod=0: the divisor's sign, as Python's % (on
    floats too since onnx 1.20; on older opsets it was undefined for floats)."""
    x, y = op.operands
    return [b.binary("fmod" if op.attr("fmod", 0) else "mod", x, y)]


@legalizes("BitShift")
def bit_shift(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    direction = op.attr("direction")
    return [b.binary("shl" if direction == "LEFT" else "shr", *op.operands)]


@legalizes("Max", "Min", "Sum", "Mean")
def variadic(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    fn = {"Max": "max", "Min": "min", "Sum": "add", "Mean": "add"}[op.ONNX_TYPE]
    values = list(op.operands)
    result = values[0]
    for v in values[1:]:
        result = b.binary(fn, result, v)
    if op.ONNX_TYPE == "Mean" and len(values) > 1:
        result = b.binary("div", result, b.constant(len(values), like=result))
    return [result]


@legalizes("Where")
def where(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    return [b.value(SelectOp, list(op.operands))]


def _to(b: NNBuilder, op: OnnxOp) -> Attribute:
    """The element type of a Cast / BitCast's `to` (an unsupported one names the node)."""
    try:
        return element_type_from_onnx(op.attr("to"))
    except UnsupportedError as e:
        raise b.unsupported(str(e)) from None


@legalizes("Cast")
def cast(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    return [_saturating_cast(b, op, _first_input(op), _to(b, op))]


@legalizes("BitCast")
def bit_cast(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    to = _to(b, op)
    x = op.operands[0]
    return [x if element_type_of(x) == to else b.value(BitCastOp, [x], to=to)]


@legalizes("CastLike")
def cast_like(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    return [_saturating_cast(b, op, op.operands[0], element_type_of(op.operands[1]))]


def _saturating_cast(b: NNBuilder, op: OnnxOp, x: SSAValue, to: Attribute) -> SSAValue:
    """Cast/CastLike: `saturate` (default 1) applies to float8 results only (ONNX says so)."""
    saturate = op.attr("saturate", 1)
    if saturate not in (0, 1):
        raise b.unsupported(f"saturate={saturate} (must be 0 or 1)")
    # round_mode applies to float8e8m0 results only (ONNX says so); "up" is its default
    if isinstance(to, Float8E8M0FNUType) and op.attr("round_mode", "up") != "up":
        raise b.unsupported(f"round_mode={op.attr('round_mode')!r}: casts to float8e8m0 "
                            "round up only")
    if not saturate or not isinstance(to, FLOAT8_SATURATING) or element_type_of(x) == to:
        return b.cast(x, to)
    return b.value(CastOp, [x], to=to, saturate=UnitAttr())


def _limit(b: NNBuilder, op: OnnxOp, name: str) -> float | SSAValue | None:
    """A Clip bound: a float when constant, a value when computed, None when absent."""
    if op.has_attr(name):  # opset < 11
        return float(op.attr(name))
    value = op.onnx_input(name)
    if value is None:
        return None
    array = b.const(value)
    return value if array is None else float(np.asarray(array).reshape(-1)[0])


@legalizes("Clip")
def clip(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = _first_input(op)
    low, high = _limit(b, op, "min"), _limit(b, op, "max")
    if isinstance(low, SSAValue) or isinstance(high, SSAValue):
        result = x
        if low is not None:
            result = b.binary("max", result, low if isinstance(low, SSAValue)
                              else b.constant(low, like=x))
        if high is not None:
            result = b.binary("min", result, high if isinstance(high, SSAValue)
                              else b.constant(high, like=x))
        return [result]
    dtype = numpy_dtype(element_type_of(x))
    info = np.finfo(dtype) if is_floating(dtype) else np.iinfo(dtype)
    low = float(info.min) if low is None else low
    high = float(info.max) if high is None else high
    return [b.unary("clip", x, low, high)]
