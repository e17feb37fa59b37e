"""Cheaper C for the quantize arithmetic of a scalar region, bit for bit the same results.

A quantize is `round(x / s)` clipped to the integer type's range and cast to it; the next
dequantize casts back to float. Printed op by op, every quantize costs a `rintf` (FRND), a
float -> int conversion and an int -> float one, all in the GPU's conversion unit (16 per clock
per SM on sm_80/sm_90, against 128 float adds), so an INT8 GEMM whose fused tail holds seven
fake-quantizes (the erf GELU of a QDQ BERT) spends most of its epilogue there. `rewrites` finds,
in a region's op list, the ops that print as full-rate float arithmetic instead:

- `round` whose only user is a `clip` to integer bounds within 2**22: clip first, then round by
  adding and subtracting 1.5 * 2**23 (`MAGIC`): for |v| <= 2**22 the sum lands where the float
  spacing is 1, so it is rounded to nearest even exactly as `rintf`; the clipped value's sign
  goes back on (-0.3 rounds to -0, as `rintf` does). Clipping first gives the same value (the
  bounds are integers; a NaN clips to the lower bound both ways). The `clip` then prints as a
  copy.
- a cast of such an integral float to an integer type holding its range: the bits of v + MAGIC
  less those of MAGIC (an add and an integer subtract).
- a cast of that integer back to float32: the integral float it came from, plus +0 (a -0 becomes
  +0, as through the integer); a cast of any other 8- or 16-bit integer to float32 (an int8
  residual, a dequantize's input): the float whose bits are MAGIC's plus the integer, less
  MAGIC.

And a division by a value the same for every element (a quantize's scale) multiplies by the
divisor's reciprocal and corrects once (Markstein's step: with y = 1/s rounded
to nearest and q = x * y, q + (x - q * s) * y rounded once is x / s rounded to nearest, where
nothing underflows or overflows; the other cases take the full division). A float32 division
is a reciprocal in the conversion unit and a fix-up sequence; this is three float operations
once the reciprocal is known (`PRELUDE`). The reciprocal itself is computed once per thread, at
the top of the kernel (`reciprocal`'s line carries the `HOISTED` mark, and `templates.source`
moves such lines there): computed where the division is, NVRTC recomputed it for every
element, with its slow path's branch.

Where the divisor is a constant of the build (the region's `constant_ranges`: a QDQ scale) within
[2**-90, 2**120], `divisions` finds the divisions that need no full division at all
(`ember_div_near`: no branch, so the elements a thread handles interleave): those whose
quotient is only rounded and clipped to integer bounds (a quantize; in the corner cases of
Markstein's step — a tiny dividend, a quotient that is tiny, huge, infinite or NaN — x * y rounds
and clips to the same integer as x / s), and those whose dividend is provably zero or within
magnitudes where the correction is exact (a dequantized integer times a constant: the erf
GELU's x / sqrt(2) in a QDQ BERT). A divisor that varies by element (a merged Q/K/V GEMM's
column scales) takes the same form with its `__frcp_rn` computed per element.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ember.codegen.scalar_c import c_literal, load_float

MAGIC = "12582912.0f"  # 1.5 * 2**23
MAGIC_BITS = "0x4B400000"
_LIMIT = 2 ** 22
_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
               "uint16": (0, 65535), "int32": (-(2 ** 31), 2 ** 31 - 1)}
_SMALL_INTS = ("int8", "uint8", "int16", "uint16")

Rewrite = tuple[str, int, tuple[float, float]]
# the float types a region computes in float (a half value held in a float)
FLOATS = ("float32", "float16", "bfloat16")
# an FP16 value is 0, not finite, or of a magnitude within these (its smallest subnormal, its
# largest finite value): an FP16 kernel's results and the FP16 values between its ops
FP16_SIZE = (2.0 ** -24, 65504.0)
# a constant divisor in this range has a normal reciprocal and leaves Markstein's step exact
# wherever `ember_div_near` takes it (margins of 2**5 on each side of the exact bounds)
SAFE_DIVISOR = (2.0 ** -90, 2.0 ** 120)
HOISTED = "  // once per thread"  # the mark of a line `templates.source` moves to the top
FILE_SCOPE = "  // file scope"  # the mark of a line `templates.source` moves before the kernel
ROUNDS = ("rint_clipped", "rint_unsigned")  # the forms of a round (its clip first)


def rewrites(region: dict, dtypes: Sequence[str]) -> dict[int, Rewrite]:
    """{op position: (form, value, bounds)} for the ops of `region` (over values of `dtypes`,
    the region's arguments first) that print in a cheaper exact form: "rint_clipped" (`value`
    clipped to `bounds`, then rounded: a round, its clip's bounds; "rint_unsigned" where only
    casts to integers read it, `_unsigned_rounds`), "copy" (`value` itself: a round's clip, a
    clip of an integral float that clips nothing, a cast back from "rint_unsigned"),
    "to_int" (a cast of `value`, an integral float32 within `bounds`), "rounded_to_int" (a
    cast to an integer of `value` rounded to `bounds`, and "rint_unsigned" for a ReLU of such a
    round: `_fold_rounds`), "unsigned_zero" (`value`,
    an integral float32, with a zero made +0: its cast to an integer and back) and "from_int"
    (a cast of `value`, an 8- or 16-bit integer, to float32)."""
    ops = region["ops"]
    first = len(dtypes)
    dtype_of, uses = _types_and_uses(region, dtypes)
    integral: dict[int, tuple[float, float]] = {}  # value -> (lo, hi): an integral float32
    source: dict[int, int] = {}  # an int value cast from an integral float32 -> that float
    out: dict[int, Rewrite] = {}
    for i, op in enumerate(ops):
        value, fn, args = first + i, op["fn"], op["args"]
        producer = args[0] - first if args else -1
        if fn == "clip" and op["dtype"] == "float32" and _integral_bounds(op) and \
                producer >= 0 and ops[producer]["fn"] == "round" and \
                ops[producer]["dtype"] == "float32":
            bounds = integral[value] = (op["alpha"], op["beta"])
            if uses[args[0]] == 1:
                x, bounds = _through_relu(ops, first, dtype_of, uses,
                                          ops[producer]["args"][0], bounds)
                integral[value] = bounds
                out[producer] = ("rint_clipped", x, bounds)
                out[i] = ("copy", args[0], bounds)
        elif fn == "cast" and op["dtype"] in _INT_RANGES and args[0] in integral:
            lo, hi = integral[args[0]]
            low, high = _INT_RANGES[op["dtype"]]
            if low <= lo and hi <= high:
                out[i] = ("to_int", args[0], (lo, hi))
                source[value] = args[0]
        elif fn == "cast" and op["dtype"] == "float32" and args[0] in source:
            integral[value] = integral[source[args[0]]]
            out[i] = ("unsigned_zero", source[args[0]], integral[value])
        elif fn == "cast" and op["dtype"] == "float32" and dtype_of[args[0]] in _SMALL_INTS:
            integral[value] = _INT_RANGES[dtype_of[args[0]]]
            out[i] = ("from_int", args[0], integral[value])
        elif fn == "relu" and op["dtype"] == "float32" and args[0] in integral:
            lo, hi = integral[args[0]]
            integral[value] = (max(lo, 0.0), max(hi, 0.0))
        elif fn == "clip" and op["dtype"] == "float32" and args[0] in integral \
                and _integral_bounds(op):
            lo, hi = integral[args[0]]
            if op["alpha"] <= lo and hi <= op["beta"]:  # it clips nothing
                integral[value] = (lo, hi)
                out[i] = ("copy", args[0], (lo, hi))
            elif max(lo, op["alpha"]) <= min(hi, op["beta"]):
                integral[value] = (max(lo, op["alpha"]), min(hi, op["beta"]))
    _unsigned_rounds(ops, first, uses, out)
    _fold_rounds(ops, first, out)
    return out


def _through_relu(ops: Sequence[dict], first: int, dtype_of: Sequence[str],
                  uses: Sequence[int], x: int, bounds: tuple[float, float]
                  ) -> tuple[int, tuple[float, float]]:
    """(the value a round clipped to `bounds` reads, its bounds): where `x` is a float32 ReLU
    read by that round alone, the ReLU's own argument clipped to [max(lo, 0), hi] (one clip
    instead of a ReLU and a clip: `fminf(fmaxf(y, max(lo, 0)), hi)` is
    `fminf(fmaxf(fmaxf(y, 0), lo), hi)` for every y, NaN and zeros included, as both take the
    same `fmaxf(y, 0)` first where lo <= 0); else (x, bounds)."""
    j = x - first
    if j < 0 or ops[j]["fn"] != "relu" or ops[j]["dtype"] != "float32" or uses[x] != 1:
        return x, bounds
    y = ops[j]["args"][0]
    if dtype_of[y] != "float32":
        return x, bounds
    lo, hi = max(bounds[0], 0.0), bounds[1]
    return (y, (lo, hi)) if lo <= hi else (x, bounds)


def _fold_rounds(ops: Sequence[dict], first: int, out: dict[int, Rewrite]) -> None:
    """Where a value is an unsigned round of `x` to [lo, hi] (through copies): a ReLU of it is
    that round of `x` to [max(lo, 0), hi] (a clip in place of the ReLU after the round; the
    first round is then often unused), a clip to integers that round of `x` to the bounds'
    intersection, and a cast of it to an integer takes the bits of the
    clipped `x` plus 1.5 * 2**23 (the sum the round computed) without subtracting and adding
    that back ("rounded_to_int")."""
    rounded: dict[int, tuple[int, tuple[float, float]]] = {}  # value -> (x, (lo, hi))
    for j, op in enumerate(ops):
        value, form = first + j, out.get(j)
        if form is not None and form[0] == "rint_unsigned":
            rounded[value] = (form[1], form[2])
        elif form is not None and form[0] == "copy" and form[1] in rounded:
            rounded[value] = rounded[form[1]]
        elif form is not None and form[0] == "to_int" and form[1] in rounded:
            x, bounds = rounded[form[1]]
            out[j] = ("rounded_to_int", x, bounds)
        elif form is None and op["dtype"] == "float32" and op["args"][:1] and \
                op["args"][0] in rounded and (op["fn"] == "relu" or op["fn"] == "clip"
                                              and _integral_bounds(op)):
            x, (lo, hi) = rounded[op["args"][0]]
            low, high = (0.0, math.inf) if op["fn"] == "relu" else (op["alpha"], op["beta"])
            if max(lo, low) <= min(hi, high):
                out[j] = ("rint_unsigned", x, (max(lo, low), min(hi, high)))
                rounded[value] = (x, out[j][2])


def _unsigned_rounds(ops: Sequence[dict], first: int, uses: Sequence[int],
                     out: dict[int, Rewrite]) -> None:
    """Where every use of a "rint_clipped" round's clip is a "to_int" cast, the zero's sign
    is nobody's business: the round prints as "rint_unsigned" (no copysign: a zero comes out
    +0, as through the integer) and the casts back to float that read it ("unsigned_zero") as
    copies."""
    for p, (form, _, _) in list(out.items()):
        if form != "rint_clipped":
            continue
        clip = next(j for j, (f, v, _) in out.items()
                    if f == "copy" and v == first + p and ops[j]["fn"] == "clip")
        users = [j for j, op in enumerate(ops) if first + clip in op["args"]]
        if len(users) != uses[first + clip] or \
                any(out.get(j, ("",))[0] != "to_int" for j in users):
            continue
        out[p] = ("rint_unsigned",) + out[p][1:]
        for j, (f, v, b) in list(out.items()):
            if f == "unsigned_zero" and v == first + clip:
                out[j] = ("copy", v, b)


def _types_and_uses(region: dict, dtypes: Sequence[str]) -> tuple[list[str], list[int]]:
    """Each value's dtype (the region's arguments first) and how many times it is used (the
    result counting once)."""
    dtype_of = list(dtypes) + [op["dtype"] for op in region["ops"]]
    uses = [0] * len(dtype_of)
    for op in region["ops"]:
        for a in op["args"]:
            uses[a] += 1
    uses[region["result"]] += 1
    return dtype_of, uses


def expression(form: str, value: int, bounds: tuple[float, float], prefix: str,
               c_type: str) -> str:
    """The C expression of a `rewrites` entry over values named `<prefix><n>`; `c_type` is the
    op's result type (for "to_int")."""
    x = f"{prefix}{value}"
    if form == "copy":
        return x
    if form == "unsigned_zero":
        return f"__fadd_rn({x}, 0.0f)"
    if form in ROUNDS:
        return rint_clipped(x, c_literal(bounds[0], "float32"), c_literal(bounds[1], "float32"),
                            signed=form == "rint_clipped")
    if form == "to_int":
        return to_int(x, c_type)
    if form == "rounded_to_int":
        lo, hi = (c_literal(b, "float32") for b in bounds)
        return f"({c_type})(__float_as_int(ember_rint_magic({x}, {lo}, {hi})) - {MAGIC_BITS})"
    if form == "from_int":
        return f"__fsub_rn(__int_as_float({MAGIC_BITS} + (int)({x})), {MAGIC})"
    raise ValueError(f"quantize_c: unknown form {form!r}")


PRELUDE = """\
// rintf(x) clipped to [lo, hi] (integers within 2^22): round by 1.5 * 2^23 after the clip,
// the clipped value's sign put back (for a zero)
__device__ __forceinline__ float ember_rint_clipped(float x, float lo, float hi) {
    const float c = fminf(fmaxf(x, lo), hi);
    return copysignf(__fsub_rn(__fadd_rn(c, 12582912.0f), 12582912.0f), c);
}
// x clipped to [lo, hi] plus 1.5 * 2^23: the rounded integer's bits plus 0x4B400000
__device__ __forceinline__ float ember_rint_magic(float x, float lo, float hi) {
    return __fadd_rn(fminf(fmaxf(x, lo), hi), 12582912.0f);
}
// ember_rint_clipped with a zero's sign dropped (+0 for -0.3, as rintf's value cast to an
// integer and back): for casts to integers
__device__ __forceinline__ float ember_rint_unsigned(float x, float lo, float hi) {
    return __fsub_rn(ember_rint_magic(x, lo, hi), 12582912.0f);
}
// x / s rounded to nearest (IEEE) from y = __frcp_rn(s): one Markstein correction of x * y
__device__ __forceinline__ float ember_div_by(float x, float s, float y) {
    const float q = __fmul_rn(x, y), aq = fabsf(q);
    if (fabsf(s) >= 0x1p-125f && fabsf(s) <= 0x1p125f) {
        if (x == 0.0f) return q;
        if (fabsf(x) >= 0x1p-96f && aq >= 0x1p-100f && aq <= 0x1p125f)
            return __fmaf_rn(__fmaf_rn(-q, s, x), y, q);
    }
    return __fdiv_rn(x, s);
}
// x / s for a constant s within [2^-90, 2^120] and y = __frcp_rn(s), without a branch: where
// Markstein's step is exact its result, else x * y (see quantize_c.divisions for where that is
// the same value, or rounds to the same integer)
__device__ __forceinline__ float ember_div_near(float x, float s, float y) {
    const float q = __fmul_rn(x, y), aq = fabsf(q);
    const float r = __fmaf_rn(__fmaf_rn(-q, s, x), y, q);
    return fabsf(x) >= 0x1p-96f && aq >= 0x1p-100f && aq <= 0x1p125f ? r : q;
}
// the same where the quotient is only rounded to an integer and |x| / |s| <= 2^124 (see
// quantize_c.unguarded): Markstein's step, unguarded
__device__ __forceinline__ float ember_div_round(float x, float s, float y) {
    const float q = __fmul_rn(x, y);
    return __fmaf_rn(__fmaf_rn(-q, s, x), y, q);
}
"""


def div_by(x: str, s: str, y: str | None, near: bool = False, rounded: bool = False) -> str:
    """C: float32 `x / s` whose reciprocal `__frcp_rn(s)` is `y` (`PRELUDE`); `near`: the
    branch-free form where `divisions` allows it, `rounded` too: Markstein's step alone, where
    `unguarded` allows it; `y` None: a divisor that varies by element, which `divisions`
    allowed (its reciprocal computed here: `__frcp_rn`, whose slow path keeps a branch; an
    approximate reciprocal with one Newton step would not, but is not proven to round as
    `__frcp_rn` does for every divisor)."""
    form = "round" if near and rounded else "near" if near or y is None else "by"
    return f"ember_div_{form}({x}, {s}, {y or f'__frcp_rn({s})'})"


def reciprocal(pointer: str, dtype: str = "float32") -> tuple[str, str]:
    """(name, C line) of the reciprocal of the scalar `pointer[0]` (a kernel argument of
    `dtype`: float32, or a half type read as a float), computed once per thread: the line
    carries the `HOISTED` mark."""
    name = f"ember_rcp_{pointer}"
    return name, f"    const float {name} = __frcp_rn({load_float(f'{pointer}[0]', dtype)});" \
        f"{HOISTED}"


def prelude(text: str) -> str:
    """PRELUDE where kernel text `text` calls its functions, else ""."""
    return PRELUDE if any(f"{fn}(" in text for fn in (
        "ember_div_by", "ember_div_near", "ember_div_round", "ember_rint_clipped",
        "ember_rint_unsigned", "ember_rint_magic")) else ""


def hoist(body: Sequence[str]) -> list[str]:
    """`body` with the lines carrying the `HOISTED` mark moved to its top (once each, in order
    of first appearance)."""
    top = list(dict.fromkeys(line for line in body if line.endswith(HOISTED)))
    return top + [line for line in body if not line.endswith(HOISTED)] if top else list(body)


def file_scope(body: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the lines carrying the `FILE_SCOPE` mark, stripped of indentation, once each; the rest
    of `body`)."""
    top = list(dict.fromkeys(line.strip() for line in body if line.endswith(FILE_SCOPE)))
    return top, [line for line in body if not line.endswith(FILE_SCOPE)]


def divisions(region: dict, dtypes: Sequence[str], cheaper: Mapping[int, Rewrite]) -> set[int]:
    """The positions of the float32 divisions of `region` (over values of `dtypes`) that print
    as `ember_div_near`: the divisor is a constant of the build (the region's
    `constant_ranges`) with every element's magnitude within `SAFE_DIVISOR`, and either the
    quotient's only use is a round that `cheaper` (`rewrites`) clips first, or the dividend is
    zero or of a magnitude in [a, b] with a >= 2**-95, a / max|s| >= 2**-98 and
    b / min|s| <= 2**124, where Markstein's step is exact (`ember_div_by`'s own fast-path
    bounds, with margins) or not finite (x * y is then x / s as well). An FP16 value is such a
    dividend (`FP16_SIZE`): an FP16 kernel's GELU divides by sqrt(2) without a branch. A
    division of half values divides the floats they are held in, and rounds.

    Why x * y serves a round: where the step is not taken, |x| < 2**-96 (so |x / s| < 2**-6:
    both round to a zero of x / s's sign), or |x * y| < 2**-100 (likewise), or |x * y| > 2**125,
    infinite or NaN (so is x / s within a factor 1 + 2**-22: both clip to the same bound)."""
    ranges = _ranges(region)
    ops, first = region["ops"], len(dtypes)
    dtype_of, uses = _types_and_uses(region, dtypes)
    rounded = {form[1] for form in cheaper.values() if form[0] in ROUNDS}
    # value -> (a, b): every element is 0, not finite (inf, NaN: x * y is x / s there too) or
    # of a magnitude within [a, b]
    size = {v: FP16_SIZE for v, t in enumerate(dtype_of) if t == "float16"}
    size.update({v: (a, b) for v, (a, b) in ranges.items() if a > 0})
    for i, (form, _, (lo, hi)) in cheaper.items():
        if form in ("copy", "unsigned_zero", "from_int"):  # integral floats
            size[first + i] = (1.0, max(abs(lo), abs(hi)))
    out: set[int] = set()
    for i, op in enumerate(ops):
        value, args = first + i, op["args"]
        # float32 ops; and divisions of half values too (of the floats they are held in, then
        # rounded)
        kinds = FLOATS if op["fn"] == "div" else ("float32",)
        if op["dtype"] not in kinds or any(dtype_of[a] not in kinds for a in args):
            continue
        if op["fn"] == "mul" and args[0] in size and args[1] in size:
            (a0, b0), (a1, b1) = size[args[0]], size[args[1]]
            if a0 * a1 >= 2.0 ** -125:  # normal products: each within 2**-23 of the exact one
                size[value] = (a0 * a1 * (1 - 2.0 ** -23), b0 * b1 * (1 + 2.0 ** -23))
        elif op["fn"] == "div" and args[1] in ranges:
            s_lo, s_hi = ranges[args[1]]
            if not SAFE_DIVISOR[0] <= s_lo <= s_hi <= SAFE_DIVISOR[1]:
                continue
            if uses[value] == 1 and value in rounded:
                out.add(i)
            elif args[0] in size:
                a, b = size[args[0]]
                if a >= 2.0 ** -95 and a / s_hi >= 2.0 ** -98 and b / s_lo <= 2.0 ** 124:
                    out.add(i)
                    if op["dtype"] == "float32":
                        size[value] = (a / s_hi * (1 - 2.0 ** -22),
                                       b / s_lo * (1 + 2.0 ** -22))
    return out


def unguarded(region: dict, dtypes: Sequence[str], cheaper: Mapping[int, Rewrite],
              near: set[int]) -> set[int]:
    """The positions among `near` (`divisions`) whose quotient is only rounded to an integer
    whose zero's sign nobody reads (a quantize: `cheaper`'s "rint_unsigned") and whose
    dividend is finite with |x| / min|s| <=
    2**124 (`magnitudes`): `ember_div_round`, Markstein's step without `ember_div_near`'s
    guards. Where they would take x * y instead (a dividend below 2**-96, a quotient below
    2**-100), x / s is below 2**-6 and so is the step's result (|x * y| plus a correction of
    at most |x * y| again, the rest below 2**-120): both round to a zero; the guard against
    a huge, infinite or NaN quotient is what the bound makes needless."""
    ranges = _ranges(region)
    # unsigned rounds only: the step gives +0 for a dividend of -0 (x * y: -0), which a round
    # that keeps the zero's sign would show
    rounded = {form[1] for form in cheaper.values() if form[0] == "rint_unsigned"} - {
        form[1] for form in cheaper.values() if form[0] == "rint_clipped"}
    first = len(dtypes)
    _, uses = _types_and_uses(region, dtypes)
    size = magnitudes(region, dtypes, cheaper)
    out = set()
    for i in near:
        op = region["ops"][i]
        x, s = op["args"]
        if first + i in rounded and uses[first + i] == 1 and s in ranges and \
                ranges[s][0] > 0 and size.get(x, math.inf) / ranges[s][0] <= 2.0 ** 124:
            out.add(i)
    return out


def magnitudes(region: dict, dtypes: Sequence[str], cheaper: Mapping[int, Rewrite]
               ) -> dict[int, float]:
    """{value: a finite bound on |every element|} of the float32 values of `region` over
    `dtypes` that have one: integers cast to float32, constants of the build
    (`constant_ranges`), the integral floats of `cheaper`, and sums, differences, products
    and quotients by constants of those (each widened by 2**-22 for its rounding), ReLUs,
    negations, absolute values and clips of them, and any clip to finite bounds (CUDA's
    fminf/fmaxf take a NaN to a bound)."""
    widen = 1 + 2.0 ** -22
    ranges = _ranges(region)
    size = {k: hi for k, (_, hi) in ranges.items()}
    size.update({k: _int_size(t) for k, t in enumerate(dtypes) if t in _INT_RANGES})
    first = len(dtypes)
    dtype_of = list(dtypes) + [op["dtype"] for op in region["ops"]]
    for i, op in enumerate(region["ops"]):
        value, fn, args = first + i, op["fn"], op["args"]
        known = [size[a] for a in args if a in size]
        bound = None
        if i in cheaper:
            bound = max(abs(v) for v in cheaper[i][2])
        elif op["dtype"] in _INT_RANGES:
            bound = _int_size(op["dtype"])
        elif op["dtype"] != "float32":
            continue
        elif fn == "clip" and all(math.isfinite(op.get(k) if op.get(k) is not None
                                                else math.inf) for k in ("alpha", "beta")):
            bound = min([max(abs(op["alpha"]), abs(op["beta"])), *known])
        elif len(known) != len(args):
            continue
        elif fn in ("relu", "neg", "abs", "clip") or fn == "cast" and \
                dtype_of[args[0]] in ("float32", *_INT_RANGES):
            bound = known[0]
        elif fn in ("add", "sub"):
            bound = (known[0] + known[1]) * widen
        elif fn == "mul":
            bound = known[0] * known[1] * widen
        elif fn == "div" and ranges.get(args[1], (0.0, 0.0))[0] > 0:
            bound = known[0] / ranges[args[1]][0] * widen
        if bound is not None and math.isfinite(bound):
            size[value] = bound
    return {v: b for v, b in size.items() if math.isfinite(b)}


def _ranges(region: dict) -> dict[int, tuple[float, float]]:
    """The region's `constant_ranges` by value number: (min, max) of each constant's
    magnitudes."""
    return {int(k): (float(a), float(b))
            for k, (a, b) in (region.get("constant_ranges") or {}).items()}


def _int_size(dtype: str) -> float:
    return float(max(abs(v) for v in _INT_RANGES[dtype]))


def rint_clipped(x: str, lo: str, hi: str, signed: bool = True) -> str:
    """C: `x` clipped to [lo, hi] (integers within 2**22) and rounded to nearest even
    (`PRELUDE`); not `signed`: a zero comes out +0 whatever its sign."""
    return f"ember_rint_{'clipped' if signed else 'unsigned'}({x}, {lo}, {hi})"


def to_int(x: str, c_type: str) -> str:
    """C: the integral float32 `x` (within 2**22) as `c_type`, without a conversion."""
    return f"({c_type})(__float_as_int(__fadd_rn({x}, {MAGIC})) - {MAGIC_BITS})"


def _integral_bounds(op: dict) -> bool:
    lo, hi = op.get("alpha"), op.get("beta")
    return lo is not None and hi is not None and float(lo).is_integer() and \
        float(hi).is_integer() and -_LIMIT <= lo <= hi <= _LIMIT
