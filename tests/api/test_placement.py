"""TensorRT's per-layer placement with ember's CPU as the second device: `config.set_device_type
(layer, DeviceType.CPU)` runs that layer's kernels on the host inside a GPU plan (emit-cuda's
`host` option, printed in the pipeline; `placed` on the kernel op), the layer table shows where
each runs and the copies; DLA, a CPU default and unknown layers are errors naming them. On a
GPU, a model with its middle third on the CPU matches the all-GPU plan."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.compiler.builder import BuilderConfig, build_model, pipeline_for
from ember.compiler.pipeline import pipeline_text
from ember.errors import EmberError, UnsupportedError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.inspector import layer_table
from ember.runtime.plan import plan_bytes
from tests.onnx_cases import small_cnn

MIDDLE = ("pool", "gap")  # small_cnn's nodes: conv relu pool gap flatten fc softmax


def _placed(arch: str = "sm_90") -> BuilderConfig:
    config = BuilderConfig(target_arch=arch, autotune=False)
    for node in MIDDLE:
        config.set_device_type(node, ember.DeviceType.CPU)
    return config


def test_placed_layers_run_on_the_host_and_the_table_says_so():
    config = _placed()
    assert config.get_device_type("pool") is ember.DeviceType.CPU
    assert config.is_device_type_set("gap") and not config.is_device_type_set("fc")
    assert config.get_device_type("fc") is ember.DeviceType.GPU
    assert 'emit-cuda{symbols="" host="gap,pool" gpu="" gpu_fallback=false}' in \
        pipeline_text(pipeline_for(config))
    stages = {}
    manifest, sections = build_model(small_cnn(), config,
                                     after_pass=lambda i, p, m: stages.setdefault(p.name, str(m)))
    assert 'placed = "cpu: pool"' in stages["emit-cuda"]
    where = {tuple(s["origin"]): (s.get("device"), s.get("fallback")) for s in manifest["steps"]}
    assert where[("pool",)] == ("cpu", "placed on the CPU (set_device_type: pool)")
    assert where[("gap",)] == ("cpu", "placed on the CPU (set_device_type: gap)")
    assert all(d is None and "cuda" in s for s, (d, _) in zip(manifest["steps"], where.values(),
                                                             strict=True)
               if not set(s["origin"]) & set(MIDDLE))
    table = layer_table(manifest)
    rows = {line.split()[0]: line for line in table.splitlines()[1:] if "_" in line.split()[0]}
    assert " host " in rows["pool_1"] and " gpu " in rows["conv_0"]
    # pool and gap are one host run: conv's output comes in, gap's goes out; pool's output
    # passes to gap on the host
    assert "host steps: 2 (2 placed on the CPU, 0 without a CUDA kernel) in 1 run(s); copies " \
           "per run: 1 device->host, 1 host->device" in table
    assert "  host run pool_1, reduce_2: device->host #3 2x4x8x8; host->device #5 2x4x1x1" \
        in table
    # the same results as the plan without placement (the CPU executor runs both)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    plain = build_model(small_cnn(), BuilderConfig(target_arch="sm_90", autotune=False))

    def run(built):
        return Runtime("cpu").deserialize_cuda_engine(plan_bytes(*built)) \
            .create_execution_context().execute({"x": x})["y"]

    np.testing.assert_array_equal(run((manifest, sections)), run(plain))


def test_layers_of_the_network_api_and_what_is_refused():
    builder = ember.Builder()
    network = builder.create_network()
    assert ember.OnnxParser(network).parse(small_cnn().SerializeToString())
    config = builder.create_builder_config()
    layer = network.get_layer(0)
    config.set_device_type(layer, ember.DeviceType.CPU)
    assert config.get_device_type(layer.name) is ember.DeviceType.CPU
    config.reset_device_type(layer)
    assert not config.is_device_type_set(layer)
    assert config.can_run_on(layer, ember.DeviceType.CPU) and \
        not config.can_run_on(layer, ember.DeviceType.DLA)
    assert config.default_device_type is ember.DeviceType.GPU
    with pytest.raises(UnsupportedError, match="DeviceType.DLA is not implemented"):
        config.set_device_type(layer, ember.DeviceType.DLA)
    with pytest.raises(UnsupportedError, match="default_device_type = DeviceType.DLA is not "):
        config.default_device_type = ember.DeviceType.DLA
    with pytest.raises(EmberError, match="default_device_type takes a DeviceType"):
        config.default_device_type = "cpu"
    assert config.default_device_type is ember.DeviceType.GPU
    with pytest.raises(EmberError, match="neither a layer nor a node name"):
        config.set_device_type(3, ember.DeviceType.CPU)
    bad = BuilderConfig(target_arch="sm_90", autotune=False)
    bad.set_device_type("nosuchnode", ember.DeviceType.CPU)
    with pytest.raises(EmberError, match="placement names 'nosuchnode'"):
        build_model(small_cnn(), bad)
    cpu = BuilderConfig()
    cpu.set_device_type("pool", ember.DeviceType.CPU)
    with pytest.raises(EmberError, match="a build without target_arch runs every layer"):
        build_model(small_cnn(), cpu)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_the_middle_third_on_the_cpu_matches_the_all_gpu_plan():
    from ember.compiler.builder import detect_arch

    arch = detect_arch()
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)

    def run(config):
        engine = Runtime("cuda").deserialize_cuda_engine(plan_bytes(*build_model(small_cnn(),
                                                                                 config)))
        return engine.create_execution_context().execute({"x": x})["y"]

    np.testing.assert_allclose(run(_placed(arch)),
                               run(BuilderConfig(target_arch=arch, autotune=False)),
                               rtol=1e-5, atol=1e-6)


def _cpu_default(arch: str = "sm_90") -> BuilderConfig:
    config = BuilderConfig(target_arch=arch, autotune=False)
    config.default_device_type = ember.DeviceType.CPU
    config.set_device_type("fc", ember.DeviceType.GPU)
    return config


def test_a_cpu_default_runs_every_layer_on_the_host_but_those_set_to_the_gpu():
    config = _cpu_default()
    assert config.get_device_type("conv") is ember.DeviceType.CPU
    assert config.get_device_type("fc") is ember.DeviceType.GPU
    assert 'emit-cuda{symbols="" host="*" gpu="fc" gpu_fallback=false}' in \
        pipeline_text(pipeline_for(config))
    manifest, sections = build_model(small_cnn(), config)
    on_gpu = [s["origin"] for s in manifest["steps"] if s.get("device") != "cpu"]
    assert on_gpu == [["fc"]]
    fallbacks = {tuple(s["origin"]): s.get("fallback") for s in manifest["steps"]}
    assert fallbacks[("pool",)] == "placed on the CPU (default_device_type: pool)"
    table = layer_table(manifest)
    assert "host steps: 4 (4 placed on the CPU, 0 without a CUDA kernel)" in table
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    want = Runtime("cpu").deserialize_cuda_engine(plan_bytes(*build_model(
        small_cnn(), BuilderConfig()))).create_execution_context().execute({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # without target_arch the plan is the CPU's anyway: the default says nothing more
    cpu = BuilderConfig()
    cpu.default_device_type = ember.DeviceType.CPU
    assert "emit-cuda" not in pipeline_text(pipeline_for(cpu))


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_a_cpu_default_plan_with_one_gpu_layer_matches_the_all_gpu_plan():
    from ember.compiler.builder import detect_arch

    arch = detect_arch()
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)

    def run(config):
        engine = Runtime("cuda").deserialize_cuda_engine(plan_bytes(*build_model(small_cnn(),
                                                                                 config)))
        return engine.create_execution_context().execute({"x": x})["y"]

    np.testing.assert_allclose(run(_cpu_default(arch)),
                               run(BuilderConfig(target_arch=arch, autotune=False)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_a_host_run_through_a_view_and_weights_copies_only_at_its_edges():
    """pool, gap, flatten (a view) and fc (its weights read from the plan on the host) are one
    host run: conv's output comes in, fc's goes out, and the result is the all-GPU plan's."""
    from ember.compiler.builder import detect_arch

    arch = detect_arch()
    config = BuilderConfig(target_arch=arch, autotune=False)
    for node in ("pool", "gap", "flatten", "fc"):
        config.set_device_type(node, ember.DeviceType.CPU)
    manifest, sections = build_model(small_cnn(), config)
    assert "copies per run: 1 device->host, 1 host->device" in layer_table(manifest)
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    got = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))(x=x)["y"]
    plain = build_model(small_cnn(), BuilderConfig(target_arch=arch, autotune=False))
    want = Runtime("cuda").deserialize_cuda_engine(plan_bytes(*plain))(x=x)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
