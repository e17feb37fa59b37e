"""Scalar functions (the names of `ember.dialects.nn.functions`) -> C expressions.

One table, keyed like `functions.UNARY` / `BINARY`: each entry is a function of a `CScalar`
context (the C type being computed, its literals and math-function spellings) and the argument
expressions, returning one C expression. The elementwise template prints a kernel's scalar region
through it; other templates use `c_type` / `c_literal`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ember.errors import UnsupportedError

# numpy dtype name -> C type
C_TYPES: dict[str, str] = {
    "float32": "float",
    "float64": "double",
    "int64": "long long",
    "int32": "int",
    "int16": "short",
    "int8": "signed char",
    "uint64": "unsigned long long",
    "uint32": "unsigned int",
    "uint16": "unsigned short",
    "uint8": "unsigned char",
    "bool": "bool",
}

# small helpers every kernel may call (floored modulo as numpy's `mod`)
PRELUDE = """\
template <typename T> __device__ __forceinline__ T ember_mod(T x, T y) {
    T r = x % y;
    return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}
__device__ __forceinline__ float ember_mod(float x, float y) {
    float r = fmodf(x, y);
    return (r != 0.0f && ((r < 0.0f) != (y < 0.0f))) ? r + y : r;
}
__device__ __forceinline__ double ember_mod(double x, double y) {
    double r = fmod(x, y);
    return (r != 0.0 && ((r < 0.0) != (y < 0.0))) ? r + y : r;
}
"""


def c_type(dtype: str) -> str:
    """The C type of a numpy dtype name; float16 and others are not supported (FP32 builds)."""
    name = np.dtype(dtype).name
    if name not in C_TYPES:
        raise UnsupportedError(f"CUDA codegen: element type {name} is not supported "
                               f"(supported: {', '.join(C_TYPES)})")
    return C_TYPES[name]


def c_literal(value: float | int | bool, dtype: str) -> str:
    """A C literal of `value` in `dtype` (inf/nan spelled with CUDA's macros)."""
    name = np.dtype(dtype).name
    if name == "bool":
        return "true" if value else "false"
    if name in ("float32", "float64"):
        v = float(value)
        # NVRTC has no <math.h> macros (INFINITY, NAN): spell the bits
        if math.isnan(v):
            return ("__int_as_float(0x7fffffff)" if name == "float32"
                    else "__longlong_as_double(0x7ff8000000000000LL)")
        if math.isinf(v):
            s = ("__int_as_float(0x7f800000)" if name == "float32"
                 else "__longlong_as_double(0x7ff0000000000000LL)")
            return s if v > 0 else "(-" + s + ")"
        text = repr(float(np.float32(v))) if name == "float32" else repr(v)
        if "e" not in text and "." not in text:
            text += ".0"
        return text + ("f" if name == "float32" else "")
    v = int(value)
    if name == "int64":
        return f"{v}LL" if v != -(2**63) else "(-9223372036854775807LL - 1)"
    if name == "uint64":
        return f"{v}ULL"
    return str(v)


@dataclass(frozen=True)
class CScalar:
    """What one scalar op computes in: its argument dtype (`dtype`) and parameters."""

    dtype: str
    alpha: float = 0.0
    beta: float = 0.0

    @property
    def t(self) -> str:
        return c_type(self.dtype)

    @property
    def is_float(self) -> bool:
        return self.dtype in ("float32", "float64")

    def m(self, name: str) -> str:
        """A math function for this type: "exp" -> "expf" for float, "exp" for double."""
        return name + "f" if self.dtype == "float32" else name

    def lit(self, v: float) -> str:
        return c_literal(v, self.dtype if self.is_float else "float64")

    @property
    def a(self) -> str:
        return self.lit(self.alpha)

    @property
    def b(self) -> str:
        return self.lit(self.beta)


Rule = Callable[[CScalar, Sequence[str]], str]


def _float_only(name: str, rule: Rule) -> Rule:
    def run(c: CScalar, x: Sequence[str]) -> str:
        if not c.is_float:
            raise UnsupportedError(f"CUDA codegen: scalar function '{name}' on {c.dtype} is not "
                                   "supported (floating point only)")
        return rule(c, x)
    return run


def _softplus(c: CScalar, x: str) -> str:
    return f"({x} > {c.lit(20)} ? {x} : {c.m('log1p')}({c.m('exp')}({x})))"


_FLOAT_UNARY: dict[str, Rule] = {
    "leaky_relu": lambda c, x: f"({x[0]} >= {c.lit(0)} ? {x[0]} : {c.a} * {x[0]})",
    "elu": lambda c, x: f"({x[0]} > {c.lit(0)} ? {x[0]} : {c.a} * {c.m('expm1')}({x[0]}))",
    "celu": lambda c, x: (f"({c.m('fmax')}({c.lit(0)}, {x[0]}) + {c.m('fmin')}({c.lit(0)}, "
                          f"{c.a} * {c.m('expm1')}({x[0]} / {c.a})))"),
    "selu": lambda c, x: (f"({x[0]} > {c.lit(0)} ? {c.b} * {x[0]} : "
                          f"{c.b} * ({c.a} * {c.m('exp')}({x[0]}) - {c.a}))"),
    "sigmoid": lambda c, x: f"({c.lit(1)} / ({c.lit(1)} + {c.m('exp')}(-{x[0]})))",
    "hard_sigmoid": lambda c, x: (f"{c.m('fmin')}({c.m('fmax')}({c.a} * {x[0]} + {c.b}, "
                                  f"{c.lit(0)}), {c.lit(1)})"),
    "hard_swish": lambda c, x: (f"({x[0]} * {c.m('fmin')}({c.m('fmax')}({x[0]} / {c.lit(6)} + "
                                f"{c.lit(0.5)}, {c.lit(0)}), {c.lit(1)}))"),
    "softplus": lambda c, x: _softplus(c, x[0]),
    "softsign": lambda c, x: f"({x[0]} / ({c.lit(1)} + {c.m('fabs')}({x[0]})))",
    "mish": lambda c, x: f"({x[0]} * {c.m('tanh')}({_softplus(c, x[0])}))",
    "thresholded_relu": lambda c, x: f"({x[0]} > {c.a} ? {x[0]} : {c.lit(0)})",
    "shrink": lambda c, x: (f"({x[0]} < -{c.b} ? {x[0]} + {c.a} : "
                            f"({x[0]} > {c.b} ? {x[0]} - {c.a} : {c.lit(0)}))"),
    "erf": lambda c, x: f"{c.m('erf')}({x[0]})",
    "gelu": lambda c, x: (f"({c.lit(0.5)} * {x[0]} * ({c.lit(1)} + "
                          f"{c.m('erf')}({x[0]} * {c.lit(1 / math.sqrt(2))})))"),
    "gelu_tanh": lambda c, x: (f"({c.lit(0.5)} * {x[0]} * ({c.lit(1)} + {c.m('tanh')}("
                               f"{c.lit(math.sqrt(2 / math.pi))} * ({x[0]} + {c.lit(0.044715)} "
                               f"* {x[0]} * {x[0]} * {x[0]}))))"),
    "reciprocal": lambda c, x: f"({c.lit(1)} / {x[0]})",
    "floor": lambda c, x: f"{c.m('floor')}({x[0]})",
    "ceil": lambda c, x: f"{c.m('ceil')}({x[0]})",
    "round": lambda c, x: f"{c.m('rint')}({x[0]})",  # half to even, as numpy
    "isnan": lambda c, x: f"isnan({x[0]})",
    "isinf": lambda c, x: f"isinf({x[0]})",
    "isposinf": lambda c, x: f"(isinf({x[0]}) && {x[0]} > 0)",
    "isneginf": lambda c, x: f"(isinf({x[0]}) && {x[0]} < 0)",
}
for _name in ("tanh", "exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
              "cosh", "asinh", "acosh", "atanh"):
    _FLOAT_UNARY[_name] = (lambda n: lambda c, x: f"{c.m(n)}({x[0]})")(_name)


def _relu(c: CScalar, x: Sequence[str]) -> str:
    if c.is_float:
        return f"{c.m('fmax')}({x[0]}, {c.lit(0)})"
    return f"({x[0]} > 0 ? {x[0]} : ({c.t})0)"


def _abs(c: CScalar, x: Sequence[str]) -> str:
    if c.is_float:
        return f"{c.m('fabs')}({x[0]})"
    return f"({x[0]} < 0 ? ({c.t})(-{x[0]}) : {x[0]})"


def _sign(c: CScalar, x: Sequence[str]) -> str:
    return f"({c.t})(({x[0]} > 0) - ({x[0]} < 0))"


def _clip(c: CScalar, x: Sequence[str]) -> str:
    if c.is_float:
        return f"{c.m('fmin')}({c.m('fmax')}({x[0]}, {c.a}), {c.b})"
    lo, hi = f"({c.t}){int(c.alpha)}", f"({c.t}){int(c.beta)}"
    return f"({x[0]} < {lo} ? {lo} : ({x[0]} > {hi} ? {hi} : {x[0]}))"


def _minmax(name: str, op: str) -> Rule:
    def run(c: CScalar, x: Sequence[str]) -> str:
        if c.is_float:
            return f"{c.m('f' + name)}({x[0]}, {x[1]})"
        return f"({x[0]} {op} {x[1]} ? {x[0]} : {x[1]})"
    return run


def _div(c: CScalar, x: Sequence[str]) -> str:
    return f"({x[0]} / {x[1]})"  # C integer division truncates toward zero, as ONNX's


def _pow(c: CScalar, x: Sequence[str]) -> str:
    if c.is_float:
        return f"{c.m('pow')}({x[0]}, ({c.t}){x[1]})"
    return f"({c.t})pow((double){x[0]}, (double){x[1]})"


def _fmod(c: CScalar, x: Sequence[str]) -> str:
    return f"{c.m('fmod')}({x[0]}, {x[1]})" if c.is_float else f"({x[0]} % {x[1]})"


# name -> rule; the rule's CScalar has the dtype of the first argument
SCALAR_C: dict[str, Rule] = {
    **{k: _float_only(k, v) for k, v in _FLOAT_UNARY.items()},
    "relu": _relu,
    "abs": _abs,
    "neg": lambda c, x: f"(-{x[0]})",
    "sign": _sign,
    "clip": _clip,
    "not": lambda c, x: f"(!{x[0]})",
    "bitwise_not": lambda c, x: f"(~{x[0]})",
    "add": lambda c, x: f"({x[0]} + {x[1]})",
    "sub": lambda c, x: f"({x[0]} - {x[1]})",
    "mul": lambda c, x: f"({x[0]} * {x[1]})",
    "div": _div,
    "pow": _pow,
    "max": _minmax("max", ">="),
    "min": _minmax("min", "<="),
    "mod": lambda c, x: f"ember_mod({x[0]}, {x[1]})",
    "fmod": _fmod,
    "prelu": lambda c, x: f"({x[0]} < 0 ? {x[0]} * {x[1]} : {x[0]})",
    "eq": lambda c, x: f"({x[0]} == {x[1]})",
    "lt": lambda c, x: f"({x[0]} < {x[1]})",
    "gt": lambda c, x: f"({x[0]} > {x[1]})",
    "le": lambda c, x: f"({x[0]} <= {x[1]})",
    "ge": lambda c, x: f"({x[0]} >= {x[1]})",
    "and": lambda c, x: f"((bool){x[0]} && (bool){x[1]})",
    "or": lambda c, x: f"((bool){x[0]} || (bool){x[1]})",
    "xor": lambda c, x: f"((bool){x[0]} != (bool){x[1]})",
    "bitwise_and": lambda c, x: f"({x[0]} & {x[1]})",
    "bitwise_or": lambda c, x: f"({x[0]} | {x[1]})",
    "bitwise_xor": lambda c, x: f"({x[0]} ^ {x[1]})",
    "shl": lambda c, x: f"({x[0]} << {x[1]})",
    "shr": lambda c, x: f"({x[0]} >> {x[1]})",
    "select": lambda c, x: f"((bool){x[0]} ? {x[1]} : {x[2]})",
}


def scalar_expr(fn: str, args: Sequence[str], arg_dtypes: Sequence[str], out_dtype: str,
                alpha: float | None = None, beta: float | None = None) -> str:
    """The C expression of scalar function `fn` over argument expressions `args` (of dtypes
    `arg_dtypes`), converted to `out_dtype`'s C type."""
    if fn == "cast":
        if np.dtype(out_dtype).name == "bool":
            return f"({args[0]} != 0)"
        return f"({c_type(out_dtype)})({args[0]})"
    rule = SCALAR_C.get(fn)
    if rule is None:
        raise UnsupportedError(f"CUDA codegen: no C expression for scalar function '{fn}'")
    # the computing type: select's is its value operands', the others' their first operand's
    dtype = arg_dtypes[1] if fn == "select" else arg_dtypes[0]
    c = CScalar(np.dtype(dtype).name, float(alpha or 0.0), float(beta or 0.0))
    c_type(c.dtype)
    return rule(c, list(args))
