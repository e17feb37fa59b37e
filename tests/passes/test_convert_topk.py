"""TopK: k as an attribute (opset 1), a constant input and a run-time input; largest and
smallest, ties (the lower index first), integers; numbers against onnxruntime through CPU
plans, and an sm_90 plan's host step."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

rng = np.random.default_rng(0)


def _model(x: np.ndarray, k: int, axis: int, largest: int, how: str):
    out = list(x.shape)
    out[axis] = k
    etype = helper.np_dtype_to_tensor_dtype(x.dtype)
    inputs = [helper.make_tensor_value_info("x", etype, list(x.shape))]
    inits, names, attrs, opset = [], ["x"], {"axis": axis}, 11
    if how == "attribute":
        attrs, opset = {"axis": axis, "k": k}, 1
    elif how == "constant":
        inits, names = [helper.make_tensor("K", TensorProto.INT64, [1], [k])], ["x", "K"]
    else:
        inputs.append(helper.make_tensor_value_info("K", TensorProto.INT64, [1]))
        names = ["x", "K"]
    if opset >= 11:
        attrs["largest"] = largest
    node = helper.make_node("TopK", names, ["values", "indices"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [
        helper.make_tensor_value_info("values", etype, out),
        helper.make_tensor_value_info("indices", TensorProto.INT64, out)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _compare(model, feed, arch=None):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch))
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feed)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)
    for name, w in zip(("values", "indices"), want, strict=True):
        assert got[name].dtype == w.dtype
        np.testing.assert_array_equal(got[name], w, err_msg=name)
    return manifest


@pytest.mark.parametrize("how, largest", [("attribute", 1), ("constant", 1), ("constant", 0),
                                          ("run-time", 1), ("run-time", 0)])  # opset 1: largest
@pytest.mark.parametrize("axis", [-1, 0])
def test_topk_matches_onnxruntime(how, largest, axis):
    x = rng.integers(0, 5, (6, 7)).astype(np.float32)  # many ties
    model = _model(x, 3, axis, largest, how)
    feed = {"x": x} | ({"K": np.array([3])} if how == "run-time" else {})
    _compare(model, feed)


def test_topk_on_integers_and_a_cuda_plan():
    x = rng.integers(-50, 50, (4, 9)).astype(np.int32)
    manifest = _compare(_model(x, 4, 1, 1, "run-time"), {"x": x, "K": np.array([4])},
                        arch="sm_90")
    step = next(s for s in manifest["steps"] if s["template"] == "topk")
    assert step["device"] == "cpu" and "run-time parameters (dyn_k)" in step["fallback"]


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_nan_and_the_smallest_integers(largest):
    """NaN ranks above every number (onnxruntime); the smallest int does not overflow."""
    x = np.array([[1, np.nan, 3, 3, -np.inf, 2]], np.float32)
    _compare(_model(x, 3, -1, largest, "constant"), {"x": x})
    for dtype in (np.int8, np.int32, np.int64):
        info = np.iinfo(dtype)
        x = np.array([[info.min, 5, 3, -1, info.max]], dtype)
        _compare(_model(x, 2, -1, largest, "constant"), {"x": x})
