"""The CPU executor end to end: ONNX -> build_model -> plan bytes -> Runtime(device="cpu")."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import build_model
from ember.compiler.models import LIGHT_MODELS, light_model_case
from ember.runtime.engine import InputError, Runtime
from ember.runtime.plan import plan_bytes, write_plan
from tests.onnx_cases import small_cnn


def cpu_engine(model):
    manifest, sections = build_model(model)
    return Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))



def residual_block() -> onnx.ModelProto:
    """Two inputs, broadcasting elementwise, a reduction, a transpose and two outputs."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((6, 6)).astype(np.float32), "w")
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]),
             h.make_node("Add", ["m", "bias"], ["a"]),
             h.make_node("Sigmoid", ["a"], ["s"]),
             h.make_node("Mul", ["s", "x"], ["g"]),
             h.make_node("Transpose", ["g"], ["t"], perm=[0, 2, 1]),
             h.make_node("ReduceMean", ["t"], ["r"], axes=[2], keepdims=0),
             h.make_node("Where", ["mask", "g", "x"], ["y"])]
    graph = h.make_graph(nodes, "res", [
        h.make_tensor_value_info("x", T.FLOAT, [2, 3, 6]),
        h.make_tensor_value_info("bias", T.FLOAT, [6]),
        h.make_tensor_value_info("mask", T.BOOL, [3, 1])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 3, 6]),
         h.make_tensor_value_info("r", T.FLOAT, [2, 6])], [w])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def int_graph() -> onnx.ModelProto:
    """Integer and shape arithmetic: Shape -> Gather -> Concat -> Reshape, Cast, ArgMax."""
    nodes = [h.make_node("Shape", ["x"], ["s"]),
             h.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             h.make_node("Concat", ["n", "minus1"], ["shape"], axis=0),
             h.make_node("Reshape", ["x", "shape"], ["flat"]),
             h.make_node("ArgMax", ["flat"], ["am"], axis=1, keepdims=0),
             h.make_node("Cast", ["flat"], ["ci"], to=T.INT32),
             h.make_node("Add", ["ci", "ci"], ["y"])]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    graph = h.make_graph(nodes, "ints", [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 4])],
                         [h.make_tensor_value_info("y", T.INT32, [2, 12]),
                          h.make_tensor_value_info("am", T.INT64, [2])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


RNG = np.random.default_rng(2)
SMALL_GRAPHS = {
    "cnn": (small_cnn, {"x": RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)}),
    "residual": (residual_block, {
        "x": RNG.standard_normal((2, 3, 6)).astype(np.float32),
        "bias": RNG.standard_normal(6).astype(np.float32),
        "mask": np.array([[True], [False], [True]])}),
    "ints": (int_graph, {"x": (RNG.standard_normal((2, 3, 4)) * 10).astype(np.float32)}),
}


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_on_cpu_executor(name):
    path, inputs, expected = light_model_case(name)
    manifest, sections = build_model(str(path))
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    assert engine.device == "cpu"
    out = engine.create_execution_context().execute(inputs)
    (got,) = out.values()
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    assert 0 < manifest["arena_bytes"] <= manifest["activation_bytes"]
    print(f"light_{name}: arena {manifest['arena_bytes']} bytes for "
          f"{manifest['activation_bytes']} bytes of activations "
          f"({manifest['arena_bytes'] / manifest['activation_bytes']:.1%})")


@pytest.mark.parametrize("name", list(SMALL_GRAPHS))
def test_small_graph_matches_reference(name):
    make, inputs = SMALL_GRAPHS[name]
    model = make()
    got = cpu_engine(model).create_execution_context().execute(inputs)
    want = ReferenceEvaluator(model).run(None, inputs)
    for out, expected in zip(model.graph.output, want, strict=True):
        actual = got[out.name]
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, out.name
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, err_msg=out.name)


def test_contexts_run_from_threads():
    engine = cpu_engine(small_cnn())
    rng = np.random.default_rng(3)
    batches = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    want = [engine.create_execution_context().execute({"x": x})["y"] for x in batches]
    contexts = [engine.create_execution_context() for _ in range(4)]
    results: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for rep in range(10):
                k = (i + rep) % len(batches)
                results[i, rep] = (k, contexts[i].execute({"x": batches[k]})["y"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(contexts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 40
    for k, y in results.values():
        np.testing.assert_array_equal(y, want[k])


def test_outputs_are_not_views_of_the_arena():
    engine = cpu_engine(small_cnn())
    ctx = engine.create_execution_context()
    x = np.ones((2, 3, 8, 8), np.float32)
    first = ctx.execute({"x": x})["y"].copy()
    kept = ctx.execute({"x": x})["y"]
    ctx.execute({"x": -x})
    np.testing.assert_array_equal(kept, first)


@pytest.mark.parametrize("inputs, words", [
    ({"z": np.zeros((2, 3, 8, 8), np.float32)}, ["'z'", "expected x"]),
    ({}, ["missing", "'x'"]),
    ({"x": np.zeros((2, 3, 8, 8), np.float64)}, ["dtype float32", "got float64"]),
    ({"x": np.zeros((1, 3, 8, 8), np.float32)}, ["shape [2, 3, 8, 8]", "got [1, 3, 8, 8]"]),
])
def test_wrong_inputs_raise_input_error(inputs, words):
    ctx = cpu_engine(small_cnn()).create_execution_context()
    with pytest.raises(InputError) as e:
        ctx.execute(inputs)
    for w in words:
        assert w in str(e.value)


def test_plan_file_runs_without_the_compiler(tmp_path):
    manifest, sections = build_model(small_cnn())
    write_plan(tmp_path / "cnn.plan", manifest, sections)
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = f"""
import sys
import numpy as np
from ember.runtime.engine import Runtime
engine = Runtime(device="cpu").load({str(tmp_path / 'cnn.plan')!r})
y = engine.create_execution_context().execute({{"x": np.load({str(tmp_path / 'x.npy')!r})}})["y"]
np.save({str(tmp_path / 'y.npy')!r}, y)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("xdsl", "onnx")
             or m.startswith(("ember.compiler", "ember.dialects", "ember.passes")))
assert not bad, bad
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    want = ReferenceEvaluator(small_cnn()).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-6)
