"""Small ONNX models with dynamic dims (dim_param), for the dynamic-shape tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _weight(rng: np.random.Generator, name: str, *shape: int, scale: float = 0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def cnn(batch: str = "N") -> onnx.ModelProto:
    """conv + relu + max pool + flatten + gemm + softmax over x [batch, 3, 8, 8]."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["g"], transB=1),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        [_weight(rng, "w", 16, 3, 3, 3), _weight(rng, "b", 16), _weight(rng, "w2", 10, 256),
         _weight(rng, "b2", 10)])
    return _model(graph)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    # IR version 8: what older onnxruntime releases (the GPU host's) still load
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def attention_block(hidden: int = 32, heads: int = 4) -> onnx.ModelProto:
    """A pre-LN self-attention block over x [B, S, hidden] (both B and S dynamic): LayerNorm,
    packed QKV matmul, per-head softmax(QK^T / sqrt(d)) V, output projection, residual add,
    then a GELU-free MLP with a residual. Reshapes use 0 (copy the dim), so they stay symbolic."""
    rng = np.random.default_rng(1)
    d = hidden // heads
    init = [numpy_helper.from_array(np.ones(hidden, np.float32), "ln_s"),
            numpy_helper.from_array(np.zeros(hidden, np.float32), "ln_b"),
            _weight(rng, "wq", hidden, hidden), _weight(rng, "wk", hidden, hidden),
            _weight(rng, "wv", hidden, hidden), _weight(rng, "wo", hidden, hidden),
            _weight(rng, "w1", hidden, 2 * hidden), _weight(rng, "b1", 2 * hidden),
            _weight(rng, "w2", 2 * hidden, hidden),
            numpy_helper.from_array(np.array([0, 0, heads, d], np.int64), "split_shape"),
            numpy_helper.from_array(np.array([0, 0, hidden], np.int64), "merge_shape"),
            numpy_helper.from_array(np.array(1 / np.sqrt(d), np.float32), "scale")]
    n = helper.make_node
    nodes = [n("LayerNormalization", ["x", "ln_s", "ln_b"], ["h"], axis=-1, epsilon=1e-5)]
    for name in "qkv":
        nodes += [n("MatMul", ["h", f"w{name}"], [f"{name}0"]),
                  n("Reshape", [f"{name}0", "split_shape"], [f"{name}1"])]
    nodes += [n("Transpose", ["q1"], ["q"], perm=[0, 2, 1, 3]),
              n("Transpose", ["k1"], ["k"], perm=[0, 2, 3, 1]),
              n("Transpose", ["v1"], ["v"], perm=[0, 2, 1, 3]),
              n("MatMul", ["q", "k"], ["s0"]), n("Mul", ["s0", "scale"], ["s"]),
              n("Softmax", ["s"], ["p"], axis=-1), n("MatMul", ["p", "v"], ["o0"]),
              n("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3]),
              n("Reshape", ["o1", "merge_shape"], ["o2"]), n("MatMul", ["o2", "wo"], ["o3"]),
              n("Add", ["x", "o3"], ["r"]),
              n("MatMul", ["r", "w1"], ["m0"]), n("Add", ["m0", "b1"], ["m1"]),
              n("Relu", ["m1"], ["m2"]), n("MatMul", ["m2", "w2"], ["m3"]),
              n("Add", ["r", "m3"], ["y"])]
    graph = helper.make_graph(
        nodes, "attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "S", hidden])], init)
    return _model(graph)
