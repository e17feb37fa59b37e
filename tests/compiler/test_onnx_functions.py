"""ONNX function ops ember has no legalizer for run through their schema's body
(compiler/onnx_functions.py): numbers against onnx.reference through the whole plan path on the
CPU executor, origins naming the ONNX node, and model-local functions."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.onnx_functions import expand_functions
from ember.errors import UnsupportedError
from ember.passes.convert_onnx_to_nn import LEGALIZERS
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

rng = np.random.default_rng(0)
F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=23, functions=(), extra_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, functions=list(functions), opset_imports=[
        helper.make_opsetid("", opset), *extra_opsets])


def _run(model, feed):
    manifest, sections = build_model(model, BuilderConfig())
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine.create_execution_context().execute(feed)


def _check(model, feed, rtol=1e-5, atol=1e-6):
    manifest, got = _run(model, feed)
    want = ReferenceEvaluator(model).run(None, feed)
    for out, expected in zip(model.graph.output, want, strict=True):
        assert got[out.name].dtype == expected.dtype and got[out.name].shape == expected.shape
        np.testing.assert_allclose(got[out.name], expected, rtol=rtol, atol=atol,
                                   err_msg=out.name)
    return manifest


def test_rms_normalization_runs_its_body_and_names_the_node():
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    scale = rng.standard_normal(8).astype(np.float32)
    model = _model([helper.make_node("RMSNormalization", ["x", "scale"], ["y"], axis=-1,
                                     epsilon=1e-3, name="rms")],
                   [helper.make_tensor_value_info("x", F, [2, 5, 8])],
                   [helper.make_tensor_value_info("y", F, [2, 5, 8])],
                   [onnx.numpy_helper.from_array(scale, "scale")])
    before = model.SerializeToString()
    manifest = _check(model, {"x": x})
    assert model.SerializeToString() == before  # the caller's model is not changed
    origins = {o for step in manifest["steps"] for o in step.get("origin", [])}
    assert origins and all(o.startswith("rms::") for o in origins), origins


@pytest.mark.parametrize("causal", [0, 1])
def test_attention_with_grouped_heads_matches_the_reference(causal):
    """opset-23 Attention, 3-D inputs, 4 query heads over 2 key/value heads, a float mask."""
    b, s, d = 2, 6, 8
    q = rng.standard_normal((b, s, 4 * d)).astype(np.float32)
    k = rng.standard_normal((b, s, 2 * d)).astype(np.float32)
    v = rng.standard_normal((b, s, 2 * d)).astype(np.float32)
    mask = np.where(rng.random((s, s)) < 0.2, -np.inf, 0).astype(np.float32)
    mask[:, 0] = 0  # no row fully masked
    model = _model([helper.make_node("Attention", ["q", "k", "v", "mask"], ["y"],
                                     q_num_heads=4, kv_num_heads=2, is_causal=causal,
                                     name="attn")],
                   [helper.make_tensor_value_info(n, F, a.shape)
                    for n, a in (("q", q), ("k", k), ("v", v))],
                   [helper.make_tensor_value_info("y", F, [b, s, 4 * d])],
                   [onnx.numpy_helper.from_array(mask, "mask")])
    _check(model, {"q": q, "k": k, "v": v}, rtol=1e-4, atol=1e-5)


def test_model_local_functions_are_inlined():
    """A model's own function (custom domain), used twice: y = f(f(x)), f(t) = t * sigmoid(t)."""
    body = [helper.make_node("Sigmoid", ["t"], ["s"]), helper.make_node("Mul", ["t", "s"], ["o"])]
    fn = helper.make_function("my.fns", "SiLU", ["t"], ["o"], body,
                              [helper.make_opsetid("", 23)])
    model = _model([helper.make_node("SiLU", ["x"], ["h"], domain="my.fns", name="a"),
                    helper.make_node("SiLU", ["h"], ["y"], domain="my.fns", name="b")],
                   [helper.make_tensor_value_info("x", F, [3, 4])],
                   [helper.make_tensor_value_info("y", F, [3, 4])],
                   functions=[fn], extra_opsets=[helper.make_opsetid("my.fns", 1)])
    _check(model, {"x": rng.standard_normal((3, 4)).astype(np.float32)})


def test_a_body_using_another_function_op_and_schema_defaults():
    """SwiGLU's body uses Swish (itself a function) without alpha: the schema's default."""
    a, b = rng.standard_normal((2, 3, 4)).astype(np.float32)
    model = _model([helper.make_node("SwiGLU", ["a", "b"], ["y"], name="glu")],
                   [helper.make_tensor_value_info(n, F, [3, 4]) for n in "ab"],
                   [helper.make_tensor_value_info("y", F, [3, 4])], opset=28)
    _check(model, {"a": a, "b": b})


def test_native_ops_and_plain_models_are_left_alone():
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", F, [2])],
                   [helper.make_tensor_value_info("y", F, [2])])
    assert expand_functions(model, LEGALIZERS.__contains__) is model


def test_an_op_without_a_function_body_is_still_named():
    model = _model([helper.make_node("Multinomial", ["x"], ["y"], name="u")],
                   [helper.make_tensor_value_info("x", F, [2, 4])],
                   [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 1])])
    with pytest.raises(UnsupportedError, match="Multinomial"):
        build_model(model, BuilderConfig())


def test_a_per_layer_precision_on_a_function_op_applies_to_its_body():
    scale = rng.standard_normal(8).astype(np.float32)
    model = _model([helper.make_node("RMSNormalization", ["x", "scale"], ["y"], axis=-1,
                                     name="rms")],
                   [helper.make_tensor_value_info("x", F, [2, 5, 8])],
                   [helper.make_tensor_value_info("y", F, [2, 5, 8])],
                   [onnx.numpy_helper.from_array(scale, "scale")])
    from ember.compiler.builder import BuilderFlag

    config = BuilderConfig(flags=BuilderFlag.FP16 | BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_layer_precisions("rms:fp32")
    manifest, _ = build_model(model, config)
    body = [s for s in manifest["steps"] if any(o.startswith("rms::") for o in s["origin"])]
    assert body and all(d == "float32" for s in body for d in s["params"]["out_dtypes"])
    unpinned, _ = build_model(model, BuilderConfig(flags=BuilderFlag.FP16))
    assert any(d == "float16" for s in unpinned["steps"] for d in s["params"]["out_dtypes"])


def test_a_preview_domain_op_runs_through_its_schemas_body():
    """FlexAttention (domain ai.onnx.preview) has a context-dependent body in onnx's schema:
    expanded like a default-domain function op, against the reference's expanded model (the
    reference evaluator has no kernel for the op itself)."""
    node = helper.make_node("FlexAttention", ["q", "k", "v"], ["y"], domain="ai.onnx.preview",
                            name="flex")
    ios = [helper.make_tensor_value_info(n, F, [1, 2, 4, 8]) for n in ("q", "k", "v")]
    model = _model([node], ios, [helper.make_tensor_value_info("y", F, [1, 2, 4, 8])],
                   extra_opsets=[helper.make_opsetid("ai.onnx.preview", 1)])
    expanded = expand_functions(model, LEGALIZERS.__contains__)
    assert [n.domain for n in expanded.graph.node] == [""] * len(expanded.graph.node)
    feed = {n: rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for n in ("q", "k", "v")}
    manifest, got = _run(model, feed)
    want = ReferenceEvaluator(expanded).run(None, feed)[0]
    np.testing.assert_allclose(got["y"], want, rtol=1e-5, atol=1e-6)
    # plain scaled-dot-product attention, which is what FlexAttention without mods is
    s = np.einsum("bhqd,bhkd->bhqk", feed["q"], feed["k"]) / np.sqrt(8)
    p = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(got["y"], (p / p.sum(-1, keepdims=True)) @ feed["v"],
                               rtol=1e-5, atol=1e-5)
    assert any("flex" in o for s in manifest["steps"] for o in s["origin"])
