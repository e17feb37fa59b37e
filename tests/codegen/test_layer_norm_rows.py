"""layer_norm's warp-per-row kernel (rows of at most WARP_ROW_MAX elements, held in registers,
warp-shuffle sums) against the CPU kernel, on emulated warps (g++), and on the GPU."""

from __future__ import annotations

import numpy as np
import pytest

from ember.codegen.templates import layer_norm
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels import KERNELS
from ember.runtime.cuda import cuda_available
from tests.codegen import simt_emulator

CASES = [("float32", 13, 768, False), ("float16", 9, 100, False), ("float32", 5, 64, True),
         ("bfloat16", 8, 1024, False), ("float16", 6, 768, False), ("float16", 4, 96, True)]


def _case(dtype: str, rows: int, length: int, rms: bool):
    import ml_dtypes  # noqa: F401  (numpy's bfloat16)

    params = {"axis": 1, "epsilon": 1e-5, "in_shapes": [[rows, length], [length], [length]],
              "in_dtypes": [dtype] * 3, "out_shapes": [[rows, length]], "out_dtypes": [dtype]}
    if rms:
        params["rms"] = True
    rng = np.random.default_rng(length)
    x = (rng.standard_normal((rows, length)) * 3 + 1).astype(dtype)
    g = (1 + 0.1 * rng.standard_normal(length)).astype(dtype)
    b = (0.1 * rng.standard_normal(length)).astype(dtype)
    (want,) = KERNELS["layer_norm"]([x, g, b], params)
    return params, [x, g, b], np.asarray(want)


def _tolerance(dtype: str) -> float:
    return {"float32": 2e-5, "float16": 2e-3, "bfloat16": 1.6e-2}[dtype]


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("dtype, rows, length, rms", CASES)
def test_warp_rows_match_the_cpu_kernel_on_emulated_warps(dtype, rows, length, rms, tmp_path):
    params, inputs, want = _case(dtype, rows, length, rms)
    spec = layer_norm.emit("ln", params)
    assert "one warp per row" in spec.source and spec.block == (256, 1, 1)
    got = simt_emulator.run(spec, "ln", inputs, [rows, length], want.dtype, tmp_path)
    tol = _tolerance(dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("dtype, length, width", [
    ("float16", 768, 8), ("float32", 768, 4), ("float32", 64, 2), ("float16", 96, 0),
    ("bfloat16", 1024, 8), ("float16", 100, 0)])
def test_lanes_take_neighbouring_elements_where_rows_are_whole_vectors(dtype, length, width):
    """A row of 32 lanes' whole vectors (x, the scale / bias and the result each at most 16
    bytes a vector): lane l reads x, the scale and the bias at width·l of each chunk of
    32·width, one vector each, and stores one."""
    params, _, _ = _case(dtype, 2, length, False)
    assert layer_norm.lane_width(params, 2, length, [1, 2]) == width
    text = layer_norm.emit("ln", params).source
    assert (f"{width} neighbouring elements a vector load / store" in text) is bool(width)
    if width:
        assert text.count(f"ember_vec<{text.split('ember_vec<')[1].split(',')[0]}, {width}>") \
            >= 3  # x, scale, bias


def test_long_rows_keep_the_block_per_row_kernel():
    params, _, _ = _case("float32", 4, layer_norm.WARP_ROW_MAX + 32, False)
    assert "one block of" in layer_norm.emit("ln", params).source


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype, rows, length, rms", CASES)
def test_warp_rows_on_the_gpu(dtype, rows, length, rms):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _case(dtype, rows, length, rms)
    got = _run_on_gpu(layer_norm.emit("ln", params), "ln", inputs, want.shape, want.dtype)
    tol = _tolerance(dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                               atol=tol)


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
def test_group_norms_warp_rows_match_the_cpu_kernel_on_emulated_warps(tmp_path):
    """group_norm's rows (batch x group, each its channels x pixels: 2 x 25 = 50 values) on the
    warp-per-row kernel, each value's channel picking its scale and bias."""
    from ember.codegen.templates import group_norm

    params = {"groups": 3, "epsilon": 1e-5, "in_shapes": [[2, 6, 5, 5], [6], [6]],
              "in_dtypes": ["float32"] * 3, "out_shapes": [[2, 6, 5, 5]],
              "out_dtypes": ["float32"]}
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 6, 5, 5)) * 2 + 1).astype(np.float32)
    g, b = (1 + 0.1 * rng.standard_normal(6)).astype(np.float32), \
        (0.1 * rng.standard_normal(6)).astype(np.float32)
    (want,) = KERNELS["group_norm"]([x, g, b], params)
    spec = group_norm.emit("gn", params)
    assert "one warp per row" in spec.source
    got = simt_emulator.run(spec, "gn", [x, g, b], [2, 6, 5, 5], np.dtype("float32"), tmp_path)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def _quantized_case(length: int):
    """An FP16 layer norm whose output is quantized to int8 by its fused epilogue (the next
    GEMM's quantize: div by a scale, round, clip, cast), as fuse-epilogues gives it."""
    params, inputs, _ = _case("float16", 6, length, False)
    params["epilogue"] = {
        "ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                {"fn": "div", "args": [2, 1], "dtype": "float32"},
                {"fn": "round", "args": [3], "dtype": "float32"},
                {"fn": "clip", "args": [4], "dtype": "float32", "alpha": -128.0, "beta": 127.0},
                {"fn": "cast", "args": [5], "dtype": "int8"}],
        "result": 6, "in_shapes": [[]], "in_dtypes": ["float32"], "out_dtype": "int8"}
    inputs = [*inputs, np.array(0.02, np.float32)]
    (want,) = KERNELS["layer_norm"](inputs, params)
    return params, inputs, np.asarray(want)


def _one_step(got: np.ndarray, want: np.ndarray) -> None:
    """int8 results equal but where the layer norm's FP16 value (float32 sums here, float64 in
    numpy) lands on the other side of a rounding boundary: one step, rarely."""
    assert got.dtype == want.dtype == np.int8
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= want.size // 100


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
def test_a_quantizing_epilogue_stores_int8_on_emulated_warps(tmp_path):
    """The warp-per-row kernel (the emulator does not run block_reduce's block trees: the
    block-per-row kernel's epilogue, the same lines, is checked on the GPU below)."""
    params, inputs, want = _quantized_case(768)
    spec = layer_norm.emit("ln", params)
    assert "signed char* __restrict__ out0" in spec.source
    got = simt_emulator.run(spec, "ln", inputs, list(want.shape), want.dtype, tmp_path)
    _one_step(got, want)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("length", [768, layer_norm.WARP_ROW_MAX + 64])
def test_a_quantizing_epilogue_stores_int8_on_the_gpu(length):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _quantized_case(length)
    got = _run_on_gpu(layer_norm.emit("ln", params), "ln", inputs, want.shape, want.dtype)
    _one_step(got, want)


@pytest.mark.parametrize("length", [64, 2 * layer_norm.WARP_ROW_MAX])
def test_an_epilogue_with_mod_compiles_in_both_kernels(length):
    """fuse-epilogues gives a layer norm any elementwise consumer: one calling `ember_mod` gets
    its definition (the kernels compile with NVRTC)."""
    from ember.codegen.nvrtc import compile_cuda

    params, _, _ = _case("float32", 4, length, False)
    params["epilogue"] = {"ops": [{"fn": "mod", "args": [0, 1], "dtype": "float32"}],
                          "result": 2, "in_shapes": [[]], "in_dtypes": ["float32"]}
    spec = layer_norm.emit("ln", params)
    assert "ember_mod(e0, e1)" in spec.source and "epilogue fused: [mod]" in spec.source
    assert compile_cuda(spec.source, name="ln", arch="sm_90").cubin


def _quantizing_case():
    """BERT's quantizing LayerNorm in small: FP16 rows of 768, the result times a scalar
    (fold-quantize-scales' reciprocal of the next quantize's scale), rounded to int8."""
    params, inputs, _ = _case("float16", 6, 768, False)
    params["epilogue"] = {
        "ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                {"fn": "mul", "args": [2, 1], "dtype": "float32"},
                {"fn": "round", "args": [3], "dtype": "float32"},
                {"fn": "clip", "args": [4], "dtype": "float32", "alpha": -128.0, "beta": 127.0},
                {"fn": "cast", "args": [5], "dtype": "int8"}],
        "result": 6, "in_shapes": [[]], "in_dtypes": ["float32"], "out_dtype": "int8"}
    inputs = [*inputs, np.array(1 / 0.031, np.float32)]
    (want,) = KERNELS["layer_norm"](inputs, params)
    return params, inputs, np.asarray(want)


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
def test_a_quantizing_row_reads_its_parameters_before_the_sums(tmp_path):
    """The scale and bias vectors are read with x, before the first shuffle tree, and the
    epilogue's scalar once per thread at the top (read where they are used, each was one more
    memory round trip after the sums); the int8 results equal the CPU kernel's, but for a
    value within FP16 rounding of a .5 boundary (the GPU's and numpy's sums differ in order)."""
    params, inputs, want = _quantizing_case()
    text = layer_norm.emit("ln", params).source
    body = text.split("__global__")[1]
    assert body.index("ember_u3 = in3[0]") < body.index("for (int row")
    assert body.index("pvs1[c] = ") < body.index("warp_sum(") and \
        body.index("pvs2[c] = ") < body.index("warp_sum(")
    assert "in1 + " not in body.split("warp_sum(")[1]  # nothing read from them after the sums
    got = simt_emulator.run(layer_norm.emit("ln", params), "ln", inputs, want.shape, np.int8,
                            tmp_path)
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= want.size // 500, np.count_nonzero(diff)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_a_quantizing_row_on_the_gpu():
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _quantizing_case()
    got = _run_on_gpu(layer_norm.emit("ln", params), "ln", inputs, want.shape, np.int8)
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= want.size // 500, np.count_nonzero(diff)


SPLIT_CASES = [("float32", 13, 768, 2), ("float32", 13, 768, 3), ("float16", 7, 768, 3),
               ("bfloat16", 9, 1024, 4), ("bfloat16", 9, 1024, 2)]


def test_the_row_forms_offered_are_those_that_split_a_rows_chunks_evenly():
    params, _, _ = _case("float16", 6, 768, False)  # 3 chunks of 8 halves a lane
    assert layer_norm.tactics(params) == [{"row_warps": 1}, {"row_warps": 3}]
    params, _, _ = _case("bfloat16", 8, 1024, False)
    assert layer_norm.tactics(params) == [{"row_warps": 1}, {"row_warps": 2}, {"row_warps": 4}]
    params, _, _ = _case("float16", 9, 100, False)  # no whole vectors: the plain warp kernel
    assert layer_norm.tactics(params) == []
    params, _, _ = _case("float16", 4, 96, True)  # RMS: none
    assert layer_norm.tactics(params) == []
    with pytest.raises(UnsupportedError, match="row_warps 2"):
        layer_norm.emit("ln", {**_case("float16", 6, 768, False)[0],
                               "tactic": {"row_warps": 2}})
    with pytest.raises(UnsupportedError, match="names tile"):  # not a layer norm's tactic
        layer_norm.emit("ln", {**_case("float16", 6, 768, False)[0],
                               "tactic": {"row_warps": 1, "tile": [64, 64]}})
    # a symbolic row count: none offered, and a forced one refused (the autotuner's filter for
    # a dynamic-shape kernel timed at its opt shapes)
    dynamic = {**params, "in_shapes": [["N", 768], [768], [768]], "out_shapes": [["N", 768]]}
    dynamic.pop("rms")
    assert layer_norm.tactics(dynamic) == []
    with pytest.raises(UnsupportedError, match="static row count"):
        layer_norm.emit("ln", {**dynamic, "tactic": {"row_warps": 3}})


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("dtype, rows, length, split", SPLIT_CASES)
def test_rows_shared_by_several_warps_match_the_cpu_kernel_on_emulated_warps(
        dtype, rows, length, split, tmp_path):
    """Each row's chunks split over `split` warps of a block, partial sums through shared
    memory; a row count that leaves the last block's later warps without a row (they compute
    on the last row and store nothing)."""
    params, inputs, want = _case(dtype, rows, length, False)
    spec = layer_norm.emit("ln", {**params, "tactic": {"row_warps": split}})
    assert f"{split} warps per row" in spec.source
    assert rows % (spec.block[0] // 32 // split), "the case leaves a block part-filled"
    got = simt_emulator.run(spec, "ln", inputs, [rows, length], want.dtype, tmp_path)
    tol = _tolerance(dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                               atol=tol)


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
def test_a_quantizing_row_over_three_warps_on_emulated_warps(tmp_path):
    params, inputs, want = _quantizing_case()
    spec = layer_norm.emit("ln", {**params, "tactic": {"row_warps": 3}})
    got = simt_emulator.run(spec, "ln", inputs, want.shape, np.int8, tmp_path)
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= want.size // 500, np.count_nonzero(diff)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype, rows, length, split", SPLIT_CASES)
def test_rows_shared_by_several_warps_on_the_gpu(dtype, rows, length, split):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _case(dtype, rows, length, False)
    spec = layer_norm.emit("ln", {**params, "tactic": {"row_warps": split}})
    got = _run_on_gpu(spec, "ln", inputs, want.shape, want.dtype)
    tol = _tolerance(dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                               atol=tol)
