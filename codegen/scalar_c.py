"""Scalar functions (the names of `ember.dialects.nn.functions`) -> C expressions.

One table, keyed like `functions.UNARY` / `BINARY`: each entry is a function of a `CScalar`
context (the C type being computed, its literals and math-function spellings) and the argument
expressions, returning one C expression. The elementwise template prints a kernel's scalar region
through it; other templates use `c_type` / `c_literal`.

Half precision (float16, bfloat16) is opt-in: `c_type` refuses it, so a template that does not
know about it falls back to the host. A template that does stores halves as 2-byte structs
(`storage_type`, no arithmetic on them compiles), computes in float (`compute_type`), and
converts at the edges (`load_float`, `store_from_float`, `round_to`); `HALF_PRELUDE` defines
them without `cuda_fp16.h` (inline PTX and integer ops), and `half_prelude` gives it to a
kernel whose text uses them.
"""

from __future__ import annotations

import math
import re
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


# half-precision dtype name -> its C storage type (defined by HALF_PRELUDE)
HALF_TYPES: dict[str, str] = {"float16": "ember_half", "bfloat16": "ember_bf16"}

# Storage, conversions and rounding of the half types, without cuda_fp16.h (NVRTC on a machine
# with only the NVRTC wheel has no such header). `bits` is the IEEE binary16 / bfloat16 pattern;
# the *2 pairs are 4-byte aligned, for two-element loads and stores.
HALF_PRELUDE = """\
// half storage: 2-byte structs with no arithmetic; compute in float through these helpers
struct __align__(2) ember_half { unsigned short bits; };
struct __align__(2) ember_bf16 { unsigned short bits; };
struct __align__(4) ember_half2 { ember_half x, y; };
struct __align__(4) ember_bf162 { ember_bf16 x, y; };
__device__ __forceinline__ float ember_load(ember_half h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h.bits));
    return f;
}
__device__ __forceinline__ float ember_load(ember_bf16 h) {
    return __uint_as_float((unsigned int)h.bits << 16);
}
__device__ __forceinline__ ember_half ember_to_half(float f) {  // round to nearest even
    ember_half h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
    return h;
}
__device__ __forceinline__ ember_bf16 ember_to_bf16(float f) {  // round to nearest even
    unsigned int u = __float_as_uint(f);
    ember_bf16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a (quiet) NaN
        h.bits = (unsigned short)((u >> 16) | 0x40u);
        return h;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    h.bits = (unsigned short)(u >> 16);
    return h;
}
__device__ __forceinline__ float ember_round_half(float f) { return ember_load(ember_to_half(f)); }
__device__ __forceinline__ float ember_round_bf16(float f) { return ember_load(ember_to_bf16(f)); }
"""
_HALF_NAMES = re.compile(r"\bember_(half|bf16|load|to_half|to_bf16|round_half|round_bf16)\b")

# float8 dtype name -> its C storage type (FLOAT8_PRELUDE): stored, computed in float like the
# halves (a float holding a value of the type), converted at the edges
FLOAT8_TYPES: dict[str, str] = {"float8_e4m3fn": "ember_e4m3"}

# E4M3 (ONNX's float8e4m3fn: bias 7, no infinities, 0x7f / 0xff NaN, largest finite 448)
# without cuda_fp8.h: decoded exactly with integer ops; encoded to nearest even by the
# conversion unit on sm_89+ (`cvt.rn.satfinite.e4m3x2.f32`), in integer ops before. Saturating
# (ONNX's saturate=1): beyond +-448, infinities included, the largest finite value of the sign;
# the plain conversion (saturate=0) makes a magnitude over 464 (rounding past 448) a NaN, as
# ml_dtypes does. A NaN stays a NaN.
FLOAT8_PRELUDE = """\
struct __align__(1) ember_e4m3 { unsigned char bits; };
__device__ __forceinline__ float ember_load(ember_e4m3 v) {
    const unsigned b = v.bits, e = (b >> 3) & 15u, m = b & 7u;
    const float mag = (b & 0x7fu) == 0x7fu ? __int_as_float(0x7fffffff)
        : e ? __uint_as_float(((e + 120u) << 23) | (m << 20)) : (float)m * 0.001953125f;
    return (b & 0x80u) ? -mag : mag;
}
#if __CUDA_ARCH__ >= 890
#define EMBER_CVT_E4M3 1
__device__ __forceinline__ unsigned char ember_cvt_e4m3(float f) {
    unsigned short pair;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(f));
    return (unsigned char)(pair & 0xffu);
}
#endif
__device__ __forceinline__ ember_e4m3 ember_to_e4m3(float f) {  // nearest even, saturating
    ember_e4m3 r;
#ifdef EMBER_CVT_E4M3
    r.bits = f != f ? (unsigned char)(((__float_as_uint(f) >> 24) & 0x80u) | 0x7fu)
                    : ember_cvt_e4m3(f);  // (a NaN keeps its sign, as ml_dtypes)
#else
    const float a = fabsf(f);
    unsigned b;
    if (a != a) {
        b = 0x7fu;
    } else if (a >= 448.0f) {
        b = 0x7eu;
    } else if (a < 0.015625f) {  // subnormal: multiples of 2^-9
        b = (unsigned)__float2int_rn(a * 512.0f);
    } else {  // 3 mantissa bits of 23, nearest even; a carry moves the exponent
        unsigned u = __float_as_uint(a);
        u += 0x7ffffu + ((u >> 20) & 1u);
        b = (((u >> 23) - 120u) << 3) | ((u >> 20) & 7u);
    }
    r.bits = (unsigned char)(((__float_as_uint(f) >> 24) & 0x80u) | b);
#endif
    return r;
}
__device__ __forceinline__ ember_e4m3 ember_to_e4m3_nosat(float f) {
    if (!(fabsf(f) <= 464.0f)) {  // rounds past 448 (or NaN): NaN of the sign
        ember_e4m3 r;
        r.bits = (unsigned char)(((__float_as_uint(f) >> 24) & 0x80u) | 0x7fu);
        return r;
    }
    return ember_to_e4m3(f);
}
__device__ __forceinline__ float ember_round_e4m3(float f) { return ember_load(ember_to_e4m3(f)); }
__device__ __forceinline__ float ember_round_e4m3_nosat(float f) {
    return ember_load(ember_to_e4m3_nosat(f));
}
"""
_FLOAT8_NAMES = re.compile(r"\bember_(e4m3|to_e4m3|to_e4m3_nosat|round_e4m3|round_e4m3_nosat)\b")
_TO = {"float16": "ember_to_half", "bfloat16": "ember_to_bf16", "float8_e4m3fn": "ember_to_e4m3"}
_ROUND = {"float16": "ember_round_half", "bfloat16": "ember_round_bf16",
          "float8_e4m3fn": "ember_round_e4m3"}


def dtype_name(dtype: str) -> str:
    """numpy's name of a dtype ("bfloat16" without needing ml_dtypes registered)."""
    text = str(dtype)
    return text if text in HALF_TYPES or text in FLOAT8_TYPES else np.dtype(dtype).name


def is_half(dtype: str) -> bool:
    """Whether `dtype` is float16 or bfloat16."""
    return str(dtype) in HALF_TYPES


def is_float8(dtype: str) -> bool:
    """Whether `dtype` is a float8 type CUDA kernels store (`FLOAT8_TYPES`)."""
    return str(dtype) in FLOAT8_TYPES


def stored_in_float(name: str) -> bool:
    """The halves and the float8 types: stored as structs, computed in float."""
    return name in HALF_TYPES or name in FLOAT8_TYPES


def storage_type(dtype: str) -> str:
    """The C type of one element in memory: `ember_half` / `ember_bf16` (2-byte structs) for the
    halves, `ember_e4m3` (a 1-byte struct) for float8, `c_type` otherwise. Pointers, shared
    tiles of stored values, and plain copies use it."""
    name = dtype_name(dtype)
    return {**HALF_TYPES, **FLOAT8_TYPES}.get(name) or c_type(name)


def compute_type(dtype: str) -> str:
    """The C type a kernel computes `dtype` values in: float for the halves and float8,
    `c_type` otherwise."""
    return "float" if stored_in_float(dtype_name(dtype)) else c_type(dtype)


def _primary(expr: str) -> str:
    return expr if re.fullmatch(r"[\w.]+", expr) else f"({expr})"


def load_float(expr: str, dtype: str) -> str:
    """`expr` (an element of `storage_type(dtype)`) as a `compute_type(dtype)` expression: exact
    (float) for the halves and float8, `expr` itself otherwise."""
    return f"ember_load({expr})" if stored_in_float(dtype_name(dtype)) else expr


def store_from_float(value: str, dtype: str) -> str:
    """A `storage_type(dtype)` expression of `value` (a float, or any C arithmetic value): rounded
    to nearest even for the halves (a double goes through float), a C cast otherwise."""
    name = dtype_name(dtype)
    if name in HALF_TYPES or name in FLOAT8_TYPES:
        return f"{_TO[name]}({value})"
    return f"({c_type(name)}){_primary(value)}"


def round_to(value: str, dtype: str) -> str:
    """`value` (float) rounded to the precision of `dtype`, still a float, for the halves (what
    storing and loading again gives); `value` itself otherwise."""
    name = dtype_name(dtype)
    return f"{_ROUND[name]}({value})" if stored_in_float(name) else value


def half_prelude(text: str) -> str:
    """HALF_PRELUDE where kernel text `text` uses its names, and FLOAT8_PRELUDE where it uses
    theirs (it needs HALF_PRELUDE's `ember_load` overloads beside its own), else ""."""
    if _FLOAT8_NAMES.search(text):
        return HALF_PRELUDE + FLOAT8_PRELUDE
    return HALF_PRELUDE if _HALF_NAMES.search(text) else ""


def c_type(dtype: str) -> str:
    """The C type of a numpy dtype name. The halves are refused (UnsupportedError naming them):
    a template computes on them only through `storage_type` / `load_float` / `store_from_float`,
    so one that has not opted in falls back to the host instead of computing on raw bits."""
    name = dtype_name(dtype)
    if name not in C_TYPES:
        raise UnsupportedError(f"CUDA codegen: element type {name} is not supported "
                               f"(supported: {', '.join(C_TYPES)})")
    return C_TYPES[name]


def rounded_to_half(value: float, dtype: str) -> float:
    """`value` rounded (to nearest even, through float32) to the half type `dtype`, as a float."""
    f = np.float32(value)
    if dtype_name(dtype) == "float16" or math.isnan(f) or math.isinf(f):
        return float(np.float16(f)) if dtype_name(dtype) == "float16" else float(f)
    u = int(np.array(f).view(np.uint32))
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return float(np.array(u, np.uint32).view(np.float32))


def c_literal(value: float | int | bool, dtype: str) -> str:
    """A C literal of `value` in `dtype` (inf/nan spelled with CUDA's macros). For a half type:
    the float literal (its `compute_type`) of `value` rounded to that type."""
    name = dtype_name(dtype)
    if name in HALF_TYPES:
        return c_literal(rounded_to_half(float(value), name), "float32")
    if name in FLOAT8_TYPES:
        import ml_dtypes  # (an onnx dependency)
        return c_literal(float(np.float32(value).astype(getattr(ml_dtypes, name))), "float32")
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
        return compute_type(self.dtype)

    @property
    def is_float(self) -> bool:
        return self.dtype in ("float32", "float64") or is_half(self.dtype)

    def m(self, name: str) -> str:
        """A math function for this type: "exp" -> "expf" for float (and the halves, computed in
        float), "exp" for double."""
        return name if self.dtype == "float64" else name + "f"

    def lit(self, v: float) -> str:
        """A literal in the computing type (parameters of a half op are not rounded to it: the
        reference computes with them in float64)."""
        if is_half(self.dtype):
            return c_literal(v, "float32")
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


# functions whose result is one of their value arguments (or 0, ±1): a half in, the same half
# out, with no rounding needed
_PICKS_AN_ARGUMENT = frozenset({"select", "max", "min", "relu", "neg", "abs", "sign"})


def scalar_expr(fn: str, args: Sequence[str], arg_dtypes: Sequence[str], out_dtype: str,
                alpha: float | None = None, beta: float | None = None) -> str:
    """The C expression of scalar function `fn` over argument expressions `args` (of dtypes
    `arg_dtypes`), converted to `out_dtype`'s C type.

    Values of a half type are `compute_type` (float) expressions holding values of that type: a
    half result is computed in float and rounded to the half (`round_to`), so a chain of half
    ops rounds after each op as the numpy reference does."""
    out_name = dtype_name(out_dtype)
    if fn in ("cast", "saturate_cast") and is_float8(out_name):  # ONNX's saturate: float8 only
        nosat = "" if fn == "saturate_cast" else "_nosat"
        return f"ember_round_e4m3{nosat}((float)({args[0]}))"
    if fn == "cast":
        if out_name == "bool":
            return f"({args[0]} != 0)"
        if is_half(out_name):
            return round_to(f"(float)({args[0]})", out_name)
        return f"({c_type(out_name)})({args[0]})"
    rule = SCALAR_C.get(fn)
    if rule is None:
        raise UnsupportedError(f"CUDA codegen: no C expression for scalar function '{fn}'")
    # the computing type: select's is its value operands', the others' their first operand's
    dtype = arg_dtypes[1] if fn == "select" else arg_dtypes[0]
    c = CScalar(dtype_name(dtype), float(alpha or 0.0), float(beta or 0.0))
    compute_type(c.dtype)
    expr = rule(c, list(args))
    if not is_half(out_name) or (fn in _PICKS_AN_ARGUMENT and c.dtype == out_name):
        return expr
    return round_to(expr, out_name)

