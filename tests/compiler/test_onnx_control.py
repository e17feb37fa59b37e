"""Control flow lowered at import (compiler/onnx_control.py): an If whose condition is known at
build time becomes the branch it takes; an If on a run-time value with static output shapes
computes both branches and picks with Where; a Loop with a known trip count and a condition
that stays true, and a Scan of static length, are unrolled (loop-carried values and scan
outputs); the rest is refused, naming the node. Results against onnx.reference and onnxruntime."""

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


@pytest.mark.parametrize("cond", [True, False])
@pytest.mark.parametrize("shape", [[], [1]])
def test_a_run_time_condition_computes_both_branches_and_picks(cond, shape):
    model = _model([], [helper.make_tensor_value_info("c", TensorProto.BOOL, shape)])
    feed = {"x": np.arange(6, dtype=np.float32).reshape(2, 3),
            "c": np.array(cond).reshape(shape)}
    got = _run(model, feed)
    want = ReferenceEvaluator(model).run(None, feed)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want)


def test_a_run_time_condition_with_branches_of_other_shapes_is_refused_naming_the_node():
    """The branches give [2, 3] and [3, 2]: no Where picks between them (ONNX's inference
    leaves the If's output shape unknown), so the If stays and is refused."""
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["r"])], "then", [],
                             [helper.make_tensor_value_info("r", F, [2, 3])])
    other = helper.make_graph([helper.make_node("Transpose", ["x"], ["r"])], "else", [],
                              [helper.make_tensor_value_info("r", F, [3, 2])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], name="choose", then_branch=then,
                          else_branch=other)], "g",
        [helper.make_tensor_value_info("x", F, [2, 3]),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", F, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
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


# -- Loop ----------------------------------------------------------------------------------------

def _loop_body(cond_out: list | None = None) -> object:
    """y_out = y * 0.5 + float(i); scan out = y_out + x (an outer tensor); cond_out = cond_in
    (PyTorch's for-range body), or the nodes `cond_out` given (writing "cond_out")."""
    nodes = [helper.make_node("Cast", ["i"], ["fi"], to=F),
             helper.make_node("Mul", ["y", "half"], ["h"]),
             helper.make_node("Add", ["h", "fi"], ["y_out"]),
             helper.make_node("Add", ["y_out", "x"], ["scan"]),
             *(cond_out or [helper.make_node("Identity", ["cond_in"], ["cond_out"])])]
    return helper.make_graph(
        nodes, "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y", F, [2, 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", F, [2, 3]),
         helper.make_tensor_value_info("scan", F, [2, 3])],
        [helper.make_tensor("half", F, [], [0.5])])


def _loop_model(trips_nodes, body=None, extra_inputs=(), opset=18):
    """PyTorch's export of `for i in range(n): ...` (legacy TorchScript exporter): the trip
    count made by `trips_nodes` (writing "n"), the condition a constant true."""
    nodes = [*trips_nodes,
             helper.make_node("Constant", [], ["true"],
                              value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
             helper.make_node("Loop", ["n", "true", "x"], ["y", "ys"], name="loop",
                              body=body or _loop_body())]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [2, 3]), *extra_inputs],
        [helper.make_tensor_value_info("y", F, [2, 3]),
         helper.make_tensor_value_info("ys", F, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run_all(model, feed):
    manifest, sections = build_model(model, BuilderConfig())
    assert not any(s["template"] in ("if", "loop") for s in manifest["steps"])
    return Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context().execute(feed)


@pytest.mark.parametrize("opset", [11, 18])
def test_a_loop_over_a_static_dim_is_unrolled(opset):
    """n = x.shape[1] (Shape of a static input, Gather): 3 iterations; the loop-carried value
    and the stacked scan output match onnxruntime."""
    import onnxruntime as ort

    from ember.compiler.ort_compat import for_onnxruntime

    trips = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Constant", [], ["one"],
                              value=helper.make_tensor("o", TensorProto.INT64, [], [1])),
             helper.make_node("Gather", ["shape", "one"], ["n"], axis=0)]
    model = _loop_model(trips, opset=opset)
    feed = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    got = _run_all(model, feed)
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)
    assert got["ys"].shape == (3, 2, 3)
    np.testing.assert_allclose(got["y"], want[0], rtol=1e-6)
    np.testing.assert_allclose(got["ys"], want[1], rtol=1e-6)


def test_a_loop_whose_cond_out_reads_an_outer_constant_is_unrolled():
    """TorchScript's exporter writes the body's cond_out as Identity(the outer `true`)."""
    trips = [helper.make_node("Constant", [], ["n"],
                              value=helper.make_tensor("v", TensorProto.INT64, [], [3]))]
    body = _loop_body([helper.make_node("Identity", ["true"], ["cond_out"])])
    model = _loop_model(trips, body)
    feed = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    manifest, _ = build_model(model, BuilderConfig())
    assert "assert" not in [s["template"] for s in manifest["steps"]]  # known: no assertion
    got, want = _run_all(model, feed), _ort(model, feed)
    np.testing.assert_allclose(got["y"], want[0], rtol=1e-6)
    np.testing.assert_allclose(got["ys"], want[1], rtol=1e-6)


def test_a_loop_of_a_run_time_trip_count_is_refused_naming_the_node():
    model = _loop_model([], extra_inputs=[helper.make_tensor_value_info("n", TensorProto.INT64,
                                                                        [])])
    with pytest.raises(EmberError, match="'loop' \\(Loop\\)"):
        build_model(model, BuilderConfig())


def test_a_loop_whose_condition_depends_on_data_is_refused_naming_the_node():
    """cond_out = sum(y_out) < 100: the loop may stop early, which only the data says."""
    stop = [helper.make_node("ReduceSum", ["y_out"], ["total"], keepdims=0),
            helper.make_node("Less", ["total", "limit"], ["cond_out"])]
    body = _loop_body(stop)
    body.initializer.append(helper.make_tensor("limit", F, [], [100.0]))
    trips = [helper.make_node("Constant", [], ["n"],
                              value=helper.make_tensor("v", TensorProto.INT64, [], [4]))]
    with pytest.raises(EmberError, match="'loop' \\(Loop\\)"):
        build_model(_loop_model(trips, body), BuilderConfig())


def _declared(model, length):
    """The model with its scan output declared [length, 2, 3]."""
    model.graph.output[1].CopyFrom(helper.make_tensor_value_info("ys", F, [length, 2, 3]))
    return model


def _ort(model, feed):
    """onnxruntime's outputs (onnx.reference concatenates a Loop's scan outputs)."""
    import onnxruntime as ort

    from ember.compiler.ort_compat import for_onnxruntime

    return ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)


def test_a_run_time_trip_count_runs_the_declared_length_asserted():
    """n an input, the scan output declared [3, 2, 3]: three iterations unrolled, and an
    assertion (nn.assert) that n is 3 when the plan runs."""
    from ember.errors import InputError

    model = _declared(_loop_model([], extra_inputs=[
        helper.make_tensor_value_info("n", TensorProto.INT64, [])]), 3)
    manifest, sections = build_model(model, BuilderConfig())
    assert [s["template"] for s in manifest["steps"]].count("assert") == 1
    context = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context()
    feed = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(3, np.int64)}
    got = context.execute(feed)
    want = _ort(model, feed)
    np.testing.assert_allclose(got["y"], want[0], rtol=1e-6)
    np.testing.assert_allclose(got["ys"], want[1], rtol=1e-6)
    for n in (2, 4):
        with pytest.raises(InputError, match="Loop 'loop' must run exactly 3 iterations"):
            context.execute({**feed, "n": np.array(n, np.int64)})


def test_a_data_dependent_condition_runs_the_declared_length_asserted():
    """cond_out = sum(y_out) < limit (an input): the run passes where the loop stops after
    exactly the declared 4 iterations, and fails where it would stop earlier or later."""
    from ember.errors import InputError

    stop = [helper.make_node("ReduceSum", ["y_out"], ["total"], keepdims=0),
            helper.make_node("Less", ["total", "limit"], ["cond_out"])]
    trips = [helper.make_node("Constant", [], ["n"],
                              value=helper.make_tensor("v", TensorProto.INT64, [], [10]))]
    model = _declared(_loop_model(trips, _loop_body(stop), extra_inputs=[
        helper.make_tensor_value_info("limit", F, [])]), 4)
    manifest, sections = build_model(model, BuilderConfig())
    context = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    sums = []  # sum(y_out) after each iteration (rising): a limit between the 3rd and the 4th
    y = x.copy()  # stops the loop after 4 iterations
    for i in range(6):
        y = y * 0.5 + i
        sums.append(float(y.sum()))
    feed = {"x": x, "limit": np.array((sums[2] + sums[3]) / 2, np.float32)}
    want = _ort(model, feed)
    assert want[1].shape[0] == 4
    got = context.execute(feed)
    np.testing.assert_allclose(got["ys"], want[1], rtol=1e-6)
    np.testing.assert_allclose(got["y"], want[0], rtol=1e-6)
    with pytest.raises(InputError, match="must run exactly 4 iterations"):
        context.execute({"x": x, "limit": np.array(1e9, np.float32)})  # never stops


def test_an_if_on_data_then_a_loop_as_pytorch_exports_them():
    """TorchScript's export of
        if x.sum() > 0: y = x * 2  else: y = x - 1
        for i in range(x.size(0)): y = y + i * (y > 5 ? 1 : -1)
    branch outputs declared without shapes (as PyTorch writes them), the loop body holding an
    If on data too: every If and Loop is lowered, and the result matches onnxruntime for
    inputs that take each branch."""
    import onnxruntime as ort

    from ember.compiler.ort_compat import for_onnxruntime

    def branch(name, op, k):
        return helper.make_graph([helper.make_node(op, ["x", k], ["r"])], name, [],
                                 [helper.make_tensor_value_info("r", F, None)])

    sign = helper.make_node(
        "If", ["big"], ["s"], name="sign",
        then_branch=helper.make_graph([helper.make_node("Identity", ["one_f"], ["p"])], "pos",
                                      [], [helper.make_tensor_value_info("p", F, None)]),
        else_branch=helper.make_graph([helper.make_node("Neg", ["one_f"], ["m"])], "neg", [],
                                      [helper.make_tensor_value_info("m", F, None)]))
    body = helper.make_graph(
        [helper.make_node("ReduceMax", ["y"], ["top"], keepdims=0),
         helper.make_node("Greater", ["top", "five"], ["big"]), sign,
         helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Mul", ["fi", "s"], ["step"]),
         helper.make_node("Add", ["y", "step"], ["y_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y", F, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", F, None)])
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Greater", ["total", "zero"], ["positive"]),
             helper.make_node("If", ["positive"], ["y0"], name="choose",
                              then_branch=branch("then", "Mul", "two"),
                              else_branch=branch("else", "Sub", "one_f")),
             helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero_i"], ["n"], axis=0),
             helper.make_node("Loop", ["n", "true", "y0"], ["y"], name="loop", body=body)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F, [4, 3])],
        [helper.make_tensor_value_info("y", F, [4, 3])],
        [helper.make_tensor("zero", F, [], [0.0]), helper.make_tensor("two", F, [], [2.0]),
         helper.make_tensor("one_f", F, [], [1.0]), helper.make_tensor("five", F, [], [5.0]),
         helper.make_tensor("zero_i", TensorProto.INT64, [], [0]),
         helper.make_tensor("true", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for x in (np.arange(12, dtype=np.float32).reshape(4, 3) / 4,
              -np.arange(12, dtype=np.float32).reshape(4, 3)):
        got = _run_all(model, {"x": x})["y"]
        np.testing.assert_allclose(got, session.run(None, {"x": x})[0], rtol=1e-6)


@pytest.mark.parametrize("in_dir, out_dir, out_axis", [(0, 0, 0), (1, 0, 1), (0, 1, -1)])
def test_a_scan_of_static_length_is_unrolled(in_dir, out_dir, out_axis):
    """A running sum over the rows of x (scan input axis 0, or from the end), the partial sums
    stacked along `out_axis` (reversed for direction 1); state and scan output match
    onnxruntime."""
    import onnxruntime as ort

    from ember.compiler.ort_compat import for_onnxruntime

    body = helper.make_graph(
        [helper.make_node("Add", ["acc", "row"], ["acc_out"]),
         helper.make_node("Mul", ["acc_out", "w"], ["scaled"])], "body",
        [helper.make_tensor_value_info("acc", F, [3]),
         helper.make_tensor_value_info("row", F, [3])],
        [helper.make_tensor_value_info("acc_out", F, [3]),
         helper.make_tensor_value_info("scaled", F, [3])])
    graph = helper.make_graph(
        [helper.make_node("Scan", ["init", "x"], ["y", "ys"], name="scan", body=body,
                          num_scan_inputs=1, scan_input_directions=[in_dir],
                          scan_output_directions=[out_dir], scan_output_axes=[out_axis])],
        "g", [helper.make_tensor_value_info("init", F, [3]),
              helper.make_tensor_value_info("x", F, [4, 3])],
        [helper.make_tensor_value_info("y", F, [3]), helper.make_tensor_value_info("ys", F, None)],
        [helper.make_tensor("w", F, [3], [1.0, -2.0, 0.5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    feed = {"init": np.array([1, 2, 3], np.float32),
            "x": np.arange(12, dtype=np.float32).reshape(4, 3)}
    got = _run_all(model, feed)
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)
    np.testing.assert_allclose(got["y"], want[0])
    assert got["ys"].shape == want[1].shape
    np.testing.assert_allclose(got["ys"], want[1])


def test_body_tensors_named_like_what_the_unrolling_makes_and_twin_node_names():
    """A Loop body whose own tensors are `cond` and `out1`, a Scan body's `out0` (what the
    unroller calls its per-iteration values, after another separator), and an unnamed Loop
    beside a named one: no two tensors share a name, and the results match onnxruntime."""
    import onnxruntime as ort

    from ember.compiler.onnx_control import lower_control_flow
    from ember.compiler.ort_compat import for_onnxruntime

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond"]),
         helper.make_node("Add", ["v_in", "x"], ["out1"]),
         helper.make_node("Identity", ["out1"], ["scan"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", F, [2])],
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("out1", F, [2]),
         helper.make_tensor_value_info("scan", F, [2])])
    scan_body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "a"], ["out0"]),
         helper.make_node("Identity", ["out0"], ["row"])], "scan_body",
        [helper.make_tensor_value_info("s_in", F, [2]),
         helper.make_tensor_value_info("a", F, [2])],
        [helper.make_tensor_value_info("out0", F, [2]),
         helper.make_tensor_value_info("row", F, [2])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "c", "v0"], ["v", "s"], body=body, name="L"),
         helper.make_node("Loop", ["M", "c", "v"], ["w", "t"], body=body),
         helper.make_node("Scan", ["w", "t"], ["y", "rows"], body=scan_body,
                          num_scan_inputs=1, name="S")], "g",
        [helper.make_tensor_value_info("x", F, [2]), helper.make_tensor_value_info("v0", F, [2])],
        [helper.make_tensor_value_info("y", F, [2]),
         helper.make_tensor_value_info("rows", F, None),
         helper.make_tensor_value_info("s", F, None)],
        [helper.make_tensor("M", TensorProto.INT64, [], [3]),
         helper.make_tensor("c", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    lowered = lower_control_flow(model)
    names = [o for n in lowered.graph.node for o in n.output if o] + \
        [t.name for t in lowered.graph.initializer]
    assert len(names) == len(set(names))
    feed = {"x": np.array([1, 2], np.float32), "v0": np.array([10, 20], np.float32)}
    got = _run_all(model, feed)
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)
    for name, value in zip(("y", "rows", "s"), want, strict=True):
        np.testing.assert_allclose(got[name], value)


def test_a_condition_on_a_random_value_is_not_decided_at_build_time():
    """RandomUniform has no inputs, but its value is not a constant: an If on it stays a
    run-time If (here if-converted: both branches, a Where picking per run)."""
    from ember.compiler.onnx_control import constant_values, lower_control_flow

    cond = [helper.make_node("RandomUniform", [], ["u"], shape=[1], seed=1.0),
            helper.make_node("Greater", ["u", "half"], ["c"])]
    model = _model(cond)
    model.graph.initializer.append(helper.make_tensor("half", F, [], [0.5]))
    known = constant_values(model.graph)
    assert "u" not in known and "c" not in known
    ops = [n.op_type for n in lower_control_flow(model).graph.node]
    assert "Where" in ops and "If" not in ops and "RandomUniform" in ops
