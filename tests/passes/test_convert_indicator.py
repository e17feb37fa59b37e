"""convert-onnx-to-nn on Hardmax, LpNormalization, EyeLike and OneHot (decomposed into nn ops):
numbers against onnx.reference, through the interpreter and through a CPU plan. Hardmax before
opset 13 and LpNormalization with p=1 are checked against onnxruntime: onnx.reference's
Hardmax ignores the opset-11 flattening and its p=1 norm sums x instead of |x|."""

import numpy as np
import onnx
import pytest

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import UnsupportedError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.onnx_cases import check_against_reference, single_node_model

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)


@pytest.mark.parametrize("opset, axis", [(13, -1), (13, 0), (13, 1), (11, 1), (11, 0)])
def test_hardmax_picks_the_first_max(opset, axis):
    x = X.copy()
    x[0, 1, :] = 2.0  # ties: the first one wins
    model = single_node_model("Hardmax", {"x": x}, opset=opset, axis=axis)
    _check_against_onnxruntime(model, {"x": x})


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_normalization(p, axis):
    x = X.copy()
    x[1, :, 2] = 0.0  # a zero norm along axis 1 gives zeros
    model = single_node_model("LpNormalization", {"x": x}, opset=1, p=p, axis=axis)
    _check_against_onnxruntime(model, {"x": x})


def _check_against_onnxruntime(model, feed):
    import onnxruntime as ort

    typed = onnx.ModelProto.FromString(model.SerializeToString())
    typed.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT  # ORT wants it
    want = ort.InferenceSession(typed.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)[0]
    manifest, sections = build_model(model, BuilderConfig())
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feed)["y"]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("k", [0, 2, -1])
def test_eye_like(k):
    x = np.zeros((3, 5), np.int32)
    check_against_reference(single_node_model("EyeLike", {"x": x}, k=k), {"x": x})
    check_against_reference(single_node_model("EyeLike", {"x": x}, k=k, dtype=1), {"x": x})


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_with_negative_and_out_of_range_indices(axis):
    indices = np.array([[0, 3, -1], [-4, 5, 2]], np.int64)
    inits = {"depth": np.array(4, np.int64), "values": np.array([-2.0, 7.5], np.float32)}
    model = single_node_model("OneHot", {"i": indices}, initializers=inits, axis=axis)
    check_against_reference(model, {"i": indices})
    manifest, sections = build_model(model, BuilderConfig())
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute({"i": indices})["y"]
    want = single_node_reference(model, {"i": indices})
    np.testing.assert_array_equal(got, want)


def single_node_reference(model, feed):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, feed)[0]


def test_one_hot_with_a_run_time_depth_and_no_declared_shape_is_refused_naming_it():
    indices = np.array([1, 2], np.int64)
    model = single_node_model("OneHot", {"i": indices, "depth": np.array(4, np.int64)},
                              initializers={"values": np.array([0.0, 1.0], np.float32)})
    with pytest.raises(UnsupportedError, match="depth is a run-time parameter and the "
                                               "result's shape is not declared"):
        build_model(model, BuilderConfig())


def test_one_hot_with_run_time_depth_and_values_where_the_shape_is_declared():
    """depth (a float, as ONNX allows) and values fed at run time, the result declared
    [2, 3, 5]: the plan reads both; a depth that disagrees with the declared shape is an error
    at run time, naming the step that checks it."""
    from onnx import TensorProto, helper

    from ember.errors import EmberError

    node = helper.make_node("OneHot", ["i", "depth", "values"], ["y"], axis=1)
    graph = helper.make_graph(
        [node], "one_hot",
        [helper.make_tensor_value_info("i", TensorProto.INT64, [2, 3]),
         helper.make_tensor_value_info("depth", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("values", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    feed = {"i": np.array([[0, 4, -1], [-5, 7, 2]], np.int64),
            "depth": np.array(5.0, np.float32), "values": np.array([-1.0, 3.0], np.float32)}
    manifest, sections = build_model(model, BuilderConfig())
    context = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context()
    np.testing.assert_array_equal(context.execute(feed)["y"], single_node_reference(model, feed))
    with pytest.raises(EmberError, match="range"):
        context.execute({**feed, "depth": np.array(6.0, np.float32)})
