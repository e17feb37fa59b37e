"""DFT (nn.dft) and STFT (nn.stft): forward, inverse and one-sided forms against onnx.reference
through the whole plan path, with constant and run-time parameters (the declared result dims,
checked when the plan runs)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import EmberError, StepError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _model(x_shape, out_shape, opset=20, length=None, axis=None, run_time=(), **attrs):
    """A DFT node; `length` / `axis` constants (initializers) unless named in `run_time`
    (graph inputs); before opset 20 `axis` is the node's attribute."""
    inputs = [helper.make_tensor_value_info("x", F, x_shape)]
    inits = []
    names = ["x", "", ""]
    for i, (name, value) in enumerate((("dft_length", length), ("axis", axis)), start=1):
        if opset < 20 and name == "axis":
            attrs["axis"] = value
            continue
        if value is None:
            continue
        names[i] = name
        if name in run_time:
            inputs.append(helper.make_tensor_value_info(name, I64, []))
        else:
            inits.append(helper.make_tensor(name, I64, [], [value]))
    while names and not names[-1]:
        names.pop()
    node = helper.make_node("DFT", names, ["y"], name="dft", **attrs)
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("y", F, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _context(model, arch=None):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch,
                                                          autotune=False if arch else None))
    return manifest, Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context()


CASES = [  # x shape, result shape, length, axis, attributes
    ((2, 8, 3, 1), (2, 8, 3, 2), None, 1, {}),
    ((2, 8, 3, 2), (2, 8, 3, 2), None, 1, {"inverse": 1}),
    ((2, 8, 3, 1), (2, 5, 3, 2), None, 1, {"onesided": 1}),
    ((2, 5, 3, 2), (2, 8, 3, 1), None, 1, {"inverse": 1, "onesided": 1}),
    ((2, 8, 3, 1), (2, 8, 12, 2), 12, 2, {}),   # zero-padded
    ((2, 8, 3, 2), (2, 5, 3, 2), 5, -3, {}),    # cut
]


@pytest.mark.parametrize("x_shape, out_shape, length, axis, attrs", CASES)
@pytest.mark.parametrize("run_time", [(), ("dft_length", "axis")])
def test_dft_matches_the_reference(x_shape, out_shape, length, axis, attrs, run_time):
    model = _model(x_shape, out_shape, length=length, axis=axis, run_time=run_time, **attrs)
    x = np.random.default_rng(len(x_shape) + x_shape[1]).standard_normal(x_shape)
    feed = {"x": x.astype(np.float32)}
    feed.update({n: np.array(v, np.int64) for n, v in (("dft_length", length), ("axis", axis))
                 if n in run_time and v is not None})
    _, context = _context(model)
    np.testing.assert_allclose(context.execute(feed)["y"],
                               ReferenceEvaluator(model).run(None, feed)[0], rtol=1e-4,
                               atol=1e-4)


def test_opset_17_axis_attribute_and_a_gpu_plan_on_the_host():
    model = _model((1, 6, 4, 1), (1, 6, 4, 2), opset=17, axis=2)
    x = np.random.default_rng(2).standard_normal((1, 6, 4, 1)).astype(np.float32)
    manifest, context = _context(model, arch="sm_90")
    (step,) = [s for s in manifest["steps"] if s["template"] == "dft"]
    assert step["device"] == "cpu" and step["params"]["axis"] == 2
    np.testing.assert_allclose(context.execute({"x": x})["y"],
                               ReferenceEvaluator(model).run(None, {"x": x})[0], rtol=1e-4,
                               atol=1e-4)


def test_a_run_time_length_giving_another_shape_is_refused():
    model = _model((2, 8, 3, 1), (2, 8, 3, 2), length=8, axis=1, run_time=("dft_length",))
    _, context = _context(model)
    x = np.zeros((2, 8, 3, 1), np.float32)
    with pytest.raises(StepError, match="dft"):
        context.execute({"x": x, "dft_length": np.array(6, np.int64)})


def test_the_last_axis_is_refused():
    with pytest.raises(EmberError, match="last"):
        build_model(_model((2, 8, 1), (2, 8, 2), axis=-1), BuilderConfig())


@pytest.mark.parametrize("onesided", [0, 1])
@pytest.mark.parametrize("run_time", [False, True])
def test_stft_matches_the_reference(onesided, run_time):
    """A Hann window, 4-sample steps; the step a constant or a run-time input (the declared
    shape sizes the result; a step giving another frame count is refused)."""
    bins = 9 if onesided else 16
    window = helper.make_tensor("window", F, [16], np.hanning(16).astype(np.float32))
    inputs = [helper.make_tensor_value_info("x", F, [2, 64, 1])]
    inits = [window]
    if run_time:
        inputs.append(helper.make_tensor_value_info("step", I64, []))
    else:
        inits.append(helper.make_tensor("step", I64, [], [4]))
    node = helper.make_node("STFT", ["x", "step", "window"], ["y"], name="stft",
                            onesided=onesided)
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("y", F, [2, 13, bins, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(4).standard_normal((2, 64, 1)).astype(np.float32)
    feed = {"x": x, **({"step": np.array(4, np.int64)} if run_time else {})}
    _, context = _context(model)
    np.testing.assert_allclose(context.execute(feed)["y"],
                               ReferenceEvaluator(model).run(None, feed)[0], rtol=1e-4,
                               atol=1e-4)
    if run_time:
        with pytest.raises(StepError, match="stft"):
            context.execute({"x": x, "step": np.array(8, np.int64)})
