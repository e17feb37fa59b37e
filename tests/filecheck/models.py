"""Small ONNX models for the IR tests: `python models.py NAME OUT.onnx`."""

import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper


def reshape_chain(batch):
    """PyTorch's `x.view(x.size(0), -1)`: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    nodes = [
        h.make_node("Shape", ["x"], ["shape"], name="shape"),
        h.make_node("Gather", ["shape", "zero"], ["n"], name="gather", axis=0),
        h.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
        h.make_node("Concat", ["n1", "minus_one"], ["target"], name="concat", axis=0),
        h.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    graph = h.make_graph(nodes, "reshape_chain",
                         [h.make_tensor_value_info("x", T.FLOAT, [batch, 8, 4, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def expand_chain():
    """PyTorch's `t.expand(x.size(0), 4)`: the target shape from Shape -> Gather -> Concat, and
    a -1 turned into 1 through ConstantOfShape -> Mul(-1) -> Equal -> Where."""
    nodes = [
        h.make_node("Shape", ["x"], ["shape"], name="shape"),
        h.make_node("Gather", ["shape", "zero"], ["n"], name="gather", axis=0),
        h.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
        h.make_node("Concat", ["n1", "four"], ["size"], name="concat", axis=0),
        h.make_node("ConstantOfShape", ["two"], ["ones"], name="ones",
                    value=numpy_helper.from_array(np.array([1], np.int64))),
        h.make_node("Mul", ["ones", "minus_one"], ["neg"], name="neg"),
        h.make_node("Equal", ["size", "neg"], ["is_neg"], name="equal"),
        h.make_node("Where", ["is_neg", "ones", "size"], ["target"], name="where"),
        h.make_node("Expand", ["t", "target"], ["y"], name="expand"),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([4], np.int64), "four"),
             numpy_helper.from_array(np.array([2], np.int64), "two"),
             numpy_helper.from_array(np.array(-1, np.int64), "minus_one"),
             numpy_helper.from_array(np.arange(4, dtype=np.float32).reshape(1, 4), "t")]
    graph = h.make_graph(nodes, "expand_chain",
                         [h.make_tensor_value_info("x", T.FLOAT, ["N", 3])],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def slice_to_length():
    """HF's `position_ids[:, :seq_len]` with a dynamic sequence: Slice's end from Shape."""
    nodes = [
        h.make_node("Shape", ["x"], ["shape"], name="shape"),
        h.make_node("Gather", ["shape", "one"], ["n"], name="gather", axis=0),
        h.make_node("Unsqueeze", ["n", "axes"], ["end"], name="unsqueeze"),
        h.make_node("Slice", ["ids", "start", "end", "axis"], ["y"], name="slice"),
    ]
    inits = [numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([0], np.int64), "start"),
             numpy_helper.from_array(np.array([1], np.int64), "axis"),
             numpy_helper.from_array(np.arange(32, dtype=np.int64).reshape(1, 32), "ids")]
    graph = h.make_graph(nodes, "slice_to_length",
                         [h.make_tensor_value_info("x", T.INT64, ["B", "S"])],
                         [h.make_tensor_value_info("y", T.INT64, None)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def conv_relu_add():
    """A residual block's tail with named weights: Relu(Conv(x, W, B)) + x."""
    w = numpy_helper.from_array(np.ones((4, 4, 3, 3), np.float32), "conv1.weight")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "conv1.bias")
    nodes = [h.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c"], name="conv1",
                         pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["r"], name="relu1"),
             h.make_node("Add", ["r", "x"], ["y"], name="add1")]
    graph = h.make_graph(nodes, "block", [h.make_tensor_value_info("x", T.FLOAT, ["N", 4, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["N", 4, 8, 8])], [w, b])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def conv_relu_softmax():
    """Conv -> Relu -> Softmax with named weights (assign-precision's FP16 chain)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                                "conv1.weight")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "conv1.bias")
    nodes = [h.make_node("Conv", ["x", "conv1.weight", "conv1.bias"], ["c"], name="conv1",
                         pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["r"], name="relu1"),
             h.make_node("Softmax", ["r"], ["y"], name="softmax1", axis=1)]
    graph = h.make_graph(nodes, "chain", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8])], [w, b])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


MODELS = {
    "reshape_chain_static": lambda: reshape_chain(2),
    "reshape_chain_symbolic": lambda: reshape_chain("N"),
    "conv_relu_add": conv_relu_add,
    "conv_relu_softmax": conv_relu_softmax,
    "expand_chain": expand_chain,
    "slice_to_length": slice_to_length,
}

if __name__ == "__main__":
    onnx.save(MODELS[sys.argv[1]](), sys.argv[2])
