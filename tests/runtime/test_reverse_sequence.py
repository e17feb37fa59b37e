"""ReverseSequence (nn.reverse_sequence): both axis orders against onnx.reference; lengths out
of range are an error naming the op."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import ShapeError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


@pytest.mark.parametrize("batch_axis, time_axis, shape", [(1, 0, (4, 3, 2)), (0, 1, (3, 4))])
def test_reverse_sequence(batch_axis, time_axis, shape):
    node = helper.make_node("ReverseSequence", ["x", "lens"], ["y"], batch_axis=batch_axis,
                            time_axis=time_axis)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape)),
                      helper.make_tensor_value_info("lens", TensorProto.INT64, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    manifest, sections = build_model(model, BuilderConfig())
    context = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context()
    feed = {"x": np.arange(np.prod(shape), dtype=np.float32).reshape(shape),
            "lens": np.array([4, 1, 2])}
    np.testing.assert_array_equal(context.execute(feed)["y"],
                                  ReferenceEvaluator(model).run(None, feed)[0])
    with pytest.raises(ShapeError, match="reverse_sequence: sequence_lens"):
        context.execute({**feed, "lens": np.array([5, 1, 2])})
