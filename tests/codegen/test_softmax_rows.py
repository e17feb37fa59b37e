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


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("dtype, shape, log", CASES)
def test_warp_rows_on_the_gpu(dtype, shape, log):
    from tests.codegen.test_int8_tensor_cores import _run_on_gpu

    params, inputs, want = _case(dtype, shape, log)
    got = _run_on_gpu(softmax.emit("sm", params), "sm", inputs, want.shape, want.dtype)
    _check(got, want, dtype)
