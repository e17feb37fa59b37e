"""The persistent form of the short-K mma.sync GEMM (`gemm_mma`, tactic key "persist"): a grid
of a few blocks a multiprocessor, each walking M tiles with B's whole K resident and the next
tile's A copied under this tile's epilogue. Exact on emulated warps (grids smaller than the
tiles, so blocks walk several, the last one partial) for the INT8 residual conv and the
shortcut-sums conv, and on the GPU; tactics it cannot take are refused by name."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ember.codegen.symbolic import Sym, symbol_bounds
from ember.codegen.templates import conv, gemm_mma
from tests.codegen import simt_emulator
from tests.codegen.test_int8_shortcut_sums import _case as _sums_case
from tests.codegen.test_int8_split_epilogue import _conv_case
from tests.codegen.test_int8_tensor_cores import _run_on_gpu, needs_gpu, needs_gxx

TILES = [gemm_mma.MmaTile(128, 64, 32, 2, 2, 4), *gemm_mma.SHORT_K_TILES]


def _persistent(params: dict, tile: gemm_mma.MmaTile, blocks: int = 2):
    """The step's kernel on `tile`, persistent, its grid cut to `blocks` on y."""
    spec = conv.emit("k", {**params, "tactic": {"mma": tile.as_list(), "splits": 1,
                                                "persist": 1}})
    assert "for (int mt = blockIdx.y, buf = 0; mt <" in spec.source
    return dataclasses.replace(spec, grid=(spec.grid[0], blocks, spec.grid[2]))


def test_the_grid_holds_the_blocks_asked_a_multiprocessor():
    tile = gemm_mma.MmaTile(64, 128, 32, 2, 2, 4)
    # layer1's conv3 at batch 32: 1568 M tiles x 2 N tiles; 3 blocks a multiprocessor
    assert gemm_mma.MmaGemm(tile, 1, 3).grid(100352, 256, 1) == (2, 198, 1)
    assert gemm_mma.MmaGemm(tile, 1, 3).grid(256, 256, 1) == (2, 4, 1)  # fewer tiles
    assert gemm_mma.MmaGemm(tile).grid(100352, 256, 1) == (2, 1568, 1)
    assert gemm_mma.MmaGemm(tile, 1, 3).tactic() == {"mma": tile.as_list(), "splits": 1,
                                                     "persist": 3}


def test_the_shared_memory_holds_a_twice_b_once_and_the_staged_tile():
    params, _, _ = _conv_case(seed=1)
    for tile in TILES:
        spec = _persistent(params, tile)
        a, b = tile.stage_elems(tile.bm) * 2, tile.stage_elems(tile.bn) * 2
        assert spec.shared_bytes == 2 * a + b + tile.bm * (tile.bn + 16), tile


def test_each_tiles_residual_is_loaded_at_the_top_of_its_loop():
    """The drain's residual loads come before the wait for the tile's A (in flight under the
    MMAs and the fragments' epilogue), and the drain reads what they loaded."""
    params, _, _ = _conv_case(seed=1)
    source = _persistent(params, gemm_mma.MmaTile(64, 64, 32, 2, 2, 4)).source
    loop = source.index("const int m0 = mt * 64;")
    load = source.index("__ldg((const uint4*)&in5")
    assert loop < load < source.index("cp_async_wait<0>();", loop)
    assert source.count("__ldg((const uint4*)&in5") == 1
    assert source.index("r3[u].e[e]") > source.index("__syncthreads();", load)


def test_tactics_it_cannot_take_are_refused():
    params, _, _ = _conv_case(seed=1)
    tile = [64, 64, 32, 2, 2, 4]
    long_k = {**params, "in_shapes": [[2, 12, 12, 640], [64, 1, 1, 640]]}  # 10 k-tiles
    with pytest.raises(ValueError, match="persist x1"):
        conv.emit("k", {**long_k, "tactic": {"mma": tile, "splits": 1, "persist": 1}})
    with pytest.raises(ValueError, match="keys an mma.sync tactic does not take"):
        conv.emit("k", {**params, "tactic": {"mma": tile, "splits": 1, "persistent": 2}})
    with pytest.raises(ValueError, match="persist x9"):
        conv.emit("k", {**params, "tactic": {"mma": tile, "splits": 1, "persist": 9}})
    with pytest.raises(ValueError, match="persist x2"), symbol_bounds({"N": (1, 4, 8)}):
        gemm_mma.mma_for({"tactic": {"mma": tile, "splits": 1, "persist": 2}},
                         Sym("N") * 64, 64, 32, 1)


@needs_gxx
@pytest.mark.parametrize("blocks", [1, 2])
def test_the_residual_conv_is_exact_walking_tiles(blocks, tmp_path):
    """ResNet-50 layer1's conv3 + residual in small (288 rows: 3 or 5 M tiles, the last
    partial) on one or two blocks."""
    params, inputs, want = _conv_case(seed=5)
    for tile in TILES:
        got = simt_emulator.run(_persistent(params, tile, blocks), "k", inputs, want.shape,
                                np.int8, tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tile))


@needs_gxx
@pytest.mark.parametrize("name", ["stride1", "stride2"])
def test_the_shortcut_sums_conv_is_exact_walking_tiles(name, tmp_path):
    params, inputs, want = _sums_case(name, seed=4)
    for tile in _sums_tiles(params):
        got = simt_emulator.run(_persistent(params, tile), "k", inputs, want.shape, np.int8,
                                tmp_path)
        np.testing.assert_array_equal(got, want, err_msg=str(tile))


def _sums_tiles(params: dict) -> list[gemm_mma.MmaTile]:
    """The mma.sync tiles a shortcut-sums step is timed on (each once: its candidates hold
    persistent forms of some)."""
    tiles = [gemm_mma.MmaTile(*t["mma"]) for t in conv.tactics(params, "sm_90")]
    return list(dict.fromkeys(tiles))


@pytest.mark.cuda
@needs_gpu
def test_persistent_tactics_are_exact_on_the_gpu():
    """Each tile at 1 and 4 blocks a multiprocessor, and cut to 3 blocks, against the kernel of
    one block a tile, bit for bit."""
    for params, inputs, want in (_conv_case(seed=6), _sums_case("stride2", seed=6)):
        for tile in TILES if "shortcut" not in params else _sums_tiles(params):
            plain = conv.emit("k", {**params, "tactic": {"mma": tile.as_list(), "splits": 1}})
            base = _run_on_gpu(plain, "k", inputs, want.shape, np.int8)
            for persist in (1, 4):
                spec = conv.emit("k", {**params, "tactic": {"mma": tile.as_list(), "splits": 1,
                                                            "persist": persist}})
                for s in (spec, dataclasses.replace(spec, grid=(spec.grid[0], 3, 1))):
                    got = _run_on_gpu(s, "k", inputs, want.shape, np.int8)
                    np.testing.assert_array_equal(got, base, err_msg=f"{tile} {s.grid}")
