"""INT8 tensor cores (mma.sync m16n8k32 s8 x s8 -> s32; on sm_90 also wgmma k32 s8) for matmul
and the NHWC implicit-GEMM conv, on emulated warps (CPU, g++; `simt_emulator`, mma.sync
tactics): exact int32 sums against numpy, each tactic, batches, ragged M/N, strides, and the
dequantizing epilogue fold-qdq leaves (cast, per-channel scale, bias, relu) fused. Compiled by
NVRTC here; every tactic, wgmma's too, run on the GPU by the `cuda` tests."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ember.codegen.nvrtc import compile_many
from ember.codegen.templates import matmul
from ember.errors import UnsupportedError
from ember.runtime.cuda import cuda_available
from tests.codegen import simt_emulator

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
needs_gxx = pytest.mark.skipif(
    not simt_emulator.available(),
    reason="g++ not found: these tests run the kernels' CUDA C on emulated warps compiled with g++ "
           "(install g++ to run them without a GPU)")


def _params(batch: list[int], m: int, n: int, k: int, epilogue: bool = False) -> dict:
    params = {"transpose_b": True, "in_shapes": [[*batch, m, k], [n, k]],
              "in_dtypes": ["int8", "int8"], "out_shapes": [[*batch, m, n]],
              "out_dtypes": ["int32"]}
    if epilogue:
        params["epilogue"] = _dequantize_relu([[1, n], [n]])
    return params


def _dequantize_relu(in_shapes: list) -> dict:
    """relu(float(acc) * scale + bias), stored as float32 (fold-qdq's tail, fused)."""
    return {"in_shapes": in_shapes, "in_dtypes": ["float32", "float32"],
            "ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                    {"fn": "mul", "args": [3, 1], "dtype": "float32"},
                    {"fn": "add", "args": [4, 2], "dtype": "float32"},
                    {"fn": "relu", "args": [5], "dtype": "float32"}],
            "result": 6, "out_dtype": "float32"}


def _int8(rng, shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


@needs_gxx
@pytest.mark.parametrize("batch, m, n, k", [([], 64, 96, 128), ([2], 37, 40, 48),
                                            ([], 130, 72, 272)],
                         ids=["aligned", "batch-ragged", "ragged-deep"])
def test_int8_matmul_sums_exactly_for_every_tactic(batch, m, n, k, tmp_path):
    params = _params(batch, m, n, k)
    rng = np.random.default_rng(0)
    a, b = _int8(rng, (*batch, m, k)), _int8(rng, (n, k))
    want = np.matmul(a.astype(np.int64), b.astype(np.int64).T)
    tactics = matmul.tactics(params, "sm_90")
    assert all(t.get("splits", 1) == 1 for t in tactics)
    tactics = [t for t in tactics + matmul.tactics(params, "sm_80") if "mma" in t]
    assert len(tactics) >= 2
    for tactic in tactics:
        spec = matmul.emit("k", {**params, "tactic": tactic})
        assert "mma_16832_s8(frag[i][j]" in spec.source
        got = simt_emulator.run(spec, "k", [a, b], [*batch, m, n], np.int32, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@needs_gxx
def test_int8_matmul_applies_the_dequantizing_epilogue(tmp_path):
    m, n, k = 48, 64, 96
    params = _params([], m, n, k, epilogue=True)
    rng = np.random.default_rng(1)
    a, b = _int8(rng, (m, k)), _int8(rng, (n, k))
    scale = (rng.random((1, n)) * 1e-3).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    spec = matmul.emit("k", params)
    got = simt_emulator.run(spec, "k", [a, b, scale, bias], [m, n], np.float32, tmp_path)
    acc = (a.astype(np.int64) @ b.astype(np.int64).T).astype(np.float32)
    want = np.maximum(acc * scale + bias, 0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_int8_epilogue_reads_per_column_inputs_by_column():
    """Per-column epilogue inputs (the weight scales, the bias) are read by the output column,
    with no division of the flat index (BERT's FFN1 divided a 64-bit index per element); an
    input of the output's whole shape is still read at the flat index."""
    from ember.codegen.templates import conv

    for tactic in matmul.tactics(_params([], 64, 96, 128), "sm_90"):
        source = matmul.emit("k", {**_params([], 64, 96, 128, epilogue=True),
                                   "tactic": tactic}).source
        # (n + e: the e-th sum of a staged chunk that starts at column n; hn: the column every
        # chunk a thread drains starts at, its per-column inputs read once)
        assert re.search(r"in2\[h?n( \+ e)?\]", source) and \
            re.search(r"in3\[h?n( \+ e)?\]", source) \
            and "ecrest" not in source, tactic
    conv_params = _conv_params(2, 9, 32, 24, 2, epilogue=True)
    for tactic in conv.tactics(conv_params, "sm_90"):
        source = conv.emit("c", {**conv_params, "tactic": tactic}).source
        assert re.search(r"in2\[g \* 24 \+ h?n\]", source) and "ecrest" not in source, tactic
    whole = _params([], 64, 96, 128, epilogue=True)
    whole["epilogue"] = _dequantize_relu([[1, 96], [64, 96]])
    source = matmul.emit("k", whole).source
    assert re.search(r"in2\[h?n( \+ e)?\]", source) and "in3[oi]" in source


def test_int8_kernels_compile_with_nvrtc_and_issue_the_s8_mma():
    params = _params([], 64, 96, 128, epilogue=True)
    sources = [(f"k{i}", matmul.emit(f"k{i}", {**params, "tactic": t}).source)
               for i, t in enumerate(matmul.tactics(params, "sm_90"))]
    from ember.codegen.templates import conv

    conv_params = _conv_params(2, 9, 32, 24, 2, epilogue=True)
    sources += [(f"c{i}", conv.emit(f"c{i}", {**conv_params, "tactic": t}).source)
                for i, t in enumerate(conv.tactics(conv_params, "sm_90"))]
    sources += [(f"m{i}", matmul.emit(f"m{i}", {**params, "tactic": t}).source)
                for i, t in enumerate(matmul.tactics(params, "sm_80"))]
    ptx = [entry.ptx for entry in compile_many(sources, arch="sm_90")]
    mma = [p for p in ptx if b"mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32" in p]
    wgmma = [p for p in ptx if re.search(rb"wgmma.mma_async.sync.aligned.m64n\d+k32.s32.s8.s8", p)]
    assert mma and wgmma and len(mma) + len(wgmma) == len(ptx)


@pytest.mark.parametrize("change, why", [({"transpose_b": False}, "K-major"),
                                         ({"in_shapes": [[4, 40], [8, 40]]}, "K % 16")])
def test_int8_matmul_it_cannot_run_says_why(change, why):
    params = {**_params([], 4, 8, 32), **change}
    if not params["transpose_b"]:
        params["in_shapes"] = [[4, 32], [32, 8]]
    with pytest.raises(UnsupportedError, match=why):
        matmul.emit("k", params)


def _matmul_integer_model(m: int, k: int, n: int, seed: int = 0):
    """ONNX MatMulInteger of an int8 input by an int8 [K, N] weight, without zero points."""
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper

    w = _int8(np.random.default_rng(seed), (k, n))
    graph = h.make_graph([h.make_node("MatMulInteger", ["a", "w"], ["y"])], "mmi",
                         [h.make_tensor_value_info("a", T.INT8, [m, k])],
                         [h.make_tensor_value_info("y", T.INT32, [m, n])],
                         [numpy_helper.from_array(w, "w")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), w


def test_matmul_integer_builds_to_the_int8_tensor_core_kernel_for_sm90():
    """kmajor-matmul-weights stores the [K, N] weight [N, K]; the plan's kernel is the s8 MMA
    one (no host step); the CPU executor runs the same plan's steps exactly."""
    from ember.compiler.builder import BuilderConfig, build_model
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    model, w = _matmul_integer_model(64, 96, 80)
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = manifest["steps"]
    assert step["params"]["transpose_b"] and step["params"]["in_dtypes"] == ["int8", "int8"]
    assert "device" not in step and step["cuda"]["kernel"].startswith("matmul_")
    assert b"mma_16832_s8(frag" in sections["cuda_source"]
    a = _int8(np.random.default_rng(3), (64, 96))
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute({"a": a})["y"]
    np.testing.assert_array_equal(got, a.astype(np.int64) @ w.astype(np.int64))


@pytest.mark.parametrize("m, k, n", [(200, 512, 136), (8, 2048, 64)])
def test_int8_tactics_split_k_only_on_wgmma_and_only_when_timed(m, k, n):
    """Few output tiles over a long K: the FP16 cost model would split K; INT8's mma.sync
    kernels cannot (their drains take whole sums in registers) and the untuned choice keeps K
    whole (a CUDA step, not a host fallback); on sm_90 a split-K wgmma tactic (int32 partials
    summed before the drain) may come last, for the autotuner to time."""
    from ember.codegen.templates import matmul
    from ember.compiler.builder import BuilderConfig, build_model

    model, _ = _matmul_integer_model(m, k, n)
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = manifest["steps"]
    assert "device" not in step and step["cuda"]["kernel"].startswith("matmul_")
    assert step["params"]["tactic"].get("splits", 1) == 1
    params = {k: v for k, v in step["params"].items() if k != "tactic"}
    assert all(t.get("splits", 1) == 1 for t in matmul.tactics(params, "sm_80"))
    hopper = matmul.tactics(params, "sm_90")
    assert hopper and all(t.get("splits", 1) == 1 for t in hopper[:-1])
    assert hopper[-1].get("splits", 1) == 1 or "wgmma" in hopper[-1]


@needs_gpu
@pytest.mark.cuda
def test_int8_matmul_on_the_gpu_sums_exactly():
    from ember.compiler.builder import BuilderConfig, build_model, detect_arch
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    model, w = _matmul_integer_model(200, 512, 136, seed=4)
    manifest, sections = build_model(model, BuilderConfig(target_arch=detect_arch()))
    assert manifest["steps"][0]["cuda"]["kernel"].startswith("matmul_")
    a = _int8(np.random.default_rng(5), (200, 512))
    engine = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute({"a": a})["y"]
    np.testing.assert_array_equal(got, a.astype(np.int64) @ w.astype(np.int64))


# -- INT8 implicit-GEMM conv (NHWC, OHWI weights) --------------------------------------------

def _conv_params(n: int, hw: int, c: int, k: int, stride: int, epilogue: bool) -> dict:
    oh = (hw + 2 - 3) // stride + 1
    params = {"in_shapes": [[n, hw, hw, c], [k, 3, 3, c]], "in_dtypes": ["int8", "int8"],
              "out_shapes": [[n, oh, oh, k]], "out_dtypes": ["int32"], "layout": "NHWC",
              "strides": [stride] * 2, "pads": [1] * 4, "dilations": [1, 1], "groups": 1}
    if epilogue:
        params["epilogue"] = _dequantize_relu([[1, 1, 1, k], [1, 1, 1, k]])
    return params


@needs_gxx
@pytest.mark.parametrize("stride", [1, 2])
def test_int8_conv_sums_exactly_for_every_tactic(stride, tmp_path):
    from ember.codegen.templates import conv
    from ember.runtime.cpu_kernels.linear import conv as reference

    params = _conv_params(2, 9, 32, 24, stride, epilogue=False)
    rng = np.random.default_rng(2)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    (want,) = reference([x, w], params)
    tactics = conv.tactics(params, "sm_80")  # mma.sync only (the emulator runs no wgmma)
    assert len(tactics) >= 2 and all("mma" in t for t in tactics)
    for tactic in tactics[:2]:
        spec = conv.emit("k", {**params, "tactic": tactic})
        assert "mma_16832_s8(frag[i][j]" in spec.source
        got = simt_emulator.run(spec, "k", [x, w], params["out_shapes"][0], np.int32, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@needs_gxx
def test_int8_conv_applies_the_dequantizing_epilogue(tmp_path):
    from ember.codegen.templates import conv
    from ember.runtime.cpu_kernels.linear import conv as reference

    params = _conv_params(1, 8, 16, 16, 1, epilogue=True)
    rng = np.random.default_rng(3)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    scale = (rng.random((1, 1, 1, 16)) * 1e-3).astype(np.float32)
    bias = rng.standard_normal((1, 1, 1, 16)).astype(np.float32)
    spec = conv.emit("k", params)
    got = simt_emulator.run(spec, "k", [x, w, scale, bias], params["out_shapes"][0],
                            np.float32, tmp_path)
    (acc,) = reference([x, w], {k: v for k, v in params.items() if k != "epilogue"})
    np.testing.assert_allclose(got, np.maximum(acc.astype(np.float32) * scale + bias, 0),
                               rtol=1e-6, atol=1e-6)


def test_int8_conv_it_cannot_run_says_why():
    from ember.codegen.templates import conv

    params = _conv_params(1, 8, 24, 16, 1, epilogue=False)  # 24 channels: not 16k
    assert conv.tactics(params, "sm_90") == []
    with pytest.raises(UnsupportedError, match="multiples of 16"):
        conv.emit("k", params)


@needs_gxx
def test_int8_matmul_requantizes_to_int8_in_its_epilogue(tmp_path):
    """fold-qdq's requantize for the next layer, fused: int8 = clip(round(acc * s), -128, 127)."""
    m, n, k = 32, 48, 64
    params = _params([], m, n, k)
    params["epilogue"] = {
        "in_shapes": [[1, n]], "in_dtypes": ["float32"],
        "ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                {"fn": "mul", "args": [2, 1], "dtype": "float32"},
                {"fn": "round", "args": [3], "dtype": "float32"},
                {"fn": "clip", "args": [4], "dtype": "float32", "alpha": -128.0, "beta": 127.0},
                {"fn": "cast", "args": [5], "dtype": "int8"}],
        "result": 6, "out_dtype": "int8"}
    rng = np.random.default_rng(4)
    a, b = _int8(rng, (m, k)), _int8(rng, (n, k))
    scale = (rng.random((1, n)) * 2e-3 + 5e-4).astype(np.float32)
    spec = matmul.emit("k", params)
    got = simt_emulator.run(spec, "k", [a, b, scale], [m, n], np.int8, tmp_path)
    acc = (a.astype(np.int64) @ b.astype(np.int64).T).astype(np.float32)
    want = np.clip(np.rint(acc * scale), -128, 127).astype(np.int8)
    assert (np.abs(want.astype(int)) == 128).any()  # some saturate
    np.testing.assert_array_equal(got, want)


def _requantize_residual(n: int, residual_shape: list) -> dict:
    """int8 = clip(round(float(acc) * scale[n] + residual), -128, 127): a requantizing tail
    that reads an int8 residual of the output's shape."""
    return {"in_shapes": [[1, n], residual_shape], "in_dtypes": ["float32", "int8"],
            "ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                    {"fn": "mul", "args": [3, 1], "dtype": "float32"},
                    {"fn": "cast", "args": [2], "dtype": "float32"},
                    {"fn": "add", "args": [4, 5], "dtype": "float32"},
                    {"fn": "round", "args": [6], "dtype": "float32"},
                    {"fn": "clip", "args": [7], "dtype": "float32", "alpha": -128.0,
                     "beta": 127.0},
                    {"fn": "cast", "args": [8], "dtype": "int8"}],
            "result": 9, "out_dtype": "int8"}


def _requantize_case(m: int, n: int, k: int, seed: int, batch: tuple = ()
                     ) -> tuple[dict, list, np.ndarray]:
    """A [*batch, m, k] x [n, k] int8 matmul with the requantizing tail: params, inputs (a, b,
    the per-column scale, the int8 residual) and the expected int8 result."""
    params = _params(list(batch), m, n, k)
    params["epilogue"] = _requantize_residual(n, [*batch, m, n])
    rng = np.random.default_rng(seed)
    a, b = _int8(rng, (*batch, m, k)), _int8(rng, (n, k))
    residual = _int8(rng, (*batch, m, n))
    scale = (rng.random((1, n)) * 2e-3 + 5e-4).astype(np.float32)
    want = _requantized(a.astype(np.int64) @ b.astype(np.int64).T, scale, residual)
    return params, [a, b, scale, residual], want


def _requantized(acc, scale, residual):
    y = (acc.astype(np.float32) * scale).astype(np.float32) + residual.astype(np.float32)
    return np.clip(np.rint(y), -128, 127).astype(np.int8)


@needs_gxx
@pytest.mark.parametrize("batch, m, n, staged", [((), 40, 48, True), ((), 40, 40, False),
                                                 ((2,), 20, 32, True)])
def test_int8_results_stage_through_shared_memory_where_n_allows(batch, m, n, staged, tmp_path):
    """An int8-storing tail with an int8 residual, for every mma.sync tactic: with N a multiple
    of 16 the int32 sums are staged in shared memory and leave as 16-byte stores (the residual
    read 16 bytes at once); otherwise stored one by one. Both give the exact result, batched
    with M short of a tile too."""
    params, inputs, want = _requantize_case(m, n, 64, seed=9, batch=batch)
    assert (np.abs(want.astype(int)) >= 127).any()  # some saturate
    for tactic in matmul.tactics(params, "sm_80"):
        spec = matmul.emit("k", {**params, "tactic": tactic})
        assert ("staged in shared memory" in spec.source) == staged, tactic
        got = simt_emulator.run(spec, "k", inputs, [*batch, m, n], np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


def _fp16_quantizing_case(m: int, n: int, k: int, batch: tuple = ()):
    """An FP16 matmul ([*batch, m, k] x [*batch, k, n], as a QDQ attention's P x V) whose
    epilogue quantizes the result to int8 (fuse-epilogues): params, inputs, the CPU executor's
    int8 result."""
    from ember.runtime.cpu_kernels import KERNELS

    params = {"in_shapes": [[*batch, m, k], [*batch, k, n]], "in_dtypes": ["float16"] * 2,
              "out_shapes": [[*batch, m, n]], "out_dtypes": ["float16"],
              "epilogue": {"in_shapes": [[]], "in_dtypes": ["float32"], "out_dtype": "int8",
                           "result": 6, "ops": [
                               {"fn": "cast", "args": [0], "dtype": "float32"},
                               {"fn": "div", "args": [2, 1], "dtype": "float32"},
                               {"fn": "round", "args": [3], "dtype": "float32"},
                               {"fn": "clip", "args": [4], "dtype": "float32",
                                "alpha": -128.0, "beta": 127.0},
                               {"fn": "cast", "args": [5], "dtype": "int8"}]}}
    rng = np.random.default_rng(21)
    a = rng.standard_normal((*batch, m, k)).astype(np.float16)
    b = rng.standard_normal((*batch, k, n)).astype(np.float16)
    inputs = [a, b, np.array(0.05, np.float32)]
    (want,) = KERNELS["matmul"](inputs, params)
    return params, inputs, np.asarray(want)


def _within_a_step(got: np.ndarray, want: np.ndarray) -> None:
    """The same int8 codes but where the FP16-rounded sum (float32 sums in another order than
    numpy's) lands across a rounding boundary of the quantize: one step, rarely."""
    assert got.dtype == want.dtype == np.int8
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= want.size // 100
    assert (np.abs(want.astype(int)) == 128).any() or (want == 127).any()  # some saturate


@needs_gxx
def test_an_fp16_matmul_stores_its_quantized_result_for_every_tactic(tmp_path):
    """An FP16 matmul whose epilogue quantizes to int8 declares its output int8 and stores the
    codes (no FP16 round trip through memory), every mma.sync tactic on emulated warps."""
    params, inputs, want = _fp16_quantizing_case(64, 48, 64, batch=(2,))
    tactics = matmul.tactics(params, "sm_80")
    assert tactics
    for tactic in tactics:
        spec = matmul.emit("k", {**params, "tactic": tactic})
        assert "signed char* __restrict__ out0" in spec.source, tactic
        got = simt_emulator.run(spec, "k", inputs, list(want.shape), np.int8, tmp_path)
        _within_a_step(got, want)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_an_fp16_matmul_stores_its_quantized_result_on_the_gpu_for_every_tactic():
    params, inputs, want = _fp16_quantizing_case(128, 64, 128, batch=(3,))
    tactics = matmul.tactics(params, "sm_90")
    assert any(t.get("splits", 1) > 1 for t in tactics)  # split-K: the last block's epilogue
    for tactic in tactics:
        spec = matmul.emit("k", {**params, "tactic": tactic})
        _within_a_step(_run_on_gpu(spec, "k", inputs, want.shape, np.int8), want)


@needs_gxx
@pytest.mark.parametrize("tactic, bands", [([128, 256, 32, 2, 4, 3], ["rows 64..127"]),
                                           ([256, 128, 32, 4, 2, 3], ["rows 128..255"])])
def test_int8_tiles_too_big_to_stage_at_once_stage_by_bands(tactic, bands, tmp_path):
    """An mma.sync tile whose int32 sums outgrow its pipeline's shared memory (128 x 256 x 4
    bytes against 92 KB) stages them a band of warp rows at a time: 16-byte stores, exact,
    with M short of the tile."""
    params, inputs, want = _requantize_case(150, 256, 64, seed=13)
    spec = matmul.emit("k", {**params, "tactic": {"mma": tactic, "splits": 1}})
    assert "staged in shared memory" in spec.source
    assert all(f"// {b}" in spec.source for b in bands)
    assert spec.shared_bytes < 128 * 256 * 4  # the pipeline's, not the whole tile's sums
    got = simt_emulator.run(spec, "k", inputs, [150, 256], np.int8, tmp_path)
    np.testing.assert_array_equal(got, want)


@needs_gxx
@pytest.mark.parametrize("groups", [1, 2])
def test_int8_conv_results_stage_through_shared_memory(groups, tmp_path):
    """An NHWC conv (C_out 32; also as 2 groups of 16, each group's columns at g * 16) with the
    int8-storing tail and an int8 residual: staged, 16-byte stores, exact, for the mma.sync
    tactics."""
    from ember.codegen.templates import conv
    from ember.runtime.cpu_kernels.linear import conv as reference

    params = _conv_params(2, 9, 32, 32, 1, epilogue=False)
    params["groups"] = groups
    params["in_shapes"][1] = [32, 3, 3, 32 // groups]
    out = params["out_shapes"][0]
    rng = np.random.default_rng(11)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    residual = _int8(rng, out)
    scale = (rng.random((1, 1, 1, 32)) * 2e-3 + 5e-4).astype(np.float32)
    (acc,) = reference([x, w], params)
    want = _requantized(acc, scale, residual)
    params["epilogue"] = _requantize_residual(32, out)
    params["epilogue"]["in_shapes"][0] = [1, 1, 1, 32]
    for tactic in conv.tactics(params, "sm_80")[:2]:
        spec = conv.emit("k", {**params, "tactic": tactic})
        assert "staged in shared memory" in spec.source, tactic
        got = simt_emulator.run(spec, "k", [x, w, scale, residual], out, np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@needs_gxx
@pytest.mark.parametrize("out", ["float16", "float32"])
def test_int8_conv_with_a_dequantized_result_stages_its_sums(out, tmp_path):
    """An INT8 conv whose tail dequantizes (scale, bias, relu) and stores FP16 or FP32 (an INT8
    MobileNetV2's expand convs feed FP16 depthwise ones): its int32 sums are staged in shared
    memory and the results leave as 16-byte stores, for the mma.sync tactics."""
    from ember.codegen.templates import conv
    from ember.runtime.cpu_kernels.linear import conv as reference

    params = _conv_params(2, 9, 32, 32, 1, epilogue=True)
    if out == "float16":
        params["epilogue"]["ops"].append({"fn": "cast", "args": [6], "dtype": "float16"})
        params["epilogue"].update(result=7, out_dtype="float16")
    rng = np.random.default_rng(12)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    scale = (rng.random((1, 1, 1, 32)) * 1e-3).astype(np.float32)
    bias = rng.standard_normal((1, 1, 1, 32)).astype(np.float32)
    (acc,) = reference([x, w], {k: v for k, v in params.items() if k != "epilogue"})
    want = np.maximum(acc.astype(np.float32) * scale + bias, 0).astype(out)
    for tactic in conv.tactics(params, "sm_80")[:2]:
        spec = conv.emit("k", {**params, "tactic": tactic})
        assert f"int32 sums staged in shared memory ({out} results" in spec.source, tactic
        got = simt_emulator.run(spec, "k", [x, w, scale, bias], params["out_shapes"][0], out,
                                tmp_path)
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32),
                                   rtol=1e-3 if out == "float16" else 1e-6, atol=1e-6,
                                   err_msg=str(tactic))


def _run_on_gpu(spec, name: str, inputs: list, out_shape, out_dtype) -> np.ndarray:
    from ember.codegen.nvrtc import compile_cuda, kernel_arch
    from ember.compiler.builder import detect_arch
    from ember.runtime import cuda
    from ember.runtime.tensor_maps import arguments

    # a wgmma kernel compiles for sm_90a, as a build compiles it
    kernel = compile_cuda(spec.source, name=name,
                          arch=kernel_arch(name, spec.source, detect_arch()))
    module = cuda.Module.load(kernel.cubin, kernel.ptx, name=name)
    out = np.empty(out_shape, out_dtype)
    bufs = [cuda.DeviceBuffer(max(x.nbytes, 1)) for x in inputs] + [cuda.DeviceBuffer(out.nbytes)]
    for buf, x in zip(bufs, inputs, strict=False):
        buf.upload(np.ascontiguousarray(x))
    if spec.workspace_bytes:  # a split-K tactic: its arrival counters (zeroed), its partials
        bufs += [cuda.DeviceBuffer(spec.counter_bytes), cuda.DeviceBuffer(spec.workspace_bytes)]
        bufs[-2].zero()
    function = module.function(name)
    if spec.shared_bytes > 48 * 1024:
        function.set_max_dynamic_shared(spec.shared_bytes)
    pointers = [b.ptr for b in bufs]
    args = cuda.pack_args([("ptr", p) for p in pointers]
                          + arguments(spec.tensor_maps, pointers, name))
    cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, None, args)
    got = bufs[len(inputs)].download(out)
    if spec.workspace_bytes:  # again on the same counters: the last block of each tile reset them
        bufs[len(inputs)].zero()
        cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, None, args)
        again = bufs[len(inputs)].download(np.empty_like(out))
        np.testing.assert_array_equal(again, got, err_msg="a second split-K run differs")
    module.unload()
    return got


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("batch, m, n, k", [([], 256, 192, 512), ([2], 37, 40, 48),
                                            ([], 130, 72, 272), ([2], 200, 192, 4096)],
                         ids=["aligned", "batch-ragged", "ragged-deep", "split-k"])
def test_every_int8_matmul_tactic_sums_exactly_on_the_gpu(batch, m, n, k):
    """Each candidate of an sm_90 build (wgmma k32 s8 tiles, always one among them, and
    mma.sync ones) on the GPU; K = 48 fills part of one 128-byte stage; K = 4096 over few
    tiles brings a split-K wgmma tactic (int32 partials in the workspace, two batches)."""
    params = _params(batch, m, n, k)
    rng = np.random.default_rng(6)
    a, b = _int8(rng, (*batch, m, k)), _int8(rng, (n, k))
    want = np.matmul(a.astype(np.int64), b.astype(np.int64).T)
    tactics = matmul.tactics(params, "sm_90")
    assert any("wgmma" in t for t in tactics)
    assert any(t.get("splits", 1) > 1 for t in tactics) is (k == 4096)
    for tactic in tactics + matmul.tactics(params, "sm_80")[:1]:
        spec = matmul.emit("k", {**params, "tactic": tactic})
        got = _run_on_gpu(spec, "k", [a, b], want.shape, np.int32)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("m, n, k", [(256, 192, 512), (130, 80, 272), (256, 192, 4096)])
def test_every_int8_matmul_tactic_requantizes_exactly_on_the_gpu(m, n, k):
    """The int8-storing tail with an int8 residual (staged through shared memory: N is a
    multiple of 16) for each wgmma and mma.sync candidate, against numpy; K = 4096: a split-K
    tactic's drain requantizes the summed slices."""
    params, inputs, want = _requantize_case(m, n, k, seed=10)
    tactics = matmul.tactics(params, "sm_90")
    assert any("wgmma" in t for t in tactics)
    for tactic in tactics + matmul.tactics(params, "sm_80")[:1]:
        spec = matmul.emit("k", {**params, "tactic": tactic})
        assert "staged in shared memory" in spec.source, tactic
        got = _run_on_gpu(spec, "k", inputs, want.shape, np.int8)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("stride, epilogue", [(1, False), (2, False), (1, True),
                                              (1, "requantize")])
def test_every_int8_conv_tactic_matches_on_the_gpu(stride, epilogue):
    """Each candidate of an sm_90 build: its int32 sums, its dequantizing float tail, or its
    int8-storing tail with an int8 residual (staged through shared memory)."""
    from ember.codegen.templates import conv
    from ember.runtime.cpu_kernels.linear import conv as reference

    params = _conv_params(4, 17, 64, 64, stride, epilogue=epilogue is True)
    rng = np.random.default_rng(7)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    (acc,) = reference([x, w], {k: v for k, v in params.items() if k != "epilogue"})
    inputs, want, dtype = [x, w], acc, np.int32
    if epilogue == "requantize":
        out = params["out_shapes"][0]
        scale = (rng.random((1, 1, 1, 64)) * 2e-3 + 5e-4).astype(np.float32)
        residual = _int8(rng, out)
        params["epilogue"] = _requantize_residual(64, out)
        params["epilogue"]["in_shapes"][0] = [1, 1, 1, 64]
        inputs += [scale, residual]
        want, dtype = _requantized(acc, scale, residual), np.int8
    elif epilogue:
        scale = (rng.random((1, 1, 1, 64)) * 1e-3).astype(np.float32)
        bias = rng.standard_normal((1, 1, 1, 64)).astype(np.float32)
        inputs += [scale, bias]
        want, dtype = np.maximum(acc.astype(np.float32) * scale + bias, 0), np.float32
    tactics = conv.tactics(params, "sm_90")
    assert any("wgmma" in t for t in tactics)
    for tactic in tactics + conv.tactics(params, "sm_80")[:1]:
        spec = conv.emit("k", {**params, "tactic": tactic})
        got = _run_on_gpu(spec, "k", inputs, want.shape, dtype)
        if epilogue:
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=str(tactic))
        else:
            np.testing.assert_array_equal(got, want, err_msg=str(tactic))


def test_int8_candidates_on_sm90_rank_wgmma_by_the_cost_model():
    """The INT8 wgmma kernels sum exactly on the GPU (session 11, H100): an sm_90 step's
    candidates are both families ranked by the cost model, as for FP16, so large GEMMs lead
    with a wgmma tile (the autotuner's reference, and the choice without a GPU); sm_80 builds
    get mma.sync tiles only."""
    from ember.codegen.templates import conv

    for params, tactics_of in ((_params([], 1024, 3072, 768), matmul.tactics),
                               (_conv_params(32, 56, 64, 64, 1, epilogue=False), conv.tactics)):
        on_hopper = tactics_of(params, "sm_90")
        assert "wgmma" in on_hopper[0], on_hopper
        assert all(("wgmma" in t) != ("mma" in t) for t in on_hopper), on_hopper
        on_ampere = tactics_of(params, "sm_80")
        assert on_ampere and all("mma" in t for t in on_ampere), on_ampere
    # FFN2's shape: the split-K wgmma candidate (int32 partials) comes last, timed only
    ffn2 = matmul.tactics(_params([], 1024, 768, 3072), "sm_90")
    assert not any(t.get("splits", 1) > 1 for t in ffn2[:-1]), ffn2
    assert ffn2[-1].get("splits", 1) > 1 and "wgmma" in ffn2[-1], ffn2


@pytest.mark.parametrize("bm, bn, threads", [(64, 64, 128), (128, 128, 256), (64, 256, 128),
                                             (128, 64, 128)])
def test_staged_sums_are_drained_across_rows_without_bank_conflicts(bm, bn, threads):
    """The drain of staged int32 sums (16 a chunk, rows `ld` = bn + 4 ints apart) as the kernel
    text computes it (its `r`, `cc` lines evaluated here): every chunk once, and the 8 lanes one
    16-byte shared read serves at a time on 8 different 16-byte bank groups for each of a chunk's
    4 reads; the old order (consecutive chunks along a row) put them on 2."""
    from ember.codegen.templates import gemm_epilogue

    store = gemm_epilogue.RowStore({"epilogue": {}}, "int8", lambda m, n: f"{m} * N + {n}",
                                   lambda n: n, staged="int32")
    lines = gemm_epilogue._chunks(store, bm, bn, threads, 10**6, 10**6, "0", "0", {}, [],
                                  across_rows=gemm_epilogue._across_rows(bm, bn // 16))
    code = [line.strip() for line in lines if line.strip().startswith(
        ("const int q", "const int r"))]
    assert len(code) == 2, lines

    def place(c: int) -> tuple[int, int]:
        scope = {"c": c}
        for line in code:
            for name, expr in re.findall(r"(\w+) = ([^,;]+)", line.removeprefix("const int ")):
                scope[name] = eval(expr.replace("/", "//"), {}, scope)  # ints >= 0: C's / and %
        return scope["r"], scope["cc"]

    ld = store.ld(bn)
    total = bm * bn // 16
    seen = [place(c) for c in range(total)]
    assert sorted(seen) == sorted((r, cc) for r in range(bm) for cc in range(0, bn, 16))
    for first in range(0, total, 8):  # a quarter warp: 8 consecutive chunks (lanes)
        for k in range(4):
            groups = {((r * ld + cc) // 4 + k) % 8 for r, cc in seen[first:first + 8]}
            assert len(groups) == 8, (first, k, groups)


def test_drains_batch_chunks_only_when_they_have_loads_to_overlap():
    """A drain whose epilogue reads extra 16-byte inputs (a residual) issues the loads of
    `_batch` chunks before their epilogues; one without them takes a chunk at a time (a batch
    there only copied the epilogue: INT8 FFN1's went from 2600 to 7416 instructions, and from
    26-28 to 35 us on an H100)."""
    from ember.codegen.templates import gemm_epilogue

    store = gemm_epilogue.RowStore({"epilogue": {}}, "float16", lambda m, n: f"{m} * N + {n}",
                                   lambda n: n)
    bare = "\n".join(gemm_epilogue._chunks(store, 128, 128, 256, 4096, 4096, "0", "0", {}, []))
    assert "for (int u = 0; u < 1; ++u)" in bare and "c0 += 256)" in bare, bare
    loads = {"pack16 r0": "            r0[u].v = __ldg((const uint4*)&in3[oi]);"}
    with_loads = "\n".join(gemm_epilogue._chunks(store, 128, 128, 256, 4096, 4096, "0", "0",
                                                 loads, []))
    batch = gemm_epilogue._batch(128 * 128 // 8, 256)
    assert batch == gemm_epilogue.DRAIN_BATCH
    assert f"pack16 r0[{batch}];" in with_loads and f"c0 += {256 * batch})" in with_loads


def _conv1x1_params(n: int, hw: int, c: int, k: int) -> dict:
    return {"in_shapes": [[n, hw, hw, c], [k, 1, 1, c]], "in_dtypes": ["int8", "int8"],
            "out_shapes": [[n, hw, hw, k]], "out_dtypes": ["int32"], "layout": "NHWC",
            "strides": [1, 1], "pads": [0] * 4, "dilations": [1, 1], "groups": 1}


def _short_k_case():
    """ResNet-50 layer1's conv3 in small: a 1x1 INT8 conv over 64 channels with the
    requantizing residual tail; (params, inputs, want)."""
    params = _conv1x1_params(2, 12, 64, 64)
    out = params["out_shapes"][0]
    rng = np.random.default_rng(31)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    residual = _int8(rng, out)
    scale = (rng.random((1, 1, 1, 64)) * 2e-3 + 5e-4).astype(np.float32)
    acc = np.einsum("nhwc,kc->nhwk", x.astype(np.int64), w[:, 0, 0].astype(np.int64))
    params["epilogue"] = _requantize_residual(64, out)
    params["epilogue"]["in_shapes"][0] = [1, 1, 1, 64]
    return params, [x, w, scale, residual], _requantized(acc, scale, residual)


SHORT_K_TACTICS = ({"mma": [128, 64, 32, 2, 2, 4], "splits": 1}, {"wgmma": [128, 64, 4]},
                   {"wgmma": [128, 64, 8], "copy": "tma"})


@needs_gxx
def test_a_short_k_conv_allocates_only_the_stages_it_fills(tmp_path):
    """The 1x1 conv over 64 channels walks one k-tile: its kernel allocates one stage instead
    of the tile's four (then the staged int32 sums, which reuse that memory after the main
    loop, are the larger), so more blocks fit a multiprocessor; exact on emulated warps, whose
    shared memory is the kernel's `shared_bytes` followed by a guard. The wgmma and TMA-fed
    tiles (sm_90) alike. Its drain reads the per-channel scale once a thread."""
    from ember.codegen.templates import conv, gemm_mma, gemm_tma, gemm_wgmma

    params, inputs, want = _short_k_case()
    tile = gemm_mma.MmaTile(128, 64, 32, 2, 2, 4)
    spec = conv.emit("k", {**params, "tactic": SHORT_K_TACTICS[0]})
    sums = 128 * (64 + 4) * 4  # the staged tile of int32 sums, rows padded by a 16-byte chunk
    assert spec.shared_bytes == sums == max(tile.shared_bytes(1), sums) < tile.shared_bytes()
    assert f"Bs = smem + {tile.stage_elems(128)};" in spec.source  # B's one stage after A's
    # each thread drains 4 chunks of one column: the per-channel scale read once, not 4 times
    assert "const int hn = " in spec.source and spec.source.count("in2[g * 64 + hn]") == 1
    got = simt_emulator.run(spec, "k", inputs, want.shape, np.int8, tmp_path)
    np.testing.assert_array_equal(got, want)

    for tactic, tile in zip(SHORT_K_TACTICS[1:], (gemm_wgmma.WgmmaTile(128, 64, 4),
                                                  gemm_tma.TmaTile(128, 64, 8)), strict=True):
        spec = conv.emit("k", {**params, "tactic": tactic})
        assert spec.shared_bytes == sums + 1024 < tile.shared_bytes(), tactic
        assert f"Bs = As + {128 * 128};" in spec.source, tactic


@needs_gxx
@pytest.mark.parametrize("tile", ["64x64", "64x128"])
def test_a_short_k_conv_on_the_small_tiles_it_also_times_is_exact(tile, tmp_path):
    """The mma.sync tiles `gemm_mma.candidates` adds for a short K (more blocks a
    multiprocessor) run the requantizing residual conv exactly on emulated warps."""
    from ember.codegen.templates import conv, gemm_mma

    params, inputs, want = _short_k_case()
    (found,) = [t for t in gemm_mma.SHORT_K_TILES if f"{t.bm}x{t.bn}" == tile]
    spec = conv.emit("k", {**params, "tactic": {"mma": found.as_list(), "splits": 1}})
    got = simt_emulator.run(spec, "k", inputs, want.shape, np.int8, tmp_path)
    np.testing.assert_array_equal(got, want)


@needs_gpu
@pytest.mark.cuda
def test_a_short_k_conv_with_one_stage_sums_exactly_on_the_gpu():
    """The same kernels on the GPU (wgmma's and TMA's on sm_90 only): exact."""
    from ember.codegen.templates import conv, gemm_mma
    from ember.compiler.builder import detect_arch

    params, inputs, want = _short_k_case()
    tactics = SHORT_K_TACTICS if detect_arch() == "sm_90" else SHORT_K_TACTICS[:1]
    small = tuple({"mma": t.as_list(), "splits": 1} for t in gemm_mma.SHORT_K_TILES)
    for tactic in tactics + small:
        spec = conv.emit("k", {**params, "tactic": tactic})
        got = _run_on_gpu(spec, "k", inputs, want.shape, np.int8)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


def test_an_int8_split_k_wgmma_kernel_compiles_with_its_workspace():
    """NVRTC on the CPU: BERT's FFN2 (1024 x 768 x 3072) with its INT8 split-K candidate and
    the requantizing tail: int32 partials (`int* part`), the slices summed before the drain,
    a workspace of one int32 tile a slice."""
    from ember.codegen.nvrtc import compile_cuda, kernel_arch

    params, _, _ = _requantize_case(1024, 768, 3072, seed=1)
    (split,) = [t for t in matmul.tactics(params, "sm_90") if "splits" in t]
    spec = matmul.emit("k", {**params, "tactic": split})
    tile, splits = split["wgmma"], split["splits"]
    assert "int* part = (int*)ws" in spec.source and "int v = 0;" in spec.source
    assert f"const int b = blockIdx.z / {splits};" in spec.source
    tiles = -(-1024 // tile[0]) * -(-768 // tile[1])
    assert (spec.counter_bytes, spec.workspace_bytes) == (
        tiles * 4, tiles * splits * tile[0] * tile[1] * 4)
    assert compile_cuda(spec.source, name="k", arch=kernel_arch("k", spec.source, "sm_90")).cubin


def _column_divisor_case(m: int, n: int, k: int, seed: int) -> tuple[dict, list, np.ndarray]:
    """A merged Q/K/V GEMM's tail: int8 = clip(round(float(acc) * scale[n] / out_scale[n])),
    the output scales differing by column (each of Q, K, V its own): params, inputs and the CPU
    executor's result."""
    from ember.runtime.cpu_kernels import KERNELS

    params = _params([], m, n, k)
    params["epilogue"] = {
        "in_shapes": [[1, n], [1, n]], "in_dtypes": ["float32", "float32"],
        "ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                {"fn": "mul", "args": [3, 1], "dtype": "float32"},
                {"fn": "div", "args": [4, 2], "dtype": "float32"},
                {"fn": "round", "args": [5], "dtype": "float32"},
                {"fn": "clip", "args": [6], "dtype": "float32", "alpha": -128.0, "beta": 127.0},
                {"fn": "cast", "args": [7], "dtype": "int8"}],
        "result": 8, "out_dtype": "int8"}
    rng = np.random.default_rng(seed)
    a, b = _int8(rng, (m, k)), _int8(rng, (n, k))
    scale = (rng.random((1, n)) * 2e-3 + 5e-4).astype(np.float32)
    out_scale = np.repeat(np.array([0.031, 0.047, 0.0229], np.float32), -(-n // 3))[:n]
    inputs = [a, b, scale, out_scale.reshape(1, n)]
    (want,) = KERNELS["matmul"](inputs, params)
    return params, inputs, np.asarray(want)


@needs_gxx
def test_per_column_divisors_take_reciprocals_once_a_thread(tmp_path):
    """Where a drain reads its per-column inputs once a thread, it computes the reciprocals of
    those it divides by there too (a merged Q/K/V GEMM's output scales: `__frcp_rn` with its
    slow-path branch for every output before); every mma.sync tactic stays exact."""
    params, inputs, want = _column_divisor_case(64, 96, 128, seed=21)
    assert len(np.unique(want)) > 50  # the results spread over the int8 range
    hoisted = 0
    for tactic in matmul.tactics(params, "sm_80"):
        spec = matmul.emit("k", {**params, "tactic": tactic})
        if "quantized to int8 in registers" in spec.source:  # once a column of the pairs
            hoisted += 1
            assert "hr1 = make_float2(__frcp_rn(hv1.x), __frcp_rn(hv1.y))" in spec.source
            assert "__frcp_rn(e" not in spec.source, tactic  # none left in the element loop
        elif "once a thread" in spec.source or "its per-channel inputs, once" in spec.source:
            hoisted += 1
            assert "pr1[e] = __frcp_rn(pc1.e[e])" in spec.source, tactic
            assert "__frcp_rn(e" not in spec.source, tactic  # none left in the element loop
        got = simt_emulator.run(spec, "k", inputs, [64, 96], np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))
    assert hoisted


@needs_gpu
@pytest.mark.cuda
def test_per_column_divisors_on_the_gpu():
    params, inputs, want = _column_divisor_case(256, 2304, 768, seed=22)
    for tactic in matmul.tactics(params, "sm_90"):
        spec = matmul.emit("k", {**params, "tactic": tactic})
        got = _run_on_gpu(spec, "k", inputs, want.shape, np.int8)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))
