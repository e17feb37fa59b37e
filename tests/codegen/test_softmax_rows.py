"""softmax's warp-per-row kernel (rows along the last axis of at most WARP_ROW_MAX elements,
held in registers, warp-shuffle max and sum) against the CPU kernel, on emulated warps (g++),
and on the GPU."""

from __future__ import annotations

import numpy as np
import pytest

from ember.codegen.templates import softmax
from ember.codegen.templates.layer_norm import WARP_ROW_MAX
from ember.runtime.cpu_kernels import KERNELS
from ember.runtime.cuda import cuda_available
from tests.codegen import simt_emulator

CASES = [("float32", [2, 3, 128], False), ("float16", [9, 100], False),
         ("float16", [6, 128], False), ("float16", [3, 256], True),
         ("float32", [5, 1000], True), ("bfloat16", [4, 2, 64], False),
         ("float32", [3, 33], False)]


def _case(dtype: str, shape: list[int], log: bool):
    import ml_dtypes  # noqa: F401  (numpy's bfloat16)

    params = {"axis": len(shape) - 1, "in_shapes": [shape], "in_dtypes": [dtype],
              "out_shapes": [shape], "out_dtypes": [dtype]}
    if log:
        params["log"] = True
    rng = np.random.default_rng(shape[-1])
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    if dtype == "float32":  # a row of -inf (NaN out), a row with a NaN, a row with one -inf
        flat = x.reshape(-1, shape[-1])
        flat[0, :] = -np.inf
        flat[1, 5] = np.nan
        flat[2, 0] = -np.inf
    x = x.astype(dtype)
    with np.errstate(all="ignore"):
        (want,) = KERNELS["softmax"]([x], params)
    return params, [x], np.asarray(want)


def _check(got: np.ndarray, want: np.ndarray, dtype: str) -> None:
    tol = {"float32": 2e-6, "float16": 1e-3, "bfloat16": 8e-3}[dtype]
    g, w = got.astype(np.float64), want.astype(np.float64)
    assert np.array_equal(np.isnan(g), np.isnan(w))
    np.testing.assert_allclose(np.nan_to_num(g), np.nan_to_num(w), rtol=tol, atol=tol)


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("dtype, shape, log", CASES)
def test_warp_rows_match_the_cpu_kernel_on_emulated_warps(dtype, shape, log, tmp_path):
    params, inputs, want = _case(dtype, shape, log)
    spec = softmax.emit("sm", params)
    assert "one warp per row" in spec.source and spec.block == (256, 1, 1)
    got = simt_emulator.run(spec, "sm", inputs, shape, want.dtype, tmp_path)
    _check(got, want, dtype)


def test_other_rows_keep_the_block_per_row_kernel():
    def params(shape: list[int], axis: int) -> dict:
        return {"axis": axis, "in_shapes": [shape], "in_dtypes": ["float32"],
                "out_shapes": [shape], "out_dtypes": ["float32"]}

    assert "one block of" in softmax.emit("sm", params([2, WARP_ROW_MAX + 32], 1)).source
    assert "one block of" in softmax.emit("sm", params([2, 8, 3], 1)).source  # not the last
    assert "one warp per row" in softmax.emit("sm", params([2, WARP_ROW_MAX], 1)).source


@pytest.mark.parametrize("dtype, length, out, vector", [
    ("float16", 128, "float16", True), ("float16", 256, "float16", True),
    ("float32", 128, "float32", True), ("float32", 256, "float32", False),  # 32 bytes a lane
    ("float16", 100, "float16", False), ("float16", 32, "float16", False),
    ("float16", 128, "int8", True)])
def test_rows_of_whole_lane_vectors_are_read_as_vectors(dtype, length, out, vector):
    """A row of 32 · per elements (per 2..8, each lane's at most 16 bytes in and out): lane l
    reads and stores elements per·l.. as one vector."""
    assert softmax._lane_vector(length, dtype, out) is vector
    if out == dtype:  # (an int8 result comes from an epilogue: the quantizing cases below)
        params = {"axis": 1, "in_shapes": [[2, length]], "in_dtypes": [dtype],
                  "out_shapes": [[2, length]], "out_dtypes": [dtype]}
        text = softmax.emit("sm", params).source
        assert ("neighbouring elements a lane, one vector load and store" in text) is vector


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype, shape, log", CASES)
def test_warp_rows_on_the_gpu(dtype, shape, log):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _case(dtype, shape, log)
    got = _run_on_gpu(softmax.emit("sm", params), "sm", inputs, want.shape, want.dtype)
    _check(got, want, dtype)


def _fake_quantized_case(length: int, out: str):
    """An FP16 attention softmax whose fused epilogue (fuse-epilogues') quantizes the
    probabilities to uint8 steps of 1/255: stored as int8 codes (`out` "int8": quantize only,
    signed range) or dequantized back to FP16 (`out` "float16": a QDQ model's fake-quantize)."""
    params, inputs, _ = _case("float16", [6, length], False)
    inputs = [(inputs[0].astype(np.float32) / 4).astype(np.float16)]  # probabilities spread
    ops = [{"fn": "cast", "args": [0], "dtype": "float32"},
           {"fn": "div", "args": [2, 1], "dtype": "float32"},
           {"fn": "round", "args": [3], "dtype": "float32"},
           {"fn": "clip", "args": [4], "dtype": "float32", "alpha": 0.0, "beta": 127.0}]
    if out == "int8":
        ops.append({"fn": "cast", "args": [5], "dtype": "int8"})
    else:
        ops += [{"fn": "mul", "args": [5, 1], "dtype": "float32"},
                {"fn": "cast", "args": [6], "dtype": "float16"}]
    params["epilogue"] = {"ops": ops, "result": len(ops) + 1, "in_shapes": [[]],
                          "in_dtypes": ["float32"], **({"out_dtype": out} if out == "int8"
                                                        else {})}
    inputs = [*inputs, np.array(1 / 255, np.float32)]
    (want,) = KERNELS["softmax"](inputs, params)
    return params, inputs, np.asarray(want)


def _one_step(got: np.ndarray, want: np.ndarray, step: float) -> None:
    """Equal but where the FP16 probability (float32 sums here, float64 in numpy) lands on the
    other side of a rounding boundary: one step, rarely."""
    assert got.dtype == want.dtype
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert diff.max() <= step * 1.001 and np.count_nonzero(diff) <= want.size // 50


@pytest.mark.skipif(not simt_emulator.available(), reason="g++ not found: the emulator needs it")
@pytest.mark.parametrize("out", ["int8", "float16"])
def test_a_quantizing_epilogue_on_emulated_warps(out, tmp_path):
    """The warp-per-row kernel with its epilogue (the block-per-row kernel's, the same lines,
    runs on the GPU below: the emulator has no block trees)."""
    params, inputs, want = _fake_quantized_case(128, out)
    spec = softmax.emit("sm", params)
    assert "one warp per row" in spec.source and "epilogue fused" in spec.source
    got = simt_emulator.run(spec, "sm", inputs, list(want.shape), want.dtype, tmp_path)
    assert np.count_nonzero(want) > want.size // 4  # the probabilities are not all rounded away
    _one_step(got, want, 1.0 if out == "int8" else 1 / 255)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("length", [128, WARP_ROW_MAX + 64])
@pytest.mark.parametrize("out", ["int8", "float16"])
def test_a_quantizing_epilogue_on_the_gpu(out, length):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _fake_quantized_case(length, out)
    got = _run_on_gpu(softmax.emit("sm", params), "sm", inputs, want.shape, want.dtype)
    _one_step(got, want, 1.0 if out == "int8" else 1 / 255)


@pytest.mark.parametrize("length", [128, WARP_ROW_MAX + 64])
@pytest.mark.parametrize("out", ["int8", "float16"])
def test_both_kernels_with_an_epilogue_compile(out, length):
    """NVRTC on the CPU: the block-per-row kernel's epilogue (run only on a GPU) and the warp
    kernel's declare what they use."""
    from ember.codegen.nvrtc import compile_cuda

    params, _, _ = _fake_quantized_case(length, out)
    spec = softmax.emit("sm", params)
    assert ("one warp per row" in spec.source) == (length <= WARP_ROW_MAX)
    assert ("signed char* __restrict__ out0" in spec.source) == (out == "int8")
    assert compile_cuda(spec.source, name="sm", arch="sm_90").cubin
