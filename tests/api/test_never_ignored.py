"""Nothing in the public API is accepted and then ignored: every BuilderFlag, every BuilderConfig
setting, every member of the setting enums (creation flags, memory pools, profiling verbosity,
I/O formats) and every attribute a TensorRT user might set either changes what the build does
(the pipeline it runs, the plan it makes, or a limit it enforces) or raises an ember error that
names it. The lists are walked from the code, so a new member or field is checked too."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import ember
import ember as trt
from ember.compiler.builder import (
    IMPLEMENTED_FLAGS,
    REFIT_FLAGS,
    BuilderConfig,
    BuilderFlag,
    OptimizationProfile,
    build_model,
    pipeline_for,
)
from ember.compiler.pipeline import pipeline_text
from ember.errors import EmberError, UnsupportedError

W = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)


@pytest.fixture(autouse=True)
def _cpu_builds(monkeypatch):
    """Builders target the GPU present, as TensorRT's do: these API checks build CPU plans (or
    sm_90 plans with the cost model) wherever they run, so they need no GPU time."""
    from ember.compiler import builder

    monkeypatch.setattr(builder, "detect_arch", lambda: None)


def _model() -> onnx.ModelProto:
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             h.make_node("Relu", ["c"], ["y"], name="relu")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8])],
                         [numpy_helper.from_array(W, "w")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _gpu(**kwargs) -> BuilderConfig:
    """A GPU build's config that needs no GPU: kernels for sm_90, the cost model's tactics."""
    return BuilderConfig(target_arch="sm_90", autotune=False, **kwargs)


def _pipeline(config: BuilderConfig) -> str:
    return pipeline_text(pipeline_for(config))


# -- builder flags ---------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", list(BuilderFlag), ids=lambda f: f.name)
def test_every_builder_flag_takes_effect_or_is_refused_by_name(flag):
    config = BuilderConfig(flags=BuilderFlag.TF32 if flag is not BuilderFlag.TF32 else 0)
    before = (config.flags, _pipeline(config))
    if flag is BuilderFlag.INT8:  # it changes the model (calibrated into Q/DQ), not the passes
        config.set_flag(flag)
        with pytest.raises(EmberError, match="no Q/DQ nodes and the config no int8_calibrator"):
            build_model(_model(), config)
        return
    if flag is BuilderFlag.FP8:  # TensorRT 10's: plugins may take and give float8 tensors
        _check_fp8_plugins(config)
        return
    if flag in TIMING_CACHE_FLAGS:  # they change what the autotuner reads, not the pipeline
        from tests.api.test_timing_cache import check_timing_cache_flag

        check_timing_cache_flag(flag)
        return
    if flag in IMPLEMENTED_FLAGS and flag & REFIT_FLAGS:
        config.set_flag(flag)  # the same passes; the plan says how to refit its weights
        _, sections = build_model(_model(), config)
        assert "refit" in sections
        assert ("weights" in sections) == (flag is not BuilderFlag.STRIP_PLAN)
        return
    if flag is BuilderFlag.GPU_FALLBACK:  # it moves layers placed on the CPU to the GPU
        config.set_flag(flag)
        with pytest.raises(UnsupportedError, match="GPU_FALLBACK: a build without target_arch"):
            _pipeline(config)
        gpu = _gpu()
        before_gpu = _pipeline(gpu)
        gpu.set_flag(flag)
        assert _pipeline(gpu) != before_gpu  # emit-cuda's gpu_fallback option says it
        return
    if flag in IMPLEMENTED_FLAGS:
        config.set_flag(flag)
        assert config.get_flag(flag)
        assert _pipeline(config) != before[1]  # assign-precision's options say it
        return
    for set_it in (lambda: config.set_flag(flag),
                   lambda: setattr(config, "flags", config.flags | 1 << int(flag)),
                   lambda: BuilderConfig(flags=flag)):
        with pytest.raises(UnsupportedError, match=rf"BuilderFlag\.{flag.name} is not "
                                                   "implemented"):
            set_it()
        assert (config.flags, _pipeline(config)) == before  # never stored


def _check_fp8_plugins(config: BuilderConfig) -> None:
    """A plugin giving an E4M3 tensor builds with BuilderFlag.FP8 only; the model's E4M3 Q/DQ
    nodes around it need no flag."""
    import ember.plugin as trtp
    from ember.runtime import plugins as registry

    name = "test.fp8::ToE4M3"

    @trtp.register(name)
    def to_e4m3(x: trtp.TensorDesc) -> trtp.TensorDesc:
        return x.like()  # (E4M3 in: E4M3 out)

    try:
        x = h.make_tensor_value_info("x", T.FLOAT, [2, 4])
        y = h.make_tensor_value_info("y", T.FLOAT, [2, 4])
        nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                 h.make_node("ToE4M3", ["q"], ["p"], name="to_e4m3", domain="test.fp8"),
                 h.make_node("DequantizeLinear", ["p", "s", "z"], ["y"])]
        inits = [numpy_helper.from_array(np.array(0.5, np.float32), "s"),
                 h.make_tensor("z", T.FLOAT8E4M3FN, [], [0.0])]
        model = h.make_model(h.make_graph(nodes, "g", [x], [y], inits),
                             opset_imports=[h.make_opsetid("", 19), h.make_opsetid("test.fp8", 1)])
        with pytest.raises(UnsupportedError, match="plugin node 'to_e4m3' .*float8.*"
                                                   "BuilderFlag.FP8"):
            build_model(model, config)
        config.set_flag(BuilderFlag.FP8)
        manifest, _ = build_model(model, config)
        assert any(s["template"] == "plugin" for s in manifest["steps"])
    finally:
        registry.deregister(name)


def test_flags_are_a_bit_field_as_tensorrts():
    config = trt.Builder().create_builder_config()
    config.flags = 1 << int(trt.BuilderFlag.FP16)
    assert config.get_flag(trt.BuilderFlag.FP16) and not config.get_flag(trt.BuilderFlag.TF32)
    config.flags |= 1 << int(trt.BuilderFlag.BF16)
    assert config.get_flag(trt.BuilderFlag.BF16)
    with pytest.raises(EmberError, match="name no BuilderFlag"):
        config.flags = 1 << 40


TIMING_CACHE_FLAGS = (BuilderFlag.DISABLE_TIMING_CACHE, BuilderFlag.ERROR_ON_TIMING_CACHE_MISS)


# -- BuilderConfig settings ------------------------------------------------------------------------
# a value other than the default for each field, and the base config it is set on
SETTINGS = {
    "layer_precisions": (BuilderConfig, {"conv": "fp16"}),
    "layer_output_types": (BuilderConfig, {("conv", 0): "fp16"}),
    "layer_output_type_counts": (BuilderConfig, {"conv": 2}),  # conv has 1 output: refused
    "pipeline": (BuilderConfig, "legalize"),
    "target_arch": (BuilderConfig, "sm_90"),
    "allowed_io_formats": (BuilderConfig, ("NCHW", "NHWC")),
    "assign_layouts": (BuilderConfig, False),
    "packed_format": (BuilderConfig, True),
    "optimize": (BuilderConfig, False),
    "format_choice": (_gpu, "preferred"),
    "autotune": (BuilderConfig, True),
    "sm_count": (_gpu, 66),
    "forced_tile": (_gpu, "64,64,16,4,4"),
    # the model's batch is 1: a profile asking for 2 is read and refused
    "profiles": (BuilderConfig, [OptimizationProfile(
        {"x": ((1, 3, 8, 8), (1, 3, 8, 8), (2, 3, 8, 8))})]),
    "memory_pool_limits": (_gpu, {trt.MemoryPoolType.WORKSPACE: 0}),
    "profiling_verbosity": (BuilderConfig, trt.ProfilingVerbosity.NONE),
    "int8_calibrator": (BuilderConfig, trt.IInt8MinMaxCalibrator()),
    "device_types": (_gpu, {"conv": trt.DeviceType.CPU}),
    "default_device_type": (_gpu, trt.DeviceType.CPU),
    "hardware_compatibility_level": (_gpu, trt.HardwareCompatibilityLevel.AMPERE_PLUS),
}
# settings whose effect is vacuous in the base builds here, and why
VACUOUS = {
    "allow_cpu_fallback": "every kernel of the test model has a CUDA template: False changes "
                          "nothing until one lacks it (then the build fails, naming the step)",
    "timing_cache": "read and extended only by a build that times kernels on the GPU present "
                    "(tests/api/test_timing_cache.py builds with one, on a stand-in GPU)",
    "progress_monitor": "changes no plan: it is told of the build's phases and may cancel it "
                        "(tests/api/test_progress_monitor.py)",
}


def test_every_config_field_is_walked():
    fields = {f.name for f in dataclasses.fields(BuilderConfig)} - {"flags"}
    assert fields == set(SETTINGS) | set(VACUOUS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_config_setting_takes_effect_or_is_refused_by_name(name):
    make, value = SETTINGS[name]
    base = make()
    try:
        config = dataclasses.replace(base, **{name: value})
        config.check()
        if _pipeline(config) != _pipeline(base):
            return
        network = trt.Builder().create_network()
        model = _split_k_model() if name == "memory_pool_limits" else _model()
        assert trt.OnnxParser(network).parse(model.SerializeToString())
        built = trt.Builder(trt.Logger(trt.Logger.ERROR)).build_serialized_network(network, config)
    except EmberError as e:
        assert name.rstrip("s") in str(e) or str(value) in str(e) \
            or "WORKSPACE memory pool" in str(e), e
        return
    assert built != trt.Builder().build_serialized_network(network, base), \
        f"BuilderConfig.{name}={value!r} changed nothing"


def test_gpu_settings_in_a_cpu_build_are_refused():
    network = trt.Builder().create_network()
    trt.OnnxParser(network).parse(_model().SerializeToString())
    for setting in ({"autotune": True}, {"format_choice": "model"}):
        with pytest.raises(EmberError, match="GPU builds only"):
            trt.Builder().build_serialized_network(network, BuilderConfig(**setting))


TRT_CONFIG_ATTRIBUTES = ["algorithm_selector", "DLA_core", "engine_capability",
                         "builder_optimization_level", "max_aux_streams", "avg_timing_iterations",
                         "no_such_setting"]


@pytest.mark.parametrize("name", TRT_CONFIG_ATTRIBUTES)
def test_unknown_config_attributes_are_refused_by_name(name):
    config = trt.Builder().create_builder_config()
    with pytest.raises(UnsupportedError, match=rf"BuilderConfig\.{name} is not implemented"):
        setattr(config, name, object())
    assert not hasattr(config, name)


@pytest.mark.parametrize("obj,name", [
    (lambda: trt.Builder(), "max_threads"),
    (lambda: trt.Runtime(trt.Logger()), "max_threads"),
    (lambda: trt.Runtime(trt.Logger()), "engine_host_code_allowed"),
    (lambda: _context(), "debug_sync"),
    (lambda: _context(), "nvtx_verbosity"),
    (lambda: _context(), "no_such_setting"),
])
def test_builder_runtime_and_context_refuse_unknown_settings(obj, name):
    with pytest.raises(UnsupportedError, match=name):
        setattr(obj(), name, 1)


def _context():
    return trt.Runtime(trt.Logger()).deserialize_cuda_engine(
        ember.runtime.plan.plan_bytes(*build_model(_model()))).create_execution_context()


# -- the setting enums -----------------------------------------------------------------------------
@pytest.mark.parametrize("flag", list(trt.NetworkDefinitionCreationFlag), ids=lambda f: f.name)
def test_every_creation_flag_takes_effect_or_is_refused_by_name(flag):
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    if flag.name.startswith("PREFER_"):
        with pytest.raises(UnsupportedError, match=flag.name):
            builder.create_network(1 << int(flag))
        return
    network = builder.create_network(1 << int(flag))
    assert trt.OnnxParser(network).parse(_model().SerializeToString())
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    if flag is trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED:  # the network's types stand
        with pytest.raises(EmberError, match=r"STRONGLY_TYPED.*BuilderFlag\.FP16"):
            builder.build_serialized_network(network, config)
        network.get_layer(0).precision = trt.float16
        with pytest.raises(EmberError, match="layer 'conv' precision"):
            builder.build_serialized_network(network, builder.create_builder_config())
    else:  # EXPLICIT_BATCH: how every ember network is; FP16 builds
        builder.build_serialized_network(network, config)


@pytest.mark.parametrize("pool", list(trt.MemoryPoolType), ids=lambda p: p.name)
def test_every_memory_pool_is_honoured_or_refused_by_name(pool):
    config = _gpu()
    if pool is not trt.MemoryPoolType.WORKSPACE:
        with pytest.raises(UnsupportedError, match=f"MemoryPoolType.{pool.name}"):
            config.set_memory_pool_limit(pool, 1 << 20)
        assert config.get_memory_pool_limit(pool) == 2**63 - 1
        return
    network = trt.Builder().create_network()
    trt.OnnxParser(network).parse(_split_k_model().SerializeToString())
    quiet = trt.Builder(trt.Logger(trt.Logger.INTERNAL_ERROR))
    engines = {}
    for limit in (1 << 30, 0):  # room for the cost model's split-K; none: a tactic without it
        config.set_memory_pool_limit(pool, limit)
        assert config.get_memory_pool_limit(pool) == limit
        plan = quiet.build_serialized_network(network, config)
        engines[limit] = trt.Runtime(trt.Logger(trt.Logger.INTERNAL_ERROR), device="cpu") \
            .deserialize_cuda_engine(plan)
    assert engines[1 << 30].workspace_bytes > 0 and engines[0].workspace_bytes == 0
    (step,) = engines[0].steps
    assert step["params"]["tactic"].get("splits", 1) == 1


def _split_k_model() -> onnx.ModelProto:
    """A matmul with a long K and a small output: the cost model splits K (a workspace)."""
    w = np.random.default_rng(1).standard_normal((8192, 16)).astype(np.float32)
    graph = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [16, 8192])],
                         [h.make_tensor_value_info("y", T.FLOAT, [16, 16])],
                         [numpy_helper.from_array(w, "w")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize("verbosity", list(trt.ProfilingVerbosity), ids=lambda v: v.name)
def test_profiling_verbosity(verbosity):
    config = trt.Builder().create_builder_config()
    if verbosity is trt.ProfilingVerbosity.DETAILED:
        config.profiling_verbosity = verbosity
        return
    with pytest.raises(UnsupportedError, match=verbosity.name):
        config.profiling_verbosity = verbosity
    assert config.profiling_verbosity is trt.ProfilingVerbosity.DETAILED


@pytest.mark.parametrize("fmt", list(trt.TensorFormat), ids=lambda f: f.name)
def test_every_io_format_takes_effect_or_is_refused_by_name(fmt):
    config = BuilderConfig()
    if fmt.ember_format is None:
        with pytest.raises(EmberError, match=fmt.name):
            config.set_allowed_io_formats(fmt)
        return
    config.set_allowed_io_formats(fmt)
    assert config.allowed_io_formats == (fmt.ember_format,)


def test_options_of_the_convenience_entry_points_are_refused_by_name():
    with pytest.raises(EmberError, match="no_such_option"):
        ember.compile(_model(), no_such_option=1)
    with pytest.raises(EmberError, match="no_such_option"):
        ember.backend.prepare(_model(), "CPU", no_such_option=1)


def test_every_public_name_resolves():
    for name in dir(ember):
        assert getattr(ember, name) is not None, name
