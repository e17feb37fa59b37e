"""16-byte chunks of outputs on emulated warps (CPU, g++; `simt_emulator`): the depthwise NHWC
conv that takes a chunk of channels per thread, and the mma.sync conv whose outputs go through
shared memory (`gemm_epilogue`), each with an epilogue reading a residual (16-byte loads) and
a per-channel scale (read by column), against numpy in float64 with the kernel's roundings.
The GPU runs the same kernels in tests/runtime/test_mma_tactics.py."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from ember.codegen.templates import conv
from ember.runtime.cpu_kernels.linear import conv as conv_reference
from tests.codegen import simt_emulator

needs_gxx = pytest.mark.skipif(
    not simt_emulator.available(),
    reason="g++ not found: these tests run the kernels' CUDA C on emulated warps compiled with g++ "
           "(install g++ to run them without a GPU)")
NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}


def _params(dtype: str, n: int, hw: int, c: int, k: int, groups: int, stride: int, oh: int
            ) -> dict:
    """An NHWC 3x3 conv with bias, then relu((y + residual) * scale[c]) fused."""
    return {"in_shapes": [[n, hw, hw, c], [k, 3, 3, c // groups], [k]], "in_dtypes": [dtype] * 3,
            "out_shapes": [[n, oh, oh, k]], "out_dtypes": [dtype], "layout": "NHWC",
            "strides": [stride] * 2, "pads": [1] * 4, "dilations": [1, 1], "groups": groups,
            "epilogue": {"in_shapes": [[n, oh, oh, k], [1, 1, 1, k]],
                         "in_dtypes": [dtype, dtype],
                         "ops": [{"fn": "add", "args": [0, 1], "dtype": dtype},
                                 {"fn": "mul", "args": [3, 2], "dtype": dtype},
                                 {"fn": "relu", "args": [4], "dtype": dtype}],
                         "result": 5}}


def _check(params: dict, dtype: str, tactic_text: str, tmp_path, tolerance: float) -> None:
    n, hw, _, c = params["in_shapes"][0]
    k, _, _, cg = params["in_shapes"][1]
    oh = params["out_shapes"][0][1]
    stride, groups = params["strides"][0], params["groups"]
    rng = np.random.default_rng(1)
    npt = NP[dtype]
    x = rng.standard_normal((n, hw, hw, c)).astype(npt)
    w = (rng.standard_normal((k, 3, 3, cg)) / np.sqrt(9 * cg)).astype(npt)
    b, scale = rng.standard_normal(k).astype(npt), rng.standard_normal((1, 1, 1, k)).astype(npt)
    res = rng.standard_normal((n, oh, oh, k)).astype(npt)
    spec = conv.emit("k", params)
    assert tactic_text in spec.source
    out = simt_emulator.run(spec, "k", [x, w, b, res, scale], [n, oh, oh, k], npt, tmp_path)
    f64 = np.float64
    (y,) = conv_reference([x.astype(f64).transpose(0, 3, 1, 2), w.astype(f64).transpose(0, 3, 1, 2),
                           b.astype(f64)], {"strides": [stride] * 2, "pads": [1] * 4,
                                            "dilations": [1, 1], "groups": groups})
    y = y.transpose(0, 2, 3, 1).astype(npt).astype(f64)  # the kernel rounds before its epilogue
    y = (y + res.astype(f64)).astype(npt).astype(f64) * scale.astype(f64)
    ref = np.maximum(y, 0)
    err = np.linalg.norm(out.astype(f64) - ref) / np.linalg.norm(ref)
    assert err < tolerance, err


@needs_gxx
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("staged", [True, False])
def test_depthwise_nhwc_takes_a_chunk_of_channels_per_thread(dtype: str, stride: int,
                                                             staged: bool, tmp_path,
                                                             monkeypatch) -> None:
    """Both weight paths: staged in shared memory by tap, and (weights over
    `DEPTHWISE_SHARED_BYTES`) read from the [channel][tap] weights in global memory."""
    if not staged:
        monkeypatch.setattr(conv, "DEPTHWISE_SHARED_BYTES", 0)
    hw = 9 if stride == 1 else 10
    oh = (hw + 2 - 3) // stride + 1
    params = _params(dtype, 2, hw, 16, 16, 16, stride, oh)
    tolerance = {"float16": 2e-3, "bfloat16": 8e-3, "float32": 1e-6}[dtype]
    shared = ", weights staged in shared memory by tap"
    _check(params, dtype, "one thread per", tmp_path, tolerance)
    assert (shared in conv.emit("k", params).source) == staged


@needs_gxx
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_tensor_core_conv_stages_its_outputs_with_the_epilogue(dtype: str, tmp_path) -> None:
    params = _params(dtype, 1, 12, 16, 40, 1, 1, 12)
    params["tactic"] = {"mma": [64, 64, 32, 2, 2, 4], "splits": 1}  # partial tiles in N
    _check(params, dtype, "stage the outputs", tmp_path, {"float16": 2e-3, "bfloat16": 8e-3}[dtype])


@needs_gxx
@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("fn,include_pad", [("max", False), ("avg", False), ("avg", True)])
def test_nhwc_pool_takes_a_chunk_of_channels_per_thread(dtype: str, fn: str, include_pad: bool,
                                                        tmp_path) -> None:
    from ember.codegen.templates import pool
    from ember.runtime.cpu_kernels.reduction import pool as pool_reference

    npt = NP[dtype]
    x = np.random.default_rng(2).standard_normal((2, 9, 9, 16)).astype(npt)
    attrs = {"fn": fn, "kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
             "dilations": [1, 1], "ceil_mode": False, "count_include_pad": include_pad}
    params = {**attrs, "in_shapes": [[2, 9, 9, 16]], "in_dtypes": [dtype],
              "out_shapes": [[2, 5, 5, 16]], "out_dtypes": [dtype], "layout": "NHWC"}
    spec = pool.emit("k", params)
    assert "16-byte loads and stores" in spec.source
    out = simt_emulator.run(spec, "k", [x], [2, 5, 5, 16], npt, tmp_path)
    (ref,) = pool_reference([x.astype(np.float64).transpose(0, 3, 1, 2)], attrs)
    ref = ref.transpose(0, 2, 3, 1).astype(npt)  # rounded once, as the kernel stores (float32:
    # summed in float, not float64)
    np.testing.assert_allclose(out.astype(np.float64), ref.astype(np.float64),
                               rtol=2e-5 if dtype == "float32" else 0, atol=0)


@needs_gxx
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("size, pads", [(9, [1, 1, 1, 1]), (8, [0, 0, 1, 1])])
def test_nhwc_byte_max_pool_takes_sixteen_channels_per_thread(dtype: str, size: int, pads,
                                                              tmp_path) -> None:
    """int8 / uint8 max pooling over chunks of 16 channels (four SIMD byte maxima a word):
    windows over the pads (whose lanes read the type's minimum), the extremes of the type."""
    from ember.codegen.templates import pool
    from ember.runtime.cpu_kernels.reduction import pool as pool_reference

    info = np.iinfo(dtype)
    x = np.random.default_rng(3).integers(info.min, info.max + 1, (2, size, size, 32),
                                          dtype=dtype)
    x[0, 0, 0, :4] = [info.min, info.max, info.min, info.max]
    attrs = {"fn": "max", "kernel": [3, 3], "strides": [2, 2], "pads": pads,
             "dilations": [1, 1], "ceil_mode": False}
    out_size = (size + pads[0] + pads[2] - 3) // 2 + 1
    out_shape = [2, out_size, out_size, 32]
    params = {**attrs, "in_shapes": [list(x.shape)], "in_dtypes": [dtype],
              "out_shapes": [out_shape], "out_dtypes": [dtype], "layout": "NHWC"}
    spec = pool.emit("k", params)
    assert ("__vmaxs4" if dtype == "int8" else "__vmaxu4") in spec.source
    out = simt_emulator.run(spec, "k", [x], out_shape, np.dtype(dtype), tmp_path)
    (ref,) = pool_reference([x.transpose(0, 3, 1, 2)], attrs)
    np.testing.assert_array_equal(out, ref.transpose(0, 2, 3, 1))


@needs_gxx
def test_a_per_column_input_read_by_element_drains_in_every_tactic(tmp_path) -> None:
    """An FP16 matmul whose epilogue adds a per-column int8 input (8 bytes a chunk of 8 halves:
    no whole 16-byte word, so it is read element by element, not once a thread with the words
    of per-channel scales): every tactic's kernel compiles (NVRTC, sm_90 / sm_90a) and the
    whole-K mma.sync ones give numpy's sums on emulated warps."""
    from ember.codegen.nvrtc import compile_many
    from ember.codegen.templates import matmul

    params = {"in_shapes": [[64, 128], [96, 128]], "in_dtypes": ["float16", "float16"],
              "out_shapes": [[64, 96]], "out_dtypes": ["float16"], "transpose_b": True,
              "epilogue": {"in_shapes": [[1, 96]], "in_dtypes": ["int8"],
                           "ops": [{"fn": "cast", "args": [1], "dtype": "float32"},
                                   {"fn": "add", "args": [0, 2], "dtype": "float32"}],
                           "result": 3}}
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((64, 128)) * 0.1).astype(np.float16)
    b = (rng.standard_normal((96, 128)) * 0.1).astype(np.float16)
    col = rng.integers(-100, 100, (1, 96)).astype(np.int8)
    want = a.astype(np.float64) @ b.astype(np.float64).T + col
    tactics = matmul.tactics(params, "sm_90")
    specs = [matmul.emit(f"k{i}", {**params, "tactic": t}) for i, t in enumerate(tactics)]
    assert len(compile_many([(f"k{i}", s.source) for i, s in enumerate(specs)],
                            arch="sm_90")) == len(specs)
    ran = 0
    for i, (tactic, spec) in enumerate(zip(tactics, specs, strict=True)):
        if "mma" not in tactic or tactic.get("splits", 1) > 1:
            continue  # the emulator runs no wgmma, and this runner passes no split-K scratch
        got = simt_emulator.run(spec, f"k{i}", [a, b, col], [64, 96], np.float16, tmp_path)
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=2e-3, atol=2e-2,
                                   err_msg=str(tactic))
        ran += 1
    assert ran >= 1


@needs_gxx
@pytest.mark.parametrize("out_dtype, word", [("float16", "uint2"), ("bfloat16", "uint2")])
def test_a_narrower_residual_is_read_a_chunk_at_once(out_dtype: str, word: str, tmp_path) -> None:
    """A half matmul adding an int8 input of its output's shape (an INT8 model's residual
    before a half output): each chunk's span of it in one 8-byte load, batched
    with the chunk's other loads ahead of the epilogues, not a byte a time in them; every
    tactic compiles (NVRTC, sm_90 / sm_90a) and the whole-K mma.sync ones give numpy's sums
    on emulated warps."""
    from ember.codegen.nvrtc import compile_many
    from ember.codegen.templates import matmul

    params = {"in_shapes": [[64, 128], [96, 128]], "in_dtypes": ["float16", "float16"],
              "out_shapes": [[64, 96]], "out_dtypes": [out_dtype], "transpose_b": True,
              "epilogue": {"in_shapes": [[64, 96]], "in_dtypes": ["int8"],
                           "ops": [{"fn": "cast", "args": [1], "dtype": "float32"},
                                   {"fn": "add", "args": [0, 2], "dtype": "float32"}],
                           "result": 3}}
    params["in_dtypes"] = [out_dtype, out_dtype]
    rng = np.random.default_rng(6)
    npt = NP[params["in_dtypes"][0]]
    a = (rng.standard_normal((64, 128)) * 0.1).astype(npt)
    b = (rng.standard_normal((96, 128)) * 0.1).astype(npt)
    res = rng.integers(-100, 100, (64, 96)).astype(np.int8)
    want = (a.astype(np.float64) @ b.astype(np.float64).T).astype(npt).astype(np.float64) + res
    tactics = matmul.tactics(params, "sm_90")
    specs = [matmul.emit(f"k{i}", {**params, "tactic": t}) for i, t in enumerate(tactics)]
    staged = [s for s in specs if "stage the outputs" in s.source]
    assert staged and all(f"union {{ {word} v; signed char e[" in s.source and
                          f"__ldg((const {word}*)&in2[oi]);" in s.source for s in staged)
    assert len(compile_many([(f"k{i}", s.source) for i, s in enumerate(specs)],
                            arch="sm_90")) == len(specs)
    ran = 0
    for i, (tactic, spec) in enumerate(zip(tactics, specs, strict=True)):
        if "mma" not in tactic or tactic.get("splits", 1) > 1 or spec not in staged:
            continue  # the emulator runs no wgmma, and this runner passes no split-K scratch
        got = simt_emulator.run(spec, f"k{i}", [a, b, res], [64, 96], NP[out_dtype], tmp_path)
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=8e-3, atol=2e-2,
                                   err_msg=str(tactic))
        ran += 1
    assert ran >= 1
