"""Plugins (`ember.plugin`): a custom op of a custom domain through the ONNX parser and the
network API, into a plan that a fresh process runs with the runtime alone (numpy reference on
the CPU, the packed kernel on the GPU); registration errors; NVRTC compiles of the kernel."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import ember
import ember.plugin as trtp
from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model
from ember.compiler.network_types import LayerType
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import lower
from ember.errors import CompileError, ModelImportError, PluginError
from ember.plugin import TensorDesc
from ember.runtime import plugins as registry
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

NAME = "my.domain::ScaledSoftplus"
RNG = np.random.default_rng(0)

# the CUDA C the plugin gives: alpha * softplus(x), the attribute baked into the source
KERNEL = """\
extern "C" __global__ void scaled_softplus(const float* __restrict__ x, float* __restrict__ y) {{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < {n}) y[i] = {alpha}f * log1pf(expf(x[i]));
}}
"""

# the loading process registers only this (and imports only the runtime)
REFERENCE = """\
import numpy as np
from ember.runtime import plugins

@plugins.impl("my.domain::ScaledSoftplus")
def scaled_softplus(x, alpha, outputs, stream):
    outputs[0][...] = alpha * np.log1p(np.exp(x.astype(np.float64)))
"""


def expected(x: np.ndarray, alpha: float) -> np.ndarray:
    return alpha * np.log1p(np.exp(x.astype(np.float64)))


@pytest.fixture
def plugin():
    """ScaledSoftplus registered (shape function, kernel, numpy reference); forgotten after."""
    @trtp.register(NAME)
    def desc(x: TensorDesc, alpha: float) -> TensorDesc:
        return x.like()

    @trtp.aot_impl(NAME)
    def kernel(x: TensorDesc, alpha: float, outputs, tactic):
        n = x.numel()
        launch = trtp.KernelLaunchParams(grid_x=trtp.cdiv(n, 128), block_x=128)
        return "scaled_softplus", KERNEL.format(n=n, alpha=repr(float(alpha))), launch

    exec(REFERENCE, {})
    yield NAME
    registry.deregister(NAME)


def custom_model(shape=(4, 16), alpha=0.5, **node_kw) -> onnx.ModelProto:
    """x -> MatMul(W) -> my.domain::ScaledSoftplus(alpha) -> Add(b) -> y."""
    w = RNG.standard_normal((shape[-1], shape[-1])).astype(np.float32)
    b = RNG.standard_normal(shape[-1]).astype(np.float32)
    node = dict(domain="my.domain", name="softplus", alpha=alpha)
    node.update(node_kw)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node(node.pop("op_type", "ScaledSoftplus"), ["h"], ["s"], **node),
             helper.make_node("Add", ["s", "b"], ["y"], name="add")]
    graph = helper.make_graph(
        nodes, "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("my.domain", 1)])


def model_reference(model: onnx.ModelProto, x: np.ndarray, alpha: float) -> np.ndarray:
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    return expected(x.astype(np.float64) @ inits["w"], alpha) + inits["b"]


def build(model: onnx.ModelProto, arch: str | None = None) -> bytes:
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch, autotune=False))
    return plan_bytes(manifest, sections)


def run_fresh(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


FRESH = """\
import sys
import numpy as np
{register}
from ember.runtime.engine import Runtime
engine = Runtime(device={device!r}).load({plan!r})
out = engine(x=np.load({x!r}))
np.save({out!r}, out["y"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("xdsl", "onnx")
                or m.startswith(("ember.compiler", "ember.dialects", "ember.passes",
                                 "ember.codegen", "ember.plugin")))
assert not loaded, loaded
print("ok")
"""


def fresh_process_run(tmp_path, plan: bytes, x: np.ndarray, device: str, register: bool = True
                      ) -> tuple[subprocess.CompletedProcess, np.ndarray | None]:
    (tmp_path / "model.plan").write_bytes(plan)
    np.save(tmp_path / "x.npy", x)
    code = FRESH.format(register=REFERENCE if register else "", device=device,
                        plan=str(tmp_path / "model.plan"), x=str(tmp_path / "x.npy"),
                        out=str(tmp_path / "y.npy"))
    done = run_fresh(code, tmp_path)
    y = np.load(tmp_path / "y.npy") if (tmp_path / "y.npy").exists() else None
    return done, y


# -- the ONNX parser -----------------------------------------------------------------------------


def test_custom_op_builds_saves_and_runs_on_the_cpu_in_a_fresh_process(plugin, tmp_path):
    model = custom_model(alpha=0.75)
    plan = build(model)
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    done, y = fresh_process_run(tmp_path, plan, x, "cpu")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    np.testing.assert_allclose(y, model_reference(model, x, 0.75), rtol=1e-5, atol=1e-5)
    manifest = json.loads(json.dumps(ember.Runtime("cpu").deserialize_cuda_engine(plan).manifest))
    step = next(s for s in manifest["steps"] if s["template"] == "plugin")
    assert step["params"]["plugin"] == NAME and step["params"]["version"] == "1"
    assert step["params"]["attrs"] == {"alpha": 0.75}
    assert step["origin"] == ["softplus"]


def test_missing_reference_is_a_clear_error_in_the_loading_process(plugin, tmp_path):
    plan = build(custom_model())
    done, _ = fresh_process_run(tmp_path, plan, np.zeros((4, 16), np.float32), "cpu",
                                register=False)
    assert done.returncode != 0
    assert "PluginError" in done.stderr
    assert "plugin 'my.domain::ScaledSoftplus' (version 1) has no numpy reference" in done.stderr
    assert "ember.runtime.plugins.impl" in done.stderr


def test_missing_reference_in_this_process(plugin, tmp_path):
    engine = Runtime("cpu").deserialize_cuda_engine(build(custom_model()))
    registry.definition(NAME).reference = None
    with pytest.raises(PluginError, match=r"step 'plugin_\d+': plugin 'my.domain::"
                                          r"ScaledSoftplus' \(version 1\) has no numpy"):
        engine(x=np.zeros((4, 16), np.float32))


def test_unknown_op_without_a_plugin_names_op_and_domain():
    with pytest.raises(ModelImportError) as info:
        import_onnx(custom_model())
    text = str(info.value)
    assert "node 'softplus' (ScaledSoftplus): operator domain 'my.domain' is not supported" in text
    assert "no plugin registered as 'my.domain::ScaledSoftplus' version 1" in text
    # an op of the default domain ONNX does not define
    with pytest.raises(ModelImportError, match=r"node 'softplus' \(NoSuchOp\): unknown operator "
                                               r"at opset 17 \(no plugin registered as "
                                               r"'NoSuchOp' version 1"):
        import_onnx(custom_model(op_type="NoSuchOp", domain=""))


def test_versions_and_attributes_are_matched(plugin):
    with pytest.raises(ModelImportError, match=r"version 2; registered versions: 1"):
        import_onnx(custom_model(plugin_version="2"))
    with pytest.raises(ModelImportError, match=r"has no attribute\(s\) beta \(its attributes: "
                                               r"alpha\)"):
        import_onnx(custom_model(beta=2.0))
    bare = custom_model()
    del bare.graph.node[1].attribute[:]
    with pytest.raises(ModelImportError, match=r"needs attribute\(s\) alpha"):
        import_onnx(bare)


def test_tensorrt_spelling_of_a_plugin_node(plugin):
    """TensorRT's parser: a default-domain node with plugin_namespace / plugin_version."""
    model = custom_model(domain="", plugin_namespace="my.domain", plugin_version="1", alpha=2.0)
    text = str(import_onnx(model))
    assert 'nn.plugin "my.domain::ScaledSoftplus"(%' in text
    assert "attrs = {alpha = 2.000000e+00 : f64}" in text


def test_plugin_op_prints_through_the_levels(plugin, tmp_path):
    module = import_onnx(custom_model(shape=(2, 8)))
    nn_text = str(module)
    assert ('nn.plugin "my.domain::ScaledSoftplus"(%2) {version = "1", attrs = {alpha = '
            '5.000000e-01 : f64}} : (tensor<2x8xf32>) -> tensor<2x8xf32>') in nn_text
    kernel_text = str(lower(module, "kernels"))
    assert 'kernel.launch "plugin"' in kernel_text
    assert 'plugin = "my.domain::ScaledSoftplus"' in kernel_text
    assert "nn.plugin" not in kernel_text
    # ember-opt replays the nn stage in a process where the plugin is not registered
    src = tmp_path / "nn.mlir"
    src.write_text(textwrap.dedent("""\
        builtin.module {
          func.func @main(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
            %y = nn.plugin "my.domain::ScaledSoftplus"(%x) {version = "1",
              attrs = {alpha = 5.000000e-01 : f64}} : (tensor<2x8xf32>) -> tensor<2x8xf32>
            func.return %y : tensor<2x8xf32>
          }
        }
        """))
    done = subprocess.run([sys.executable, "-m", "ember.compiler.ember_opt", str(src), "-p",
                           "convert-nn-to-kernel"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'kernel.launch "plugin"(%x)' in done.stdout
    assert 'version = "1"' in done.stdout and "alpha = 5.000000e-01 : f64" in done.stdout


def test_shape_function_sets_result_types_and_dtypes_are_checked(plugin):
    @trtp.register("my.domain::Halve")
    def desc(x: TensorDesc) -> tuple[TensorDesc, TensorDesc]:
        first = TensorDesc((x.shape[0], x.shape[1] // 2), "float32")
        return first, TensorDesc((x.shape[0],), "int64")

    @trtp.autotune("my.domain::Halve")
    def tune(x, outputs):
        return [trtp.AutoTuneCombination("FP16, FP32, INT64")]

    try:
        node = helper.make_node("Halve", ["x"], ["a", "b"], domain="my.domain", name="halve")
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, None),
             helper.make_tensor_value_info("b", TensorProto.INT64, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("my.domain", 1)])
        with pytest.raises(PluginError, match=r"plugin 'my.domain::Halve' \(version 1\): dtypes "
                                              r"\(float32, float32, int64\) are not among"):
            import_onnx(model)

        @trtp.autotune("my.domain::Halve")
        def tune_fp32(x, outputs):
            return [trtp.AutoTuneCombination("FP32|FP16, FP32, INT64")]

        text = str(import_onnx(model))
        assert "-> (tensor<3x4xf32>, tensor<3xi64>)" in text
    finally:
        registry.deregister("my.domain::Halve")


# -- NVRTC ---------------------------------------------------------------------------------------


def test_plugin_kernel_compiles_with_nvrtc(plugin):
    compiled = trtp.compile_plugin(NAME, [TensorDesc((4, 16), "float32")], {"alpha": 0.5})
    assert compiled.cubin and compiled.ptx and b".entry plugin_" in compiled.ptx


def test_sm90_plan_packs_the_plugin_kernel(plugin):
    manifest, sections = build_model(custom_model(), BuilderConfig(target_arch="sm_90",
                                                                   autotune=False))
    step = next(s for s in manifest["steps"] if s["template"] == "plugin")
    assert step["cuda"]["kernel"].startswith("plugin_")
    assert step["cuda"]["grid"] == [1, 1, 1] and step["cuda"]["block"] == [128, 1, 1]
    source = sections["cuda_source"].decode(errors="replace")
    assert "// plugin 'my.domain::ScaledSoftplus' (version 1): kernel 'scaled_softplus'" in source
    assert "0.5f * log1pf(expf(x[i]))" in source


def test_kernel_compile_error_names_the_plugin_and_has_the_log(plugin):
    @trtp.aot_impl(NAME)
    def broken(x: TensorDesc, alpha: float, outputs, tactic):
        src = ('extern "C" __global__ void scaled_softplus(const float* x, float* y) '
               '{ y[0] = x[0] +; }\n')
        return "scaled_softplus", src, trtp.KernelLaunchParams(block_x=32)

    for attempt in (lambda: trtp.compile_plugin(NAME, [TensorDesc((4, 16), "float32")],
                                                {"alpha": 0.5}),
                    lambda: build(custom_model(), arch="sm_90")):
        with pytest.raises(CompileError) as info:
            attempt()
        text = str(info.value)
        assert text.startswith("the CUDA kernel of plugin 'my.domain::ScaledSoftplus' (version 1)"
                               " failed to compile")
        assert "error: expected an expression" in text and "expected an expression" in \
            info.value.log


def test_plugin_without_a_kernel_runs_on_the_host(plugin):
    registry.definition(NAME).emit = None
    manifest, _ = build_model(custom_model(), BuilderConfig(target_arch="sm_90", autotune=False))
    step = next(s for s in manifest["steps"] if s["template"] == "plugin")
    assert step["device"] == "cpu" and "has no CUDA kernel" in step["fallback"]


# -- the network API -----------------------------------------------------------------------------


def _network_with(add_layer, arch: str | None = None, shape: tuple[int, ...] = (4, 16)):
    builder = ember.Builder(ember.Logger())
    network = builder.create_network()
    x = network.add_input("x", ember.float32, shape)
    layer = add_layer(network, x)
    assert layer.type == LayerType.PLUGIN_V3
    assert layer.get_output(0).shape == shape
    relu = network.add_activation(layer.get_output(0), ember.ActivationType.RELU)
    relu.get_output(0).name = "y"
    network.mark_output(relu.get_output(0))
    config = builder.create_builder_config()
    config.target_arch = arch
    config.autotune = False
    return builder.build_serialized_network(network, config)


def _add_plugin(network, x):
    return network.add_plugin(trtp.op.my.domain.ScaledSoftplus(x, alpha=0.25))


def _add_plugin_v3(network, x):
    creator = trtp.get_plugin_registry().get_creator("ScaledSoftplus", "1", "my.domain")
    assert [f.name for f in creator.field_names] == ["alpha"]
    fields = trtp.PluginFieldCollection([trtp.PluginField(
        "alpha", np.array([0.25], np.float32), trtp.PluginFieldType.FLOAT32)])
    return network.add_plugin_v3([x], [], creator.create_plugin("softplus", fields))


ADD_PLUGIN = {"add_plugin": _add_plugin, "add_plugin_v3": _add_plugin_v3}


@pytest.mark.parametrize("how", ["add_plugin", "add_plugin_v3"])
def test_network_api_plugin_builds_and_runs_in_a_fresh_process(plugin, tmp_path, how):
    plan = _network_with(ADD_PLUGIN[how])
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    done, y = fresh_process_run(tmp_path, bytes(plan), x, "cpu")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(y, np.maximum(expected(x, 0.25), 0), rtol=1e-6, atol=1e-6)


def test_network_api_refusals(plugin):
    network = ember.Builder(ember.Logger()).create_network()
    x = network.add_input("x", ember.float32, (2, 3))
    with pytest.raises(ember.UnsupportedError, match="aot=False"):
        network.add_plugin(trtp.op.my.domain.ScaledSoftplus(x, alpha=1.0), aot=False)
    with pytest.raises(PluginError, match=r"needs attribute\(s\) alpha"):
        network.add_plugin(trtp.op.my.domain.ScaledSoftplus(x))
    with pytest.raises(ember.UnsupportedError, match="register_creator"):
        trtp.get_plugin_registry().register_creator(object())
    assert trtp.get_plugin_registry().get_creator("ScaledSoftplus", "2", "my.domain") is None


# -- inspect -------------------------------------------------------------------------------------


def test_inspect_lists_plugins(plugin, tmp_path, capsys):
    from ember.compiler.cli import main

    path = tmp_path / "model.plan"
    path.write_bytes(build(custom_model()))
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert ("plugin: my.domain::ScaledSoftplus version 1 (plugin_1; numpy reference registered "
            "in this process)") in text
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["Plugins"] == [{"plugin": NAME, "version": "1", "layers": ["plugin_1"],
                                "reference": True}]


# -- the GPU -------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_plan_runs_the_plugin_kernel_on_the_gpu_with_the_runtime_alone(plugin, tmp_path):
    from ember.compiler.builder import detect_arch

    model = custom_model(shape=(64, 256), alpha=0.75)
    plan = build(model, arch=detect_arch())
    x = RNG.standard_normal((64, 256)).astype(np.float32)
    done, y = fresh_process_run(tmp_path, plan, x, "cuda", register=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    np.testing.assert_allclose(y, model_reference(model, x, 0.75), rtol=1e-4, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("how", ["add_plugin", "add_plugin_v3"])
def test_network_api_plugin_runs_its_kernel_on_the_gpu_with_the_runtime_alone(plugin, tmp_path,
                                                                             how):
    """The network API's plugin layer in a plan for this GPU: a fresh process with the runtime
    alone and no reference registered runs the packed kernel."""
    from ember.compiler.builder import detect_arch

    plan = _network_with(ADD_PLUGIN[how], arch=detect_arch(), shape=(64, 256))
    step = next(s for s in ember.Runtime("cpu").deserialize_cuda_engine(plan).manifest["steps"]
                if s["template"] == "plugin")
    assert "cuda" in step and step.get("device") != "cpu"
    x = RNG.standard_normal((64, 256)).astype(np.float32)
    done, y = fresh_process_run(tmp_path, bytes(plan), x, "cuda", register=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    np.testing.assert_allclose(y, np.maximum(expected(x, 0.25), 0), rtol=1e-4, atol=1e-4)


def test_dynamic_shapes_reach_the_kernel_as_size_arguments(plugin):
    """With a profile the kernel generator sees `N` as a C expression over `sz_N` (the kernel's
    trailing int argument); the reference may return its output instead of filling it."""
    @trtp.register("my.domain::Scale")
    def desc(x: TensorDesc, alpha: float) -> TensorDesc:
        return x.like()

    @trtp.aot_impl("my.domain::Scale")
    def kernel(x: TensorDesc, alpha: float, outputs, tactic):
        n = x.numel()
        src = (f'extern "C" __global__ void scale(const float* x, float* y, int sz_N) {{\n'
               f"    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
               f"    if (i < {n}) y[i] = {alpha!r}f * x[i];\n}}\n")
        return "scale", src, trtp.KernelLaunchParams(grid_x=trtp.cdiv(n, 128), block_x=128)

    registry.register_reference("my.domain::Scale", lambda x, alpha: alpha * x)
    try:
        node = helper.make_node("Scale", ["x"], ["y"], domain="my.domain", alpha=3.0)
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("my.domain", 1)])
        profile = OptimizationProfile()
        profile.set_shape("x", (1, 16), (4, 16), (8, 16))
        manifest, sections = build_model(model, BuilderConfig(
            target_arch="sm_90", autotune=False, profiles=[profile]))
        launch = manifest["steps"][0]["cuda"]
        assert launch["grid"] == [["cdiv", "16*N", 128], 1, 1] and launch["sizes"] == ["N"]
        assert "if (i < (sz_N*16)) y[i] = 3.0f * x[i];" in sections["cuda_source"].decode(
            errors="replace")
        manifest, sections = build_model(model, BuilderConfig(target_arch=None,
                                                              profiles=[profile]))
        engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
        x = RNG.standard_normal((3, 16)).astype(np.float32)
        np.testing.assert_allclose(engine(x=x)["y"], 3.0 * x.astype(np.float64), rtol=1e-6)
    finally:
        registry.deregister("my.domain::Scale")


def test_malformed_plugin_step_and_wrong_reference_output(plugin):
    from ember.errors import PlanError, StepError
    from ember.runtime.cpu_kernels import KERNELS

    with pytest.raises(PlanError, match="a plugin step needs 'plugin' and 'version'"):
        KERNELS["plugin"]([np.zeros(2, np.float32)], {"plugin": 3, "attrs": {}})
    registry.register_reference(NAME, lambda x, alpha: np.zeros(5))
    engine = Runtime("cpu").deserialize_cuda_engine(build(custom_model()))
    with pytest.raises((PluginError, StepError), match=r"gave output #0 of shape \[5\], the "
                                                       r"plan's is \[4, 16\]"):
        engine(x=np.zeros((4, 16), np.float32))


def _plugin_files(tmp_path):
    """A user's files: defs.py registering the plugin's shape function (what a build needs),
    ref.py its numpy reference (what a CPU run needs), m.onnx using it; and an input."""
    defs = tmp_path / "defs.py"
    defs.write_text(textwrap.dedent(f"""\
        import ember.plugin as trtp
        from ember.plugin import TensorDesc

        @trtp.register({NAME!r})
        def desc(x: TensorDesc, alpha: float) -> TensorDesc:
            return x.like()
        """))
    (tmp_path / "ref.py").write_text(REFERENCE)
    model = custom_model(alpha=0.5)
    onnx.save(model, tmp_path / "m.onnx")
    return defs, model, RNG.standard_normal((4, 16)).astype(np.float32)


def test_ember_command_loads_plugin_files(tmp_path):
    """`--plugins FILE.py` on build / inspect / run: the build process registers the plugin,
    the running one only the reference."""
    defs, model, x = _plugin_files(tmp_path)
    np.savez(tmp_path / "in.npz", x=x)

    def ember_cli(*args):
        return subprocess.run([sys.executable, "-m", "ember.compiler.cli", *map(str, args)],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)

    done = ember_cli("build", "m.onnx", "-o", "m.plan")
    assert done.returncode == 1 and "the ember command: --plugins FILE.py" in done.stderr
    done = ember_cli("build", "m.onnx", "-o", "m.plan", "--plugins", defs)
    assert done.returncode == 0, done.stderr
    done = ember_cli("run", "m.plan", "--device", "cpu", "--inputs", "in.npz")
    assert done.returncode == 1 and "has no numpy reference registered" in done.stderr
    done = ember_cli("run", "m.plan", "--device", "cpu", "--inputs", "in.npz", "--outputs",
                     "out.npz", "--plugins", "ref.py")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"],
                               model_reference(model, x, 0.5), rtol=1e-5, atol=1e-5)
    done = ember_cli("inspect", "m.plan")
    assert "plugin: my.domain::ScaledSoftplus version 1 (plugin_1; numpy reference not " \
           "registered in this process)" in done.stdout
    # compare: ember runs the plugin op; onnxruntime, which has no such op, is named
    done = ember_cli("compare", "m.onnx", "--plugins", defs, "ref.py", "--backends",
                     "ember-cpu,onnxruntime", "--load-inputs", "in.npz")
    assert done.returncode == 1 and "ember-cpu: built" in done.stdout, done.stderr
    assert done.stderr.startswith("ember compare: error: backend onnxruntime cannot run the "
                                  "model:") and "Traceback" not in done.stderr


def test_ember_bench_takes_trtexecs_plugin_flags_as_python_files(tmp_path):
    """`ember bench --plugins=FILE.py` (and trtexec's --staticPlugins / --dynamicPlugins) runs
    the file before the build; a shared library and --setPluginsToSerialize are named errors."""
    defs, model, x = _plugin_files(tmp_path)
    np.save(tmp_path / "x.npy", x)
    timing = ["--iterations=2", "--warmUp=0", "--duration=0", "--device=cpu"]

    def bench(*args):
        return subprocess.run([sys.executable, "-m", "ember.compiler.cli", "bench", *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)

    done = bench("--onnx=m.onnx", *timing)
    assert done.returncode == 1 and "no plugin registered as 'my.domain::ScaledSoftplus'" in \
        done.stderr
    for flag in ("--plugins", "--staticPlugins", "--dynamicPlugins"):
        done = bench("--onnx=m.onnx", f"{flag}=defs.py", f"{flag}=ref.py",
                     "--loadInputs=x:x.npy", "--exportOutput=out.json", *timing)
        assert done.returncode == 0, done.stderr
        assert "[I] Loading supplied plugin library: defs.py" in done.stdout
        assert "&&&& PASSED" in done.stdout
        got = json.loads((tmp_path / "out.json").read_text())
        (y,) = [o for o in got if o["name"] == "y"]
        assert y["dimensions"] == "4x16"
        np.testing.assert_allclose(np.array(y["values"]).reshape(4, 16),
                                   model_reference(model, x, 0.5), rtol=1e-5, atol=1e-5)
    # a plan built with the plugin: run on the CPU, the reference is what the loader needs
    done = bench("--onnx=m.onnx", "--plugins=defs.py", "--saveEngine=m.plan", "--skipInference",
                 "--device=cpu")
    assert done.returncode == 0, done.stderr
    done = bench("--loadEngine=m.plan", *timing)
    assert done.returncode == 1 and "has no numpy reference registered" in done.stderr
    assert bench("--loadEngine=m.plan", "--plugins=ref.py", *timing).returncode == 0
    done = bench("--onnx=m.onnx", "--staticPlugins=libmyplugin.so", *timing)
    assert done.returncode == 1 and "--staticPlugins libmyplugin.so: ember loads plugins " \
        "from Python files" in done.stderr
    done = bench("--onnx=m.onnx", "--plugins=missing.py", *timing)
    assert done.returncode == 1 and "--plugins: no such file: missing.py" in done.stderr
    done = bench("--onnx=m.onnx", "--plugins=defs.py", "--setPluginsToSerialize=defs.py",
                 *timing)
    assert done.returncode == 1 and "--setPluginsToSerialize: trtexec's flag is not " \
        "implemented by ember (a plan carries no plugin code" in done.stderr


def test_array_attribute_and_in_place_shape_edit_as_tensorrts_circ_pad_sample():
    """TensorRT's circular-padding sample's shape function, ported: `pads` an int32 array
    attribute (ONNX ints), the output's last dims grown in place."""
    import numpy.typing as npt

    name = "my.domain::CircPad"

    @trtp.register(name)
    def desc(x: TensorDesc, pads: npt.NDArray[np.int32]) -> TensorDesc:
        out = x.like()
        for i in range(np.size(pads) // 2):
            out.shape_expr[x.ndim - i - 1] += int(pads[i * 2] + pads[i * 2 + 1])
        return out

    @trtp.impl(name)
    def reference(x, pads, outputs, stream):
        assert pads.dtype == np.int32
        widths = [(0, 0)] * (x.ndim - len(pads) // 2) + [
            (int(pads[2 * i]), int(pads[2 * i + 1])) for i in reversed(range(len(pads) // 2))]
        outputs[0][...] = np.pad(x, widths, mode="wrap")

    try:
        creator = trtp.get_plugin_registry().get_creator("CircPad", "1", "my.domain")
        assert [(f.name, f.type) for f in creator.field_names] == [
            ("pads", trtp.PluginFieldType.INT32)]
        node = helper.make_node("CircPad", ["x"], ["y"], domain="my.domain", pads=[1, 1, 2, 0])
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("my.domain", 1)])
        text = str(import_onnx(model))
        assert "-> tensor<1x2x5x6xf32>" in text and 'arrays = {pads = "int32"}' in text
        engine = Runtime("cpu").deserialize_cuda_engine(build(model))
        x = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
        np.testing.assert_array_equal(engine(x=x)["y"],
                                      np.pad(x, [(0, 0), (0, 0), (2, 0), (1, 1)], mode="wrap"))
    finally:
        registry.deregister(name)


@pytest.mark.parametrize("declared", [None, "FP32, FP32", "FP32|FP16, FP32|FP16"])
def test_fp16_builds_give_a_plugin_fp16_only_where_it_declares_it(plugin, declared):
    """Under FP16 a plugin keeps float32 (casts around it) unless its autotune function lists
    FP16; then its inputs, outputs and kernel are half."""
    if declared is not None:
        @trtp.autotune(NAME)
        def tune(x, outputs):
            return [trtp.AutoTuneCombination(declared)]

    def half_reference(x, alpha, outputs, stream):
        outputs[0][...] = alpha * np.log1p(np.exp(x.astype(np.float64)))

    registry.register_reference(NAME, half_reference)
    model = custom_model(shape=(8, 64), alpha=0.5)
    from ember.compiler.builder import precision_config

    config = precision_config(BuilderConfig(target_arch=None), fp16=True)
    manifest, sections = build_model(model, config)
    step = next(s for s in manifest["steps"] if s["template"] == "plugin")
    half = declared is not None and "FP16" in declared
    want = ["float16" if half else "float32"]
    assert (step["params"]["in_dtypes"], step["params"]["out_dtypes"]) == (want, want)
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    x = RNG.standard_normal((8, 64)).astype(np.float32)
    y = engine(x=x)["y"]
    reference = model_reference(model, x, 0.5)
    assert np.abs(y - reference).max() / np.abs(reference).max() < 1e-2
