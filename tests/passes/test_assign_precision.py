"""assign-precision on ONNX models: what it converts, where it casts, what it refuses."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import run_passes
from ember.dialects.nn.elementwise import CastOp, WeightOp
from ember.dialects.tensor_types import element_type_of
from ember.dialects.weights import weights_of
from ember.errors import PassError
from ember.passes.assign_precision import AssignPrecision, parse_output_types
from tests.onnx_cases import small_cnn


def _lower(model: onnx.ModelProto, **options):
    module = import_onnx(model)
    run_passes(module, ["convert-onnx-to-nn", "fold-constants", "canonicalize", "dce",
                        AssignPrecision(**options)])
    return module


def _ops(module, name: str) -> list:
    return [op for op in module.walk() if op.name == name]


def _types(op) -> list[str]:
    return [str(element_type_of(v)) for v in (*op.operands, *op.results)]


def test_fp16_converts_weights_at_build_time_and_keeps_io_types():
    module = _lower(small_cnn(), fp16=True)
    fn = next(op for op in module.walk() if op.name == "func.func")
    assert [str(element_type_of(t)) for t in fn.function_type.inputs.data] == ["f32"]
    assert [str(element_type_of(t)) for t in fn.function_type.outputs.data] == ["f32"]
    casts = _ops(module, "nn.cast")
    assert len(casts) == 2  # the input in, the output out: none on a weight
    assert not any(isinstance(c.input.owner, WeightOp) for c in casts)
    store = weights_of(module)
    w = small_cnn().graph.initializer[0]
    np.testing.assert_array_equal(store[f"{w.name}.fp16"],
                                  numpy_helper.to_array(w).astype(np.float16))
    assert {str(element_type_of(r)) for op in module.walk() if op.name in
            ("nn.conv", "nn.pool", "nn.matmul", "nn.softmax") for r in op.results} == {"f16"}
    refs = {op.ref.data for op in module.walk() if isinstance(op, WeightOp)}
    assert w.name not in refs  # the FP32 original is gone from the module


def test_edge_casts_are_named_after_their_tensors():
    """No ONNX node made the casts at the network's edges: their origin names the input or
    output they serve, and the layer table shows it (the output's on the softmax's row: the
    cast is its epilogue, so it stores FP32)."""
    from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
    from ember.dialects.origin import origin_of
    from ember.runtime.inspector import layer_table

    module = _lower(small_cnn(), fp16=True)
    assert [origin_of(c) for c in _ops(module, "nn.cast")] == [["cast(input:x)"],
                                                               ["cast(output:y)"]]
    manifest, _ = build_model(small_cnn(), BuilderConfig(flags=BuilderFlag.FP16))
    assert [s["origin"] for s in manifest["steps"] if s["template"] == "elementwise"] == [
        ["cast(input:x)"]]
    (softmax,) = [s for s in manifest["steps"] if s["template"] == "softmax"]
    assert softmax["origin"] == ["softmax", "cast(output:y)"]
    assert softmax["params"]["epilogue"]["out_dtype"] == "float32"
    rows = layer_table(manifest).splitlines()
    assert rows[1].rstrip().endswith(" cast(input:x)")
    assert next(r for r in rows if r.strip().startswith("softmax")) == rows[-3]
    assert rows[-3].rstrip().endswith(" softmax, cast(output:y)")


def test_edge_cast_without_a_tensor_name_is_named_by_position():
    from xdsl.dialects import func
    from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, StringAttr

    from ember.dialects.origin import origin_of

    module = import_onnx(small_cnn())
    fn = next(op for op in module.walk() if isinstance(op, func.FuncOp))
    fn.arg_attrs = ArrayAttr([DictionaryAttr({})])
    fn.res_attrs = ArrayAttr([DictionaryAttr({"ember.name": StringAttr("probs")})])
    run_passes(module, ["convert-onnx-to-nn", "fold-constants", AssignPrecision(fp16=True)])
    assert [origin_of(c) for c in _ops(module, "nn.cast")] == [["cast(input:#0)"],
                                                               ["cast(output:probs)"]]


def _movement_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    nodes = [h.make_node("Transpose", ["x"], ["t"], name="tr", perm=[1, 0]),
             h.make_node("MatMul", ["t", "w"], ["m"], name="mm"),
             h.make_node("Reshape", ["m", "shape"], ["y"], name="rs"),
             h.make_node("ArgMax", ["y"], ["am"], name="am", axis=0, keepdims=0)]
    shape = numpy_helper.from_array(np.array([-1], np.int64), "shape")
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [4, 2])],
                         [h.make_tensor_value_info("y", T.FLOAT, [6]),
                          h.make_tensor_value_info("am", T.INT64, [])], [w, shape])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_movement_follows_its_input_and_integers_are_untouched():
    module = _lower(_movement_model(), fp16=True)
    (tr,) = _ops(module, "nn.transpose")
    assert _types(tr) == ["f32", "f32"]  # reads the f32 input: no cast in front of it
    (mm,) = _ops(module, "nn.matmul")
    assert _types(mm) == ["f16", "f16", "f16"]
    (rs,) = _ops(module, "nn.reshape")
    assert _types(rs)[0] == "f16" and _types(rs)[-1] == "f16"  # follows the f16 matmul
    (am,) = _ops(module, "nn.arg_reduce")
    assert _types(am) == ["f16", "i64"]


def test_pinned_layer_under_obey():
    module = _lower(small_cnn(), fp16=True, constraints="obey", layer_precisions="fc:fp32")
    (mm,) = _ops(module, "nn.matmul")
    assert _types(mm) == ["f32", "f32", "f32"]
    (conv,) = _ops(module, "nn.conv")
    assert _types(conv)[-1] == "f16"


def test_output_type_stores_the_result_in_that_type():
    # an FP32 build storing the conv's output in FP16: f32 -> f16 -> f32 rounds, so it stays
    module = _lower(small_cnn(), constraints="obey", output_types="conv:0:fp16")
    (conv,) = _ops(module, "nn.conv")
    assert _types(conv)[-1] == "f32"
    (cast,) = [u.operation for u in conv.results[0].uses]
    assert isinstance(cast, CastOp) and str(cast.to) == "f16"
    (back,) = [u.operation for u in cast.output.uses]
    assert isinstance(back, CastOp) and str(back.to) == "f32"
    # in an FP16 build an FP32 output type read by FP16 ops cancels (f16 -> f32 -> f16 is exact)
    module = _lower(small_cnn(), fp16=True, output_types="conv:0:fp32")
    (conv,) = _ops(module, "nn.conv")
    assert [u.operation.name for u in conv.results[0].uses] == ["nn.unary"]


def test_impossible_pin_obey_raises_prefer_warns():
    model = _movement_model()
    why = r"node 'am' \(nn.arg_reduce\): output #0 is i64, not a floating-point tensor"
    with pytest.raises(PassError, match=why):
        _lower(model, constraints="obey", output_types="am:0:fp16")
    with pytest.warns(UserWarning, match=why):
        module = _lower(model, constraints="prefer", output_types="am:0:fp16")
    (am,) = _ops(module, "nn.arg_reduce")
    assert _types(am) == ["f32", "i64"]


def test_unmatched_name_is_a_warning_in_the_pass():
    with pytest.warns(UserWarning, match="nosuch.*matches no op"):
        _lower(small_cnn(), fp16=True, layer_precisions="nosuch:fp32")


def test_unmatched_names_in_a_build_are_folded_nodes_and_patterns_warn_once():
    """As the builder runs it (`names_checked`, `patterns`): a full name matching no op is a
    node folded at build time; a node a pattern gave is not reported itself, the pattern only
    where no op of any node it matches is left."""
    with pytest.warns(UserWarning, match="for gone: node.s. of the model folded away at build "
                                         "time"):
        _lower(small_cnn(), fp16=True, layer_precisions="gone:fp32", names_checked=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 'c*' matches the conv: nothing about gone
        _lower(small_cnn(), fp16=True, layer_precisions="conv:fp32,gone:fp32",
               names_checked=True, patterns="c*=conv|gone")
    with pytest.warns(UserWarning) as caught:
        _lower(small_cnn(), fp16=True, layer_precisions="gone:fp32", names_checked=True,
               patterns="go*=gone")
    assert [str(w.message) for w in caught] == [
        "assign-precision: per-layer precision pattern 'go*' matches no op (the nodes it "
        "matches were folded away at build time)"]


def test_bad_specs_are_errors():
    with pytest.raises(PassError, match="'conv\\*': a wildcard pattern, which the builder "
                                        "expands"):
        _lower(small_cnn(), layer_precisions="conv*:fp32")
    with pytest.raises(PassError, match="PATTERN=NODE"):
        _lower(small_cnn(), layer_precisions="conv:fp32", patterns="conv=conv")
    with pytest.raises(PassError, match="NODE:PRECISION"):
        _lower(small_cnn(), layer_precisions="conv:int8")
    with pytest.raises(PassError, match="constraints must be"):
        _lower(small_cnn(), fp16=True, constraints="maybe")
    with pytest.raises(PassError, match="NODE:INDEX:PRECISION"):
        parse_output_types("conv:fp16")
    assert parse_output_types("a:b:1:bf16") == {("a:b", 1): "bf16"}


def _lp_norm_model() -> onnx.ModelProto:
    """x -> LpNormalization (node "lpn", p=2): one ONNX output made by several nn ops (x*x, a
    sum, sqrt, a compare with 0, a select and the final div)."""
    graph = h.make_graph([h.make_node("LpNormalization", ["x"], ["y"], name="lpn", axis=1, p=2)],
                         "lp", [h.make_tensor_value_info("x", T.FLOAT, [2, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 8])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_output_type_of_a_node_made_of_several_ops_casts_its_output_only():
    """Output #0 of a node the importer made several ops of is the last op's result: only it is
    cast (not each op's result #0, which would round the norm and refuse the boolean compare
    under OBEY)."""
    module = _lower(_lp_norm_model(), constraints="obey", output_types="lpn:0:fp16")
    (div,) = [op for op in _ops(module, "nn.binary") if str(op).startswith('nn.binary "div"')
              or ' = nn.binary "div"' in str(op)]
    casts = _ops(module, "nn.cast")
    assert [str(c.to) for c in casts] == ["f16", "f32"]
    assert casts[0].operands[0] is div.results[0]
    assert _types(div) == ["f32", "f32", "f32"]
    assert "ember.node_outputs = {lpn = array<i64: 0>}" in str(div)
