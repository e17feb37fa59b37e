"""quantize_c: the quantize arithmetic of a scalar region printed without the conversion unit
(round by 1.5 * 2**23 after the clip, casts through the float's bits, division by a uniform
scale through its reciprocal and one Markstein correction) gives the numpy kernel's values bit
for bit: on emulated threads (g++) and on the GPU, over values at every rounding midpoint and
the edges (zeros, NaN, infinities, subnormals, overflow)."""

from __future__ import annotations

import numpy as np
import pytest

from ember.codegen import quantize_c
from ember.codegen.templates import PDL_SYNC, elementwise
from ember.runtime.cpu_kernels import KERNELS
from ember.runtime.cuda import cuda_available
from tests.codegen import simt_emulator

# x / s, round, clip to int8, cast to int8 and back, times s (a fake-quantize), and a division
# of x by the uniform s on its own
FAKE_QUANT = {"ops": [{"fn": "div", "args": [0, 1], "dtype": "float32"},
                      {"fn": "round", "args": [2], "dtype": "float32"},
                      {"fn": "clip", "args": [3], "dtype": "float32", "alpha": -128.0,
                       "beta": 127.0},
                      {"fn": "cast", "args": [4], "dtype": "int8"},
                      {"fn": "cast", "args": [5], "dtype": "float32"},
                      {"fn": "mul", "args": [6, 1], "dtype": "float32"}],
              "result": 7}
QUANTIZE = {"ops": FAKE_QUANT["ops"][:4], "result": 5}
DIVIDE = {"ops": FAKE_QUANT["ops"][:1], "result": 2}
# a fake-quantize without the integer round trip: round(-0.3) * s is -0
NO_INT = {"ops": FAKE_QUANT["ops"][:3] + [{"fn": "mul", "args": [4, 1], "dtype": "float32"}],
          "result": 5}
# the rounded value used twice: the clip prints op by op (-0 for -0.3) and its cast through
# int8 and back gives +0
TWO_USES = {"ops": FAKE_QUANT["ops"][:5] + [{"fn": "add", "args": [6, 3], "dtype": "float32"}],
            "result": 7}
# a quantize of a ReLU (a residual's sum): the round clips the quotient to [0, 127] itself
RELU_QUANT = {"ops": [FAKE_QUANT["ops"][0], {"fn": "relu", "args": [2], "dtype": "float32"},
                      {"fn": "round", "args": [3], "dtype": "float32"},
                      {"fn": "clip", "args": [4], "dtype": "float32", "alpha": -128.0,
                       "beta": 127.0},
                      {"fn": "cast", "args": [5], "dtype": "int8"}],
              "result": 6}
# the same rounded value kept as float32 (its zero's sign printed too)
RELU_ROUND = {"ops": RELU_QUANT["ops"][:4], "result": 5}
REGIONS = {"fake_quant": (FAKE_QUANT, "float32"), "quantize": (QUANTIZE, "int8"),
           "divide": (DIVIDE, "float32"), "no_int": (NO_INT, "float32"),
           "two_uses": (TWO_USES, "float32"), "relu_quant": (RELU_QUANT, "int8"),
           "relu_round": (RELU_ROUND, "float32")}
INT_CASTS = ["int8", "uint8", "int16", "uint16"]
SCALES = [0.0163002536, -0.37, 3.0, 1e-30, 2.0 ** -130, 0.0, np.inf, 7e37]


def _values(scale: float) -> np.ndarray:
    """Every rounding midpoint (k + 1/2) * scale for k in [-140, 140] and its float neighbours,
    random values of every magnitude, and the edges."""
    s = np.float32(scale)
    rng = np.random.default_rng(0)
    with np.errstate(all="ignore"):
        mid = ((np.arange(-140, 141) + np.float32(0.5)) * s).astype(np.float32)
        wide = (rng.choice([-1, 1], 600) * 2.0 ** rng.uniform(-149, 127, 600)).astype(np.float32)
    edges = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1e-38, 3.4e38,
                      -3.4e38, 127.5, -128.5, 126.5], np.float32)
    near = np.concatenate([np.nextafter(mid, np.float32(-np.inf)), mid,
                           np.nextafter(mid, np.float32(np.inf))])
    return np.concatenate([near, wide, edges]).astype(np.float32)


def _case(region: dict, out_dtype: str, scale: float, constant: bool = False):
    """The region over `_values(scale)` and the scale; `constant`: the scale is a constant of
    the build (the region's `constant_ranges`, as kernel_step records a QDQ scale's)."""
    x = _values(scale)
    if constant:
        region = {**region, "constant_ranges": {"1": [abs(scale), abs(scale)]}}
    params = {"region": region, "in_shapes": [[x.size], []], "in_dtypes": ["float32", "float32"],
              "out_shapes": [[x.size]], "out_dtypes": [out_dtype]}
    inputs = [x, np.array(scale, np.float32)]
    with np.errstate(all="ignore"):
        (want,) = KERNELS["elementwise"](inputs, params)
        want = np.array(want)
        if region["ops"] in (FAKE_QUANT["ops"], QUANTIZE["ops"], NO_INT["ops"]):
            # a NaN quotient: numpy's clip keeps the NaN (and its cast of NaN to int8 is
            # undefined: 0 here); CUDA's clip (fmaxf) gives the lower bound, printed op by op
            # as before quantize_c, and so here
            nan = np.isnan(x / np.float32(scale))
            want[nan] = np.float32(-128) * np.float32(scale) if want.dtype.kind == "f" else -128
        if region["ops"][1:2] and region["ops"][1]["fn"] == "relu":
            # CUDA's ReLU (fmaxf) takes a NaN to 0
            want[np.isnan(x / np.float32(scale))] = 0
    return params, inputs, want


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """The same values bit for bit (a zero's sign too), any NaN where numpy has one."""
    assert got.dtype == want.dtype
    if want.dtype.kind == "f":
        bits = f"u{want.dtype.itemsize}"
        ok = (np.isnan(want) & np.isnan(got)) | (got.view(bits) == want.view(bits))
    else:
        ok = got == want
    bad = np.flatnonzero(~ok)
    assert bad.size == 0, f"{bad.size} values differ, first at {bad[:5]}: " \
                          f"{got.ravel()[bad[:5]]} vs {want.ravel()[bad[:5]]}"


def _quad_case(scale: float, constant: bool):
    """`QUANTIZE` over `_values(scale)` (padded to whole fours) as rows of 8 elements."""
    params, inputs, want = _case(QUANTIZE, "int8", scale, constant)
    x, pad = inputs[0], -inputs[0].size % 8
    x = np.concatenate([x, np.zeros(pad, np.float32)]).reshape(-1, 8)
    with np.errstate(all="ignore"):
        want = np.concatenate([want, np.zeros(pad, np.int8)]).reshape(-1, 8)
    params = {**params, "in_shapes": [list(x.shape), []], "out_shapes": [list(x.shape)]}
    return params, [x, inputs[1]], want


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("constant", [False, True])
@pytest.mark.parametrize("scale", SCALES)
def test_a_quantize_runs_four_elements_a_thread_bit_for_bit_on_emulated_threads(
        scale, constant, tmp_path):
    """A float32 -> int8 quantize whose rows hold whole fours: one 16-byte load and one 4-byte
    store a thread, each element's arithmetic as before."""
    params, inputs, want = _quad_case(scale, constant)
    spec = elementwise.emit("q4", params)
    assert "4 neighbouring elements per thread" in spec.source
    assert "*(const float4*)(in0 + i)" in spec.source and "*(char4*)(out0 + i)" in spec.source
    got = simt_emulator.run(spec, "q4", inputs, list(want.shape), want.dtype, tmp_path)
    _same(got, want)


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
def test_an_int8_requantize_by_rows_runs_four_elements_a_thread(tmp_path):
    """int8 -> int8 through a per-row factor (broadcast along the last dim: one value for the
    four) and a constant scale: 4-byte loads and stores, the elementwise kernel's results."""
    region = {**REQUANT, "ops": [dict(REQUANT["ops"][0], args=[0])] + REQUANT["ops"][1:]}
    x = np.tile(np.arange(-128, 128, dtype=np.int8), 6).reshape(-1, 12)
    factor = np.linspace(0.3, 2.5, x.shape[0]).astype(np.float32).reshape(-1, 1)
    params = {"region": {**region, "constant_ranges": {"1": [0.3, 2.5], "2": [0.7, 0.7]}},
              "in_shapes": [list(x.shape), list(factor.shape), []],
              "in_dtypes": ["int8", "float32", "float32"], "out_shapes": [list(x.shape)],
              "out_dtypes": ["int8"]}
    inputs = [x, factor, np.array(0.7, np.float32)]
    (want,) = KERNELS["elementwise"](inputs, params)
    spec = elementwise.emit("rq4", params)
    assert "*(const char4*)(in0 + i)" in spec.source and "l3_1 = l0_1" in spec.source
    got = simt_emulator.run(spec, "rq4", inputs, list(x.shape), np.int8, tmp_path)
    _same(got, np.asarray(want))


def test_quantizes_stay_one_element_a_thread_where_fours_do_not_fit():
    params, _, _ = _case(QUANTIZE, "int8", 0.5)
    odd = {**params, "in_shapes": [[7], []], "out_shapes": [[7]]}
    assert "4 neighbouring" not in elementwise.emit("q", odd).source
    rows = {**params, "in_shapes": [[3, 8], []], "out_shapes": [[3, 8]]}
    assert "4 neighbouring" in elementwise.emit("q", rows).source
    for change in ({"out_dtypes": ["float32"]}, {"in_dtypes": ["float16", "float32"]},
                   {"in_shapes": [[3, 8], [3, 2]], "out_shapes": [[3, 8]]},
                   {"out_shapes": [[3, 6]], "in_shapes": [[3, 6], []]}):
        assert "4 neighbouring" not in elementwise.emit("q", {**rows, **change}).source, change


def test_the_fake_quantize_prints_without_conversions():
    spec = elementwise.emit("fq", _case(FAKE_QUANT, "float32", 0.5)[0])
    body = spec.source.split("void fq", 1)[1]
    assert "rintf" not in body and "(signed char)(v" not in body and " / " not in body
    assert "ember_div_by(v0, v1, ember_rcp_in1)" in body
    # only the cast to int8 reads the round: the zero's sign is dropped (+0, as through int8)
    assert "ember_rint_unsigned(v2, -128.0f, 127.0f)" in body
    assert "const float v6 = v4;  // cast" in body
    # the scale's reciprocal is computed once per thread, before the loop (after the wait for
    # the kernel before, which reads of inputs follow)
    lines = body.split("{", 1)[1].lstrip().splitlines()
    assert lines[0] == PDL_SYNC
    top = lines[1].strip()
    assert top == "const float ember_rcp_in1 = __frcp_rn(in1[0]);  // once per thread"
    assert body.count("__frcp_rn(") == 1


def test_rewrites_need_the_clip_to_be_the_rounds_only_user_and_small_integer_bounds():
    forms = quantize_c.rewrites(FAKE_QUANT, ["float32", "float32"])
    assert {i: f for i, (f, _, _) in forms.items()} == {1: "rint_unsigned", 2: "copy",
                                                        3: "rounded_to_int", 4: "copy"}
    # the clip is the region's result too: the round keeps the zero's sign, the cast back
    # makes it +0
    forms = quantize_c.rewrites({**FAKE_QUANT, "result": 4}, ["float32", "float32"])
    assert {i: f for i, (f, _, _) in forms.items()} == {1: "rint_clipped", 2: "copy",
                                                        3: "to_int", 4: "unsigned_zero"}
    # the rounded value has a second user (an add): the round keeps rintf
    forms = quantize_c.rewrites({"ops": FAKE_QUANT["ops"][:3] + [
        {"fn": "add", "args": [3, 4], "dtype": "float32"}], "result": 5},
        ["float32", "float32"])
    assert forms == {}
    wide = {"ops": [dict(op) for op in FAKE_QUANT["ops"]], "result": 7}
    wide["ops"][2].update(alpha=-(2.0 ** 23), beta=2.0 ** 23)
    forms = quantize_c.rewrites(wide, ["float32", "float32"])
    assert {i: f for i, (f, _, _) in forms.items()} == {4: "from_int"}  # int8 -> float only
    # an int16 range does not fit int8: the cast to int8 stays a conversion
    narrow = {"ops": [dict(op) for op in FAKE_QUANT["ops"]], "result": 7}
    narrow["ops"][2].update(alpha=-32768.0, beta=32767.0)
    forms = quantize_c.rewrites(narrow, ["float32"] * 2)
    assert {i: f for i, (f, _, _) in forms.items()} == {1: "rint_clipped", 2: "copy",
                                                        4: "from_int"}
    # the ReLU of the rounded value rounds the quotient to [0, 127] itself; the clip after it
    # clips nothing (a copy); the casts to int8 take the bits of the round's sum
    forms = quantize_c.rewrites(REQUANT, ["int32", "float32", "float32"])
    assert forms == {3: ("rint_unsigned", 5, (-128.0, 127.0)), 4: ("copy", 6, (-128.0, 127.0)),
                     5: ("rounded_to_int", 5, (-128.0, 127.0)),
                     6: ("copy", 7, (-128.0, 127.0)), 7: ("rint_unsigned", 5, (0.0, 127.0)),
                     8: ("copy", 10, (0.0, 127.0)), 9: ("rounded_to_int", 5, (0.0, 127.0))}
    clipped = {"ops": [dict(op) for op in REQUANT["ops"]], "result": REQUANT["result"]}
    clipped["ops"][8].update(alpha=0.0, beta=100.0)  # a clip that clips: one more round
    forms = quantize_c.rewrites(clipped, ["int32", "float32", "float32"])
    assert forms[8] == ("rint_unsigned", 5, (0.0, 100.0))
    assert forms[9] == ("rounded_to_int", 5, (0.0, 100.0))
    # a ReLU read by the round alone: the round clips the ReLU's argument to [0, 127] (one
    # clip, the ReLU unused); read twice, the ReLU stays
    forms = quantize_c.rewrites(RELU_QUANT, ["float32", "float32"])
    assert forms == {2: ("rint_unsigned", 2, (0.0, 127.0)), 3: ("copy", 4, (0.0, 127.0)),
                     4: ("rounded_to_int", 2, (0.0, 127.0))}
    twice = {"ops": RELU_QUANT["ops"] + [{"fn": "add", "args": [3, 3], "dtype": "float32"}],
             "result": 7}
    assert quantize_c.rewrites(twice, ["float32", "float32"])[2] == \
        ("rint_unsigned", 3, (-128.0, 127.0))
    # the round of a float32 region result keeps its sign: nothing folds into it
    signed = {"ops": REQUANT["ops"][:5], "result": 7}
    forms = quantize_c.rewrites(signed, ["int32", "float32", "float32"])
    assert forms == {3: ("rint_clipped", 5, (-128.0, 127.0)), 4: ("copy", 6, (-128.0, 127.0))}


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("region", list(REGIONS))
def test_quantize_arithmetic_matches_numpy_bit_for_bit_on_emulated_threads(region, scale,
                                                                          tmp_path):
    params, inputs, want = _case(*REGIONS[region], scale)
    spec = elementwise.emit("fq", params)
    got = simt_emulator.run(spec, "fq", inputs, list(want.shape), want.dtype, tmp_path)
    _same(got, want)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("region", list(REGIONS))
def test_quantize_arithmetic_matches_numpy_bit_for_bit_on_the_gpu(region, scale):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _case(*REGIONS[region], scale)
    got = _run_on_gpu(elementwise.emit("fq", params), "fq", inputs, want.shape, want.dtype)
    _same(got, want)


def _int_case(dtype: str):
    info = np.iinfo(dtype)
    x = np.arange(info.min, info.max + 1).astype(dtype)
    params = {"region": {"ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                                 {"fn": "mul", "args": [1, 1], "dtype": "float32"}],
                         "result": 2},
              "in_shapes": [[x.size]], "in_dtypes": [dtype], "out_shapes": [[x.size]],
              "out_dtypes": ["float32"]}
    (want,) = KERNELS["elementwise"]([x], params)
    return params, [x], np.asarray(want)


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("dtype", INT_CASTS)
def test_small_integers_cast_to_float_through_the_bits_on_emulated_threads(dtype, tmp_path):
    """Every value of the type, cast to float32 (then squared, so the cast's value is used)."""
    params, inputs, want = _int_case(dtype)
    spec = elementwise.emit("ic", params)
    assert "__int_as_float(0x4B400000 + (int)(v0))" in spec.source
    _same(simt_emulator.run(spec, "ic", inputs, list(want.shape), want.dtype, tmp_path), want)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype", INT_CASTS)
def test_small_integers_cast_to_float_through_the_bits_on_the_gpu(dtype):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _int_case(dtype)
    _same(_run_on_gpu(elementwise.emit("ic", params), "ic", inputs, want.shape, want.dtype), want)


# -- divisions by constants of the build (quantize_c.divisions) -------------------------------

FINITE_SCALES = [s for s in SCALES if np.isfinite(s)]


def test_divisions_by_a_safe_constant_that_feed_a_round_need_no_full_divide():
    def near(region, ranges):
        region = {**region, "constant_ranges": ranges}
        dtypes = ["float32", "float32"]
        return quantize_c.divisions(region, dtypes, quantize_c.rewrites(region, dtypes))

    assert near(FAKE_QUANT, {"1": [0.0163, 0.0163]}) == {0}
    assert near(QUANTIZE, {"1": [3.0, 3.0]}) == {0}
    assert near(FAKE_QUANT, {}) == set()  # a scale read at run time
    for outside in ([1e-30, 1e-30], [0.0, 0.0], [0.01, 2.0 ** 121]):
        assert near(FAKE_QUANT, {"1": outside}) == set()
    assert near(TWO_USES, {"1": [0.5, 0.5]}) == set()  # the round keeps rintf
    assert near(DIVIDE, {"1": [0.5, 0.5]}) == set()  # any x: the full divide stays
    # a dividend bounded away from zero (a constant here) makes the quotient exact
    assert near(DIVIDE, {"0": [1.0, 4.0], "1": [0.5, 0.5]}) == {0}
    assert near(DIVIDE, {"0": [2.0 ** -100, 1.0], "1": [0.5, 0.5]}) == set()


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("scale", FINITE_SCALES)
@pytest.mark.parametrize("region", list(REGIONS))
def test_constant_scales_divide_without_a_branch_bit_for_bit_on_emulated_threads(
        region, scale, tmp_path):
    params, inputs, want = _case(*REGIONS[region], scale, constant=True)
    spec = elementwise.emit("fq", params)
    safe = quantize_c.SAFE_DIVISOR[0] <= abs(scale) <= quantize_c.SAFE_DIVISOR[1]
    assert ("ember_div_near(" in spec.source.split("void fq")[1]) == (
        safe and region in ("fake_quant", "quantize", "no_int", "relu_quant", "relu_round"))
    got = simt_emulator.run(spec, "fq", inputs, list(want.shape), want.dtype, tmp_path)
    _same(got, want)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("scale", FINITE_SCALES)
@pytest.mark.parametrize("region", list(REGIONS))
def test_constant_scales_divide_without_a_branch_bit_for_bit_on_the_gpu(region, scale):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _case(*REGIONS[region], scale, constant=True)
    got = _run_on_gpu(elementwise.emit("fq", params), "fq", inputs, want.shape, want.dtype)
    _same(got, want)


# every int8 value dequantized by a constant scale, then divided by a constant (the erf
# GELU's x / sqrt(2) in a QDQ BERT), with the per-element divisor of a merged Q/K/V GEMM's
# columns in a quantize next to it
DEQUANT_DIVIDE = {"ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                          {"fn": "mul", "args": [3, 1], "dtype": "float32"},
                          {"fn": "div", "args": [4, 2], "dtype": "float32"}],
                  "result": 5}
COLUMN_QUANTIZE = {"ops": [{"fn": "div", "args": [0, 1], "dtype": "float32"},
                           {"fn": "round", "args": [2], "dtype": "float32"},
                           {"fn": "clip", "args": [3], "dtype": "float32", "alpha": -128.0,
                            "beta": 127.0},
                           {"fn": "cast", "args": [4], "dtype": "int8"}],
                   "result": 5}


# int32 sums dequantized by a per-channel constant, requantized to int8 by a constant scale,
# then a ReLU and the clip and cast of a quantize at the same scale (an INT8 conv's tail)
REQUANT = {"ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                   {"fn": "mul", "args": [3, 1], "dtype": "float32"},
                   {"fn": "div", "args": [4, 2], "dtype": "float32"},
                   {"fn": "round", "args": [5], "dtype": "float32"},
                   {"fn": "clip", "args": [6], "dtype": "float32", "alpha": -128.0,
                    "beta": 127.0},
                   {"fn": "cast", "args": [7], "dtype": "int8"},
                   {"fn": "cast", "args": [8], "dtype": "float32"},
                   {"fn": "relu", "args": [9], "dtype": "float32"},
                   {"fn": "clip", "args": [10], "dtype": "float32", "alpha": -128.0,
                    "beta": 127.0},
                   {"fn": "cast", "args": [11], "dtype": "int8"}],
           "result": 12}


def test_a_bounded_dividend_divides_for_a_round_without_the_guards():
    def bare(region, dtypes, ranges):
        region = {**region, "constant_ranges": ranges}
        cheaper = quantize_c.rewrites(region, dtypes)
        return quantize_c.unguarded(region, dtypes, cheaper,
                                    quantize_c.divisions(region, dtypes, cheaper))

    ints = ["int32", "float32", "float32"]
    assert bare(REQUANT, ints, {"1": [1e-5, 1e-3], "2": [0.02, 0.02]}) == {2}
    # |x| / s past 2**124 (int32 sums times 2**100, over 2**-60): the guards stay
    assert bare(REQUANT, ints, {"1": [1.0, 2.0 ** 100], "2": [2.0 ** -60] * 2}) == set()
    # a per-channel factor read at run time, or float32 sums: no bound, the guards stay
    assert bare(REQUANT, ints, {"2": [0.02, 0.02]}) == set()
    assert bare(REQUANT, ["float32"] * 3, {"1": [1e-5, 1e-3], "2": [0.02, 0.02]}) == set()
    # a quotient used beside its round keeps them (and is not `near` either)
    assert bare(TWO_USES, ["float32", "float32"], {"0": [1.0, 4.0], "1": [0.5, 0.5]}) == set()
    # a round whose float result is read keeps the zero's sign: a dividend of -0 (a zero sum
    # times a negative factor) must round to -0, which only the guarded form gives
    assert bare(SIGNED_REQUANT, ints, {"1": [1e-5, 1e-3], "2": [0.02, 0.02]}) == set()
    spec = elementwise.emit("rq", _requant_case([1e-3], 0.02)[0])
    assert "ember_div_round(v4, v2, ember_rcp_in2)" in spec.source
    assert "(signed char)(__float_as_int(ember_rint_magic(v5, 0.0f, 127.0f)) - 0x4B400000)" \
        in spec.source


# the same quantize read back as a float (a fake-quantize): round(float(acc) * a / s) * s
SIGNED_REQUANT = {"ops": REQUANT["ops"][:5] + [{"fn": "mul", "args": [7, 2], "dtype": "float32"}],
                  "result": 8}


def _requant_case(factors: list[float], scale: float, region: dict = REQUANT,
                  out_dtype: str = "int8"):
    """int32 sums at and beside every sum whose quotient is a rounding midpoint for each
    per-channel factor, and int32's edges, through `REQUANT`."""
    a = np.array(factors, np.float32)
    k = np.arange(-140, 141, dtype=np.float64) + 0.5
    mid = np.round(k[:, None] * scale / a.astype(np.float64)[None, :])  # [k, channel]
    x = np.concatenate([mid + d for d in (-2, -1, 0, 1, 2)]
                       + [np.full((4, a.size), v) for v in (2 ** 31 - 1, -2 ** 31, 0, -1)])
    x = np.clip(x, -2 ** 31, 2 ** 31 - 1).astype(np.int32)
    size = np.abs(a.astype(np.float64))
    region = {**region, "constant_ranges": {"1": [size.min(), size.max()],
                                            "2": [abs(scale)] * 2}}
    params = {"region": region, "in_shapes": [list(x.shape), [a.size], []],
              "in_dtypes": ["int32", "float32", "float32"], "out_shapes": [list(x.shape)],
              "out_dtypes": [out_dtype]}
    inputs = [x, a, np.array(scale, np.float32)]
    (want,) = KERNELS["elementwise"](inputs, params)
    return params, inputs, np.asarray(want)


REQUANT_CASES = [([1e-3, 7.3e-4, -2.1e-3, 1.7e-2], 0.0244584288),
                 ([3.1e-5, 1.0, -0.5, 2.0 ** -20], 1.37e-3), ([6e-8, -2e-7], 3e-5)]


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("factors,scale", REQUANT_CASES)
def test_an_int8_requantize_divides_without_the_guards_bit_for_bit_on_emulated_threads(
        factors, scale, tmp_path):
    params, inputs, want = _requant_case(factors, scale)
    spec = elementwise.emit("rq", params)
    assert "ember_div_round(" in spec.source
    _same(simt_emulator.run(spec, "rq", inputs, list(want.shape), want.dtype, tmp_path), want)


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
def test_a_fake_quantize_of_int32_sums_keeps_a_zeros_sign_bit_for_bit(tmp_path):
    """round(float(acc) * a / s) * s with negative factors: a zero sum is a dividend of -0 and
    its quotient rounds to -0 (the guarded division: x * y there, as the reference)."""
    params, inputs, want = _requant_case([-1e-3, 2e-3], 0.02, SIGNED_REQUANT, "float32")
    assert np.signbit(want[want == 0]).any()  # some -0 results to keep
    spec = elementwise.emit("fq", params)
    body = spec.source.split("void fq")[1]
    assert "ember_div_near(" in body and "ember_div_round(" not in body
    _same(simt_emulator.run(spec, "fq", inputs, list(want.shape), want.dtype, tmp_path), want)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("factors,scale", REQUANT_CASES)
def test_an_int8_requantize_divides_without_the_guards_bit_for_bit_on_the_gpu(factors, scale):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _requant_case(factors, scale)
    got = _run_on_gpu(elementwise.emit("rq", params), "rq", inputs, want.shape, want.dtype)
    _same(got, want)


def _dequant_case(scale: float, divisor: float):
    x = np.tile(np.arange(-128, 128, dtype=np.int8), 3)
    region = {**DEQUANT_DIVIDE, "constant_ranges": {"1": [abs(scale)] * 2,
                                                    "2": [abs(divisor)] * 2}}
    params = {"region": region, "in_shapes": [[x.size], [], []],
              "in_dtypes": ["int8", "float32", "float32"], "out_shapes": [[x.size]],
              "out_dtypes": ["float32"]}
    inputs = [x, np.array(scale, np.float32), np.array(divisor, np.float32)]
    (want,) = KERNELS["elementwise"](inputs, params)
    return params, inputs, np.asarray(want)


def _column_case():
    """x at every rounding midpoint of per-element scales drawn over the safe range (and its
    ends), each scale's neighbours included."""
    rng = np.random.default_rng(1)
    lo, hi = quantize_c.SAFE_DIVISOR
    ones = np.nextafter(np.float32(2.0) ** np.arange(-89, 121, 7).astype(np.float32),
                        np.float32(0))  # all-ones significands
    s = np.concatenate([2.0 ** rng.uniform(np.log2(lo), np.log2(hi), 3000),
                        rng.uniform(1e-3, 1e-1, 3000), ones,
                        [lo, hi, 0.0163002536, 1.0, 3.0]])
    s = (s * rng.choice([-1, 1], s.size)).astype(np.float32)
    k = rng.integers(-140, 141, s.size).astype(np.float32) + np.float32(0.5)
    with np.errstate(all="ignore"):
        mid = (k * s).astype(np.float32)
    x = np.concatenate([np.nextafter(mid, np.float32(-np.inf)), mid,
                        np.nextafter(mid, np.float32(np.inf))]).astype(np.float32)
    s = np.tile(s, 3)
    size = np.abs(s.astype(np.float64))
    region = {**COLUMN_QUANTIZE, "constant_ranges": {"1": [size.min(), size.max()]}}
    params = {"region": region, "in_shapes": [[x.size], [x.size]],
              "in_dtypes": ["float32", "float32"], "out_shapes": [[x.size]],
              "out_dtypes": ["int8"]}
    with np.errstate(all="ignore"):
        (want,) = KERNELS["elementwise"]([x, s], params)
    return params, [x, s], np.asarray(want)


DEQUANT_SCALES = [(0.0244584288, 1.4142135), (0.0163002536, 0.7071068), (1e-20, 3e-5),
                  (7e3, 2.0 ** -60)]


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("scale,divisor", DEQUANT_SCALES)
def test_a_dequantized_value_divides_by_a_constant_exactly_on_emulated_threads(
        scale, divisor, tmp_path):
    params, inputs, want = _dequant_case(scale, divisor)
    spec = elementwise.emit("dq", params)
    assert "ember_div_near(v4, v2, ember_rcp_in2)" in spec.source
    _same(simt_emulator.run(spec, "dq", inputs, list(want.shape), want.dtype, tmp_path), want)


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
def test_per_element_constant_scales_quantize_bit_for_bit_on_emulated_threads(tmp_path):
    params, inputs, want = _column_case()
    spec = elementwise.emit("cq", params)
    assert "ember_div_near(v0, v1, __frcp_rn(v1))" in spec.source
    _same(simt_emulator.run(spec, "cq", inputs, list(want.shape), want.dtype, tmp_path), want)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_constant_divisions_without_a_branch_bit_for_bit_on_the_gpu():
    """The dequantized divide and the per-element scales (each element's __frcp_rn) on the
    GPU, against numpy's division."""
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    for scale, divisor in DEQUANT_SCALES:
        params, inputs, want = _dequant_case(scale, divisor)
        _same(_run_on_gpu(elementwise.emit("dq", params), "dq", inputs, want.shape,
                          want.dtype), want)
    params, inputs, want = _column_case()
    _same(_run_on_gpu(elementwise.emit("cq", params), "cq", inputs, want.shape, want.dtype),
          want)


# an FP16 kernel's erf GELU: x / sqrt(2) (its constant in FP16), erf, + 1, * x, * 0.5, every
# op rounded to FP16; the division has no branch (an FP16 dividend is 0, not finite or of a
# magnitude in [2^-24, 65504]). In BF16 the division keeps ember_div_by's branch.
HALF_GELU = {"ops": [{"fn": "div", "args": [0, 1], "dtype": "{t}"},
                     {"fn": "erf", "args": [4], "dtype": "{t}"},
                     {"fn": "add", "args": [5, 2], "dtype": "{t}"},
                     {"fn": "mul", "args": [0, 6], "dtype": "{t}"},
                     {"fn": "mul", "args": [7, 3], "dtype": "{t}"}],
             "result": 8}


def _half_gelu_case(dtype: str, divisor: float = 1.4142135):
    """Every FP16 value (BF16: a spread of every magnitude, its neighbours) through the GELU."""
    import ml_dtypes

    np_t = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    if dtype == "float16":
        x = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    else:
        x = np.arange(0, 1 << 16, 3, dtype=np.uint16).view(ml_dtypes.bfloat16)
    consts = [np.array(divisor, np_t), np.array(1.0, np_t), np.array(0.5, np_t)]
    region = {"ops": [dict(op, dtype=dtype) for op in HALF_GELU["ops"]], "result": 8,
              "constant_ranges": {str(k + 1): [abs(float(c))] * 2
                                  for k, c in enumerate(consts)}}
    params = {"region": region, "in_shapes": [[x.size], [], [], []],
              "in_dtypes": [dtype] * 4, "out_shapes": [[x.size]], "out_dtypes": [dtype]}
    inputs = [x, *consts]
    with np.errstate(all="ignore"):
        (want,) = KERNELS["elementwise"](inputs, params)
    return params, inputs, np.asarray(want)


def test_an_fp16_dividend_divides_without_a_branch():
    region = {**HALF_GELU, "ops": [dict(op, dtype="float16") for op in HALF_GELU["ops"]],
              "constant_ranges": {"1": [1.414, 1.414]}}
    dtypes = ["float16"] * 4
    assert quantize_c.divisions(region, dtypes, quantize_c.rewrites(region, dtypes)) == {0}
    bf16 = {**region, "ops": [dict(op, dtype="bfloat16") for op in HALF_GELU["ops"]]}
    assert quantize_c.divisions(bf16, ["bfloat16"] * 4, {}) == set()


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_gelu_divides_by_its_constant_bit_for_bit_on_emulated_threads(dtype, tmp_path):
    params, inputs, want = _half_gelu_case(dtype)
    spec = elementwise.emit("hg", params)
    body = spec.source.split("void hg")[1]
    form = "ember_div_near" if dtype == "float16" else "ember_div_by"
    # two elements a thread (half pairs: values a.. and b..), one reciprocal for both
    assert f"{form}(a0, a1, ember_rcp_in1)" in body and f"{form}(b0, b1, ember_rcp_in1)" in body
    assert body.count("__frcp_rn(") == 1 and " / " not in body
    got = simt_emulator.run(spec, "hg", inputs, list(want.shape), want.dtype, tmp_path)
    _same(got.astype(np.float32), want.astype(np.float32))  # exact; NaN seen through float32


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_gelu_divides_by_its_constant_bit_for_bit_on_the_gpu(dtype):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _half_gelu_case(dtype)
    got = _run_on_gpu(elementwise.emit("hg", params), "hg", inputs, want.shape, want.dtype)
    _same(np.asarray(got).astype(np.float32), want.astype(np.float32))
