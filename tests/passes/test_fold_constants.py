"""fold-constants on ops with run-time parameter operands: once the operands are constants (or
known dims), each op becomes its static form, and the numbers stay ONNX's."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from xdsl.parser import Parser
from xdsl.rewriter import InsertPoint, Rewriter

from ember.compiler.interpret import interpret, main_function
from ember.compiler.onnx_importer import graph_io_names
from ember.dialects import ember_context
from ember.dialects.nn.base import NNOp
from ember.dialects.tensor_types import shape_of
from ember.dialects.weights import weights_of
from ember.passes.convert_onnx_to_nn.builder import make_constant
from ember.passes.fold_constants import FoldConstants
from tests.onnx_cases import legalize

rng = np.random.default_rng(1)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
IMG = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
I64, F32 = np.int64, np.float32
# ops that keep a parameter as an operand until it is known
PARAMETRIC = {"nn.slice", "nn.pad", "nn.tile", "nn.resize", "nn.squeeze", "nn.unsqueeze",
              "nn.trilu", "nn.cumsum", "nn.reshape", "nn.expand", "nn.fill", "nn.reduce"}


def _model(op_type, inputs, outputs=("y",), **attrs):
    """One node whose inputs are all graph inputs ("" skips an optional one)."""
    node = helper.make_node(op_type, list(inputs), list(outputs), name=f"{op_type.lower()}0",
                            **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in inputs.items() if n],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _fix_and_fold(module, values):
    """Replace the named function arguments by constants, then fold."""
    fn = main_function(module)
    in_names, _ = graph_io_names(module)
    store = weights_of(module)
    for name, arg in zip(in_names, fn.body.block.args, strict=True):
        if name in values:
            const = make_constant(values[name], store)
            Rewriter.insert_op(const, InsertPoint.at_start(fn.body.block))
            arg.replace_all_uses_with(const.results[0])
    FoldConstants().apply(ember_context(), module)
    module.verify()
    return module


def _parametric(module):
    return [op.name for op in module.walk()
            if op.name in PARAMETRIC and len(op.operands) > (0 if op.name == "nn.fill" else 1)]


CASES = [
    ("Slice", {"x": X, "s": np.array([0, 1], I64), "e": np.array([2, 3], I64),
               "a": np.array([0, 2], I64), "st": np.array([1, 1], I64)}, ("y",), {}),
    ("Slice", {"x": X, "s": np.array([-1, 10], I64), "e": np.array([-4, -100], I64),
               "a": np.array([2, 1], I64), "st": np.array([-1, -2], I64)}, ("y",), {}),
    ("Split", {"x": X, "sp": np.array([1, 3], I64)}, ("a", "b"), {"axis": 2}),
    ("Unsqueeze", {"x": X, "a": np.array([0, -1], I64)}, ("y",), {}),
    ("Squeeze", {"x": X[:1, :, 1:2], "a": np.array([0, -1], I64)}, ("y",), {}),
    ("Tile", {"x": X, "r": np.array([2, 1, 3], I64)}, ("y",), {}),
    ("Pad", {"x": X, "p": np.array([0, 1, 2, 0, 2, 1], I64), "v": np.array(1.5, F32)}, ("y",),
     {}),
    ("Pad", {"x": X, "p": np.array([1, 2], I64), "v": np.array(3, F32),
             "a": np.array([-1], I64)}, ("y",), {}),
    ("Pad", {"x": X, "p": np.array([0, 1, 2, 0, 2, 1], I64)}, ("y",), {"mode": "reflect"}),
    ("Trilu", {"x": X, "k": np.array(-1, I64)}, ("y",), {"upper": 0}),
    ("CumSum", {"x": X, "a": np.array(-2, I64)}, ("y",), {"exclusive": 1}),
    ("Resize", {"x": IMG, "": np.zeros(0, F32), "sc": np.array([1, 1, 2, 1.5], F32)}, ("y",),
     {"mode": "linear"}),
    ("Resize", {"x": IMG, "roi": np.array([0.1, 0.2, 0.9, 0.7], F32),
                "sc": np.array([2, 0.5], F32)}, ("y",),
     {"mode": "linear", "axes": [2, 3], "coordinate_transformation_mode": "tf_crop_and_resize"}),
    ("Reshape", {"x": X, "s": np.array([0, -1], I64)}, ("y",), {}),
    ("Expand", {"x": X[:, :1], "s": np.array([2, 1, 5, 1], I64)}, ("y",), {}),
    ("ReduceSum", {"x": X, "a": np.array([-1, 0], I64)}, ("y",), {"keepdims": 0}),
]


@pytest.mark.parametrize("op_type,inputs,outputs,attrs", CASES,
                         ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_run_time_parameters_become_static(op_type, inputs, outputs, attrs):
    node_inputs = list(inputs)
    inputs = {n: a for n, a in inputs.items() if n}  # "": an optional input left out
    node = helper.make_node(op_type, node_inputs, list(outputs), name="n0", **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module = legalize(model)
    assert _parametric(module), "legalization should keep the parameters as operands"
    want = ReferenceEvaluator(model).run(None, inputs)
    got = interpret(module, inputs)  # the run-time form
    for name, w in zip(outputs, want, strict=True):
        np.testing.assert_allclose(got[name], w, rtol=1e-5, atol=1e-6, err_msg=name)

    params = {n: a for n, a in list(inputs.items())[1:]}
    module = _fix_and_fold(module, params)
    assert not _parametric(module), str(module)
    text = str(module)
    assert str(Parser(ember_context(), text).parse_module()) == text
    for op in module.walk():  # static now: every shape known
        if isinstance(op, NNOp):
            shape = shape_of(op.results[0])
            assert shape is not None and "?" not in shape, str(op)
    got = interpret(module, inputs)
    for name, w in zip(outputs, want, strict=True):
        assert got[name].dtype == w.dtype and got[name].shape == w.shape, name
        np.testing.assert_allclose(got[name], w, rtol=1e-5, atol=1e-6, err_msg=name)


def test_pad_value_known_before_pads():
    """A pad whose value becomes known but whose pads do not keeps only the pads operand."""
    model = _model("Pad", {"x": X, "p": np.array([0, 1, 2, 0, 2, 1], I64),
                           "v": np.array(1.5, F32)})
    module = _fix_and_fold(legalize(model), {"v": np.array(1.5, F32)})
    pad = next(op for op in module.walk() if op.name == "nn.pad")
    assert pad.dyn_pads is not None and pad.dyn_value is None and pad.prop("value") == 1.5
    text = str(module)
    assert str(Parser(ember_context(), text).parse_module()) == text
    inputs = {"x": X, "p": np.array([0, 1, 2, 0, 2, 1], I64), "v": np.array(1.5, F32)}
    np.testing.assert_allclose(interpret(module, inputs)["y"],
                               ReferenceEvaluator(model).run(None, inputs)[0])


def test_slice_by_symbolic_shape_keeps_symbols():
    """Slice ends taken from the shape of a symbolic input: known as dims, not as ints, so the
    slice stays a run-time one; a constant slice of the same input becomes static."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["x", "zero", "s", "", ""], ["y"]),
             helper.make_node("Slice", ["x", "one", "two", "ax", ""], ["z"])]
    inits = [onnx.numpy_helper.from_array(np.array([0, 0, 0], I64), "zero")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4]),
                     helper.make_tensor_value_info("one", TensorProto.INT64, [1]),
                     helper.make_tensor_value_info("two", TensorProto.INT64, [1]),
                     helper.make_tensor_value_info("ax", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None),
         helper.make_tensor_value_info("z", TensorProto.UNDEFINED, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module = legalize(model)
    module = _fix_and_fold(module, {"one": np.array([1], I64), "two": np.array([3], I64),
                                    "ax": np.array([2], I64)})
    slices = [op for op in module.walk() if op.name == "nn.slice"]
    assert sorted(len(op.operands) for op in slices) == [1, 3]
    static = next(op for op in slices if len(op.operands) == 1)
    assert shape_of(static.results[0]) == ("N", 3, 2)
    inputs = {"x": X, "one": np.array([1], I64), "two": np.array([3], I64),
              "ax": np.array([2], I64)}
    got = interpret(module, inputs)
    np.testing.assert_array_equal(got["y"], X)
    np.testing.assert_array_equal(got["z"], X[:, :, 1:3])
