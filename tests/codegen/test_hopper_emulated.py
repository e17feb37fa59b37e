"""Hopper's wgmma kernels on emulated warps (tests/codegen/simt_emulator.py, its HOPPER part:
mbarriers, the bulk tensor copy engine, wgmma), so that a machine without a GPU runs them: every
TMA tile and the cp.async wgmma loop against numpy (int8 sums exactly), the im2col copies over
padding, strides, dilations and filters of different H and W, the requantizing int8 drain; and
the emulation itself, which must catch a stage freed before its wgmmas are done and a consumer
that never frees one. The same kernels on the GPU: tests/runtime/test_tma_tactics.py,
tests/codegen/test_int8_im2col_tma.py, tests/runtime/test_gemm_tactics.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ember.codegen.templates import conv, gemm_tma, gemm_wgmma, matmul
from ember.runtime.tensor_maps import Im2colMap
from tests.codegen import simt_emulator
from tests.codegen.test_int8_im2col_tma import CASES, _sums, requantize_case
from tests.codegen.test_int8_im2col_tma import _params as _conv_params
from tests.codegen.test_int8_tensor_cores import _int8

pytestmark = pytest.mark.skipif(
    not simt_emulator.available(),
    reason="g++ not found: these tests run the kernels' CUDA C on emulated warps compiled with g++ "
           "(install g++ to run them without a GPU)")


def _matmul(batch: list[int], m: int, n: int, k: int, dtype: str, tactic: dict) -> dict:
    out = "int32" if dtype == "int8" else dtype
    params = {"in_shapes": [[*batch, m, k], [n, k]], "in_dtypes": [dtype] * 2,
              "out_shapes": [[*batch, m, n]], "out_dtypes": [out], "transpose_b": True,
              "tactic": tactic}
    return {**params, "tf32": True} if dtype == "float32" else params


def _relative_l2(got: np.ndarray, want: np.ndarray) -> float:
    got = got.astype(np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.mark.parametrize("tile", [t for t, _ in gemm_tma.TMA_TILES] + list(gemm_tma.PAIRED_TILES),
                         ids=str)
def test_every_tma_tile_matches_float64_on_emulated_warps(tile, tmp_path) -> None:
    """A batched A (two matrices back to back through one map) against one B; M, N short of a
    tile and K short of a k-tile (the copy engine's zero fill), FP16 out; K of 5 k-tiles (an
    odd count: the last of a two-k-tile tile's stages holds one)."""
    batch, m, n, k = [2], 100, 200, 264
    rng = np.random.default_rng(1)
    a = rng.standard_normal((*batch, m, k)).astype(np.float16)
    b = rng.standard_normal((n, k)).astype(np.float16)
    spec = matmul.emit("k", _matmul(batch, m, n, k, "float16", gemm_tma.TmaGemm(tile).tactic()))
    assert len(spec.tensor_maps) == 2
    got = simt_emulator.run(spec, "k", [a, b], [*batch, m, n], np.float16, tmp_path)
    want = a.astype(np.float64) @ b.astype(np.float64).T
    assert _relative_l2(got, want) < 1e-3


@pytest.mark.parametrize("tile", [gemm_tma.TmaTile(128, 256, 4), gemm_tma.TmaTile(64, 96, 8),
                                  gemm_tma.TmaTile(128, 64, 4), gemm_tma.TmaTile(64, 96, 4, 2)],
                         ids=str)
def test_int8_tma_tiles_sum_exactly_on_emulated_warps(tile, tmp_path) -> None:
    """INT8 read as byte pairs, 12 k-tiles through fewer stages (each stage refilled)."""
    m, n, k = 72, 136, 1536
    rng = np.random.default_rng(2)
    a, b = _int8(rng, (m, k)), _int8(rng, (n, k))
    spec = matmul.emit("k", _matmul([], m, n, k, "int8", gemm_tma.TmaGemm(tile).tactic()))
    got = simt_emulator.run(spec, "k", [a, b], [m, n], np.int32, tmp_path)
    np.testing.assert_array_equal(got, a.astype(np.int64) @ b.astype(np.int64).T)


def _conv_tiles(case: str) -> list[gemm_tma.TmaTile]:
    if case == "3x5_mixed":
        return [gemm_tma.TmaTile(128, 64, 8), gemm_tma.TmaTile(64, 256, 4),
                gemm_tma.TmaTile(256, 64, 5), gemm_tma.TmaTile(64, 128, 4, 2)]
    return [gemm_tma.TmaTile(128, 64, 8)]


@pytest.mark.parametrize("case", list(CASES))
def test_int8_im2col_convs_sum_exactly_on_emulated_warps(case, tmp_path) -> None:
    """The im2col copies: padding on every side, strides, dilations, a 3x5 filter with H and W
    strides and dilations told apart, blocks of pixels crossing rows and images."""
    params = _conv_params(case)
    inputs, want = _sums(params, seed=11)
    for tile in _conv_tiles(case):
        spec = conv.emit("k", {**params, "tactic": gemm_tma.TmaGemm(tile).tactic()})
        assert isinstance(spec.tensor_maps[0], Im2colMap)
        got = simt_emulator.run(spec, "k", inputs, list(want.shape), np.int32, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=f"{case} {tile}")


def test_the_int8_drain_requantizes_with_its_residual_on_emulated_warps(tmp_path) -> None:
    """The staged int8 tail (per-channel scale, int8 residual, round, clip) after the im2col
    main loop, on each TMA tactic the build would time."""
    params, inputs, want = requantize_case()
    assert (np.abs(want.astype(int)) == 127).any() and (want == -128).any()  # both clips
    tactics = [t for t in conv.tactics(params, "sm_90") if gemm_tma.is_tma(t)]
    assert tactics
    for tactic in tactics:
        spec = conv.emit("k", {**params, "tactic": tactic})
        got = simt_emulator.run(spec, "k", inputs, list(want.shape), np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))


@pytest.mark.parametrize("dtype, tile", [("float16", gemm_wgmma.WgmmaTile(128, 128, 6)),
                                         ("bfloat16", gemm_wgmma.WgmmaTile(64, 96, 8)),
                                         ("float32", gemm_wgmma.WgmmaTile(128, 64, 4)),
                                         ("int8", gemm_wgmma.WgmmaTile(64, 64, 8))],
                         ids=["fp16", "bf16", "tf32", "int8"])
def test_the_cp_async_wgmma_loop_on_emulated_warps(dtype, tile, tmp_path) -> None:
    m, n, k = 150, 200, 320
    rng = np.random.default_rng(3)
    if dtype == "int8":
        a, b = _int8(rng, (m, k)), _int8(rng, (n, k))
    else:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((n, k)).astype(dtype)
    tactic = gemm_wgmma.WgmmaGemm(tile).tactic()
    spec = matmul.emit("k", _matmul([], m, n, k, dtype, tactic))
    assert not spec.tensor_maps
    got = simt_emulator.run(spec, "k", [a, b], [m, n], np.int32 if dtype == "int8" else dtype,
                            tmp_path)
    want = a.astype(np.float64) @ b.astype(np.float64).T
    if dtype == "int8":
        np.testing.assert_array_equal(got, want.astype(np.int64))
    else:  # the output's rounding (bf16: 2^-9), TF32's operands (2^-11)
        assert _relative_l2(got, want) < (4e-3 if dtype == "bfloat16" else 1e-3), dtype


# -- the emulation catches what the hardware would get wrong ----------------------------------

def _deep_fp16_case() -> tuple[dict, list[np.ndarray], np.ndarray]:
    """16 k-tiles through 3 stages: every stage refilled five times."""
    m, n, k = 128, 128, 1024
    rng = np.random.default_rng(4)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((n, k)).astype(np.float16)
    params = _matmul([], m, n, k, "float16",
                     gemm_tma.TmaGemm(gemm_tma.TmaTile(128, 128, 3)).tactic())
    return params, [a, b], a.astype(np.float64) @ b.astype(np.float64).T


FREE = "if (kt > 0 && lane == 0) mbar_arrive(&empty[(kt - 1) % 3]);"


def test_the_emulation_catches_a_stage_freed_before_its_wgmmas_are_done(tmp_path,
                                                                       monkeypatch) -> None:
    """With the copies landing when issued and the wgmmas reading at their wait, slowed: the
    kernel as emitted is right, one that frees the stage it just read before waiting for its
    wgmmas reads the next k-tiles' copies."""
    params, inputs, want = _deep_fp16_case()
    monkeypatch.setattr(simt_emulator, "COPIES_AT_ISSUE", True)
    spec = matmul.emit("k", params)
    got = simt_emulator.run(spec, "k", inputs, list(want.shape), np.float16, tmp_path)
    assert _relative_l2(got, want) < 1e-3
    assert spec.source.count(FREE) == 1
    early = dataclasses.replace(spec, source=spec.source.replace(
        FREE, "if (lane == 0) mbar_arrive(&empty[kt % 3]);"))  # before its wgmma_wait
    got = simt_emulator.run(early, "k", inputs, list(want.shape), np.float16, tmp_path)
    assert _relative_l2(got, want) > 1e-2


def test_the_emulation_catches_a_consumer_that_never_frees_a_stage(tmp_path,
                                                                   monkeypatch) -> None:
    params, inputs, want = _deep_fp16_case()
    spec = matmul.emit("k", params)
    stuck = dataclasses.replace(spec, source=spec.source.replace(FREE, ""))
    monkeypatch.setattr(simt_emulator, "DEADLOCK_SECONDS", 2)
    with pytest.raises(simt_emulator.EmulatorError, match="a deadlock"):
        simt_emulator.run(stuck, "k", inputs, list(want.shape), np.float16, tmp_path)


def test_the_emulation_catches_a_consumer_that_does_not_wait_for_its_copies(tmp_path) -> None:
    """The copy engine's copies land when a thread tests their barrier: a consumer reading a
    stage without waiting reads what the last block left there, and the producer's next
    expect-tx finds the stage's phase still open (an arrival past the barrier's count)."""
    params, inputs, want = _deep_fp16_case()
    spec = matmul.emit("k", params)
    wait = "mbar_wait(&full[s], (kt / 3) & 1);"
    assert spec.source.count(wait) == 1
    blind = dataclasses.replace(spec, source=spec.source.replace(wait, ""))
    with pytest.raises(simt_emulator.EmulatorError, match="arrival past its count"):
        simt_emulator.run(blind, "k", inputs, list(want.shape), np.float16, tmp_path)
