"""Run-time parameter inputs (ONNX parameters given as tensors at run time: Slice starts, Trilu k,
CumSum axis, ...) where the build knows the result shape: the plan reads them when it runs
(host steps in CUDA plans, which say why), and a value that would give another shape than the
build planned is an error naming the step, never a silent reshape."""

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import PassError, ShapeError, StepError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

X = np.arange(24, dtype=np.float32).reshape(4, 6)


def _model(node, params: dict[str, tuple[int, list]], out_shape):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X.shape))]
    inputs += [helper.make_tensor_value_info(n, t, s) for n, (t, s) in params.items()]
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _context(model, arch=None):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch))
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine.create_execution_context()


I64 = TensorProto.INT64
SLICE = _model(helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"], name="cut"),
               {"starts": (I64, [1]), "ends": (I64, [1]), "axes": (I64, [1])}, [4, 3])


@pytest.mark.parametrize("start, end", [(0, 3), (2, 5), (-3, 100)])
def test_slice_bounds_read_at_run_time(start, end):
    feed = {"x": X, "starts": np.array([start]), "ends": np.array([end]),
            "axes": np.array([1])}
    _, context = _context(SLICE)
    want = ReferenceEvaluator(SLICE).run(None, feed)[0]
    np.testing.assert_array_equal(context.execute(feed)["y"], want)


def test_bounds_giving_another_shape_than_planned_are_refused_naming_the_step():
    _, context = _context(SLICE)
    feed = {"x": X, "starts": np.array([0]), "ends": np.array([4]), "axes": np.array([1])}
    with pytest.raises(StepError, match=r"cut.*\[4, 4\] where the plan has \[4, 3\].*run-time "
                                        r"parameters"):
        context.execute(feed)


@pytest.mark.parametrize("k", [-2, 0, 1, 4])
def test_trilu_k_and_cumsum_axis_at_run_time(k):
    trilu = _model(helper.make_node("Trilu", ["x", "k"], ["y"], upper=0), {"k": (I64, [])},
                   [4, 6])
    feed = {"x": X, "k": np.array(k)}
    np.testing.assert_array_equal(_context(trilu)[1].execute(feed)["y"],
                                  ReferenceEvaluator(trilu).run(None, feed)[0])
    cumsum = _model(helper.make_node("CumSum", ["x", "axis"], ["y"], reverse=1),
                    {"axis": (I64, [])}, [4, 6])
    feed = {"x": X, "axis": np.array(k % 2)}
    np.testing.assert_array_equal(_context(cumsum)[1].execute(feed)["y"],
                                  ReferenceEvaluator(cumsum).run(None, feed)[0])


def test_a_cuda_plan_reads_them_on_the_host_and_says_why():
    manifest, context = _context(SLICE, arch="sm_90")
    (step,) = [s for s in manifest["steps"] if s["template"] == "slice"]
    assert step["device"] == "cpu" and "run-time parameters" in step["fallback"]
    feed = {"x": X, "starts": np.array([3]), "ends": np.array([6]), "axes": np.array([-1])}
    np.testing.assert_array_equal(context.execute(feed)["y"], X[:, 3:6])


def test_range_bounds_must_give_the_declared_length():
    """Run-time Range bounds with the model's declared length: checked on the host, in CUDA
    plans too (the CUDA kernel would write the planned length whatever the bounds)."""
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, []) for n in "sld"]
    graph = helper.make_graph([helper.make_node("Range", ["s", "l", "d"], ["y"], name="r")],
                              "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                                          [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    for arch in (None, "sm_90"):
        manifest, context = _context(model, arch)
        (step,) = manifest["steps"]
        assert arch is None or (step["device"] == "cpu"
                                and "declared length" in step["fallback"])
        feed = {"s": np.float32(1), "l": np.float32(3), "d": np.float32(0.5)}
        np.testing.assert_array_equal(context.execute(feed)["y"], [1, 1.5, 2, 2.5])
        with pytest.raises(StepError, match=r"\[6\] where the plan has \[4\]"):
            context.execute({**feed, "l": np.float32(4)})


def test_a_run_time_reshape_target_must_give_the_planned_shape():
    model = _model(helper.make_node("Reshape", ["x", "s"], ["y"], name="re"),
                   {"s": (I64, [2])}, [2, 12])
    _, context = _context(model)
    np.testing.assert_array_equal(context.execute({"x": X, "s": np.array([2, -1])})["y"],
                                  X.reshape(2, 12))
    with pytest.raises(ShapeError, match=r"\[12, 2\] where the plan has \[2, 12\]"):
        context.execute({"x": X, "s": np.array([12, 2])})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceL2", "ReduceMax"])
@pytest.mark.parametrize("keepdims, axes, out_shape", [(1, [1], [4, 1]), (1, [-2], [1, 6]),
                                                       (0, [0], [6]), (0, [-1], [4])])
@pytest.mark.parametrize("arch", [None, "sm_90"])
def test_reduce_axes_read_at_run_time_with_the_declared_shape(op, keepdims, axes, out_shape,
                                                              arch):
    model = _model(helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims, name="r"),
                   {"axes": (I64, [1])}, out_shape)
    feed = {"x": X, "axes": np.array(axes)}
    manifest, context = _context(model, arch)
    (step,) = [s for s in manifest["steps"] if s["template"] == "reduce"]
    assert step["params"]["out_shapes"] == [out_shape]
    if arch:
        assert step["device"] == "cpu" and "run-time parameters (dynamic_axes)" in step["fallback"]
    np.testing.assert_allclose(context.execute(feed)["y"],
                               ReferenceEvaluator(model).run(None, feed)[0], rtol=1e-6)
    other = {1: [0], -2: [1], 0: [1], -1: [0]}[axes[0]]
    with pytest.raises(StepError, match=r"r.*where the plan has.*run-time parameters"):
        context.execute({"x": X, "axes": np.array(other)})


def test_reduce_with_run_time_axes_and_no_declared_shape_is_refused():
    model = _model(helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0, name="r"),
                   {"axes": (I64, [1])}, None)
    with pytest.raises(PassError, match=r"nn.reduce \(node 'r'\) .*unknown dim.*run-time "
                                        r"parameters \(dynamic_axes\) decide it"):
        _context(model)


def test_expand_by_a_run_time_shape_is_read_on_the_host():
    """The CUDA expand kernel takes the input alone: a run-time shape operand is a host step
    (its kernel once took the shape tensor for its output pointer)."""
    graph = helper.make_graph(
        [helper.make_node("Expand", ["x", "shape"], ["y"], name="e")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 1]),
         helper.make_tensor_value_info("shape", I64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    manifest, context = _context(model, arch="sm_90")
    (step,) = manifest["steps"]
    assert step["device"] == "cpu" and "run-time parameters (shape)" in step["fallback"]
    x = np.arange(3, dtype=np.float32).reshape(3, 1)
    got = context.execute({"x": x, "shape": np.array([2, 1, 6])})["y"]
    np.testing.assert_array_equal(got, np.broadcast_to(x, (2, 3, 6)))
    with pytest.raises(StepError, match="e"):
        context.execute({"x": x, "shape": np.array([1, 3, 6])})
