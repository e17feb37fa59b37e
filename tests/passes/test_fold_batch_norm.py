"""fold-batch-norm: numbers unchanged (against onnx.reference), BatchNorm gone."""

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.interpret import interpret
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import lower
from ember.dialects.origin import origin_of
from ember.dialects.weights import weights_of

rng = np.random.default_rng(7)


def _bn_params(prefix, c):
    return [numpy_helper.from_array(a.astype(np.float32), f"{prefix}.{n}") for n, a in (
        ("gamma", rng.standard_normal(c)), ("beta", rng.standard_normal(c)),
        ("mean", rng.standard_normal(c)), ("var", rng.uniform(0.5, 2.0, c)))]


def _model(conv_bias: bool, groups: int):
    w = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "conv.w"), *_bn_params("bn1", 6), *_bn_params("bn2", 6)]
    conv_inputs = ["x", "conv.w"]
    if conv_bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "conv.b"))
        conv_inputs.append("conv.b")
    bn = ["gamma", "beta", "mean", "var"]
    nodes = [h.make_node("Conv", conv_inputs, ["c"], name="conv", pads=[1] * 4, group=groups),
             h.make_node("BatchNormalization", ["c", *[f"bn1.{n}" for n in bn]], ["b"],
                         name="bn1", epsilon=1e-3),
             h.make_node("Relu", ["b"], ["r"], name="relu"),
             h.make_node("BatchNormalization", ["r", *[f"bn2.{n}" for n in bn]], ["y"],
                         name="bn2")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [2, 4, 5, 5])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 6, 5, 5])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 15)])


@pytest.mark.parametrize("conv_bias", [False, True])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_batch_norm_folds_and_computes_the_same(conv_bias, groups):
    model = _model(conv_bias, groups)
    module = lower(import_onnx(model), ["convert-onnx-to-nn", "fold-constants", "fold-batch-norm",
                                        "dce"])
    names = [op.name for op in module.walk()]
    assert "nn.batch_norm" not in names
    assert names.count("nn.conv") == 1 and names.count("nn.binary") == 2  # bn2: mul + add
    conv = next(op for op in module.walk() if op.name == "nn.conv")
    assert origin_of(conv) == ["conv", "bn1"]
    assert "conv.w+bn1" in weights_of(module).names()
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    got = interpret(module, {"x": x})["y"]
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
