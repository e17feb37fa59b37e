"""select-tactics' options through the builder: the SM count the FP32 cost model fills and a
forced GEMM tile (what `benchmarks/bench_kernels.py --sweep` passes instead of setting a module
global), each taking effect in the plan's kernels or refused with an error naming the kernel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.templates import gemm_tiles, matmul
from ember.compiler.builder import BuilderConfig, build_model, pipeline_for
from ember.compiler.pipeline import pipeline_text
from ember.errors import EmberError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """benchmarks/bench_kernels.py as the sweep runs it (it imports its neighbours by name)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_kernels

    return bench_kernels


def _matmul(m: int, n: int, k: int, seed: int = 0) -> tuple[onnx.ModelProto, np.ndarray,
                                                            np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), x, w


def _tile_text(tile: gemm_tiles.Tile) -> str:
    return f"{tile.bm}x{tile.bn}x{tile.bk} tile, {tile.tm}x{tile.tn} per thread"


def test_the_sweep_forces_every_tile_through_the_builder_option(bench):
    tiles = [t for t, _, _ in gemm_tiles.TILES] + list(gemm_tiles.SWEEP_TILES)
    assert [gemm_tiles.parse_tile(t) for t in bench.sweep_tiles()] == tiles
    model, _, _ = _matmul(96, 80, 64)
    for spelled, tile in zip(bench.sweep_tiles(), tiles, strict=True):
        config = bench.sweep_config("sm_90", spelled)
        spec = (f'select-tactics{{arch="sm_90" sms=132 tile="{spelled}" autotune=false '
                f'workspace=-1}}')
        assert spec in pipeline_text(pipeline_for(config))
        manifest, sections = build_model(model, config)
        (step,) = manifest["steps"]
        assert step["params"]["tactic"] == {"tile": [int(v) for v in spelled.split(",")],
                                            "splits": 1}
        assert _tile_text(tile) in sections["cuda_source"].decode()
    # without the option the cost model chooses (split-K here: not a forced tactic)
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    assert manifest["steps"][0]["params"]["tactic"] == gemm_tiles.tactic_params(
        gemm_tiles.choose(96, 80, 64))


def test_the_sweep_of_a_direct_conv_is_an_error_naming_it(bench):
    model, *_ = bench.conv_case(1, 8, 8, 8, 3, 1, 8, np.random.default_rng(0))  # depthwise
    with pytest.raises(EmberError, match=r"tile '64,64,16,8,4' cannot be forced on "
                                         r"kernel.launch 'conv' -> tensor<1x8x8x8xf32, .*>: it "
                                         r"has no GEMM tactic \(a direct kernel\)"):
        build_model(model, bench.sweep_config("sm_90", "64,64,16,8,4"))


def test_sm_count_is_the_cost_models():
    model, _, _ = _matmul(1024, 1024, 1024)
    chosen = {}
    for sms in (8, 132, 1000):
        config = BuilderConfig(target_arch="sm_90", autotune=False, sm_count=sms,
                               format_choice="preferred")
        manifest, _ = build_model(model, config)
        chosen[sms] = manifest["steps"][0]["params"]["tactic"]
        assert chosen[sms] == gemm_tiles.tactic_params(gemm_tiles.choose(1024, 1024, 1024,
                                                                         sms=sms))
    assert chosen[8] == {"tile": [128, 128, 16, 8, 8], "splits": 1}  # few SMs: no split-K
    assert len({str(t) for t in chosen.values()}) == 3


@pytest.mark.parametrize(("config", "message"), [
    (BuilderConfig(forced_tile="64,64,16,8,4"), "forced_tile: tactics are chosen for CUDA"),
    (BuilderConfig(sm_count=100), "sm_count: tactics are chosen for CUDA"),
    (BuilderConfig(target_arch="sm_90", forced_tile="64,64,16,8,4", autotune=True),
     "forced_tile='64,64,16,8,4' and autotune=True: the autotuner would replace"),
    (BuilderConfig(target_arch="sm_90", sm_count=100, autotune=True),
     "sm_count=100 and autotune=True: the autotuner would replace"),
    (BuilderConfig(target_arch="sm_90", autotune=False, forced_tile="64,64,16,8"),
     "tile '64,64,16,8' is not BM,BN,BK,TM,TN"),
    (BuilderConfig(target_arch="sm_90", autotune=False, sm_count=8, forced_tile="64,64,16,8,4",
                   format_choice="preferred"),
     "forces every tactic, so sms=8 .* would have no effect"),
    (BuilderConfig(target_arch="sm_90", autotune=False, sm_count=8),
     "sm_count=8: choose-formats' cost model .* give format_choice='preferred'"),
    (BuilderConfig(target_arch="sm_90", autotune=False, sm_count=0, format_choice="preferred"),
     "sms=0 is not a multiprocessor count"),
])
def test_options_that_cannot_take_effect_are_errors(config, message):
    model, _, _ = _matmul(64, 64, 64)
    with pytest.raises(EmberError, match=message):
        build_model(model, config)


def test_a_sweep_tile_named_in_a_tactic_is_emitted():
    params = {"in_shapes": [[96, 64], [64, 80]], "in_dtypes": ["float32"] * 2,
              "out_shapes": [[96, 80]], "out_dtypes": ["float32"]}
    for tile in gemm_tiles.SWEEP_TILES:
        tactic = gemm_tiles.tactic_params(gemm_tiles.Gemm(tile))
        assert _tile_text(tile) in matmul.emit("k", {**params, "tactic": tactic}).source
    with pytest.raises(ValueError, match="needs more than 49152 bytes of shared memory for "
                                         "float64"):
        matmul.emit("k", {**params, "in_dtypes": ["float64"] * 2, "out_dtypes": ["float64"],
                          "tactic": {"tile": [128, 128, 16, 8, 8], "splits": 1}})


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.cuda
def test_every_sweep_tile_computes_the_product(bench):
    """The tiles a sweep forces (TILES and SWEEP_TILES) against numpy in float64, with partial
    tiles in M, N and K."""
    from ember.compiler.builder import detect_arch

    model, x, w = _matmul(200, 136, 72, seed=1)
    want = x.astype(np.float64) @ w.astype(np.float64)
    for spelled in bench.sweep_tiles():
        plan = plan_bytes(*build_model(model, bench.sweep_config(detect_arch(), spelled)))
        got = Runtime("cuda").deserialize_cuda_engine(plan).create_execution_context() \
            .execute({"x": x})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=spelled)
