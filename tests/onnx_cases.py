"""Shared test helpers: tiny ONNX models built in code, run through ember's nn level and ONNX's
reference evaluator, compared."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.interpret import interpret
from ember.compiler.onnx_importer import import_onnx
from ember.dialects import ember_context
from ember.passes.convert_onnx_to_nn import ConvertOnnxToNN


def single_node_model(op_type: str, inputs: dict[str, np.ndarray],
                      outputs: Sequence[str] | None = None, *,
                      initializers: dict[str, np.ndarray] | None = None, opset: int = 21,
                      **attrs) -> onnx.ModelProto:
    """A model of one node; `inputs` are graph inputs, `initializers` are weights. The output
    is "y" unless an input has that name (a tensor is written once: the importer refuses a
    node writing a graph input)."""
    initializers = initializers or {}
    names = list(inputs) + list(initializers)
    if outputs is None:
        outputs = ("y",) if "y" not in names else ("out",)
    node = helper.make_node(op_type, names, list(outputs), name=f"{op_type.lower()}0", **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in inputs.items()],
        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outputs],
        [onnx.numpy_helper.from_array(a, n) for n, a in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def attention_nodes() -> list[onnx.NodeProto]:
    """BERT's self-attention core over inputs q, k, v [b, s, heads * d] and initializers heads
    ([b, s, heads, d]), merged ([b, s, heads * d]), sqrt_d and mask: split into heads,
    scores / sqrt_d + mask, softmax, P V, heads merged into y (what fuse-attention fuses)."""
    n: list[onnx.NodeProto] = []

    def node(op, ins, out, **attrs):
        n.append(helper.make_node(op, ins, [out], **attrs))

    for x, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        node("Reshape", [x, "heads"], f"{x}4")
        node("Transpose", [f"{x}4"], f"{x}h", perm=perm)
    node("MatMul", ["qh", "kh"], "scores")
    node("Div", ["scores", "sqrt_d"], "scaled")
    node("Add", ["scaled", "mask"], "masked")
    node("Softmax", ["masked"], "p", axis=-1)
    node("MatMul", ["p", "vh"], "ctx")
    node("Transpose", ["ctx"], "ctx_t", perm=[0, 2, 1, 3])
    node("Reshape", ["ctx_t", "merged"], "y")
    return n


def small_cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv -> Relu -> MaxPool -> GlobalAveragePool -> Flatten -> MatMul -> Softmax, x [2,3,8,8],
    seeded weights (the same model every call)."""
    from onnx import TensorProto, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv.w")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "conv.b")
    fc = numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "fc.w")
    nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv", pads=[1] * 4),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc.w"], ["m"], name="fc"),
             helper.make_node("Softmax", ["m"], ["y"], name="softmax")]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], [w, b, fc])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def legalize(model: onnx.ModelProto):
    module = import_onnx(model)
    ConvertOnnxToNN().apply(ember_context(), module)
    module.verify()
    return module


def check_against_reference(model: onnx.ModelProto, inputs: dict[str, np.ndarray],
                            rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Legalize `model` to nn, interpret it, and compare with onnx.reference (dtype and values)."""
    module = legalize(model)
    got = interpret(module, inputs)
    want = ReferenceEvaluator(model).run(None, inputs)
    names = [o.name for o in model.graph.output]
    for name, expected in zip(names, want, strict=True):
        actual = got[name]
        assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)


def node_graph_model(nodes: list[tuple], inputs: dict[str, np.ndarray], outputs: list[str],
                     initializers: dict[str, np.ndarray], opset: int = 21) -> onnx.ModelProto:
    """A float32 graph of (op_type, inputs, output, attrs) nodes, each named after its output."""
    f32 = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node(op, ins, [out], name=out, **attrs) for op, ins, out, attrs in nodes],
        "g",
        [helper.make_tensor_value_info(n, f32, a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(o, f32, None) for o in outputs],
        [onnx.numpy_helper.from_array(a, n) for n, a in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
