"""ONNX Det (nn.det: numpy's determinant in float64, a host step in GPU plans): 2-D and batched
inputs against numpy in float64, a GPU build keeping it on the host, and a non-square input
refused naming the node."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import UnsupportedError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _model(shape, out):
    graph = helper.make_graph([helper.make_node("Det", ["x"], ["y"], name="det")], "det",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


@pytest.mark.parametrize("shape", [[3, 3], [2, 4, 5, 5]])
@pytest.mark.parametrize("arch", [None, "sm_90"])
def test_det_matches_numpy(shape, arch):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    manifest, sections = build_model(_model(shape, shape[:-2]),
                                     BuilderConfig(target_arch=arch, autotune=False))
    (step,) = [s for s in manifest["steps"] if s["template"] == "det"]
    assert arch is None or step.get("device") == "cpu"  # a host step in a GPU plan
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    assert got.shape == tuple(shape[:-2]) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.linalg.det(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_a_non_square_input_is_refused_naming_the_node():
    with pytest.raises(UnsupportedError, match="'det' \\(Det\\).*square"):
        build_model(_model([3, 4], []), BuilderConfig())
