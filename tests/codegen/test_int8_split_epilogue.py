"""INT8 GEMM epilogues split at a quantize (`epilogue_split`): the fragments quantize their own
sums in registers, the bytes are staged, the drain adds the residual and requantizes — the form
of a QDQ ResNet's residual convs (the conv's result quantized before the Add). Exact against
numpy on emulated warps and on the GPU, and the split itself on the epilogues the compiler
writes."""

import numpy as np
import pytest

from ember.codegen.templates import conv, epilogue_split, gemm_mma, matmul
from tests.codegen import simt_emulator
from tests.codegen.test_int8_tensor_cores import (
    _conv1x1_params,
    _int8,
    _params,
    _run_on_gpu,
    needs_gpu,
    needs_gxx,
)

RESIDUAL_CONV = {  # layer1.0's conv3 + residual of a QDQ ResNet-50, as its plan holds it
    "ops": [{"fn": "cast", "args": [4], "dtype": "float32"},
            {"fn": "mul", "args": [6, 5], "dtype": "float32"},
            {"fn": "cast", "args": [0], "dtype": "float32"},
            {"fn": "mul", "args": [8, 1], "dtype": "float32"},
            {"fn": "add", "args": [9, 2], "dtype": "float32"},
            {"fn": "round", "args": [10], "dtype": "float32"},
            {"fn": "clip", "args": [11], "dtype": "float32", "alpha": -128.0, "beta": 127.0},
            {"fn": "cast", "args": [12], "dtype": "int8"},
            {"fn": "cast", "args": [13], "dtype": "float32"},
            {"fn": "mul", "args": [14, 3], "dtype": "float32"},
            {"fn": "add", "args": [15, 7], "dtype": "float32"},
            {"fn": "relu", "args": [16], "dtype": "float32"},
            {"fn": "round", "args": [17], "dtype": "float32"},
            {"fn": "clip", "args": [18], "dtype": "float32", "alpha": -128.0, "beta": 127.0},
            {"fn": "cast", "args": [19], "dtype": "int8"}],
    "result": 20, "out_dtype": "int8", "in_dtypes": ["float32", "float32", "float32", "int8",
                                                     "float32"]}


def _epilogue(n: int, out: list) -> dict:
    """RESIDUAL_CONV for an output of shape `out` with `n` columns: inputs scale[n], bias[n],
    the quantized result's scale, the int8 residual, the residual's scale."""
    col = [1] * (len(out) - 1) + [n]
    return {**RESIDUAL_CONV, "in_shapes": [col, col, [], out, []]}


def _inputs(rng, n: int, out: list) -> list:
    scale = (rng.random(n) * 2e-3 + 5e-4).astype(np.float32)
    bias = (rng.standard_normal(n) * 8).astype(np.float32)
    col = [1] * (len(out) - 1) + [n]
    # (scales whose multiples of integers do not land on halves: 0.7 q + 0.45 r often would,
    # and where a GPU's fused multiply-add and numpy's two roundings break such a tie apart)
    return [scale.reshape(col), bias.reshape(col), np.array(0.7071068, np.float32),
            _int8(rng, out), np.array(0.4472136, np.float32)]


def _want(acc: np.ndarray, scale, bias, s1, residual, s2) -> np.ndarray:
    """RESIDUAL_CONV in numpy, float32 op by op."""
    f = np.float32
    q = np.clip(np.rint(acc.astype(f) * scale + bias), -128, 127)
    y = np.maximum(q.astype(f) * s1 + residual.astype(f) * s2, f(0))
    return np.clip(np.rint(y), -128, 127).astype(np.int8)


def _matmul_case(m: int, n: int, k: int, seed: int):
    params = _params([], m, n, k)
    params["epilogue"] = _epilogue(n, [m, n])
    rng = np.random.default_rng(seed)
    a, b = _int8(rng, (m, k)), _int8(rng, (n, k))
    extra = _inputs(rng, n, [m, n])
    want = _want(a.astype(np.int64) @ b.astype(np.int64).T, *extra)
    return params, [a, b, *extra], want


def _conv_case(seed: int):
    """A 1x1 INT8 conv over 64 channels (ResNet-50 layer1's conv3 in small)."""
    params = _conv1x1_params(2, 12, 64, 64)
    out = params["out_shapes"][0]
    params["epilogue"] = _epilogue(64, out)
    rng = np.random.default_rng(seed)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    extra = _inputs(rng, 64, out)
    acc = np.einsum("nhwc,kc->nhwk", x.astype(np.int64), w[:, 0, 0].astype(np.int64))
    return params, [x, w, *extra], _want(acc, *extra)


def test_the_residual_conv_splits_before_its_residual():
    params = {"out_shapes": [[2, 4, 4, 64]], "out_dtypes": ["int32"],
              "in_shapes": [[2, 4, 4, 64], [64, 1, 1, 64]],
              "epilogue": _epilogue(64, [2, 4, 4, 64])}
    parts = epilogue_split.split(params)
    assert parts.dtype == "int8"
    head = parts.head["epilogue"]
    # acc * scale + bias, quantized: the conv's own result (inputs keep their numbers)
    assert [op["fn"] for op in head["ops"]] == ["cast", "mul", "add", "round", "clip", "cast"]
    assert [op["args"] for op in head["ops"]] == [[0], [6, 1], [7, 2], [8], [9], [10]]
    assert head["result"] == 11 and head["out_dtype"] == "int8"
    tail = parts.tail
    assert tail["out_dtypes"] == ["int8"]  # its value 0 is the quantized result
    assert [op["fn"] for op in tail["epilogue"]["ops"]] == [
        "cast", "mul", "cast", "mul", "add", "relu", "round", "clip", "cast"]
    assert [op["args"] for op in tail["epilogue"]["ops"]] == [
        [4], [6, 5], [0], [8, 3], [9, 7], [10], [11], [12], [13]]
    assert tail["epilogue"]["result"] == 14 and epilogue_split.reads(tail) == {2, 3, 4}


def test_epilogues_that_cannot_split_stay_whole():
    out = [2, 4, 4, 64]
    base = {"out_shapes": [out], "out_dtypes": ["int32"], "in_shapes": [out, [64, 1, 1, 64]]}
    ops = RESIDUAL_CONV["ops"]
    # the residual added before the only quantize: nothing to quantize in registers
    whole = {"in_shapes": [[1, 64], out], "in_dtypes": ["float32", "int8"], "result": 9,
             "out_dtype": "int8", "ops": [
                 {"fn": "cast", "args": [0], "dtype": "float32"},
                 {"fn": "mul", "args": [3, 1], "dtype": "float32"},
                 {"fn": "cast", "args": [2], "dtype": "float32"},
                 {"fn": "add", "args": [4, 5], "dtype": "float32"},
                 {"fn": "round", "args": [6], "dtype": "float32"},
                 {"fn": "clip", "args": [7], "dtype": "float32", "alpha": -128.0, "beta": 127.0},
                 {"fn": "cast", "args": [8], "dtype": "int8"}]}
    assert epilogue_split.split({**base, "epilogue": whole}) is None
    # the tail also reads the float the quantize rounded (not only the quantized value)
    reread = [*ops[:9], {"fn": "mul", "args": [14, 10], "dtype": "float32"}, *ops[10:]]
    assert epilogue_split.split({**base, "epilogue": {**_epilogue(64, out), "ops": reread}}) \
        is None
    # the quantized value read other than through a cast to float32
    other = [*ops[:8], {"fn": "cast", "args": [13], "dtype": "float16"}, *ops[9:]]
    assert epilogue_split.split({**base, "epilogue": {**_epilogue(64, out), "ops": other}}) \
        is None
    # a per-row input in the quantized value's cone
    per_row = {**_epilogue(64, out), "in_shapes": [[2, 4, 4, 1], [1, 1, 1, 64], [], out, []]}
    assert epilogue_split.split({**base, "epilogue": per_row}) is None


@needs_gxx
@pytest.mark.parametrize("m, n", [(40, 48), (130, 64)])
def test_the_split_epilogue_is_exact_for_every_mma_tactic(m, n, tmp_path):
    params, inputs, want = _matmul_case(m, n, 96, seed=3)
    assert len(np.unique(want)) > 100 and (want == 127).any()  # spread, some saturate
    for tactic in matmul.tactics(params, "sm_80"):
        spec = matmul.emit("k", {**params, "tactic": tactic})
        assert "quantized to int8 in registers, staged in shared memory" in spec.source, tactic
        got = simt_emulator.run(spec, "k", inputs, want.shape, np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@needs_gxx
def test_the_residual_conv_stages_a_byte_an_output(tmp_path):
    """ResNet-50 layer1's conv3 in small, on each mma.sync tile it is timed on (the cost
    model's and the short-K ones): the staged tile is a byte an output (rows padded by a
    16-byte chunk), not the int32 sums' four, and the result exact."""
    params, inputs, want = _conv_case(seed=5)
    tiles = [gemm_mma.MmaTile(128, 64, 32, 2, 2, 4), *gemm_mma.SHORT_K_TILES]
    for tile in tiles:
        spec = conv.emit("k", {**params, "tactic": {"mma": tile.as_list(), "splits": 1}})
        assert "quantized to int8 in registers" in spec.source, tile
        assert spec.shared_bytes == max(tile.shared_bytes(1), tile.bm * (tile.bn + 16)), tile
        got = simt_emulator.run(spec, "k", inputs, want.shape, np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tile))


@needs_gxx
def test_a_quantized_result_dequantized_to_fp16_stages_bytes(tmp_path):
    """A conv quantized and then dequantized to FP16 for an FP16 consumer (an INT8 MobileNetV2's
    expand convs feed FP16 depthwise ones): the int8 bytes are staged, 8 a chunk, and the drain
    dequantizes them into one 16-byte store of halves."""
    params = _conv1x1_params(2, 12, 64, 64)
    out = params["out_shapes"][0]
    col = [1, 1, 1, 64]
    clip = {"fn": "clip", "dtype": "float32", "alpha": -128.0, "beta": 127.0}
    params["epilogue"] = {  # fp16(float(Q(acc * scale + bias)) * s1)
        "in_shapes": [col, col, []], "in_dtypes": ["float32"] * 3, "out_dtype": "float16",
        "result": 12, "ops": [{"fn": "cast", "args": [0], "dtype": "float32"},
                              {"fn": "mul", "args": [4, 1], "dtype": "float32"},
                              {"fn": "add", "args": [5, 2], "dtype": "float32"},
                              {"fn": "round", "args": [6], "dtype": "float32"},
                              {**clip, "args": [7]},
                              {"fn": "cast", "args": [8], "dtype": "int8"},
                              {"fn": "cast", "args": [9], "dtype": "float32"},
                              {"fn": "mul", "args": [10, 3], "dtype": "float32"},
                              {"fn": "cast", "args": [11], "dtype": "float16"}]}
    rng = np.random.default_rng(6)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    scale, bias, s1, _, _ = _inputs(rng, 64, out)
    acc = np.einsum("nhwc,kc->nhwk", x.astype(np.int64), w[:, 0, 0].astype(np.int64))
    q = np.clip(np.rint(acc.astype(np.float32) * scale + bias), -128, 127)
    want = (q.astype(np.float32) * s1).astype(np.float16)
    tile = gemm_mma.MmaTile(128, 64, 32, 2, 2, 4)
    spec = conv.emit("k", {**params, "tactic": {"mma": tile.as_list(), "splits": 1}})
    assert "quantized to int8 in registers, staged in shared memory (float16 results" \
        in spec.source
    assert "union { uint2 v; signed char e[8]; } s_;" in spec.source
    got = simt_emulator.run(spec, "k", [x, w, scale, bias, s1], out, np.float16, tmp_path)
    np.testing.assert_array_equal(got, want)


def _unsplit(monkeypatch, emit, params: dict):
    """The kernel `emit` makes for `params` with the epilogue kept whole (the int32 sums
    staged, the whole epilogue in the drain): what ember compiled before the split."""
    with monkeypatch.context() as m:
        m.setattr(epilogue_split, "split", lambda params: None)
        spec = emit("k", params)
    assert "int8 results staged in shared memory" in spec.source
    return spec


@needs_gpu
@pytest.mark.cuda
def test_every_split_epilogue_tactic_is_exact_on_the_gpu(monkeypatch):
    """Each sm_90 candidate (wgmma, TMA-fed, mma.sync) of the matmul and of the 1x1 conv gives
    the values of the same kernel with its epilogue whole, bit for bit, and numpy's float32
    op by op but where the GPU's fused multiply-adds round a value near a half the other way
    (one step, rarely)."""
    from tests.codegen.test_int8_tensor_cores import _within_a_step

    for emit, tactics, (params, inputs, want) in [
            (matmul.emit, matmul.tactics, _matmul_case(256, 192, 512, seed=8)),
            (conv.emit, conv.tactics, _conv_case(seed=9))]:
        candidates = tactics(params, "sm_90")
        assert any("wgmma" in t for t in candidates)
        for tactic in candidates + tactics(params, "sm_80")[:1]:
            spec = emit("k", {**params, "tactic": tactic})
            assert "quantized to int8 in registers" in spec.source, tactic
            got = _run_on_gpu(spec, "k", inputs, want.shape, np.int8)
            whole = _unsplit(monkeypatch, emit, {**params, "tactic": tactic})
            np.testing.assert_array_equal(
                got, _run_on_gpu(whole, "k", inputs, want.shape, np.int8), err_msg=str(tactic))
            _within_a_step(got, want)
