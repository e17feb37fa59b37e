"""INT8 convs with taps, strides or padding on the copy engine's im2col mode (`gemm_tma`, sm_90):
the NHWC input read as byte pairs through a 2-byte im2col map (128 channels a 128-byte row,
zero bytes off the image), each cp.async wgmma candidate's TMA twin timed after the rest. On the
GPU: every TMA tile's int32 sums equal numpy's exactly, and the requantizing tail with an int8
residual too."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ember.codegen.nvrtc import compile_many
from ember.codegen.templates import conv, gemm_tma
from ember.runtime.cpu_kernels.linear import conv as reference
from ember.runtime.cuda import cuda_available
from ember.runtime.tensor_maps import Im2colMap, TensorMap
from tests.codegen.test_int8_tensor_cores import (
    _int8,
    _requantize_residual,
    _requantized,
    _run_on_gpu,
)

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")

CASES = {  # (x NHWC, w OHWI, attributes)
    "3x3_pad1": ([2, 9, 9, 128], [96, 3, 3, 128], {"pads": [1, 1, 1, 1]}),
    "3x3_stride2_256ch": ([2, 13, 13, 256], [64, 3, 3, 256], {"pads": [1, 1, 1, 1],
                                                              "strides": [2, 2]}),
    "1x1_stride2": ([3, 9, 9, 128], [128, 1, 1, 128], {"strides": [2, 2]}),
    "3x3_dilated_uneven_pads": ([1, 11, 10, 128], [64, 3, 3, 128], {"pads": [2, 1, 0, 2],
                                                                     "dilations": [2, 2]}),
    # H and W told apart: a 3x5 filter, strides (1, 2), dilations (2, 1), uneven pads
    "3x5_mixed": ([2, 12, 15, 128], [64, 3, 5, 128], {"pads": [2, 1, 1, 3], "strides": [1, 2],
                                                      "dilations": [2, 1]}),
}


def _params(case: str, dtype: str = "int8") -> dict:
    x, w, attrs = CASES[case]
    full = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], **attrs}
    out = [(size + full["pads"][i] + full["pads"][i + 2]
            - full["dilations"][i] * (w[1 + i] - 1) - 1) // full["strides"][i] + 1
           for i, size in enumerate(x[1:3])]
    return {"in_shapes": [x, w], "in_dtypes": [dtype, dtype],
            "out_shapes": [[x[0], *out, w[0]]],
            "out_dtypes": ["int32" if dtype == "int8" else "float32"], "layout": "NHWC",
            "groups": 1, **full}


def test_int8_convs_over_whole_rows_time_their_im2col_twins() -> None:
    """A 3x3 INT8 conv over 128 channels (one 128-byte row a pixel): each cp.async wgmma
    candidate's TMA twin comes last (a one-warpgroup twin's two-k-tile form after them), its
    input through an im2col map over byte pairs (64 pairs a pixel, pixels 128 bytes apart).
    Over 64 channels, in E4M3 or off sm_90: no TMA."""
    params = _params("3x3_pad1")
    tactics = conv.tactics(params, "sm_90")
    fed = [i for i, t in enumerate(tactics) if gemm_tma.is_tma(t)]
    assert fed and fed == list(range(len(tactics) - len(fed), len(tactics)))
    twins = gemm_tma.twins(tactics[:-len(fed)])  # then the one-warpgroup ones' paired forms
    assert tactics[len(tactics) - len(fed):] == twins + gemm_tma.paired(twins, 9 * 64)
    assert any("stage_tiles" in t for t in tactics)  # 9 k-tiles: deep enough to pair
    assert not any(gemm_tma.is_tma(t) for t in conv.tactics(params, "sm_80"))
    tactic = gemm_tma.TmaGemm(gemm_tma.TmaTile(128, 64, 8)).tactic()
    spec = conv.emit("k", {**params, "tactic": tactic})
    assert spec.tensor_maps == (
        Im2colMap(0, (64, 9, 9, 2), (128, 9 * 128, 81 * 128), (-1, -1), (-1, -1), (1, 1), 64,
                  128),
        TensorMap(1, "u16", (9 * 64, 96), 9 * 128, (64, 64)))
    assert "tma_load_im2col(" in spec.source and "(tap_ * 1 + cb_) * 64" in spec.source
    narrow = {**params, "in_shapes": [[2, 9, 9, 64], [96, 3, 3, 64]]}
    fp8 = _params("3x3_pad1", "float8_e4m3fn")
    for other in (narrow, fp8):
        assert not any(gemm_tma.is_tma(t) for t in conv.tactics(other, "sm_90"))
        with pytest.raises(ValueError, match="tactic tma needs an NHWC conv"):
            conv.emit("k", {**other, "tactic": tactic})


def test_a_twin_keeps_its_tiles_stages() -> None:
    """The TMA twin of a cp.async wgmma tile is the TMA tile of its shape nearest its stages
    (the deeper on a tie): a deep 128x128 tile's twin is deep too, not the two-resident one."""
    def twin(bm: int, bn: int, stages: int) -> list[int]:
        (found,) = gemm_tma.twins([{"wgmma": [bm, bn, stages]}])
        return found["wgmma"]

    assert twin(128, 128, 6) == [128, 128, 6]
    assert twin(128, 128, 3) == [128, 128, 3]
    assert twin(128, 64, 8) == [128, 64, 8]
    assert twin(128, 64, 4) == [128, 64, 4]
    assert twin(64, 128, 6) == [64, 128, 8]
    assert twin(128, 192, 4) == [128, 192, 5]
    assert gemm_tma.twins([{"wgmma": [128, 128, 6]}, {"wgmma": [128, 128, 6], "copy": "tma"}]) \
        == []


def test_a_conv_over_256_output_channels_times_one_warpgroup_of_m64n256() -> None:
    """ResNet-50's layer3 3x3 conv (INT8 and FP16, batch 32): the 64x256 tile (as many blocks
    as 128x128, each wgmma twice the columns: 14.3 -> 12.8 us INT8 on an H100) and its TMA twin
    are timed."""
    for dtype, out in (("int8", "int32"), ("float16", "float16")):
        params = {"in_shapes": [[32, 14, 14, 256], [256, 3, 3, 256]], "in_dtypes": [dtype] * 2,
                  "out_shapes": [[32, 14, 14, 256]], "out_dtypes": [out], "layout": "NHWC",
                  "strides": [1, 1], "pads": [1] * 4, "dilations": [1, 1], "groups": 1}
        tactics = conv.tactics(params, "sm_90")
        assert {"wgmma": [64, 256, 4]} in tactics, dtype
        assert {"wgmma": [64, 256, 4], "copy": "tma"} in tactics, dtype


def test_every_int8_im2col_tile_compiles_to_the_im2col_copy_and_s8_wgmma() -> None:
    params = _params("3x5_mixed")
    sources = [(f"k{i}", conv.emit(f"k{i}", {**params, "tactic": gemm_tma.TmaGemm(t).tactic()})
                .source) for i, t in enumerate([t for t, _ in gemm_tma.TMA_TILES]
                                               + list(gemm_tma.PAIRED_TILES))]
    for entry in compile_many(sources, arch="sm_90"):
        assert b"cp.async.bulk.tensor.4d.shared::cluster.global.im2col" in entry.ptx
        assert re.search(rb"wgmma.mma_async.sync.aligned.m64n\d+k32.s32.s8.s8", entry.ptx)


# -- on the GPU -------------------------------------------------------------------------------

def _sums(params: dict, seed: int) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, w = _int8(rng, params["in_shapes"][0]), _int8(rng, params["in_shapes"][1])
    (acc,) = reference([x, w], params)
    return [x, w], acc


def requantize_case() -> tuple[dict, list[np.ndarray], np.ndarray]:
    """The strided 3x3 conv over 256 channels with the staged int8 tail (per-channel scale,
    int8 residual, round, clip): params, inputs (x, w, scale, residual), the int8 result."""
    params = _params("3x3_stride2_256ch")
    (x, w), acc = _sums(params, seed=12)
    out, n = params["out_shapes"][0], params["out_shapes"][0][-1]
    params["epilogue"] = _requantize_residual(n, out)
    params["epilogue"]["in_shapes"][0] = [1, 1, 1, n]
    rng = np.random.default_rng(13)
    scale = (rng.random((1, 1, 1, n)) * 2e-3 + 5e-4).astype(np.float32)
    residual = _int8(rng, out)
    return params, [x, w, scale, residual], _requantized(acc, scale, residual)


def _tiles(case: str) -> list[gemm_tma.TmaTile]:
    """Every TMA tile on the plain 3x3 and the mixed filter; one on the other cases."""
    if case in ("3x3_pad1", "3x5_mixed"):
        return [t for t, _ in gemm_tma.TMA_TILES] + list(gemm_tma.PAIRED_TILES)
    return [gemm_tma.TmaTile(128, 64, 8)]


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case", list(CASES))
def test_int8_im2col_convs_sum_exactly_on_the_gpu(case: str) -> None:
    """Padding on every side, strides, dilations, H and W of different filter sizes, strides
    and dilations, blocks of pixels that cross rows and images, pixels not a multiple of BM."""
    params = _params(case)
    inputs, want = _sums(params, seed=11)
    for tile in _tiles(case):
        tactic = gemm_tma.TmaGemm(tile).tactic()
        spec = conv.emit("k", {**params, "tactic": tactic})
        assert isinstance(spec.tensor_maps[0], Im2colMap)
        got = _run_on_gpu(spec, "k", inputs, want.shape, np.int32)
        np.testing.assert_array_equal(got, want, err_msg=f"{case} {tactic}")


@needs_gpu
@pytest.mark.cuda
def test_an_int8_im2col_conv_requantizes_with_its_residual_on_the_gpu() -> None:
    """The staged int8 tail (per-channel scale, int8 residual, round, clip) after the im2col
    main loop, every candidate the build times (the cp.async ones and their TMA twins)."""
    params, (x, w, scale, residual), want = requantize_case()
    tactics = conv.tactics(params, "sm_90")
    assert any(gemm_tma.is_tma(t) for t in tactics)
    for tactic in tactics:
        spec = conv.emit("k", {**params, "tactic": tactic})
        got = _run_on_gpu(spec, "k", [x, w, scale, residual], want.shape, np.int8)
        np.testing.assert_array_equal(got, want, err_msg=str(tactic))
