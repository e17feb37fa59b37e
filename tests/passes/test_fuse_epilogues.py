"""fuse-epilogues: conv / matmul with their elementwise consumers as one kernel, numbers
unchanged on the CPU executor, kernels compiled by NVRTC, fewer steps on the light models."""

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from ember.compiler import builder
from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.models import LIGHT_MODELS, light_model_path
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.onnx_cases import node_graph_model

rng = np.random.default_rng(0)
F32 = onnx.TensorProto.FLOAT


def _w(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _model(nodes: list[tuple], inputs: dict[str, np.ndarray], outputs: list[str],
           initializers: dict[str, np.ndarray]) -> onnx.ModelProto:
    return node_graph_model(nodes, inputs, outputs, initializers, opset=21)


X = _w(1, 4, 6, 6)
A = _w(3, 8)
CONV = {"w": _w(4, 4, 3, 3), "b": _w(4)}
BN = {"g": np.abs(_w(4)) + 0.5, "beta": _w(4), "mu": _w(4), "var": np.abs(_w(4)) + 0.5}

# case -> (model, feeds, steps expected, (template, origin) of the fused step or None)
CASES = {
    "conv_bn_relu": (
        _model([("Conv", ["x", "w", "b"], "c", {"pads": [1, 1, 1, 1]}),
                ("BatchNormalization", ["c", "g", "beta", "mu", "var"], "bn", {}),
                ("Relu", ["bn"], "y", {})], {"x": X}, ["y"], {**CONV, **BN}),
        {"x": X}, 1, ("conv", ["c", "bn", "y"])),
    "conv_add_relu": (
        _model([("Conv", ["x", "w", "b"], "c", {"pads": [1, 1, 1, 1]}),
                ("Add", ["c", "x"], "a", {}), ("Relu", ["a"], "y", {})],
               {"x": X}, ["y"], CONV),
        {"x": X}, 1, ("conv", ["c", "a", "y"])),
    "matmul_bias_gelu": (
        _model([("MatMul", ["a", "wm"], "m", {}), ("Add", ["m", "bm"], "s", {}),
                ("Gelu", ["s"], "y", {})], {"a": A}, ["y"], {"wm": _w(8, 5), "bm": _w(5)}),
        {"a": A}, 1, ("matmul", ["m", "s", "y"])),
    "gemm_relu": (
        _model([("Gemm", ["a", "wg", "bg"], "gm", {"transB": 1}), ("Relu", ["gm"], "y", {})],
               {"a": A}, ["y"], {"wg": _w(5, 8), "bg": _w(5)}),
        {"a": A}, 1, None),
    # the conv's result is a graph output too: it stays materialized, relu its own kernel
    "conv_shared": (
        _model([("Conv", ["x", "w", "b"], "c", {"pads": [1, 1, 1, 1]}),
                ("Relu", ["c"], "y", {})], {"x": X}, ["c", "y"], CONV),
        {"x": X}, 2, None),
    # ... and so when a second kernel reads it
    "conv_two_users": (
        _model([("Conv", ["x", "w", "b"], "c", {"pads": [1, 1, 1, 1]}),
                ("Relu", ["c"], "r", {}), ("Sigmoid", ["c"], "s", {})],
               {"x": X}, ["r", "s"], CONV),
        {"x": X}, 3, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_numbers_unchanged(case):
    model, feeds, steps, fused = CASES[case]
    manifest, sections = build_model(model)
    assert len(manifest["steps"]) == steps
    if fused is not None:
        template, origin = fused
        (step,) = [s for s in manifest["steps"] if s["template"] == template]
        assert step["origin"] == origin
        assert "epilogue" in step["params"]
    if case.startswith("conv_shared") or case == "conv_two_users":
        assert all("epilogue" not in s["params"] for s in manifest["steps"])
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))(feeds)
    want = ReferenceEvaluator(model).run(None, feeds)
    for out, expected in zip(model.graph.output, want, strict=True):
        np.testing.assert_allclose(got[out.name], expected, rtol=1e-4, atol=1e-5,
                                   err_msg=out.name)


def test_residual_is_an_extra_input():
    model, _, _, _ = CASES["conv_add_relu"]
    manifest, _ = build_model(model)
    (step,) = manifest["steps"]
    epilogue = step["params"]["epilogue"]
    assert [op["fn"] for op in epilogue["ops"]] == ["add", "relu"]
    assert epilogue["in_shapes"] == [[1, 4, 6, 6]]
    assert len(step["inputs"]) == 4  # x, w, b, then x again as the residual


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_kernels_compile(case):
    """NVRTC compiles the kernels with their epilogues (no GPU needed)."""
    model, _, _, _ = CASES[case]
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90"))
    on_host = [step["name"] for step in manifest["steps"] if step.get("device") == "cpu"]
    assert not on_host, on_host
    source = sections["cuda_source"].decode(errors="replace")
    if CASES[case][3] is not None:
        assert "epilogue fused:" in source


# steps per light model without and with fuse-epilogues
LIGHT_STEPS = {
    "bvlc_alexnet": (22, 14), "densenet121": (305, 246), "inception_v1": (138, 82),
    "inception_v2": (164, 94), "resnet50": (107, 57), "shufflenet": (109, 78),
    "squeezenet": (65, 39), "vgg19": (44, 25), "zfnet512": (22, 14),
}


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_steps(name, monkeypatch):
    path = light_model_path(name)  # shipped with onnx, a dependency: always present
    before, after = LIGHT_STEPS[name]
    assert len(build_model(str(path))[0]["steps"]) == after
    pipeline_for = builder.pipeline_for
    monkeypatch.setattr(builder, "pipeline_for", lambda config: [
        p for p in pipeline_for(config) if p.name != "fuse-epilogues"])
    assert len(build_model(str(path))[0]["steps"]) == before


# -- casts that change the stored type -------------------------------------------------------------

F16 = onnx.TensorProto.FLOAT16


def _typed_model(nodes: list, inputs: dict[str, np.ndarray], outputs: dict[str, int],
                 initializers: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A graph of (op_type, inputs, output, attrs) nodes with typed inputs / outputs."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op, ins, [out], name=out, **attrs)
         for op, ins, out, attrs in nodes], "g",
        [onnx.helper.make_tensor_value_info(
            n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in inputs.items()],
        [onnx.helper.make_tensor_value_info(o, t, None) for o, t in outputs.items()],
        [onnx.numpy_helper.from_array(a, n) for n, a in initializers.items()])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21)])


X16 = _w(1, 8, 6, 6).astype(np.float16)
W16 = {"w": (_w(8, 8, 3, 3) / 8).astype(np.float16)}
# case -> (model, feeds, the stored dtype of the one conv / matmul step)
CAST_CASES = {
    # FP32 conv + relu, result kept in FP16 (an FP32-pinned layer before FP16 ones)
    "conv_relu_to_fp16": (
        _typed_model([("Conv", ["x", "w", "b"], "c", {"pads": [1, 1, 1, 1]}),
                      ("Relu", ["c"], "r", {}), ("Cast", ["r"], "y", {"to": F16})],
                     {"x": X}, {"y": F16}, CONV), {"x": X}, "float16"),
    # FP16 conv, result kept in FP32 (an FP32 output, or an FP32-pinned layer after it)
    "half_conv_to_fp32": (
        _typed_model([("Conv", ["x", "w"], "c", {"pads": [1, 1, 1, 1]}),
                      ("Cast", ["c"], "y", {"to": F32})], {"x": X16}, {"y": F32}, W16),
        {"x": X16}, "float32"),
    # FP16 conv, flattened, then cast: the cast still fuses, the flatten is a view after it
    "half_conv_flatten_to_fp32": (
        _typed_model([("Conv", ["x", "w"], "c", {"pads": [1, 1, 1, 1]}),
                      ("Flatten", ["c"], "f", {}), ("Cast", ["f"], "y", {"to": F32})],
                     {"x": X16}, {"y": F32}, W16), {"x": X16}, "float32"),
    # FP16 matmul with a bias, result kept in FP32
    "half_matmul_bias_to_fp32": (
        _typed_model([("MatMul", ["a", "wm"], "m", {}), ("Add", ["m", "bm"], "s", {}),
                      ("Cast", ["s"], "y", {"to": F32})],
                     {"a": A.astype(np.float16)}, {"y": F32},
                     {"wm": _w(8, 5).astype(np.float16), "bm": _w(5).astype(np.float16)}),
        {"a": A.astype(np.float16)}, "float32"),
}


def _tensor_core_steps(manifest: dict) -> list[dict]:
    return [s for s in manifest["steps"] if s["template"] in ("conv", "matmul")]


def _without_fuse_epilogues(monkeypatch) -> None:
    pipeline_for = builder.pipeline_for
    monkeypatch.setattr(builder, "pipeline_for", lambda config: [
        p for p in pipeline_for(config) if p.name != "fuse-epilogues"])


@pytest.mark.parametrize("case", sorted(CAST_CASES))
def test_cast_fuses_and_numbers_are_unchanged(case, monkeypatch):
    """The cast joins the kernel (one step, no elementwise one), which stores the cast type;
    the CPU executor's result equals the unfused plan's bit for bit and the reference's."""
    model, feeds, stored = CAST_CASES[case]
    manifest, sections = build_model(model)
    (step,) = manifest["steps"]
    assert step["params"]["epilogue"]["out_dtype"] == stored
    assert step["params"]["out_dtypes"] != [stored]  # the type the kernel computes in
    assert "cast" in [op["fn"] for op in step["params"]["epilogue"]["ops"]]
    assert [o["dtype"] for o in manifest["outputs"]] == [stored]
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))(feeds)["y"]
    assert got.dtype == np.dtype(stored)

    _without_fuse_epilogues(monkeypatch)
    unfused, unfused_sections = build_model(model)
    assert len(unfused["steps"]) == 2 and unfused["steps"][-1]["template"] == "elementwise"
    want = Runtime("cpu").deserialize_cuda_engine(plan_bytes(unfused, unfused_sections))(feeds)
    np.testing.assert_array_equal(got, want["y"])
    (ref,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64),
                               rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("case", sorted(CAST_CASES))
def test_cast_fused_kernels_compile(case):
    """NVRTC compiles each kernel with its out pointer in the cast type (no GPU needed)."""
    model, _, stored = CAST_CASES[case]
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = _tensor_core_steps(manifest)
    assert step["params"]["epilogue"]["out_dtype"] == stored
    on_host = [s["name"] for s in manifest["steps"] if s.get("device") == "cpu"]
    assert not on_host, on_host
    source = sections["cuda_source"].decode(errors="replace")
    pointer = {"float32": "float*", "float16": "ember_half*"}[stored]
    assert f"{pointer} __restrict__ out0" in source
    assert f"stored as {stored}" in source
