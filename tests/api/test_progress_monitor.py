"""TensorRT's IProgressMonitor on ember's builder: the phases (the pass pipeline, a step per
pass; the autotuner, a step per candidate compiled and per kernel timed; packing; NVRTC, a step
per kernel) in order and nested; cancellation (`step_complete` returning False: the build
returns None and logs why, every open phase finished); monitors that cannot be one refused by
name; the CLI's bars; and the flow of TensorRT's `samples/python/simple_progress_monitor`, run
with `import ember as trt`."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ember as trt
from ember.compiler.builder import BuilderConfig, build_model, pipeline_for
from ember.compiler.models import light_model_path
from ember.compiler.progress import PhaseTimes, ProgressBars, terminal_bars
from ember.errors import BuildCancelled, EmberError
from ember.runtime.cuda import cuda_available
from tests.api import trt_common as common
from tests.api.test_timing_cache import _config, _mlp, _stand_in


@pytest.fixture
def stand_in_gpu(tmp_path, monkeypatch):
    """test_timing_cache's stand-in GPU (the autotuner compiles and launches nothing)."""
    return _stand_in(tmp_path, monkeypatch)


class Recorder(trt.IProgressMonitor):
    """Records every call; `cancel_at` = (phase, step): step_complete says False there."""

    def __init__(self, cancel_at: tuple[str, int] | None = None):
        trt.IProgressMonitor.__init__(self)
        self.events: list[tuple] = []
        self.cancel_at = cancel_at

    def phase_start(self, phase_name, parent_phase, num_steps):
        self.events.append(("start", phase_name, parent_phase, num_steps))

    def step_complete(self, phase_name, step):
        self.events.append(("step", phase_name, step))
        return (phase_name, step) != self.cancel_at

    def phase_finish(self, phase_name):
        self.events.append(("finish", phase_name))

    def phases(self) -> list[tuple]:
        return [e for e in self.events if e[0] != "step"]

    def steps(self, phase: str) -> list[int]:
        return [e[2] for e in self.events if e[0] == "step" and e[1] == phase]


def _network(model: onnx.ModelProto):
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    return network


def test_a_cpu_build_reports_its_passes_and_packing_in_order():
    config = BuilderConfig()
    config.progress_monitor = monitor = Recorder()
    build_model(_mlp().SerializeToString(), config)
    passes = len(pipeline_for(config))
    assert monitor.events == [
        ("start", "Building plan", None, 2),
        ("start", "Running passes", "Building plan", passes),
        *[("step", "Running passes", i) for i in range(1, passes + 1)],
        ("finish", "Running passes"),
        ("step", "Building plan", 1),
        ("start", "Packing plan", "Building plan", 1),
        ("step", "Packing plan", 1),
        ("finish", "Packing plan"),
        ("step", "Building plan", 2),
        ("finish", "Building plan")]


def test_a_gpu_build_reports_a_step_per_kernel_compiled():
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    config.progress_monitor = monitor = Recorder()
    manifest, _ = build_model(_mlp().SerializeToString(), config)
    kernels = len(manifest["kernels"])
    assert kernels >= 2
    assert ("start", "Compiling kernels", "Packing plan", kernels) in monitor.events
    assert monitor.steps("Compiling kernels") == list(range(1, kernels + 1))
    order = [e[1] for e in monitor.phases() if e[0] == "finish"]
    assert order == ["Running passes", "Compiling kernels", "Packing plan", "Building plan"]


def test_autotuning_reports_candidates_compiled_and_kernels_timed(stand_in_gpu):
    config = _config()
    config.set_timing_cache(config.create_timing_cache(b""), False)
    config.progress_monitor = monitor = Recorder()
    manifest, _ = build_model(_mlp().SerializeToString(), config)
    timed = manifest["autotune"]["timed"]
    assert timed == len(stand_in_gpu.timed) > 0
    started = {e[1]: e[2:] for e in monitor.phases() if e[0] == "start"}
    assert started["Timing tactics"] == ("Running passes", timed)
    assert started["Compiling candidate kernels"] == ("Running passes",
                                                      len(set(stand_in_gpu.compiled)))
    assert monitor.steps("Timing tactics") == list(range(1, timed + 1))
    # the autotuner runs inside select-tactics: its phases sit between two pass steps
    i = monitor.events.index(("start", "Timing tactics", "Running passes", timed))
    passes_before = len([e for e in monitor.events[:i] if e[:2] == ("step", "Running passes")])
    names = [p.name for p in pipeline_for(config)]
    assert names[passes_before] == "select-tactics"
    # a warm build times nothing: no autotuning phases
    config.progress_monitor = warm = Recorder()
    build_model(_mlp().SerializeToString(), config)
    assert not [e for e in warm.phases() if e[1] in ("Timing tactics",
                                                     "Compiling candidate kernels")]


def test_phase_times_say_where_an_autotuned_build_went(stand_in_gpu):
    config = _config()
    config.set_timing_cache(config.create_timing_cache(b""), False)
    config.progress_monitor = times = PhaseTimes(inner := Recorder())
    build_model(_mlp().SerializeToString(), config)
    names = [p.name for p in pipeline_for(config)]
    # every phase the inner monitor saw is timed, in the order they first started
    assert list(times.totals) == list(dict.fromkeys(e[1] for e in inner.phases()))
    assert {"Running passes", "Compiling candidate kernels", "Timing tactics"} <= set(times.totals)
    assert len(times.steps["Running passes"]) == len(names)
    # the passes' steps add up to their phase; the phases nest in "Building plan"
    assert sum(times.steps["Running passes"]) <= times.totals["Running passes"]
    assert times.totals["Timing tactics"] <= times.totals["Running passes"]
    assert times.totals["Running passes"] <= times.totals["Building plan"]
    report = times.report(names, slowest=2)
    assert report.startswith("phases: Building plan ")
    slowest = report.split("; slowest passes: ")[1].split(", ")
    assert len(slowest) == 2 and all(s.rsplit(" ", 2)[0] in names for s in slowest)
    # the inner monitor's False still cancels
    config.progress_monitor = PhaseTimes(Recorder(cancel_at=("Running passes", 2)))
    with pytest.raises(BuildCancelled):
        build_model(_mlp().SerializeToString(), config)
    with pytest.raises(EmberError, match="must be an IProgressMonitor"):
        PhaseTimes(object())


def test_ember_build_verbose_says_where_the_time_went(tmp_path):
    from ember.compiler.commands import build

    model = tmp_path / "m.onnx"
    onnx.save(_mlp(), model)
    out = io.StringIO()
    build(model, tmp_path / "m.plan", verbose=True, out=out)
    line = [x for x in out.getvalue().splitlines() if x.startswith("phases: ")]
    assert len(line) == 1 and "Running passes" in line[0] and "slowest passes: " in line[0]
    out = io.StringIO()
    build(model, tmp_path / "m.plan", out=out)
    assert "phases: " not in out.getvalue()


class _Logger(trt.ILogger):
    def __init__(self):
        trt.ILogger.__init__(self)
        self.messages = []

    def log(self, severity, msg):
        self.messages.append((severity, msg))


def test_cancelling_in_the_passes_returns_none_and_logs_why():
    logger = _Logger()
    builder = trt.Builder(logger)
    config = BuilderConfig()
    config.progress_monitor = monitor = Recorder(cancel_at=("Running passes", 3))
    assert builder.build_serialized_network(_network(_mlp()), config) is None
    assert monitor.steps("Running passes") == [1, 2, 3]
    assert monitor.phases()[-2:] == [("finish", "Running passes"), ("finish", "Building plan")]
    assert not [e for e in monitor.events if e[1] == "Packing plan"]
    errors = [m for s, m in logger.messages if s == trt.ILogger.ERROR]
    assert errors == ["the build was cancelled: the progress monitor's step_complete("
                      "'Running passes', 3) returned False"]
    config.progress_monitor = Recorder(cancel_at=("Packing plan", 1))
    assert builder.build_engine_with_config(_network(_mlp()), config) is None
    # the same build without cancelling gives a plan
    config.progress_monitor = Recorder()
    assert builder.build_serialized_network(_network(_mlp()), config) is not None


def test_cancelling_while_compiling_kernels_finishes_every_phase():
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    config.progress_monitor = monitor = Recorder(cancel_at=("Compiling kernels", 1))
    assert trt.Builder().build_serialized_network(_network(_mlp()), config) is None
    assert monitor.steps("Compiling kernels") == [1]
    assert [e[1] for e in monitor.phases() if e[0] == "finish"] == [
        "Running passes", "Compiling kernels", "Packing plan", "Building plan"]
    # build_model, ember's own entry, raises it
    config.progress_monitor = Recorder(cancel_at=("Running passes", 1))
    with pytest.raises(BuildCancelled, match="step_complete"):
        build_model(_mlp().SerializeToString(), config)


def test_what_cannot_be_a_monitor_is_refused_by_name():
    config = BuilderConfig()
    with pytest.raises(EmberError, match="object lacks phase_start, step_complete, phase_finish"):
        config.progress_monitor = object()

    class Partial(trt.IProgressMonitor):
        def phase_start(self, phase_name, parent_phase, num_steps):
            pass

    with pytest.raises(EmberError, match="Partial must define step_complete, phase_finish"):
        config.progress_monitor = Partial()
    assert config.progress_monitor is None

    class Broken(Recorder):
        def phase_start(self, phase_name, parent_phase, num_steps):
            raise RuntimeError("monitor bug")

    config.progress_monitor = Broken()  # its own errors are not swallowed
    with pytest.raises(RuntimeError, match="monitor bug"):
        build_model(_mlp().SerializeToString(), config)


def test_the_cli_bars():
    stream = io.StringIO()
    bars = ProgressBars(stream)
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    config.progress_monitor = bars
    build_model(_mlp().SerializeToString(), config)
    assert bars._tasks == {} and not bars._bars.live.is_started  # every bar gone at the end
    assert terminal_bars(quiet=True) is None
    if not sys.stderr.isatty():
        assert terminal_bars() is None


# -- TensorRT's simple_progress_monitor sample, its flow with `import ember as trt` ---------------
class ModelData:
    MODEL_PATH = str(light_model_path("resnet50"))
    INPUT_SHAPE = (3, 224, 224)
    DTYPE = trt.float32


class SimpleProgressMonitor(trt.IProgressMonitor):
    """The sample's monitor, as it is written: the active phases by name, each indented one
    more than its parent, an ASCII bar per phase redrawn on each call (here into `screen`)."""

    def __init__(self):
        trt.IProgressMonitor.__init__(self)
        self._active_phases = {}
        self._step_result = True
        self.screen = []

    def phase_start(self, phase_name, parent_phase, num_steps):
        if parent_phase is not None:
            indents = 1 + self._active_phases[parent_phase]["nbIndents"]
        else:
            indents = 0
        self._active_phases[phase_name] = {"title": phase_name, "steps": 0,
                                           "num_steps": num_steps, "nbIndents": indents}
        self._redraw()

    def phase_finish(self, phase_name):
        del self._active_phases[phase_name]
        self._redraw()

    def step_complete(self, phase_name, step):
        self._active_phases[phase_name]["steps"] = step
        self._redraw()
        return self._step_result

    def _redraw(self):
        def bar(steps, num_steps, width=10):
            done = int(width * steps / float(num_steps))
            return "[" + "=" * done + "-" * (width - done) + "]"

        self.screen.append([f"{' ' * p['nbIndents']}{bar(p['steps'], p['num_steps'])} "
                            f"{p['title']} {p['steps']}/{p['num_steps']}"
                            for p in self._active_phases.values()])


TRT_LOGGER = trt.Logger(trt.Logger.WARNING)


def build_engine_onnx(model_file, monitor):
    builder = trt.Builder(TRT_LOGGER)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    config = builder.create_builder_config()
    config.progress_monitor = monitor
    parser = trt.OnnxParser(network, TRT_LOGGER)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, common.GiB(1))
    with open(model_file, "rb") as model:
        if not parser.parse(model.read()):
            for error in range(parser.num_errors):
                print(parser.get_error(error))
            return None
    engine_bytes = builder.build_serialized_network(network, config)
    runtime = trt.Runtime(TRT_LOGGER)
    return runtime.deserialize_cuda_engine(engine_bytes)


BACKENDS = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")])]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    if request.param == "cpu":  # a CPU plan even where a GPU is present (host buffers)
        from ember.compiler import builder

        monkeypatch.setattr(builder, "detect_arch", lambda: None)
    common.use_backend(common.CudaBackend() if request.param == "cuda" else common.CpuBackend())
    yield request.param
    common.use_backend(common.CpuBackend())


def test_simple_progress_monitor_sample(backend, tmp_path):
    # light_resnet50's logits are all ~1e19 (untrained statistics): check a stage-1 activation
    model = onnx.load(ModelData.MODEL_PATH)
    model.graph.output.extend([onnx.helper.make_empty_tensor_value_info("r15")])
    model_file = os.fspath(tmp_path / "ResNet50.onnx")
    onnx.save(model, model_file)
    monitor = SimpleProgressMonitor()
    engine = build_engine_onnx(model_file, monitor)
    inputs, outputs, bindings = common.allocate_buffers(engine)
    context = engine.create_execution_context()
    x = np.random.default_rng(5).standard_normal(ModelData.INPUT_SHAPE).astype(
        trt.nptype(ModelData.DTYPE))
    with common.CudaStreamContext() as stream:
        np.copyto(inputs[0].host, x.ravel())
        trt_outputs = common.do_inference(context, engine=engine, bindings=bindings,
                                          inputs=inputs, outputs=outputs, stream=stream)
        common.free_buffers(inputs, outputs)
    assert engine.device == backend
    # the monitor drew nested bars and ended with none open
    assert monitor._active_phases == {} and monitor.screen[-1] == []
    drawn = [line for frame in monitor.screen for line in frame]
    assert " [==========] Running passes" in "\n".join(drawn)
    assert any(line.startswith("[=====-----] Building plan 1/2") for line in drawn)
    if backend == "cuda":
        assert any(line.startswith("  [") and "Compiling kernels" in line for line in drawn)
    want = ort.InferenceSession(model_file, providers=["CPUExecutionProvider"]).run(
        ["r15"], {engine.get_tensor_name(0): x[None]})[0]
    got = trt_outputs[1]
    rel = np.linalg.norm(got - want.ravel()) / np.linalg.norm(want)
    assert rel < (1e-5 if backend == "cpu" else 5e-2), rel
