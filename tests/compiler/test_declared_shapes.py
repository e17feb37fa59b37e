"""Declared shapes carried backwards (compiler/declared_shapes.py): a tensor whose shape depends
on a run-time value takes the shape the model declares for a result computed from it by
shape-keeping ops; the step that makes it checks the shape when the plan runs."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.declared_shapes import refine
from ember.errors import StepError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _window(n_declared: int = 10):
    """cos(range(0, n) * c) + cos(range(0, n) * 2c): Range's length is the input n."""
    c = helper.make_tensor("c", F, [], [0.3])
    nodes = [helper.make_node("Cast", ["n"], ["nf"], to=F),
             helper.make_node("Range", ["zero", "nf", "one"], ["r"], name="range"),
             helper.make_node("Mul", ["r", "c"], ["a"]),
             helper.make_node("Add", ["a", "a"], ["a2"]),
             helper.make_node("Cos", ["a"], ["ca"]), helper.make_node("Cos", ["a2"], ["ca2"]),
             helper.make_node("Add", ["ca", "ca2"], ["y"])]
    graph = helper.make_graph(
        nodes, "window", [helper.make_tensor_value_info("n", I64, [])],
        [helper.make_tensor_value_info("y", F, [n_declared])],
        [c, helper.make_tensor("zero", F, [], [0.0]), helper.make_tensor("one", F, [], [1.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _types(model):
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    return {vi.name: vi.type for vi in [*inferred.value_info, *inferred.input, *inferred.output]}


def _dims(tp):
    return [d.dim_value if d.HasField("dim_value") else None for d in tp.tensor_type.shape.dim]


def test_refine_carries_the_output_shape_back_to_the_range():
    model = _window()
    types = _types(model)
    assert _dims(types["r"]) == [None]
    refined = refine(model.graph, types)
    assert set(refined) >= {"r", "a", "a2", "ca", "ca2"}
    assert all(_dims(types[n]) == [10] for n in ("r", "a", "a2", "ca", "ca2"))
    assert types["n"].tensor_type.shape.dim == []  # the graph input is left alone


def test_graph_inputs_and_broadcast_ones_are_left_alone():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Add", ["r", "b"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, ["N", 3]),
                     helper.make_tensor_value_info("b", F, [1, 3])],
        [helper.make_tensor_value_info("y", F, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    types = _types(model)
    types["r"] = helper.make_tensor_type_proto(F, [None, 3])
    refine(model.graph, types)
    assert _dims(types["r"]) == [2, 3]     # the unknown dim, from y
    assert _dims(types["b"]) == [1, 3]     # a broadcast 1 stays 1
    assert _dims(types["x"]) == [None, 3]  # a graph input's dim stays dynamic


@pytest.mark.parametrize("arch", [None, "sm_90"])
def test_a_window_of_run_time_length_builds_runs_and_checks_the_length(arch):
    model = _window()
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch,
                                                          autotune=False if arch else None))
    (step,) = [s for s in manifest["steps"] if s["template"] == "range"]
    assert step["params"]["out_shapes"] == [[10]]
    context = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context()
    feed = {"n": np.array(10, np.int64)}
    np.testing.assert_allclose(context.execute(feed)["y"],
                               ReferenceEvaluator(model).run(None, feed)[0], rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(StepError, match="range"):
        context.execute({"n": np.array(8, np.int64)})
