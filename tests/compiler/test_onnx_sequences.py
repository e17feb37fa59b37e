"""Sequences and optionals lowered at import (compiler/onnx_sequences.py): where a sequence's
length and an optional's presence are known when the model is built, the sequence ops become
plain tensor nodes (SequenceAt an Identity, ConcatFromSequence a Concat, SplitToSequence a Split,
SequenceMap its body per element, ...), alternating with the control-flow lowering (a Loop over
SequenceLength, an If returning a sequence). Results against onnxruntime (onnx.reference's
Optional ops disagree with the spec) and ONNX's stored outputs;
graph inputs and outputs that are sequences or optionals, and run-time positions, are refused
naming the tensor or node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.ort_compat import for_onnxruntime
from ember.errors import ModelImportError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F, I64 = TensorProto.FLOAT, TensorProto.INT64
SEQ_F = helper.make_sequence_type_proto(helper.make_tensor_type_proto(F, None))


def _model(nodes, inputs, outputs, inits=(), opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _info(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def _int(name, value):
    return numpy_helper.from_array(np.array(value, np.int64), name)


def _ember(model, feed):
    manifest, sections = build_model(model, BuilderConfig())
    return Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context().execute(feed)


def _check(model, feed):
    """ember's outputs against onnxruntime's, dtype and shape too."""
    import onnxruntime as ort

    got = _ember(model, feed)
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)
    for vi, w in zip(model.graph.output, want, strict=True):
        have = np.asarray(got[vi.name])
        assert have.dtype == np.asarray(w).dtype and have.shape == np.asarray(w).shape, vi.name
        np.testing.assert_allclose(have, w, rtol=1e-6)


def _abc():
    rng = np.random.default_rng(0)
    return {n: rng.standard_normal((2, 3)).astype(np.float32) for n in "abc"}


@pytest.mark.parametrize("opset", [12, 18])
def test_construct_insert_erase_at_and_length(opset):
    """[a, b] -> insert c at 1 -> [a, c, b] -> erase -1 -> [a, c]; at(-1) = c, at(0) = a;
    length 2 (a Constant); concatenated along axis 0."""
    nodes = [helper.make_node("SequenceConstruct", ["a", "b"], ["s0"]),
             helper.make_node("SequenceInsert", ["s0", "c", "one"], ["s1"]),
             helper.make_node("SequenceErase", ["s1", "minus_one"], ["s2"]),
             helper.make_node("SequenceAt", ["s2", "minus_one"], ["last"]),
             helper.make_node("SequenceAt", ["s1", "zero"], ["first"]),
             helper.make_node("Add", ["last", "first"], ["y"]),
             helper.make_node("SequenceLength", ["s2"], ["n"]),
             helper.make_node("ConcatFromSequence", ["s1"], ["cat"], axis=0)]
    model = _model(nodes, [_info(n, [2, 3]) for n in "abc"],
                   [_info("y", [2, 3]), _info("n", [], I64), _info("cat", [6, 3])],
                   [_int("one", 1), _int("minus_one", -1), _int("zero", 0)], opset)
    _check(model, _abc())


def test_positions_computed_from_constants_and_an_empty_start():
    """SequenceEmpty, inserts at the back (no position), a position made by a small Constant
    computation; no sequence op is left for the nn dialect."""
    nodes = [helper.make_node("SequenceEmpty", [], ["s0"], dtype=F),
             helper.make_node("SequenceInsert", ["s0", "a"], ["s1"]),
             helper.make_node("SequenceInsert", ["s1", "b"], ["s2"]),
             helper.make_node("SequenceInsert", ["s2", "c"], ["s3"]),
             helper.make_node("Constant", [], ["k"], value=helper.make_tensor("v", I64, [], [3])),
             helper.make_node("Sub", ["k", "two"], ["pos"]),
             helper.make_node("SequenceAt", ["s3", "pos"], ["y"])]
    model = _model(nodes, [_info(n, [2, 3]) for n in "abc"], [_info("y", [2, 3])],
                   [_int("two", 2)])
    module = import_onnx(model)
    assert not any("sequence" in op.name.lower() for op in module.walk())
    _check(model, _abc())


@pytest.mark.parametrize("opset", [12, 18])
@pytest.mark.parametrize(("split", "keepdims", "axis"), [
    (None, 1, 1), (None, 0, 1), (None, 0, -1), (2, 1, 1), ([1, 3], 0, 1), ([3, 1, 2], 1, 0)])
def test_split_to_sequence_and_concat_back(opset, split, keepdims, axis):
    """SplitToSequence (no split: chunks of 1, squeezed where keepdims=0; a scalar split with a
    remainder; a list) then ConcatFromSequence along the axis (new_axis where squeezed) and the
    sequence's length."""
    shape = [6, 4]
    inits = [] if split is None else [_int("split", split)]
    squeezed = split is None and not keepdims
    nodes = [helper.make_node("SplitToSequence", ["x"] + ([] if split is None else ["split"]),
                              ["s"], axis=axis, keepdims=keepdims),
             helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=axis,
                              new_axis=int(squeezed)),
             helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("SequenceAt", ["s", "last"], ["tail"])]
    model = _model(nodes, [_info("x", shape)],
                   [_info("y", None), _info("n", [], I64), _info("tail", None)],
                   [*inits, _int("last", -1)], opset)
    x = np.arange(24, dtype=np.float32).reshape(shape)
    _check(model, {"x": x})


def test_concat_from_sequence_with_a_new_axis():
    nodes = [helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s"]),
             helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=-1, new_axis=1)]
    model = _model(nodes, [_info(n, [2, 3]) for n in "abc"], [_info("y", [2, 3, 3])])
    _check(model, _abc())


def _map_body():
    """(element, tensor) -> (element + tensor, Shape(element))."""
    return helper.make_graph(
        [helper.make_node("Add", ["e", "t"], ["sum"]), helper.make_node("Shape", ["e"], ["shp"])],
        "body", [helper.make_tensor_value_info("e", F, None),
                 helper.make_tensor_value_info("t", F, None)],
        [helper.make_tensor_value_info("sum", F, None),
         helper.make_tensor_value_info("shp", I64, None)])


def test_sequence_map_inlines_its_body_per_element():
    nodes = [helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
             helper.make_node("SequenceMap", ["s", "c"], ["sums", "shapes"], body=_map_body()),
             helper.make_node("ConcatFromSequence", ["sums"], ["y"], axis=0),
             helper.make_node("ConcatFromSequence", ["shapes"], ["z"], axis=0)]
    model = _model(nodes, [_info(n, [2, 3]) for n in "abc"],
                   [_info("y", [4, 3]), _info("z", [4], I64)])
    _check(model, _abc())


def test_a_loop_over_sequence_length_unrolls_and_appends():
    """SequenceMap's own expansion (onnx's function body): SequenceLength is the trip count of a
    Loop whose body reads SequenceAt(iteration) and appends to a carried sequence; lowering
    alternates with the Loop's unrolling."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("SequenceAt", ["s", "i"], ["e"]),
         helper.make_node("Relu", ["e"], ["r"]),
         helper.make_node("SequenceInsert", ["acc_in", "r"], ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", I64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_value_info("acc_in", SEQ_F)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_value_info("acc_out", SEQ_F)])
    nodes = [helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s"]),
             helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("SequenceEmpty", [], ["empty"], dtype=F),
             helper.make_node("Loop", ["n", "true", "empty"], ["mapped"], body=body),
             helper.make_node("ConcatFromSequence", ["mapped"], ["y"], axis=0)]
    model = _model(nodes, [_info(n, [2, 3]) for n in "abc"], [_info("y", [6, 3])],
                   [numpy_helper.from_array(np.array(True), "true")])
    _check(model, _abc())


def test_a_loop_body_reading_an_outer_split_sequence():
    """The body reads an outer sequence made by SplitToSequence (by name, not as an input): the
    list is rebuilt for the Loop until it is unrolled, then lowered with it; the scan output
    stacks each row times two."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("SequenceAt", ["rows", "i"], ["row"]),
         helper.make_node("Add", ["row", "row"], ["twice"])],
        "body", [helper.make_tensor_value_info("i", I64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("twice", F, None)])
    nodes = [helper.make_node("SplitToSequence", ["x"], ["rows"], axis=0, keepdims=0),
             helper.make_node("SequenceLength", ["rows"], ["n"]),
             helper.make_node("Loop", ["n", "true"], ["y"], body=body)]
    model = _model(nodes, [_info("x", [3, 4])], [_info("y", [3, 4])],
                   [numpy_helper.from_array(np.array(True), "true")])
    _check(model, {"x": np.arange(12, dtype=np.float32).reshape(3, 4)})


def test_an_if_on_a_constant_returns_a_sequence():
    def branch(name, elements):
        return helper.make_graph(
            [helper.make_node("SequenceConstruct", elements, ["s"])], name, [],
            [helper.make_value_info("s", SEQ_F)])

    nodes = [helper.make_node("If", ["c"], ["s"], then_branch=branch("then", ["a", "b"]),
                              else_branch=branch("else", ["c0", "a", "b"])),
             helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)]
    model = _model(nodes, [_info("a", [2, 3]), _info("b", [2, 3]), _info("c0", [2, 3])],
                   [_info("y", None)], [numpy_helper.from_array(np.array(False), "c")])
    feed = _abc()
    feed["c0"] = feed.pop("c")
    _check(model, feed)


@pytest.mark.parametrize("present", [True, False])
def test_optionals_resolve_statically(present):
    """Optional(a) or an empty Optional: OptionalHasElement a constant; OptionalGetElement of a
    present optional, and of a plain tensor, its value."""
    empty = {"type": helper.make_tensor_type_proto(F, [2, 3])}
    make = helper.make_node("Optional", ["a"] if present else [], ["o"],
                            **({} if present else empty))
    nodes = [make, helper.make_node("OptionalHasElement", ["o"], ["has"]),
             helper.make_node("OptionalGetElement", ["b"], ["b_value"])]
    outputs = [_info("has", [], TensorProto.BOOL), _info("b_value", [2, 3])]
    if present:
        nodes.append(helper.make_node("OptionalGetElement", ["o"], ["a_value"]))
        outputs.append(_info("a_value", [2, 3]))
    model = _model(nodes, [_info("a", [2, 3]), _info("b", [2, 3])], outputs)
    feed = _abc()
    del feed["c"]
    _check(model, feed)  # onnx.reference's Optional ops disagree with the spec


_SIMPLE = Path(onnx.__file__).parent / "backend/test/data/simple"


@pytest.mark.parametrize("number", range(1, 8))
def test_onnx_sequence_models_match_their_stored_outputs(number):
    """ONNX's own test_sequence_model1..7 (positions as initializers that are graph inputs too,
    constants to ember as every such initializer is)."""
    folder = _SIMPLE / f"test_sequence_model{number}"
    model = onnx.load(folder / "model.onnx")
    names = [vi.name for vi in model.graph.input]
    feed = {}
    for i, name in enumerate(names):
        path = folder / "test_data_set_0" / f"input_{i}.pb"
        if path.exists():
            feed[name] = numpy_helper.to_array(onnx.load_tensor(str(path)))
    want = numpy_helper.to_array(onnx.load_tensor(str(folder / "test_data_set_0/output_0.pb")))
    got = np.asarray(_ember(model, feed)[model.graph.output[0].name])
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)


# -- refused, naming the tensor or node ---------------------------------------------------------

def _refusal(model) -> str:
    with pytest.raises(ModelImportError) as info:
        import_onnx(model)
    return str(info.value)


def test_a_run_time_position_is_refused_naming_the_node():
    nodes = [helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
             helper.make_node("SequenceAt", ["s", "pos"], ["y"], name="pick")]
    model = _model(nodes, [_info("a", [2, 3]), _info("b", [2, 3]), _info("pos", [], I64)],
                   [_info("y", [2, 3])])
    text = _refusal(model)
    assert "'pick' (SequenceAt)" in text and "'pos' is a run-time value" in text


def test_a_position_out_of_range_is_refused():
    nodes = [helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
             helper.make_node("SequenceErase", ["s", "pos"], ["t"], name="drop"),
             helper.make_node("ConcatFromSequence", ["t"], ["y"], axis=0)]
    model = _model(nodes, [_info("a", [2, 3]), _info("b", [2, 3])], [_info("y", None)],
                   [_int("pos", 2)])
    text = _refusal(model)
    assert "'drop' (SequenceErase)" in text and "position 2 is out of range" in text


@pytest.mark.parametrize("where", ["input", "output"])
def test_a_sequence_graph_input_or_output_is_refused_naming_it(where):
    if where == "input":
        nodes = [helper.make_node("SequenceAt", ["seq", "zero"], ["y"])]
        inputs, outputs = [helper.make_value_info("seq", SEQ_F)], [_info("y", None)]
    else:
        nodes = [helper.make_node("SequenceConstruct", ["a", "a"], ["seq"])]
        inputs, outputs = [_info("a", [2, 3])], [helper.make_value_info("seq", SEQ_F)]
    text = _refusal(_model(nodes, inputs, outputs, [_int("zero", 0)]))
    assert f"'seq' (graph {where}): is a sequence" in text


def test_an_optional_graph_input_and_an_empty_optional_read_are_refused():
    opt = helper.make_optional_type_proto(helper.make_tensor_type_proto(F, [2]))
    nodes = [helper.make_node("OptionalHasElement", ["maybe"], ["has"]),
             helper.make_node("Optional", [], ["none"], type=helper.make_tensor_type_proto(F, [2])),
             helper.make_node("OptionalGetElement", ["none"], ["y"], name="get")]
    model = _model(nodes, [helper.make_value_info("maybe", opt)],
                   [_info("has", [], TensorProto.BOOL), _info("y", [2])])
    text = _refusal(model)
    assert "'maybe' (graph input): is an optional" in text
    assert "'get' (OptionalGetElement): its input 'none' is an empty optional" in text


def test_a_split_of_a_dynamic_dim_is_refused():
    nodes = [helper.make_node("SplitToSequence", ["x"], ["s"], name="split", axis=0),
             helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)]
    model = _model(nodes, [_info("x", ["N", 3])], [_info("y", ["N", 3])])
    text = _refusal(model)
    assert "'split' (SplitToSequence)" in text and "no static shape along axis 0" in text


def test_a_split_that_does_not_add_up_is_refused_naming_the_node():
    nodes = [helper.make_node("SplitToSequence", ["x", "sizes"], ["s"], name="split", axis=0),
             helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0)]
    model = _model(nodes, [_info("x", [6, 2])], [_info("y", [6, 2])],
                   [_int("sizes", [2, 3])])
    text = _refusal(model)
    assert "'split' (SplitToSequence)" in text
    assert "its split 'sizes' [2, 3] does not split the 6 elements of 'x' along axis 0" in text
