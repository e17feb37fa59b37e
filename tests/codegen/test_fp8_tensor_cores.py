"""FP8 (E4M3) on tensor cores: fold-qdq's FP8 convs and matmuls (E4M3 x E4M3 -> float32 sums:
mma.sync m16n8k32 e4m3 on sm_89+, wgmma k32 e4m3 on sm_90), the E4M3 conversions the
elementwise kernels and epilogues print (`scalar_c.FLOAT8_PRELUDE`), on emulated warps (g++;
mma.sync tactics and the integer-op encoder) and, marked `cuda`, on the GPU (every tactic, and
the conversion unit's encoder) against numpy / ml_dtypes."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest

from ember.codegen.nvrtc import compile_many
from ember.codegen.templates import conv, elementwise, matmul
from ember.runtime.cpu_kernels.elementwise import cast
from ember.runtime.cpu_kernels.linear import conv as reference_conv
from ember.runtime.cuda import cuda_available
from tests.codegen import simt_emulator
from tests.codegen.test_int8_tensor_cores import _run_on_gpu

E4M3 = "float8_e4m3fn"
F8 = np.dtype(ml_dtypes.float8_e4m3fn)
needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
needs_gxx = pytest.mark.skipif(not simt_emulator.available(),
                               reason="g++ not found: the emulated-warp tests need it")


def _e4m3(rng, shape, scale: float = 8.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(F8)


def _cast_inputs() -> np.ndarray:
    """Every finite E4M3 value, the midpoints between neighbours (ties), values just beside
    them, the saturation edges (448, 464), infinities, NaNs and tiny values."""
    values = np.arange(256, dtype=np.uint8).view(F8).astype(np.float32)
    finite = np.unique(values[np.isfinite(values)])
    mids = (finite[:-1] + finite[1:]) / 2
    near = np.concatenate([np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    edges = np.array([448, 449, 463.9, 464, 464.01, 480, 1e30, np.inf, -np.inf, np.nan,
                      -np.nan, 0.0, -0.0, 2.0**-10, 3 * 2.0**-11, 2.0**-20, -2.0**-10], np.float32)
    return np.concatenate([finite, mids, near, edges, -mids]).astype(np.float32)


def _cast_params(n: int, fn: str) -> dict:
    return {"region": {"ops": [{"fn": fn, "args": [0], "dtype": E4M3}], "result": 1},
            "in_shapes": [[n]], "in_dtypes": ["float32"], "out_shapes": [[n]],
            "out_dtypes": [E4M3]}


@needs_gxx
@pytest.mark.parametrize("fn", ["saturate_cast", "cast"])
def test_e4m3_casts_round_to_nearest_even_as_the_cpu_does(fn, tmp_path):
    """The integer-op encoder (targets before sm_89, and the emulator) against the CPU
    executor's cast: saturating to +-448 (infinities too) or, plain, NaN past 464."""
    x = _cast_inputs()
    spec = elementwise.emit("k", _cast_params(x.size, fn))
    got = simt_emulator.run(spec, "k", [x], [x.size], np.uint8, tmp_path)
    want = cast(x, F8, saturate=fn == "saturate_cast").view(np.uint8)
    nan = np.isnan(want.view(F8).astype(np.float32))
    np.testing.assert_array_equal(got[~nan], want[~nan])
    assert np.isnan(got[nan].view(F8).astype(np.float32)).all()


@needs_gxx
def test_e4m3_loads_decode_every_value_exactly(tmp_path):
    codes = np.arange(256, dtype=np.uint8)
    params = {"region": {"ops": [{"fn": "cast", "args": [0], "dtype": "float32"}], "result": 1},
              "in_shapes": [[256]], "in_dtypes": [E4M3], "out_shapes": [[256]],
              "out_dtypes": ["float32"]}
    got = simt_emulator.run(elementwise.emit("k", params), "k", [codes], [256], np.float32,
                            tmp_path)
    want = codes.view(F8).astype(np.float32)
    np.testing.assert_array_equal(got, want)  # NaN == NaN for assert_array_equal


def _mm_params(batch: list[int], m: int, n: int, k: int, epilogue: str = "") -> dict:
    params = {"transpose_b": True, "in_shapes": [[*batch, m, k], [n, k]],
              "in_dtypes": [E4M3, E4M3], "out_shapes": [[*batch, m, n]],
              "out_dtypes": ["float32"]}
    if epilogue:
        params["epilogue"] = _requantize([1, n], epilogue)
    return params


def _requantize(scale_shape: list, to: str) -> dict:
    """relu(acc * scale + bias) / s_out saturated to E4M3 (fold-qdq's tail), or left float32."""
    ops = [{"fn": "mul", "args": [0, 1], "dtype": "float32"},
           {"fn": "add", "args": [4, 2], "dtype": "float32"},
           {"fn": "relu", "args": [5], "dtype": "float32"},
           {"fn": "div", "args": [6, 3], "dtype": "float32"}]
    if to == E4M3:
        ops.append({"fn": "saturate_cast", "args": [7], "dtype": E4M3})
    region = {"ops": ops, "result": 3 + len(ops), "in_shapes": [scale_shape, scale_shape, []],
              "in_dtypes": ["float32"] * 3}
    return {**region, "out_dtype": E4M3} if to == E4M3 else region


def _tail(acc: np.ndarray, scale, bias, s_out: float, to: str) -> np.ndarray:
    y = np.maximum(acc.astype(np.float32) * scale + bias, 0) / np.float32(s_out)
    return cast(y.astype(np.float32), F8, saturate=True) if to == E4M3 else y


def _mm_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a.astype(np.float64), b.astype(np.float64).T)


@needs_gxx
@pytest.mark.parametrize("batch, m, n, k", [([], 64, 96, 128), ([2], 37, 40, 48)],
                         ids=["aligned", "batch-ragged"])
def test_fp8_matmul_sums_for_every_mma_tactic(batch, m, n, k, tmp_path):
    params = _mm_params(batch, m, n, k)
    rng = np.random.default_rng(0)
    a, b = _e4m3(rng, (*batch, m, k)), _e4m3(rng, (n, k))
    want = _mm_reference(a, b)
    tactics = [t for t in matmul.tactics(params, "sm_89") if "mma" in t][:2]
    assert tactics and all(t.get("splits", 1) == 1 for t in tactics)
    for tactic in tactics:
        spec = matmul.emit("k", {**params, "tactic": tactic})
        assert "mma_16832_e4m3(frag[i][j]" in spec.source and "FP8 tensor cores" in spec.source
        got = simt_emulator.run(spec, "k", [a, b], [*batch, m, n], np.float32, tmp_path)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3, err_msg=str(tactic))


def _conv_params(n: int, hw: int, c: int, k: int, stride: int, epilogue: str = "") -> dict:
    oh = (hw + 2 - 3) // stride + 1
    params = {"in_shapes": [[n, hw, hw, c], [k, 3, 3, c]], "in_dtypes": [E4M3, E4M3],
              "out_shapes": [[n, oh, oh, k]], "out_dtypes": ["float32"], "layout": "NHWC",
              "strides": [stride] * 2, "pads": [1] * 4, "dilations": [1, 1], "groups": 1}
    if epilogue:
        params["epilogue"] = _requantize([1, 1, 1, k], epilogue)
    return params


def _conv_case(params: dict, seed: int) -> tuple[list, np.ndarray, np.dtype]:
    rng = np.random.default_rng(seed)
    x, w = _e4m3(rng, params["in_shapes"][0], 2.0), _e4m3(rng, params["in_shapes"][1], 2.0)
    (acc,) = reference_conv([x, w], {**{k: v for k, v in params.items() if k != "epilogue"},
                                     "out_dtypes": ["float64"]})
    epilogue = params.get("epilogue")
    if not epilogue:
        return [x, w], acc, np.dtype(np.float32)
    k = params["out_shapes"][0][-1]
    scale = (rng.random((1, 1, 1, k)) * 0.05 + 0.01).astype(np.float32)
    bias = rng.standard_normal((1, 1, 1, k)).astype(np.float32)
    to = epilogue.get("out_dtype", "float32")
    want = _tail(acc, scale, bias, 0.05, to)
    return [x, w, scale, bias, np.float32(0.05)], want, np.dtype(F8 if to == E4M3 else np.float32)


def _close(got: np.ndarray, want: np.ndarray, dtype: np.dtype, what: str) -> None:
    """float32 sums in another order: equal to float64's within float32 rounding; E4M3 results
    within one E4M3 step (a sum at a rounding tie may go either way) and rarely off at all."""
    if dtype == F8:
        g, w = got.view(F8).astype(np.float64), want.astype(np.float64)
        np.testing.assert_allclose(g, w, rtol=0.13, atol=2.0**-9, err_msg=what)
        assert np.mean(g != w) < 0.01, what
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3, err_msg=what)


@needs_gxx
@pytest.mark.parametrize("stride, epilogue", [(1, ""), (2, E4M3)])
def test_fp8_conv_for_every_mma_tactic(stride, epilogue, tmp_path):
    params = _conv_params(2, 9, 32, 32, stride, epilogue)
    inputs, want, dtype = _conv_case(params, 2)
    tactics = conv.tactics(params, "sm_89")
    assert tactics and all("mma" in t for t in tactics)
    for tactic in tactics[:2]:
        spec = conv.emit("k", {**params, "tactic": tactic})
        assert "mma_16832_e4m3(frag[i][j]" in spec.source
        if epilogue:
            assert "FP8 sums staged in shared memory" in spec.source
        got = simt_emulator.run(spec, "k", inputs, params["out_shapes"][0],
                                np.uint8 if dtype == F8 else dtype, tmp_path)
        _close(got, want, dtype, str(tactic))


def test_fp8_kernels_compile_with_nvrtc_to_the_e4m3_instructions():
    """Every sm_90 candidate (wgmma k32 e4m3, cp.async and TMA-fed) and the sm_89 mma.sync
    ones compile; each issues the E4M3 instruction of its loop (SASS: `QGMMA` for wgmma, read
    on the GPU host)."""
    params = _mm_params([], 256, 192, 512, E4M3)
    cparams = _conv_params(4, 17, 64, 64, 1, E4M3)
    sources = [(f"m{i}", matmul.emit(f"m{i}", {**params, "tactic": t}).source)
               for i, t in enumerate(matmul.tactics(params, "sm_90"))]
    sources += [(f"c{i}", conv.emit(f"c{i}", {**cparams, "tactic": t}).source)
                for i, t in enumerate(conv.tactics(cparams, "sm_90"))]
    assert any("copy" in t for t in matmul.tactics(params, "sm_90"))  # a TMA-fed one among them
    ptx = [entry.ptx for entry in compile_many(sources, arch="sm_90")]
    wgmma = [p for p in ptx
             if re.search(rb"wgmma.mma_async.sync.aligned.m64n\d+k32.f32.e4m3.e4m3", p)]
    mma = [p for p in ptx if b"mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32" in p]
    assert wgmma and len(wgmma) + len(mma) == len(ptx)
    assert all(b"cvt.rn.satfinite.e4m3x2.f32" in p for p in ptx)  # the epilogue's E4M3 stores


# -- on the GPU -------------------------------------------------------------------------------

@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("fn", ["saturate_cast", "cast"])
def test_e4m3_casts_on_the_gpu_match_the_cpu(fn):
    """The conversion unit's encoder (sm_89+: cvt.rn.satfinite.e4m3x2.f32) against the CPU."""
    x = _cast_inputs()
    got = _run_on_gpu(elementwise.emit("k", _cast_params(x.size, fn)), "k", [x], [x.size],
                      np.uint8)
    want = cast(x, F8, saturate=fn == "saturate_cast").view(np.uint8)
    nan = np.isnan(want.view(F8).astype(np.float32))
    np.testing.assert_array_equal(got[~nan], want[~nan])
    assert np.isnan(got[nan].view(F8).astype(np.float32)).all()


# Hopper's FP8 wgmma does not sum in full float32: each k32 step keeps about 13-14 mantissa
# bits of its sum (DeepSeek-V3's report measured ~14 on the H800). On an H100 (session 21) the
# wgmma tactics were off by up to 2^-12 of sum(|a b|) at K = 512 and 576 (0.3% of the outputs'
# size), the mma.sync ones (HMMA over E4M3 made FP16: float32 sums) as float32 sums are. The GPU
# checks allow 2^-FP8_STEP_BITS of sum(|a b|) per k32 step, through the epilogue (monotonic:
# positive scales, relu, a saturating round).
FP8_STEP_BITS = 13


def _interval(acc: np.ndarray, abs_sums: np.ndarray, k: int, tail: tuple | None,
              wgmma: bool) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest result a kernel may give for exact sums `acc` whose products'
    magnitudes sum to `abs_sums` over K = `k`, through `tail` = (scale, bias, s_out, to):
    `wgmma`, Hopper's FP8 sums (2^-FP8_STEP_BITS of sum|ab| a k32 step), else float32 sums
    (k roundings of 2^-24)."""
    bound = np.ceil(k / 32) * 2.0 ** -FP8_STEP_BITS if wgmma else k * 2.0 ** -24
    err = bound * abs_sums + 2.0 ** -20 * np.abs(acc)
    if tail is None:
        return acc - err, acc + err
    return _tail(acc - err, *tail), _tail(acc + err, *tail)


def _inside(got: np.ndarray, lo: np.ndarray, hi: np.ndarray, dtype: np.dtype, what: str) -> None:
    g = (got.view(F8) if dtype == F8 else got).astype(np.float64)
    lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    slack = 0.0 if dtype == F8 else 1e-6 * np.maximum(np.abs(lo), np.abs(hi)) + 1e-6
    bad = ~((g >= lo - slack) & (g <= hi + slack))
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {g.size} outside their interval, e.g. "
                           f"{g[bad][:3]} not in [{lo[bad][:3]}, {hi[bad][:3]}]")


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("m, n, k, epilogue", [(256, 192, 512, ""), (130, 80, 272, E4M3),
                                               (256, 192, 512, "float32")])
def test_every_fp8_matmul_tactic_on_the_gpu(m, n, k, epilogue):
    """Each sm_90 candidate (wgmma k32 e4m3, cp.async and TMA-fed) and an mma.sync one."""
    params = _mm_params([], m, n, k, epilogue)
    rng = np.random.default_rng(4)
    a, b = _e4m3(rng, (m, k), 2.0), _e4m3(rng, (n, k), 2.0)
    acc, abs_sums = _mm_reference(a, b), _mm_reference(np.abs(a), np.abs(b))
    inputs, dtype, tail = [a, b], np.dtype(np.float32), None
    if epilogue:
        tail = ((rng.random((1, n)) * 0.05 + 0.01).astype(np.float32),
                rng.standard_normal(n).astype(np.float32), 0.05, epilogue)
        inputs += [tail[0], tail[1], np.float32(0.05)]
        dtype = np.dtype(F8) if epilogue == E4M3 else dtype
    _each_tactic_on_the_gpu(matmul, params, inputs, (acc, abs_sums, k, tail), dtype)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("stride, epilogue", [(1, ""), (2, E4M3), (1, E4M3)])
def test_every_fp8_conv_tactic_on_the_gpu(stride, epilogue):
    params = _conv_params(4, 17, 64, 64, stride, epilogue)
    rng = np.random.default_rng(7)
    x, w = _e4m3(rng, params["in_shapes"][0], 2.0), _e4m3(rng, params["in_shapes"][1], 2.0)
    sums = {**{k: v for k, v in params.items() if k != "epilogue"}, "out_dtypes": ["float64"]}
    (acc,) = reference_conv([x, w], sums)
    (abs_sums,) = reference_conv([np.abs(x.astype(np.float32)), np.abs(w.astype(np.float32))],
                                 sums)
    inputs, dtype, tail = [x, w], np.dtype(np.float32), None
    if epilogue:
        tail = ((rng.random((1, 1, 1, 64)) * 0.05 + 0.01).astype(np.float32),
                rng.standard_normal((1, 1, 1, 64)).astype(np.float32), 0.05, epilogue)
        inputs += [tail[0], tail[1], np.float32(0.05)]
        dtype = np.dtype(F8)
    _each_tactic_on_the_gpu(conv, params, inputs, (acc, abs_sums, 9 * 64, tail), dtype)


def _each_tactic_on_the_gpu(template, params: dict, inputs: list, case: tuple,
                            dtype: np.dtype) -> None:
    """Every sm_90 candidate of `template` (a wgmma one among them) and the first sm_89 one
    (mma.sync e4m3) run on the GPU, each result within its `_interval` of `case` = (exact
    sums, sum|ab|, K, tail)."""
    tactics = template.tactics(params, "sm_90")
    assert any("wgmma" in t for t in tactics)
    for tactic in tactics + template.tactics(params, "sm_89")[:1]:
        lo, hi = _interval(*case, wgmma="wgmma" in tactic)
        spec = template.emit("k", {**params, "tactic": tactic})
        got = _run_on_gpu(spec, "k", inputs, lo.shape, np.uint8 if dtype == F8 else dtype)
        _inside(got, lo, hi, dtype, str(tactic))


@needs_gpu
@pytest.mark.cuda
def test_every_fp8_tactic_sums_small_integers_exactly_on_the_gpu():
    """Operands in -3..3 (exact in E4M3): every partial sum is an integer below 2^13, which
    Hopper's FP8 sums hold exactly too, so any tactic, wgmma's included, must give the int64
    sums to the bit (a lost or doubled product is off by at least 1)."""
    rng = np.random.default_rng(9)
    m, n, k = 256, 192, 512
    a = rng.integers(-3, 4, (m, k)).astype(np.float32).astype(F8)
    b = rng.integers(-3, 4, (n, k)).astype(np.float32).astype(F8)
    want = a.astype(np.int64) @ b.astype(np.int64).T
    params = _mm_params([], m, n, k)
    for tactic in matmul.tactics(params, "sm_90") + matmul.tactics(params, "sm_89")[:1]:
        spec = matmul.emit("k", {**params, "tactic": tactic})
        got = _run_on_gpu(spec, "k", [a, b], want.shape, np.float32)
        np.testing.assert_array_equal(got, want.astype(np.float32), err_msg=str(tactic))
    cparams = _conv_params(4, 17, 64, 64, 1)
    x = rng.integers(-3, 4, cparams["in_shapes"][0]).astype(np.float32).astype(F8)
    w = rng.integers(-3, 4, cparams["in_shapes"][1]).astype(np.float32).astype(F8)
    (sums,) = reference_conv([x.astype(np.int64), w.astype(np.int64)], cparams)
    for tactic in conv.tactics(cparams, "sm_90") + conv.tactics(cparams, "sm_89")[:1]:
        spec = conv.emit("k", {**cparams, "tactic": tactic})
        got = _run_on_gpu(spec, "k", [x, w], sums.shape, np.float32)
        np.testing.assert_array_equal(got, sums.astype(np.float32), err_msg=str(tactic))
