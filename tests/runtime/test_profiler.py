"""Per-layer profiling (TensorRT's IProfiler): `context.profiler` on the CPU executor, and on the
GPU (CUDA events per launch; CUDA-graph contexts launch one by one while profiled)."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.compiler.builder import BuilderConfig, build_model, detect_arch
from ember.errors import EmberError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from ember.runtime.profiler import GRAPH_NOTE, Profiler, short_origin, tactic_text
from tests.onnx_cases import small_cnn

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
X = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def engine():
    return Runtime("cpu").deserialize_cuda_engine(plan_bytes(*build_model(small_cnn())))


def test_off_by_default(engine, monkeypatch):
    ctx = engine.create_execution_context()
    assert ctx.profiler is None
    calls = []
    monkeypatch.setattr(ctx, "_report", lambda *a: calls.append(a))
    ctx.execute({"x": X})
    assert calls == []


def test_profiler_times_every_step(engine):
    ctx = engine.create_execution_context()
    want = ctx.execute({"x": X})["y"]
    ctx.profiler = profiler = ember.Profiler()
    for _ in range(3):
        np.testing.assert_array_equal(ctx.execute({"x": X})["y"], want)
    layers = profiler.layers()
    assert profiler.runs == 3 and len(layers) == engine.num_layers
    assert {e.name for e in layers} == {s["name"] for s in engine.steps}
    assert all(e.count == 3 and e.total_ms > 0 for e in layers)
    assert [e.total_ms for e in layers] == sorted((e.total_ms for e in layers), reverse=True)
    conv = next(e for e in layers if e.name == "conv_0")
    assert conv.template == "conv" and conv.origin == ("conv", "relu")
    step = next(s for s in engine.steps if s["name"] == "conv_0")
    assert conv.tactic == tactic_text(step["params"].get("tactic"))
    assert profiler.total_ms() == pytest.approx(sum(e.mean_ms for e in layers))
    report = profiler.report()
    rows = report.splitlines()[1:1 + engine.num_layers]
    assert [r.split()[0] for r in rows] == [e.name for e in layers]  # slowest first
    assert any(r.split()[1] == "conv" and r.endswith("conv, relu") for r in rows)
    assert "3 run(s) profiled" in report and "note:" not in report
    top = profiler.report(top=2)
    assert len(top.splitlines()) == 1 + 2 + 1 and "slowest 2 shown" in top
    ctx.profiler = None
    ctx.execute({"x": X})
    assert profiler.runs == 3
    profiler.reset()
    assert profiler.runs == 0 and profiler.layers() == []


def test_tactic_text_is_short_and_drops_one_split():
    assert tactic_text({"wgmma": [128, 256, 4]}) == "wgmma 128x256x4"
    assert tactic_text({"mma": [64, 64, 32, 2, 2, 4], "splits": 1}) == "mma 64x64x32x2x2x4"
    assert tactic_text({"tile": [64, 64], "splits": 3}) == "tile 64x64 splits 3"
    assert tactic_text(None) == ""


def test_any_object_with_report_layer_time(engine):
    """TensorRT's IProfiler: a plain object gets one report_layer_time call per step per run."""

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, float]] = []

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.calls.append((layer_name, ms))

    ctx = engine.create_execution_context()
    ctx.profiler = recorder = Recorder()
    ctx.execute({"x": X})
    ctx.execute({"x": X})
    names = [s["name"] for s in engine.steps]
    assert [n for n, _ in recorder.calls] == names * 2
    assert all(isinstance(ms, float) and ms >= 0 for _, ms in recorder.calls)


def test_subclass_overrides_the_callback(engine):
    class Counting(Profiler):
        def __init__(self) -> None:
            super().__init__()
            self.seen = 0

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.seen += 1
            super().report_layer_time(layer_name, ms)

    ctx = engine.create_execution_context()
    ctx.profiler = profiler = Counting()
    ctx.execute({"x": X})
    assert profiler.seen == engine.num_layers and profiler.runs == 1


def test_a_profiler_needs_the_callback(engine):
    ctx = engine.create_execution_context()
    with pytest.raises(EmberError, match="report_layer_time"):
        ctx.profiler = object()


def test_one_profiler_for_several_contexts(engine):
    profiler = Profiler()
    for _ in range(2):
        ctx = engine.create_execution_context()
        ctx.profiler = profiler
        ctx.execute({"x": X})
    assert profiler.runs == 2 and all(e.count == 2 for e in profiler.layers())


def test_report_shortens_long_origins():
    layer = [f"/bert/encoder/layer.0/intermediate/op_{i}" for i in range(30)]
    assert short_origin(["conv", "relu"]) == "conv, relu"
    assert short_origin(["/a/b/conv", "/a/b/relu"]) == "/a/b/{conv, relu}"
    text = short_origin(layer)
    assert text.startswith("/bert/encoder/layer.0/intermediate/{op_0, op_1")
    assert text.endswith("(30 nodes)") and len(text) < 120
    assert short_origin([]) == "-" and short_origin(["x" * 200]).endswith("...")


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_cuda_profiler(cuda_graph):
    from ember.runtime import cuda

    arch = detect_arch()
    plan = plan_bytes(*build_model(small_cnn(), BuilderConfig(target_arch=arch)))
    engine = Runtime("cuda").deserialize_cuda_engine(plan)
    ctx = engine.create_execution_context(cuda_graph=cuda_graph)
    want = ctx.execute({"x": X})["y"]
    ctx.profiler = profiler = Profiler()
    for _ in range(3):
        np.testing.assert_allclose(ctx.execute({"x": X})["y"], want, rtol=1e-6, atol=1e-7)
    layers = profiler.layers()
    assert profiler.runs == 3 and len(layers) == engine.num_layers
    assert all(e.count == 3 and e.total_ms > 0 for e in layers)
    assert (GRAPH_NOTE in profiler.notes) == cuda_graph
    assert ("note:" in profiler.report()) == cuda_graph

    # the bound-address path: profiled runs wait for the GPU, then report
    buffers = {}
    for name in engine.input_names + engine.output_names:
        shape, dtype = engine.get_tensor_shape(name), engine.get_tensor_dtype(name)
        buffers[name] = cuda.DeviceBuffer(int(np.prod(shape)) * dtype.itemsize)
        ctx.set_tensor_address(name, buffers[name].ptr)
    buffers["x"].upload(X)
    stream = cuda.Stream()
    ctx.execute_async_v3(stream.handle)
    stream.synchronize()
    assert profiler.runs == 4
    out = np.empty(engine.get_tensor_shape("y"), np.float32)
    cuda.copy_dtoh(out, buffers["y"].ptr)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-7)
    ctx.profiler = None  # and back to the graph / plain launches
    ctx.execute_async_v3(stream.handle)
    stream.synchronize()
    assert profiler.runs == 4
