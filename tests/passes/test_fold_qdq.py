"""fold-qdq: models quantized by onnxruntime's quantizer (QDQ format) run their convs and
matmuls on int8 with int32 sums (on the CPU executor, and in GPU plans on the INT8 tensor-core
kernels where the channels allow), and give onnxruntime's results."""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

from ember.compiler.builder import BuilderConfig, build_model, pipeline_for
from ember.compiler.ort_compat import for_onnxruntime
from ember.compiler.pipeline import pipeline_text
from ember.runtime.cpu_kernels.common import stored_dtype
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.ort_qdq import run_as_written


def _init(rng, name, *shape, scale=0.2):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _cnn() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    rng = np.random.default_rng(0)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Relu", ["c2"], ["r2"]),
             h.make_node("GlobalAveragePool", ["r2"], ["p"]), h.make_node("Flatten", ["p"], ["f"]),
             h.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1)]
    graph = h.make_graph(
        nodes, "cnn", [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 16, 16])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 10])],
        [_init(rng, "w1", 8, 3, 3, 3), _init(rng, "b1", 8), _init(rng, "w2", 16, 8, 3, 3),
         _init(rng, "b2", 16), _init(rng, "fc", 10, 16), _init(rng, "fcb", 10)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), {"x": (2, 3, 16, 16)}


def _mlp() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """Linear layers as PyTorch exports them: MatMul by a [K, N] weight, then Add."""
    rng = np.random.default_rng(1)
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"]), h.make_node("Add", ["m1", "b1"], ["a1"]),
             h.make_node("Relu", ["a1"], ["r1"]), h.make_node("MatMul", ["r1", "w2"], ["m2"]),
             h.make_node("Add", ["m2", "b2"], ["y"])]
    graph = h.make_graph(
        nodes, "mlp", [h.make_tensor_value_info("x", T.FLOAT, [4, 8, 32])],
        [h.make_tensor_value_info("y", T.FLOAT, [4, 8, 16])],
        [_init(rng, "w1", 32, 64), _init(rng, "b1", 64), _init(rng, "w2", 64, 16),
         _init(rng, "b2", 16)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), {"x": (4, 8, 32)}


class _Reader(CalibrationDataReader):
    def __init__(self, shapes: dict[str, tuple]) -> None:
        self.batches = iter([{k: np.random.default_rng(i).standard_normal(s).astype(np.float32)
                              for k, s in shapes.items()} for i in range(8)])

    def get_next(self):
        return next(self.batches, None)


def _quantized(tmp_path, make, symmetric: bool) -> tuple[str, str, dict[str, tuple]]:
    model, shapes = make()
    fp32, qdq = str(tmp_path / "fp32.onnx"), str(tmp_path / "qdq.onnx")
    onnx.save(for_onnxruntime(model), fp32)
    options = dict(activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                   extra_options={"ActivationSymmetric": True, "WeightSymmetric": True}) \
        if symmetric else {}
    quantize_static(fp32, qdq, _Reader(shapes), quant_format=QuantFormat.QDQ, per_channel=True,
                    **options)
    return fp32, qdq, shapes


def _run(path: str, feed: dict[str, np.ndarray]) -> tuple[dict, np.ndarray]:
    manifest, sections = build_model(onnx.load(path), BuilderConfig())
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine.create_execution_context().execute(feed)["y"]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


@pytest.mark.parametrize("make, linear", [(_cnn, ("conv", "conv", "matmul")),
                                          (_mlp, ("matmul", "matmul"))], ids=["cnn", "mlp"])
def test_symmetric_int8_model_runs_its_convs_and_matmuls_on_int8(tmp_path, make, linear):
    fp32, qdq, shapes = _quantized(tmp_path, make, symmetric=True)
    feed = {k: np.random.default_rng(7).standard_normal(s).astype(np.float32)
            for k, s in shapes.items()}
    manifest, got = _run(qdq, feed)
    steps = [s for s in manifest["steps"] if s["template"] in ("conv", "matmul")]
    assert tuple(s["template"] for s in steps) == linear
    for step in steps:  # int8 in, int32 sums out; dequantized by the elementwise step after
        assert step["params"]["in_dtypes"][:2] == ["int8", "int8"]
        assert step["params"]["out_dtypes"] == ["int32"]
    want = run_as_written(qdq, feed)
    reference = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert _rel(got, want) < 1e-5  # the graph's arithmetic (onnxruntime unfused), float rounding
    assert _rel(got, reference) < 5e-2  # and an INT8 model's distance from FP32


def test_asymmetric_uint8_model_keeps_float_arithmetic_and_matches(tmp_path):
    """onnxruntime's default (uint8 activations with zero points): not TensorRT's INT8, so the
    Q/DQ nodes run dequantized, in float, as the model says."""
    _, qdq, shapes = _quantized(tmp_path, _cnn, symmetric=False)
    feed = {"x": np.random.default_rng(7).standard_normal(shapes["x"]).astype(np.float32)}
    manifest, got = _run(qdq, feed)
    assert all(s["params"]["in_dtypes"][0] == "float32" for s in manifest["steps"]
               if s["template"] in ("conv", "matmul"))
    want = run_as_written(qdq, feed)
    assert _rel(got, want) < 2e-2


def test_gpu_builds_fold_what_the_int8_tensor_cores_take():
    assert "fold-qdq" in [p.name for p in pipeline_for(BuilderConfig())]
    for arch, fp8, int8 in (("sm_90", "true", "true"), ("sm_89", "true", "true"),
                            ("sm_86", "false", "true"), ("sm_80", "false", "true"),
                            ("sm_75", "false", "false")):
        # E4M3 convs and matmuls where the tensor cores multiply E4M3 (test_fold_qdq_fp8.py),
        # int8 ones where they take int8 (tests/compiler/test_pre_ampere_targets.py)
        assert f'fold-qdq{{multiple=16 fp8={fp8} int8={int8}}}' in pipeline_text(pipeline_for(
            BuilderConfig(target_arch=arch, autotune=False)))


def _cnn16() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """_cnn with 16 channels after the first conv: its second conv and the Gemm take INT8 tensor
    cores; the first conv (3 input channels) too, its input and weight zero-padded to 16."""
    model, shapes = _cnn()
    rng = np.random.default_rng(2)
    inits = {t.name: t for t in model.graph.initializer}
    for name, shape in (("w1", (16, 3, 3, 3)), ("b1", (16,)), ("w2", (16, 16, 3, 3))):
        inits[name].CopyFrom(_init(rng, name, *shape))
    return model, shapes


def test_the_image_pad_folds_whatever_the_quantize_would_cost_in_nhwc(tmp_path, monkeypatch):
    """Where the costs make the image's quantize cheaper in NHWC (a measured build's noise:
    ResNet-50 INT8 on an H100, session 34), choose-formats still keeps it and the channel pad
    in NCHW, so the pad and the reformat fold into one (and a stem conv reads the image as
    space-to-depth blocks): not a transpose, a quantize and a pad."""
    from ember.codegen import format_costs

    kernel = format_costs.ModelCosts.kernel

    def nhwc_first(self, op, fmt):  # every layout-free kernel: NCHW half again as dear
        cost = kernel(self, op, fmt)
        flexible = getattr(getattr(op, "template", None), "data", "elementwise") != "conv"
        return cost * 1.5 if flexible and fmt == "NCHW" else cost

    monkeypatch.setattr(format_costs.ModelCosts, "kernel", nhwc_first)
    _, qdq, _ = _quantized(tmp_path, _cnn16, symmetric=True)
    manifest, _ = build_model(onnx.load(qdq), BuilderConfig(target_arch="sm_90",
                                                            autotune=False))
    assert [s["template"] for s in manifest["steps"]][:3] == ["elementwise", "reformat", "conv"]
    assert manifest["steps"][1]["params"]["padded_channels"] == 16


def test_int8_convs_and_matmuls_of_a_gpu_build_run_the_int8_tensor_core_kernels(tmp_path):
    _, qdq, shapes = _quantized(tmp_path, _cnn16, symmetric=True)
    manifest, sections = build_model(onnx.load(qdq), BuilderConfig(target_arch="sm_90",
                                                                   autotune=False))
    linear = [s for s in manifest["steps"] if s["template"] in ("conv", "matmul")]
    assert [(s["template"], s["params"]["in_dtypes"][0], s["params"].get("layout"))
            for s in linear] == [("conv", "int8", "NHWC"), ("conv", "int8", "NHWC"),
                                 ("matmul", "int8", None)]
    # the first conv reads 16 channels: 3 quantized ones and 13 of zeros, written by one
    # reformat (fold-channel-pad) from the quantized NCHW image
    assert [s["params"]["in_shapes"][:2] for s in linear][0] == [[2, 16, 16, 16], [16, 3, 3, 16]]
    assert [s["template"] for s in manifest["steps"]][:3] == ["elementwise", "reformat", "conv"]
    pack = manifest["steps"][1]["params"]
    assert (pack["reformat"], pack["channels"], pack["padded_channels"], pack["in_dtypes"]) == \
        ("NCHW->NHWC", 3, 16, ["int8"])
    assert not any(s.get("device") == "cpu" for s in manifest["steps"])
    # the dequantizing multiply and bias fused into each int8 kernel; the first one requantizes
    # for the second, which reads int8
    assert [s["params"]["epilogue"]["out_dtype"] for s in linear] == ["int8", "float32",
                                                                      "float32"]
    for step in linear:
        kernel = next(k for k in manifest["kernels"] if k["name"] == step["cuda"]["kernel"])
        text = sections["cuda_source"][kernel["source_offset"]:][:kernel["source_size"]]
        assert b"mma_16832_s8(frag" in text
    # the same plan on the CPU executor: the graph's arithmetic (onnxruntime unfused)
    feed = {"x": np.random.default_rng(7).standard_normal(shapes["x"]).astype(np.float32)}
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feed)["y"]
    want = run_as_written(qdq, feed)
    assert _rel(got, want) < 1e-5


def _conv_pool_conv() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """conv -> relu -> max pool -> conv over 16 channels (ResNet's stem shape, smaller)."""
    rng = np.random.default_rng(3)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
             h.make_node("Conv", ["p1", "w2", "b2"], ["y"], pads=[1, 1, 1, 1])]
    graph = h.make_graph(
        nodes, "stem", [h.make_tensor_value_info("x", T.FLOAT, [2, 16, 16, 16])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 16, 8, 8])],
        [_init(rng, "w1", 16, 16, 3, 3), _init(rng, "b1", 16), _init(rng, "w2", 16, 16, 3, 3),
         _init(rng, "b2", 16)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), {"x": (2, 16, 16, 16)}


def _residual() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """conv -> relu = a; conv -> relu -> conv, + a, relu (a ResNet basic block)."""
    rng = np.random.default_rng(4)
    nodes = [h.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c0"], ["a"]),
             h.make_node("Conv", ["a", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             h.make_node("Add", ["c2", "a"], ["s"]), h.make_node("Relu", ["s"], ["y"])]
    weights = [_init(rng, f"{k}{i}", *shape, scale=0.1) for i in range(3)
               for k, shape in (("w", (32, 32, 3, 3)), ("b", (32,)))]
    graph = h.make_graph(nodes, "block", [h.make_tensor_value_info("x", T.FLOAT, [2, 32, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 32, 8, 8])], weights)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), {"x": (2, 32, 8, 8)}


def _projection() -> tuple[onnx.ModelProto, dict[str, tuple]]:
    """ResNet's projection block: conv -> relu -> conv on one path, a strided-free 1x1 conv on
    the shortcut, added and relu'd (two convs' chains meet in the add)."""
    rng = np.random.default_rng(5)
    nodes = [h.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c0"], ["r0"]),
             h.make_node("Conv", ["r0", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Conv", ["x", "ws", "bs"], ["sc"]),
             h.make_node("Add", ["c1", "sc"], ["s"]), h.make_node("Relu", ["s"], ["y"])]
    weights = [_init(rng, "w0", 32, 16, 3, 3, scale=0.1), _init(rng, "b0", 32),
               _init(rng, "w1", 32, 32, 3, 3, scale=0.1), _init(rng, "b1", 32),
               _init(rng, "ws", 32, 16, 1, 1, scale=0.2), _init(rng, "bs", 32)]
    graph = h.make_graph(nodes, "projection",
                         [h.make_tensor_value_info("x", T.FLOAT, [2, 16, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 32, 8, 8])], weights)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), {"x": (2, 16, 8, 8)}


@pytest.mark.parametrize("arch", [None, "sm_90"], ids=["cpu", "sm90"])
@pytest.mark.parametrize("make, kernels", [
    (_conv_pool_conv, [("elementwise", "float32", "int8"), ("conv", "int8", "int8"),
                       ("pool", "int8", "int8"), ("conv", "int8", "float32")]),
    (_residual, [("elementwise", "float32", "int8"), ("conv", "int8", "int8"),
                 ("conv", "int8", "int8"), ("conv", "int8", "float32")]),
    # the shortcut conv stores int8 (its own dequantize + quantize as its epilogue); the
    # second conv's epilogue reads that int8, adds and relus
    (_projection, [("elementwise", "float32", "int8"), ("conv", "int8", "int8"),
                   ("conv", "int8", "int8"), ("conv", "int8", "float32")])],
    ids=["conv-pool-conv", "residual-block", "projection-block"])
def test_data_stays_int8_between_layers(tmp_path, arch, make, kernels):
    """quantize -> conv (its epilogue requantizes) -> max pool on int8 -> conv, and a residual
    block whose add (reading the int8 skip tensor) and relu fuse into the last conv: no float
    tensor between the layers; onnxruntime's output exactly (the GPU plan run by the CPU
    executor)."""
    _, qdq, shapes = _quantized(tmp_path, make, symmetric=True)
    manifest, sections = build_model(onnx.load(qdq), BuilderConfig(target_arch=arch,
                                                                   autotune=False))
    assert [(s["template"], s["params"]["in_dtypes"][0], stored_dtype(s["params"]))
            for s in manifest["steps"] if s["template"] != "transpose"] == kernels
    feed = {"x": np.random.default_rng(7).standard_normal(shapes["x"]).astype(np.float32)}
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feed)["y"]
    want = run_as_written(qdq, feed)
    assert _rel(got, want) < 1e-5


def _division_calls(manifest: dict, sections, template: str) -> dict[str, list[bytes]]:
    """Each `template` step's kernel: the division helpers its epilogue calls."""
    out = {}
    for step in manifest["steps"]:
        if step["template"] == template:
            kernel = next(k for k in manifest["kernels"] if k["name"] == step["cuda"]["kernel"])
            text = bytes(sections["cuda_source"][kernel["source_offset"]:][:kernel["source_size"]])
            out[step["name"]] = re.findall(rb"= (ember_div_\w+)\(e", text)
    return out


def test_int8_conv_requantizes_divide_without_guards(tmp_path):
    """The residual block's INT8 convs requantize (x * scale[c] + bias[c]) / s. A GPU build
    folds the division into the scale and bias (fold-quantize-scales): no division is left.
    Built without that pass, codegen sees the per-channel scale and bias through their
    [1, 1, 1, C] views (`kernel_step.constant_ranges`), bounds the dividend and takes
    Markstein's step without guards (`ember_div_round`) for every division; without those
    ranges the first one of each conv kept `ember_div_near`'s compares."""
    _, qdq, _ = _quantized(tmp_path, _residual, symmetric=True)
    config = BuilderConfig(target_arch="sm_90", autotune=False)
    manifest, sections = build_model(onnx.load(qdq), config)
    calls = _division_calls(manifest, sections, "conv")
    assert len(calls) == 3 and not any(calls.values()), calls
    passes = [p for p in pipeline_for(config) if p.name != "fold-quantize-scales"]
    manifest, sections = build_model(onnx.load(qdq), config, passes=passes)
    calls = _division_calls(manifest, sections, "conv")
    assert len(calls) == 3, calls
    for name, found in calls.items():
        assert found and set(found) == {b"ember_div_round"}, (name, found)


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.cuda
@pytest.mark.parametrize("make", [_cnn16, _conv_pool_conv, _residual, _projection],
                         ids=["cnn16", "conv-pool-conv", "residual-block", "projection-block"])
def test_int8_model_on_the_gpu_matches_onnxruntime(tmp_path, make):
    from ember.compiler.builder import detect_arch

    _, qdq, shapes = _quantized(tmp_path, make, symmetric=True)
    manifest, sections = build_model(onnx.load(qdq), BuilderConfig(target_arch=detect_arch()))
    assert not any(s.get("device") == "cpu" for s in manifest["steps"])
    feed = {"x": np.random.default_rng(7).standard_normal(shapes["x"]).astype(np.float32)}
    engine = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feed)["y"]
    want = run_as_written(qdq, feed)
    assert _rel(got, want) < 1e-5


def test_expanded_qdq_arithmetic_stays_fp32_under_fp16(tmp_path):
    """A Q/DQ pair no kernel takes (around an Add) is expanded into elementwise arithmetic that
    BuilderFlag.FP16 must leave in FP32: with a scale of 1e-6, x / scale overflows FP16 (and
    the scale is an FP16 subnormal). The output matches onnxruntime on the same model."""
    from ember.compiler.builder import BuilderFlag
    from ember.passes.precision_policy import QDQ_MATH

    scale = numpy_helper.from_array(np.array(1e-6, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    gain = numpy_helper.from_array(np.array(1e4, np.float32), "g")
    nodes = [h.make_node("Add", ["x", "x"], ["a"]),
             h.make_node("QuantizeLinear", ["a", "s", "z"], ["q"]),
             h.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             h.make_node("Mul", ["d", "g"], ["y"])]
    graph = h.make_graph(nodes, "qdq_add", [h.make_tensor_value_info("x", T.FLOAT, [4, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [4, 8])], [scale, zero, gain])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    # a = 2x of about 1e-4: q = round(a / 1e-6) near +-100, y = q / 100 near +-1
    x = (np.random.default_rng(3).standard_normal((4, 8)) * 3e-5).astype(np.float32)
    want = run_as_written(model, {"x": x})
    config = BuilderConfig()
    config.set_flag(BuilderFlag.FP16)
    module_text = []

    def keep(index, p, module):
        module_text.append((p.name, str(module)))

    manifest, sections = build_model(model, config, after_pass=keep)
    got = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context().execute({"x": x})["y"]
    # y is an integer over 100 computed in FP32, then stored as FP16: within FP16's rounding
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    after = dict(module_text)["assign-precision"]
    marked = [line for line in after.splitlines() if QDQ_MATH in line]
    assert marked and all("f16" not in line for line in marked), "\n".join(marked)


@pytest.mark.parametrize("arch", [None, "sm_90"])
def test_an_int8_sums_dequantize_stays_fp32_under_fp16(tmp_path, arch):
    """A folded int8 MatMul's int32 sum goes through its dequantize (x scale, + bias) in FP32
    under BuilderFlag.FP16, as TensorRT's does: 64 products of 100 x 100 sum to 640000, which
    FP16 cannot hold (its largest is 65504), and the scale 1e-4 is near FP16's subnormals. The
    output (64) matches onnxruntime; the dequantizing ops print FP32 after assign-precision."""
    from ember.compiler.builder import BuilderFlag

    inits = [numpy_helper.from_array(np.full((64, 16), 100, np.int8), "wq"),
             numpy_helper.from_array(np.array(0.01, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z")]
    nodes = [h.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             h.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             h.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
             h.make_node("MatMul", ["xd", "wd"], ["y"])]
    graph = h.make_graph(nodes, "int8_sum", [h.make_tensor_value_info("x", T.FLOAT, [8, 64])],
                         [h.make_tensor_value_info("y", T.FLOAT, [8, 16])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    x = np.full((8, 64), 1.0, np.float32)  # quantizes to 100
    want = run_as_written(model, {"x": x})
    np.testing.assert_allclose(want, 64.0, rtol=1e-6)
    config = BuilderConfig(target_arch=arch, autotune=False)
    config.set_flag(BuilderFlag.FP16)
    stages = {}
    manifest, sections = build_model(model, config,
                                     after_pass=lambda i, p, m: stages.setdefault(p.name, str(m)))
    assert "tensor<8x16xi32>" in stages["fold-qdq"]  # the MatMul sums int8 into int32
    after = stages["assign-precision"]
    dequantize = [line for line in after.splitlines()
                  if "xi32> ->" in line and "nn.cast" in line or '"mul"' in line]
    assert dequantize and all("f16" not in line for line in dequantize), "\n".join(dequantize)
    if arch is None or cuda_available():
        engine = Runtime("cuda" if arch else "cpu").deserialize_cuda_engine(
            plan_bytes(manifest, sections))
        got = engine.create_execution_context().execute({"x": x})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-3)


@pytest.mark.parametrize("arch", [None, pytest.param("sm_90", marks=pytest.mark.cuda)])
def test_a_quantized_berts_reshapes_and_transposes_move_int8(tmp_path, arch):
    """The tiny BERT quantized by onnxruntime (symmetric int8, QDQ): the quantizer's Q/DQ pairs
    around its reshapes and transposes (one scale on both sides) fold away, so every transpose
    moves int8 data; the output matches onnxruntime's on the same QDQ model: exactly on the
    CPU, within the issue's 2e-2 on the GPU (its erff and the fused tails' float order may move
    a value across a rounding boundary of the next quantize)."""
    from pathlib import Path

    fp32, qdq = Path(__file__).parents[1] / "models" / "bert_tiny.onnx", tmp_path / "qdq.onnx"
    rng = np.random.default_rng(2)
    feeds = [{"input_ids": rng.integers(0, 100, (2, 16)).astype(np.int64),
              "attention_mask": np.ones((2, 16), np.int64)} for _ in range(4)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(feeds)

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(fp32), str(qdq), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    manifest, sections = build_model(onnx.load(qdq), BuilderConfig(target_arch=arch,
                                                                    autotune=False))
    transposes = [s for s in manifest["steps"] if s["template"] == "transpose"]
    assert transposes and all(s["params"]["in_dtypes"] == ["int8"] for s in transposes)
    # each layer's Q, K and V projections run as one int8 GEMM (merge-parallel-matmuls) whose
    # fused tail stores the three requantized results side by side
    qkv = [s for s in manifest["steps"] if s["template"] == "matmul"
           and any(o.endswith("attention/self/query/MatMul") for o in s["origin"])]
    assert len(qkv) == 2 and all(
        any(o.endswith("attention/self/value/MatMul") for o in s["origin"])
        and s["params"]["in_dtypes"] == ["int8", "int8"] and stored_dtype(s["params"]) == "int8"
        and s["params"]["out_shapes"][0][-1] == 3 * 64 for s in qkv)
    # the attention's P x V runs in float (its operands are fake-quantized) and stores the
    # quantize of its output for the output projection itself (fuse-epilogues)
    pv = [s for s in manifest["steps"] if s["template"] == "matmul"
          and any(o.endswith("attention/self/MatMul_1") for o in s["origin"])]
    assert len(pv) == 2 and all(
        s["params"]["in_dtypes"][0] != "int8" and stored_dtype(s["params"]) == "int8"
        and any(o.endswith("MatMul_1_output_0_QuantizeLinear") for o in s["origin"])
        for s in pv)
    if arch is not None and not cuda_available():
        return  # the GPU build's structure is checked; its numbers need the GPU
    feed = feeds[0]
    got = Runtime("cuda" if arch else "cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context().execute(feed)["y"]
    want = run_as_written(qdq, feed)
    assert _rel(got, want) < (2e-2 if arch else 1e-5)


def test_the_residual_convs_kernel_reading_an_int8_shortcut_matches_numpy(tmp_path):
    """The projection block's last conv for sm_90: its epilogue reads the shortcut conv's int8
    result (the cut in fuse-elementwise); its CUDA C on emulated warps (g++) against the numpy
    kernel the CPU executor runs, on random operands."""
    from ember.codegen.emit_cuda import emit_step
    from ember.runtime.cpu_kernels import KERNELS
    from ember.runtime.manifest import decode
    from tests.codegen import simt_emulator

    if not simt_emulator.available():
        pytest.skip("g++ not found: the emulator compiles the kernel's CUDA C with it")
    _, qdq, _ = _quantized(tmp_path, _projection, symmetric=True)
    manifest, _ = build_model(onnx.load(qdq), BuilderConfig(target_arch="sm_90",
                                                            autotune=False))
    (step,) = [s for s in manifest["steps"] if s["template"] == "conv"
               and "int8" in ((s["params"].get("epilogue") or {}).get("in_dtypes") or [])]
    params = decode(step["params"])
    rng = np.random.default_rng(8)
    shapes = [*params["in_shapes"], *params["epilogue"]["in_shapes"]]
    dtypes = [*params["in_dtypes"], *params["epilogue"]["in_dtypes"]]
    inputs = [rng.integers(-100, 100, s).astype(d) if d == "int8"
              else (rng.random(s) * 1e-2).astype(d) for s, d in zip(shapes, dtypes, strict=True)]
    (want,) = KERNELS["conv"](inputs, params)
    name, spec = emit_step({"name": "conv", "template": "conv", "params": params})
    got = simt_emulator.run(spec, name, inputs, params["out_shapes"][0],
                            np.dtype(stored_dtype(params)), tmp_path)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
