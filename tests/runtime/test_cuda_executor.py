"""The CUDA executor against onnx.reference: one small graph per kernel template, and the light_*
models against their stored outputs. GPU tests carry the `cuda` marker and skip without a GPU;
`test_case_builds` compiles every case's kernels with NVRTC and runs everywhere."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F = TensorProto.FLOAT
needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, inits=(), opset=21):
    """inputs: [(name, shape[, elem])]; outputs: [(name, elem)]; inits: [(name, array)]."""
    graph = helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info(n, rest[1] if len(rest) > 1 else F, rest[0])
         for n, *rest in inputs],
        [helper.make_tensor_value_info(n, e, None) for n, e in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _one(op, shapes, inits=(), out_elem=F, **attrs):
    names = [f"x{i}" for i in range(len(shapes))]
    node = helper.make_node(op, names + [n for n, _ in inits], ["y"], **attrs)
    ins = [(n, s) for n, s in zip(names, shapes, strict=True)]
    return _model([node], ins, [("y", out_elem)], inits)


def _w(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


CASES = {
    "relu": _one("Relu", [[2, 3, 4]]),
    "add_broadcast": _one("Add", [[2, 3, 4], [3, 1]]),
    "sigmoid_mul": _model([helper.make_node("Sigmoid", ["x0"], ["s"]),
                           helper.make_node("Mul", ["x0", "s"], ["y"])],
                          [("x0", [4, 33])], [("y", F)]),
    "erf_gelu": _model([helper.make_node("Erf", ["x0"], ["e"]),
                        helper.make_node("Gelu", ["e"], ["y"])], [("x0", [3, 7])], [("y", F)]),
    "clip": _one("Clip", [[3, 5]], inits=[("lo", np.float32(-0.5)), ("hi", np.float32(0.7))]),
    "leaky_relu": _one("LeakyRelu", [[3, 5]], alpha=0.2),
    "less_where": _model([helper.make_node("Less", ["x0", "x1"], ["c"]),
                          helper.make_node("Where", ["c", "x0", "x1"], ["y"])],
                         [("x0", [4, 5]), ("x1", [5])], [("y", F)]),
    "matmul_batched": _one("MatMul", [[2, 1, 4, 6], [3, 6, 5]]),
    "matmul_weight": _one("MatMul", [[5, 37]], inits=[("w", _w(37, 19))]),
    "gemm": _one("Gemm", [[3, 40]], inits=[("w", _w(24, 40)), ("b", _w(24))], transB=1),
    "conv_groups": _one("Conv", [[2, 4, 9, 9]], inits=[("w", _w(6, 2, 3, 3)), ("b", _w(6))],
                        strides=[2, 2], pads=[1, 0, 1, 0], dilations=[2, 1], group=2),
    "conv_1x1": _one("Conv", [[1, 16, 7, 7]], inits=[("w", _w(8, 16, 1, 1))]),
    "conv_1d": _one("Conv", [[1, 2, 10]], inits=[("w", _w(3, 2, 3))], pads=[1, 1]),
    "conv_3d": _one("Conv", [[1, 2, 4, 5, 6]], inits=[("w", _w(2, 1, 2, 2, 2))], group=2),
    "conv_depthwise": _one("Conv", [[1, 8, 12, 12]], inits=[("w", _w(8, 1, 3, 3))], group=8,
                           pads=[1, 1, 1, 1], strides=[2, 2]),
    "maxpool": _one("MaxPool", [[1, 3, 9, 9]], kernel_shape=[3, 3], strides=[2, 2]),
    "maxpool_ceil": _one("MaxPool", [[1, 3, 10, 10]], kernel_shape=[3, 3], strides=[2, 2],
                         ceil_mode=1),
    "avgpool_pad": _one("AveragePool", [[1, 3, 9, 9]], kernel_shape=[3, 3], strides=[2, 2],
                        pads=[1, 1, 1, 1]),
    "avgpool_include_pad": _one("AveragePool", [[1, 3, 9, 9]], kernel_shape=[3, 3],
                                strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    "global_avgpool": _one("GlobalAveragePool", [[1, 32, 7, 7]]),
    "lppool": _one("LpPool", [[1, 2, 8, 8]], kernel_shape=[2, 2], strides=[2, 2], p=2),
    **{f"reduce_{op}": _one(f"Reduce{op}", [[3, 4, 5]], inits=[("axes", np.array([0, 2]))],
                            keepdims=0)
       for op in ("Sum", "Mean", "Max", "Min", "Prod", "L1", "L2", "SumSquare",
                  "LogSumExp")},
    "reduce_logsum": _one("ReduceLogSum", [[3, 4, 5]], inits=[("axes", np.array([1]))]),
    "softmax": _one("Softmax", [[2, 3, 40]], axis=1),
    "logsoftmax": _one("LogSoftmax", [[2, 300]], axis=-1),
    "batch_norm": _one("BatchNormalization", [[2, 6, 5, 5]],
                       inits=[("s", _w(6)), ("b", _w(6)), ("m", _w(6)),
                              ("v", np.abs(_w(6)) + 0.5)]),
    "layer_norm": _one("LayerNormalization", [[2, 3, 64]], inits=[("s", _w(64)), ("b", _w(64))],
                       axis=-1),
    "group_norm": _one("GroupNormalization", [[2, 6, 4, 4]], inits=[("s", _w(6)), ("b", _w(6))],
                       num_groups=3),
    "instance_norm": _one("InstanceNormalization", [[2, 3, 5, 5]],
                          inits=[("s", _w(3)), ("b", _w(3))]),
    "lrn": _one("LRN", [[1, 10, 6, 6]], size=5, alpha=1e-2, beta=0.75, bias=1.0),
    "transpose": _one("Transpose", [[2, 3, 4, 5]], perm=[0, 2, 3, 1]),
    "concat": _one("Concat", [[1, 4, 3, 3], [1, 2, 3, 3], [1, 5, 3, 3]], axis=1),
    "slice": _one("Slice", [[6, 7]], inits=[("st", np.array([1, -1])), ("en", np.array([5, -8])),
                                            ("ax", np.array([0, 1])), ("sp", np.array([2, -2]))]),
    "gather": _one("Gather", [[5, 4]], inits=[("i", np.array([[0, -1, 2], [4, 1, 1]]))], axis=0),
    "pad_constant": _one("Pad", [[3, 4]], inits=[("p", np.array([1, 2, 1, 3])),
                                                 ("v", np.float32(1.5))], mode="constant"),
    "pad_reflect": _one("Pad", [[3, 4]], inits=[("p", np.array([2, 2, 1, 3]))], mode="reflect"),
    "pad_edge": _one("Pad", [[1, 2, 3, 4]], inits=[("p", np.array([0, 0, 1, 2, 0, 0, 1, 3]))],
                     mode="edge"),
    "pad_wrap": _one("Pad", [[3, 4]], inits=[("p", np.array([1, 2, 1, 3]))], mode="wrap"),
    "expand": _one("Expand", [[3, 1]], inits=[("s", np.array([2, 3, 4]))]),
    "tile": _one("Tile", [[2, 3]], inits=[("r", np.array([2, 3]))]),
    "argmax": _one("ArgMax", [[3, 7, 5]], out_elem=TensorProto.INT64, axis=1),
    "argmin_last": _one("ArgMin", [[3, 7, 5]], out_elem=TensorProto.INT64, axis=-1, keepdims=0,
                        select_last_index=1),
    "convtranspose_groups_outpad": _one("ConvTranspose", [[1, 4, 5, 5]],
                                        inits=[("w", _w(4, 3, 3, 3)), ("b", _w(6))],
                                        strides=[2, 2], pads=[1, 1, 1, 1],
                                        output_padding=[1, 1], group=2),
    "convtranspose_1d_dilated": _one("ConvTranspose", [[2, 2, 7]], inits=[("w", _w(2, 3, 2))],
                                     dilations=[2], pads=[1, 0]),
    "resize_nearest": _model([helper.make_node("Resize", ["x0", "", "s"], ["y"], mode="nearest",
                                               nearest_mode="round_prefer_ceil",
                                               coordinate_transformation_mode="asymmetric")],
                             [("x0", [1, 2, 4, 5])], [("y", F)],
                             [("s", np.array([1, 1, 2, 1.5], np.float32))]),
    "resize_linear": _model([helper.make_node("Resize", ["x0", "", "s"], ["y"], mode="linear")],
                            [("x0", [1, 2, 6, 5])], [("y", F)],
                            [("s", np.array([1, 1, 0.5, 1.6], np.float32))]),
    "resize_linear_align": _model([helper.make_node("Resize", ["x0", "", "", "z"], ["y"],
                                                    mode="linear",
                                                    coordinate_transformation_mode=
                                                    "align_corners")],
                                  [("x0", [1, 1, 4, 4])], [("y", F)],
                                  [("z", np.array([1, 1, 7, 3]))]),
    "resize_cubic": _model([helper.make_node("Resize", ["x0", "", "s"], ["y"], mode="cubic")],
                           [("x0", [1, 1, 5, 5])], [("y", F)],
                           [("s", np.array([1, 1, 1.4, 2], np.float32))]),
    "cumsum": _one("CumSum", [[4, 5]], inits=[("axis", np.array(1))]),
    "cumsum_exclusive_reverse": _one("CumSum", [[4, 5]], inits=[("axis", np.array(0))],
                                     exclusive=1, reverse=1),
    "trilu_upper": _one("Trilu", [[2, 4, 5]], inits=[("k", np.array(1))], upper=1),
    "trilu_lower": _one("Trilu", [[5, 4]], inits=[("k", np.array(-1))], upper=0),
    "gather_elements": _one("GatherElements", [[3, 4]],
                            inits=[("i", np.array([[0, -1], [-4, 3], [2, -2]]))], axis=1),
    "einsum_bmm": _one("Einsum", [[2, 3, 4], [2, 4, 5]], equation="bij,bjk->bik"),
    "quantize_per_axis": _one("QuantizeLinear", [[2, 3, 4]],
                              inits=[("s", np.array([0.01, 0.02, 0.05], np.float32)),
                                     ("z", np.array([-3, 0, 7], np.int8))],
                              out_elem=TensorProto.INT8, axis=1),
    "qdq_per_axis": _model([helper.make_node("QuantizeLinear", ["x0", "s", "z"], ["q"], axis=1),
                            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"],
                                             axis=1)],
                           [("x0", [2, 3, 4])], [("y", F)],
                           [("s", np.array([0.01, 0.02, 0.05], np.float32)),
                            ("z", np.array([128, 100, 0], np.uint8))]),
    # fuse-epilogues: the elementwise consumers run inside the conv / matmul kernel
    "conv_bias_relu_fused": _model(
        [helper.make_node("Conv", ["x0", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])],
        [("x0", [2, 4, 7, 7])], [("y", F)], [("w", _w(6, 4, 3, 3)), ("b", _w(6))]),
    "conv_residual_relu_fused": _model(
        [helper.make_node("Conv", ["x0", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["c", "x0"], ["a"]), helper.make_node("Relu", ["a"], ["y"])],
        [("x0", [1, 8, 9, 9])], [("y", F)], [("w", _w(8, 8, 3, 3))]),
    "conv_channel_scale_fused": _model(
        [helper.make_node("Conv", ["x0", "w"], ["c"]),
         helper.make_node("Mul", ["c", "s"], ["y"])],
        [("x0", [1, 3, 5, 5])], [("y", F)], [("w", _w(4, 3, 1, 1)), ("s", _w(4, 1, 1))]),
    "matmul_bias_gelu_fused": _model(
        [helper.make_node("MatMul", ["x0", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["s"]),
         helper.make_node("Gelu", ["s"], ["y"])],
        [("x0", [2, 5, 33])], [("y", F)], [("w", _w(33, 17)), ("b", _w(17))]),
    "gemm_sigmoid_fused": _model(
        [helper.make_node("Gemm", ["x0", "w", "b"], ["g"], transB=1),
         helper.make_node("Sigmoid", ["g"], ["y"])],
        [("x0", [3, 40])], [("y", F)], [("w", _w(24, 40)), ("b", _w(24))]),
}


def _inputs(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        out[vi.name] = RNG.standard_normal(shape).astype(np.float32)
    return out


def _lrn(x: np.ndarray, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    """ONNX LRN as its specification reads: the squares of channels c - floor((size-1)/2) ..
    c + ceil((size-1)/2)."""
    lo, hi = (size - 1) // 2, size // 2
    sq = np.square(x.astype(np.float64))
    total = np.zeros_like(sq)
    for c in range(x.shape[1]):
        total[:, c] = sq[:, max(0, c - lo):min(x.shape[1], c + hi + 1)].sum(axis=1)
    return (x / (bias + alpha / size * total) ** beta).astype(x.dtype)


def _conv_transpose_2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, strides, pads,
                       output_padding, group: int) -> np.ndarray:
    """ONNX ConvTranspose (2-D, no dilation) by scattering each input element: onnx.reference's
    ConvTranspose mishandles group > 1."""
    n, c, h, wd = x.shape
    mg, kh, kw = w.shape[1:]
    cg = c // group
    full = [strides[0] * (h - 1) + kh + output_padding[0],
            strides[1] * (wd - 1) + kw + output_padding[1]]
    buf = np.zeros((n, group * mg, *full), np.float64)
    for ci in range(c):
        g = ci // cg
        for i in range(h):
            for j in range(wd):
                top, left = i * strides[0], j * strides[1]
                buf[:, g * mg:(g + 1) * mg, top:top + kh, left:left + kw] += (
                    x[:, ci, i, j][:, None, None, None] * w[ci][None])
    out = buf[:, :, pads[0]:full[0] - pads[2], pads[1]:full[1] - pads[3]]
    return (out + b.reshape(1, -1, 1, 1)).astype(np.float32)


def _build(model) -> tuple[dict, dict]:
    return build_model(model.SerializeToString(), BuilderConfig(target_arch="sm_90"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_case_builds(case):
    """Every case's kernels compile (no GPU needed)."""
    manifest, sections = _build(CASES[case])
    assert manifest["kernels"] or not manifest["steps"]
    on_host = [(step["name"], step["fallback"]) for step in manifest["steps"]
               if step.get("device") == "cpu"]
    assert not on_host, on_host


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case", sorted(CASES))
def test_case_matches_reference(case):
    model = CASES[case]
    manifest, sections = _build(model)
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    assert engine.device == "cuda"
    feeds = _inputs(model)
    if case == "reduce_logsum":
        feeds = {k: np.abs(v) + 0.1 for k, v in feeds.items()}
    if case == "lrn":  # onnx.reference's LRN loops over the batch dim, not the channels
        expected = _lrn(feeds["x0"], size=5, alpha=1e-2, beta=0.75, bias=1.0)
    elif case == "convtranspose_groups_outpad":
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        expected = _conv_transpose_2d(feeds["x0"], inits["w"], inits["b"], [2, 2],
                                      [1, 1, 1, 1], [1, 1], group=2)
    else:
        (expected,) = ReferenceEvaluator(model).run(None, feeds)
    got = engine.create_execution_context().execute(feeds)["y"]
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@needs_gpu
@pytest.mark.cuda
def test_contexts_share_weights_and_run_twice():
    manifest, sections = _build(CASES["gemm"])
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    feeds = _inputs(CASES["gemm"])
    a = engine.create_execution_context().execute(feeds)["y"]
    ctx = engine.create_execution_context()
    b, c = ctx.execute(feeds)["y"], ctx.execute(feeds)["y"]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b, c)


# Steps CUDA codegen does not cover (a float16 dequantize runs on the host inside a GPU plan),
# and a plan of views only
HOST_CASES = {
    "dequantize_between_kernels": _model(
        [helper.make_node("Relu", ["x0"], ["r"]),
         helper.make_node("QuantizeLinear", ["r", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "sh"], ["h"]),
         helper.make_node("Cast", ["h"], ["f"], to=F),
         helper.make_node("Sigmoid", ["f"], ["y"])],
        [("x0", [3, 7])], [("y", F)],
        [("s", np.float32(0.05)), ("z", np.int8(0)), ("sh", np.float16(0.05))]),
    "views_only": _model([helper.make_node("Flatten", ["x0"], ["y"], axis=1)],
                         [("x0", [2, 3, 4])], [("y", F)]),
}


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case", sorted(HOST_CASES))
def test_host_fallback_and_kernelless_plans_run_on_cuda(case):
    model = HOST_CASES[case]
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(*_build(model)))
    assert engine.device == "cuda"
    feeds = _inputs(model)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    got = engine.create_execution_context().execute(feeds)["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2",
                                  "resnet50", "shufflenet", "squeezenet", "vgg19", "zfnet512"])
def test_light_model_on_gpu(name):
    from ember.compiler.models import light_model_case

    path, feeds, expected = light_model_case(name)
    manifest, sections = build_model(str(path), BuilderConfig(target_arch="sm_90"))
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    assert engine.device == "cuda"
    got = next(iter(engine.create_execution_context().execute(feeds).values()))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
