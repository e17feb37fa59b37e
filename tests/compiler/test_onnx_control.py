"""If nodes whose condition is known at build time (compiler/onnx_control.py) become the branch
they take; an If on a run-time value is still refused, naming the node."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import EmberError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F = TensorProto.FLOAT


def _branch(name: str, scale: float) -> object:
    """y = (x * scale) + 1, with its own initializer and an inner tensor named like one of the
    outer graph's (renamed when inlined)."""
    return helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["t"]), helper.make_node("Add", ["t", "one"], ["r"])],
        name, [], [helper.make_tensor_value_info("r", F, [2, 3])],
        [helper.make_tensor("s", F, [], [scale])])


def _model(cond_nodes, inputs_extra=()):
    nodes = [*cond_nodes,
             helper.make_node("If", ["c"], ["b"], name="choose",
                              then_branch=_branch("then", 2.0), else_branch=_branch("else", -3.0)),
             helper.make_node("Add", ["b", "t"], ["y"])]  # an outer "t" too
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [2, 3]), *inputs_extra],
        [helper.make_tensor_value_info("y", F, [2, 3])],
        [helper.make_tensor("one", F, [], [1.0]), helper.make_tensor("t", F, [], [10.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model, feed):
    manifest, sections = build_model(model, BuilderConfig())
    assert not any(s["template"] == "if" for s in manifest["steps"])
    return Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context().execute(feed)["y"]


@pytest.mark.parametrize("value", [1.0, -1.0])
def test_a_constant_condition_takes_its_branch(value):
    cond = [helper.make_node("Constant", [], ["k"], value=helper.make_tensor("v", F, [], [value])),
            helper.make_node("Greater", ["k", "zero"], ["c"])]
    model = _model(cond)
    model.graph.initializer.append(helper.make_tensor("zero", F, [], [0.0]))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(_run(model, {"x": x}),
                               ReferenceEvaluator(model).run(None, {"x": x})[0])


def test_a_condition_on_a_static_shape_is_known():
    """AffineGrid's `rank == 4` test: Size of an input whose shape is static."""
    cond = [helper.make_node("Size", ["size"], ["n"]),
            helper.make_node("Equal", ["n", "four"], ["c"])]
    model = _model(cond, [helper.make_tensor_value_info("size", TensorProto.INT64, [4])])
    model.graph.initializer.append(helper.make_tensor("four", TensorProto.INT64, [], [4]))
    feed = {"x": np.ones((2, 3), np.float32), "size": np.array([1, 2, 3, 4])}
    np.testing.assert_allclose(_run(model, feed), ReferenceEvaluator(model).run(None, feed)[0])


def test_a_run_time_condition_is_refused_naming_the_node():
    model = _model([], [helper.make_tensor_value_info("c", TensorProto.BOOL, [])])
    with pytest.raises(EmberError, match="'choose' \\(If\\)"):
        build_model(model, BuilderConfig())


def test_nested_ifs_read_the_renamed_branch_tensors():
    """An If inside the taken branch whose own branches read a tensor of that branch: both
    resolve (constant conditions), and the inner reads follow the outer renaming."""
    inner_then = helper.make_graph([helper.make_node("Neg", ["t"], ["u"])], "it", [],
                                   [helper.make_tensor_value_info("u", F, [2, 3])])
    inner_else = helper.make_graph([helper.make_node("Abs", ["t"], ["u"])], "ie", [],
                                   [helper.make_tensor_value_info("u", F, [2, 3])])
    outer_then = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"]),
         helper.make_node("If", ["yes"], ["r"], name="inner", then_branch=inner_then,
                          else_branch=inner_else)],
        "ot", [], [helper.make_tensor_value_info("r", F, [2, 3])],
        [helper.make_tensor("two", F, [], [2.0])])
    outer_else = helper.make_graph([helper.make_node("Identity", ["x"], ["r"])], "oe", [],
                                   [helper.make_tensor_value_info("r", F, [2, 3])])
    graph = helper.make_graph(
        [helper.make_node("If", ["yes"], ["y"], name="outer", then_branch=outer_then,
                          else_branch=outer_else)],
        "g", [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("y", F, [2, 3])],
        [helper.make_tensor("yes", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(_run(model, {"x": x}), -2 * x)
