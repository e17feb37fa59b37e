"""fold-qdq's FP8 (E4M3) lowering: a model whose Q/DQ nodes quantize to float8e4m3fn (as
NVIDIA's ModelOpt writes FP8 models: per-tensor activations, per-channel weights, opset 19) runs
its convs and matmuls on E4M3 operands with float32 sums — on the CPU executor, and in sm_89+
GPU plans on the FP8 tensor-core kernels — and gives the ONNX reference's results (onnxruntime
1.32's graph optimizer changes an FP8 Q/DQ model's results; with its optimizations off it gives
the reference's, to the last bit)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F8 = ml_dtypes.float8_e4m3fn


def _fp8_net(channels: int = 16, size: int = 16, pool: bool = False) -> onnx.ModelProto:
    """Q/DQ(E4M3) -> conv 3x3 (+bias) -> relu -> Q/DQ [-> max pool -> Q/DQ at the same scale]
    -> conv 1x1 -> Q/DQ -> global pool -> Q/DQ -> matmul: weights quantized per output channel
    (axis 0; the matmul's per column). `channels` 3: an image's, padded to 16 for the tensor
    cores."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def zero(name, n=None):
        inits.append(h.make_tensor(name, T.FLOAT8E4M3FN, [] if n is None else [n],
                                   [0.0] * (n or 1)))
        return name

    def qdq(x, scale, tag):
        s, z = const(f"{tag}_s", scale), zero(f"{tag}_z")
        nodes.append(h.make_node("QuantizeLinear", [x, s, z], [f"{tag}_q"]))
        nodes.append(h.make_node("DequantizeLinear", [f"{tag}_q", s, z], [f"{tag}_dq"]))
        return f"{tag}_dq"

    def weight(w, tag, axis):
        scale = (np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1).max(1) / 448)
        shape = [1] * w.ndim
        shape[axis] = -1
        q = (w / scale.reshape(shape)).astype(F8)
        inits.append(h.make_tensor(f"{tag}_wq", T.FLOAT8E4M3FN, list(w.shape),
                                   q.view(np.uint8).tobytes(), raw=True))
        inputs = [f"{tag}_wq", const(f"{tag}_ws", scale), zero(f"{tag}_wz", len(scale))]
        nodes.append(h.make_node("DequantizeLinear", inputs, [f"{tag}_w"], axis=axis))
        return f"{tag}_w"

    a = qdq("x", 0.02, "in")
    w1 = weight(rng.standard_normal((32, channels, 3, 3)) * 0.2, "c1", 0)
    b1 = const("c1_b", rng.standard_normal(32) * 0.1)
    nodes += [h.make_node("Conv", [a, w1, b1], ["c1_y"], pads=[1, 1, 1, 1]),
              h.make_node("Relu", ["c1_y"], ["c1_r"])]
    a = qdq("c1_r", 0.05, "r1")
    if pool:  # the quantizer's Q/DQ around a max pool, one scale: the pool moves E4M3 bytes
        nodes.append(h.make_node("MaxPool", [a], ["mp"], kernel_shape=[3, 3], pads=[1] * 4,
                                 strides=[2, 2]))
        a = qdq("mp", 0.05, "p1")
    w2 = weight(rng.standard_normal((64, 32, 1, 1)) * 0.2, "c2", 0)
    nodes.append(h.make_node("Conv", [a, w2], ["c2_y"]))
    a = qdq("c2_y", 0.05, "r2")
    nodes += [h.make_node("GlobalAveragePool", [a], ["gap"]),
              h.make_node("Flatten", ["gap"], ["flat"])]
    a = qdq("flat", 0.02, "f")
    nodes.append(h.make_node("MatMul", [a, weight(rng.standard_normal((64, 32)) * 0.2, "fc", 1)],
                             ["y"]))
    graph = h.make_graph(nodes, "fp8net",
                         [h.make_tensor_value_info("x", T.FLOAT, [2, channels, size, size])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 32])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 19)])


def _input(channels: int = 16) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((2, channels, 16, 16)).astype(np.float32)


def _reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def _build(model: onnx.ModelProto, arch: str | None, fp16: bool = False):
    config = BuilderConfig(target_arch=arch, autotune=False)
    if fp16:
        config.set_flag(BuilderFlag.FP16)
    return build_model(model, config)


def _linear_steps(manifest: dict) -> list[dict]:
    return [s for s in manifest["steps"] if s["template"] in ("conv", "matmul")]


@pytest.mark.parametrize("fp16", [False, True])
def test_fp8_model_runs_its_convs_and_matmul_on_e4m3_on_the_cpu(fp16):
    model = _fp8_net()
    manifest, sections = _build(model, None, fp16)
    linear = _linear_steps(manifest)
    assert len(linear) == 3
    for step in linear:
        assert step["params"]["in_dtypes"][:2] == ["float8_e4m3fn"] * 2
        assert step["params"]["out_dtypes"] == ["float32"]  # float32 sums, under FP16 too
        assert "tf32" not in step["params"]
    x = _input()
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    assert _rel(got, _reference(model, x)) < (2e-2 if fp16 else 1e-6)


def _ir_after(model: onnx.ModelProto, pipeline: str) -> str:
    from ember.compiler.onnx_importer import import_onnx
    from ember.compiler.pipeline import parse_pipeline_text, run_passes

    module = import_onnx(model)
    run_passes(module, parse_pipeline_text(pipeline))
    return str(module)


def test_fold_qdq_prints_e4m3_convs_with_float32_sums():
    text = _ir_after(_fp8_net(), "convert-onnx-to-nn,fold-qdq")
    assert "nn.conv %5, %6 {" in text
    assert ("(tensor<2x16x16x16xf8E4M3FN>, tensor<32x16x3x3xf8E4M3FN>) -> "
            "tensor<2x32x16x16xf32>") in text
    assert "nn.cast %4 {ember.qdq_math, to = f8E4M3FN, saturate}" in text
    off = _ir_after(_fp8_net(), "convert-onnx-to-nn,fold-qdq{fp8=false}")
    assert "nn.conv" in off and "-> tensor<2x32x16x16xf32>" in off
    assert "tensor<32x16x3x3xf8E4M3FN>) ->" not in off


@pytest.mark.parametrize("channels, pool", [(16, False), (3, True)],
                         ids=["16-channels", "image-and-max-pool"])
def test_sm90_plan_runs_every_step_on_the_gpu_with_fp8_wgmma_tactics(channels, pool):
    """Every step has a kernel: the E4M3 convs and matmul on wgmma, the casts, the reformat
    to NHWC (padding an image's 3 channels to 16 with E4M3 zeros) and the max pool on E4M3."""
    model = _fp8_net(channels, pool=pool)
    manifest, sections = _build(model, "sm_90")
    assert all("device" not in s for s in manifest["steps"]), \
        [s["name"] for s in manifest["steps"] if "device" in s]
    for step in _linear_steps(manifest):
        assert "wgmma" in step["params"]["tactic"], step["params"]["tactic"]
        kernel = next(k for k in manifest["kernels"] if k["name"] == step["cuda"]["kernel"])
        text = bytes(sections["cuda_source"][kernel["source_offset"]:][:kernel["source_size"]])
        assert b"f32.e4m3.e4m3" in text
    layers = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)).inspector
    table = layers.get_engine_information()
    rows = [line for line in table.splitlines() if line.strip().startswith(("conv_", "matmul_"))]
    assert len(rows) == 3 and all(" fp8 " in row for row in rows), table
    if pool:
        assert any(s["template"] == "pool" and s["params"]["in_dtypes"] == ["float8_e4m3fn"]
                   for s in manifest["steps"])
    x = _input(channels)  # the CPU executor runs the GPU plan's steps
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    assert _rel(got, _reference(model, x)) < 1e-6


def test_sm80_plans_run_fp8_models_dequantized():
    """No FP8 tensor cores before sm_89: the convs and matmul take the dequantized weights."""
    model = _fp8_net()
    manifest, sections = _build(model, "sm_80")
    for step in _linear_steps(manifest):
        assert "float8_e4m3fn" not in step["params"]["in_dtypes"]
    x = _input()
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    assert _rel(got, _reference(model, x)) < 1e-2


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.cuda
@pytest.mark.parametrize("fp16, channels, pool", [(False, 16, False), (True, 16, False),
                                                (False, 3, True)])
def test_fp8_model_on_the_gpu_matches_the_reference(fp16, channels, pool):
    from ember.compiler.builder import detect_arch

    model = _fp8_net(channels, pool=pool)
    manifest, sections = _build(model, detect_arch(), fp16)
    x = _input(channels)
    got = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    assert _rel(got, _reference(model, x)) < 2e-2
