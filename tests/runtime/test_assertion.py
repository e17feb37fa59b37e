"""nn.assert, the run-time assumption a legalizer makes where a run-time input must agree with
the declared result shape the plan was built for (CenterCropPad's shape, AffineGrid's size):
the plan matches onnx.reference when it holds and refuses the run, naming the node, when it does
not; dead-code elimination keeps the assertion, and in a GPU plan it is a host step. With a
constant input there is nothing to assume."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import InputError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _context(model, arch=None):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch, autotune=False))
    context = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context()
    return manifest, context


def _crop_pad(constant: bool):
    ios = [h.make_tensor_value_info("x", T.FLOAT, [5, 7, 3])]
    inits = []
    target = np.array([6, 4], np.int64)
    if constant:
        inits.append(numpy_helper.from_array(target, "shape"))
    else:
        ios.append(h.make_tensor_value_info("shape", T.INT64, [2]))
    node = h.make_node("CenterCropPad", ["x", "shape"], ["y"], name="crop", axes=[0, 1])
    graph = h.make_graph([node], "g", ios, [h.make_tensor_value_info("y", T.FLOAT, [6, 4, 3])],
                         inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 18)]), target


@pytest.mark.parametrize("arch", [None, "sm_90"])
def test_a_run_time_shape_is_assumed_to_be_the_declared_one(arch):
    model, target = _crop_pad(constant=False)
    manifest, context = _context(model, arch)
    (check,) = [s for s in manifest["steps"] if s["template"] == "assert"]
    assert arch is None or check.get("device") == "cpu"
    x = np.random.default_rng(0).standard_normal((5, 7, 3)).astype(np.float32)
    feeds = {"x": x, "shape": target}
    np.testing.assert_array_equal(context.execute(feeds)["y"],
                                  ReferenceEvaluator(model).run(None, feeds)[0])
    with pytest.raises(InputError, match="node 'crop' \\(CenterCropPad\\): its shape input "
                                         "must be \\[6, 4\\], as the plan was built for"):
        context.execute({"x": x, "shape": np.array([6, 5], np.int64)})


def test_a_constant_shape_needs_no_assertion():
    model, _ = _crop_pad(constant=True)
    manifest, context = _context(model, "sm_90")
    assert [s["template"] for s in manifest["steps"]] == ["slice", "pad"]
    assert not any(s.get("device") for s in manifest["steps"])  # CUDA kernels
    x = np.random.default_rng(1).standard_normal((5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(context.execute({"x": x})["y"],
                                  ReferenceEvaluator(model).run(None, {"x": x})[0])


@pytest.mark.parametrize("dims, align", [((2, 5, 6), 0), ((2, 4, 5, 6), 1)])
def test_affine_grid(dims, align):
    k = len(dims) - 1
    ios = [h.make_tensor_value_info("theta", T.FLOAT, [2, k, k + 1]),
           h.make_tensor_value_info("size", T.INT64, [k + 2])]
    node = h.make_node("AffineGrid", ["theta", "size"], ["grid"], name="grid",
                       align_corners=align)
    out = [2, *dims[1:], k]
    model = h.make_model(h.make_graph([node], "g", ios,
                                      [h.make_tensor_value_info("grid", T.FLOAT, out)]),
                         opset_imports=[h.make_opsetid("", 20)])
    _, context = _context(model)
    theta = np.random.default_rng(2).standard_normal((2, k, k + 1)).astype(np.float32)
    feeds = {"theta": theta, "size": np.array([2, 3, *dims[1:]], np.int64)}
    np.testing.assert_allclose(context.execute(feeds)["grid"],
                               ReferenceEvaluator(model).run(None, feeds)[0], rtol=1e-5,
                               atol=1e-6)
    wrong = np.array([2, 3, *dims[1:-1], dims[-1] + 1], np.int64)
    with pytest.raises(InputError, match="node 'grid' \\(AffineGrid\\): its spatial size"):
        context.execute({**feeds, "size": wrong})
