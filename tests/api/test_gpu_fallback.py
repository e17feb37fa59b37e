"""BuilderFlag.GPU_FALLBACK with ember's CPU executor as the second device (TensorRT's DLA): a
layer placed on the CPU (set_device_type, default_device_type) that the CPU executor cannot run
— a plugin with no numpy reference registered — is a build error naming it, and with the flag
runs on the GPU while the layers around it stay on the host."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import ember
import ember.plugin as trtp
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model, pipeline_for
from ember.compiler.inspect_plan import PlanReport
from ember.compiler.network_types import LayerType
from ember.compiler.pipeline import pipeline_text
from ember.errors import EmberError, UnsupportedError
from ember.plugin import TensorDesc
from ember.runtime import plugins as registry
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.inspector import layer_table
from ember.runtime.plan import plan_bytes

NAME = "ember.test::Twice"
KERNEL = """\
extern "C" __global__ void twice(const float* __restrict__ x, float* __restrict__ y) {{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < {n}) y[i] = 2.0f * x[i] + 1.0f;
}}
"""
PLACED = ("relu", "twice", "sig")


@pytest.fixture
def twice():
    """ember.test::Twice (y = 2x + 1) with a CUDA kernel and no numpy reference."""
    @trtp.register(NAME)
    def desc(x: TensorDesc) -> TensorDesc:
        return x.like()

    @trtp.aot_impl(NAME)
    def kernel(x: TensorDesc, outputs, tactic):
        n = x.numel()
        launch = trtp.KernelLaunchParams(grid_x=trtp.cdiv(n, 128), block_x=128)
        return "twice", KERNEL.format(n=n), launch

    yield registry.definition(NAME)
    registry.deregister(NAME)


def _reference(x, outputs, stream):
    outputs[0][...] = 2 * x + 1


def expected(x: np.ndarray) -> np.ndarray:
    s = 1 / (1 + np.exp(-(2 * np.maximum(x, 0) + 1)))
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def model(shape=(4, 64)) -> onnx.ModelProto:
    """x -> Relu -> ember.test::Twice -> Sigmoid -> Softmax -> y."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Twice", ["r"], ["t"], name="twice", domain="ember.test"),
             helper.make_node("Sigmoid", ["t"], ["s"], name="sig"),
             helper.make_node("Softmax", ["s"], ["y"], name="soft", axis=-1)]
    graph = helper.make_graph(
        nodes, "fallback", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("ember.test", 1)])


def placed(arch: str | None = "sm_90", fallback: bool = False) -> BuilderConfig:
    config = BuilderConfig(target_arch=arch, autotune=False)
    for node in PLACED:
        config.set_device_type(node, ember.DeviceType.CPU)
    if fallback:
        config.set_flag(BuilderFlag.GPU_FALLBACK)
    return config


def devices(manifest: dict) -> dict[str, str]:
    return {",".join(s["origin"]): s.get("device", "gpu") for s in manifest["steps"]}


def test_a_placed_layer_the_cpu_cannot_run_is_an_error_naming_it(twice):
    with pytest.raises(EmberError) as info:
        build_model(model(), placed())
    text = str(info.value)
    assert "ONNX twice" in text and "is placed on the CPU, which cannot run it" in text
    assert "plugin 'ember.test::Twice' (version 1) has no numpy reference registered" in text
    assert "BuilderFlag.GPU_FALLBACK" in text


def test_with_gpu_fallback_it_runs_on_the_gpu_and_the_rest_stays_on_the_host(twice, tmp_path):
    config = placed(fallback=True)
    assert 'emit-cuda{symbols="" host="relu,sig,twice" gpu="" gpu_fallback=true}' in \
        pipeline_text(pipeline_for(config))
    manifest, sections = build_model(model(), config)
    assert devices(manifest) == {"relu": "cpu", "twice": "gpu", "sig": "cpu", "soft": "gpu"}
    step = next(s for s in manifest["steps"] if s["template"] == "plugin")
    assert "cuda" in step and "fallback" not in step
    table = layer_table(manifest)
    assert "host steps: 2 (2 placed on the CPU, 0 without a CUDA kernel)" in table
    path = tmp_path / "m.plan"
    path.write_bytes(plan_bytes(manifest, sections))
    why = PlanReport(str(path)).explain_text("twice")
    assert "placement: gpu" in why and "placed on the CPU, which cannot run it" in why
    # the same layers through the CPU default: everything else on the host
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    config.default_device_type = ember.DeviceType.CPU
    config.set_flag(BuilderFlag.GPU_FALLBACK)
    manifest, _ = build_model(model(), config)
    assert devices(manifest) == {"relu": "cpu", "twice": "gpu", "sig": "cpu", "soft": "cpu"}


def test_with_a_reference_registered_the_plugin_runs_on_the_host(twice):
    registry.register_reference(NAME, _reference)
    manifest, sections = build_model(model(), placed(fallback=True))
    assert devices(manifest)["twice"] == "cpu"
    step = next(s for s in manifest["steps"] if s["template"] == "plugin")
    assert step["fallback"] == "placed on the CPU (set_device_type: twice)"
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))(x=x)["y"]
    np.testing.assert_allclose(got, expected(x), rtol=1e-6, atol=1e-6)


def test_what_cannot_fall_back_is_refused_by_name(twice):
    cpu_plan = BuilderConfig()
    cpu_plan.set_flag(BuilderFlag.GPU_FALLBACK)
    with pytest.raises(UnsupportedError, match="GPU_FALLBACK: a build without target_arch"):
        build_model(model(), cpu_plan)
    twice.emit = None  # no CUDA kernel either: it runs nowhere
    with pytest.raises(EmberError, match="runs nowhere: the CPU cannot run it"):
        build_model(model(), placed(fallback=True))


def test_can_run_on_says_whether_the_cpu_can_run_a_plugin_layer(twice):
    builder = ember.Builder(ember.Logger())
    network = builder.create_network()
    x = network.add_input("x", ember.float32, (4, 64))
    layer = network.add_plugin(trtp.op.ember.test.Twice(x))
    assert layer.type == LayerType.PLUGIN_V3
    relu = network.add_activation(x, ember.ActivationType.RELU)
    config = builder.create_builder_config()
    assert not config.can_run_on(layer, ember.DeviceType.CPU)
    assert config.can_run_on(layer, ember.DeviceType.GPU)
    assert config.can_run_on(relu, ember.DeviceType.CPU)
    registry.register_reference(NAME, _reference)
    assert config.can_run_on(layer, ember.DeviceType.CPU)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_the_fallen_back_plugin_runs_on_the_gpu_between_host_steps(twice):
    from ember.compiler.builder import detect_arch

    manifest, sections = build_model(model((64, 256)), placed(detect_arch(), fallback=True))
    assert devices(manifest)["twice"] == "gpu" and devices(manifest)["sig"] == "cpu"
    x = np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)
    got = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))(x=x)
    np.testing.assert_allclose(got["y"], expected(x), rtol=1e-5, atol=1e-6)
