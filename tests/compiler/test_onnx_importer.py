"""The ONNX importer: faithful onnx-dialect IR, named I/O, weights by name, one error for all."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from xdsl.parser import Parser

from ember.compiler.onnx_importer import graph_io_names, import_onnx
from ember.dialects import ember_context
from ember.dialects.weights import weights_of
from ember.errors import ModelImportError


def _model(nodes, inputs, outputs, inits=(), opset=17, ir_version=None):
    graph = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def _conv_model(**kw):
    w = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2), "conv.weight")
    return _model([h.make_node("Conv", ["x", "conv.weight"], ["y"], name="conv0")],
                  [h.make_tensor_value_info("x", T.FLOAT, ["N", 1, 4, 4])],
                  [h.make_tensor_value_info("y", T.FLOAT, None)], [w], **kw)


def test_names_weights_and_opset():
    module = import_onnx(_conv_model())
    text = str(module)
    assert "onnx.opset = 17" in text
    assert '%1 = onnx.weight "conv.weight" : tensor<2x1x2x2xf32>' in text
    # one optional input: no segment sizes needed
    assert '"onnx.Conv"(%0, %1) <{operandSegmentSizes' not in text
    assert '{ember.node = "conv0"}' in text
    assert 'tensor<?x1x4x4xf32, #nn.layout<["N"]>> {ember.name = "x"}' in text
    assert graph_io_names(module) == (["x"], ["y"])
    np.testing.assert_array_equal(weights_of(module)["conv.weight"],
                                  np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2))
    assert "0.000000e+00, 1.000000e+00" not in text  # never inline


def test_text_round_trips():
    text = str(import_onnx(_conv_model()))
    assert str(Parser(ember_context(), text).parse_module()) == text


def test_old_ir_version_lists_weights_as_inputs():
    model = _conv_model(ir_version=3, opset=9)
    model.graph.input.append(h.make_tensor_value_info("conv.weight", T.FLOAT, [2, 1, 2, 2]))
    module = import_onnx(model)
    assert graph_io_names(module)[0] == ["x"]
    assert 'onnx.weight "conv.weight"' in str(module)


def test_older_opset_gets_its_own_op():
    model = _model([h.make_node("Clip", ["x"], ["y"], min=0.0, max=6.0)],
                   [h.make_tensor_value_info("x", T.FLOAT, [3])],
                   [h.make_tensor_value_info("y", T.FLOAT, [3])], opset=6)
    text = str(import_onnx(model))
    assert '"onnx.Clip_v6"(%0) <{max = 6.000000e+00 : f32, min = 0.000000e+00 : f32}>' in text


def test_optional_inputs_keep_their_positions():
    model = _model([h.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
                   [h.make_tensor_value_info("x", T.FLOAT, [1, 1, 2, 2])],
                   [h.make_tensor_value_info("y", T.FLOAT, None)],
                   [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")])
    assert "operandSegmentSizes = array<i32: 1, 0, 1, 0>" in str(import_onnx(model))


def test_large_constant_goes_to_the_store():
    big = numpy_helper.from_array(np.ones((4, 8), np.float32))
    small = numpy_helper.from_array(np.array([2, 3], np.int64))
    model = _model([h.make_node("Constant", [], ["c"], value=big),
                    h.make_node("Constant", [], ["s"], value=small),
                    h.make_node("Reshape", ["c", "s"], ["y"])],
                   [], [h.make_tensor_value_info("y", T.FLOAT, None)])
    module = import_onnx(model)
    text = str(module)
    assert 'onnx.weight "c" : tensor<4x8xf32>' in text
    assert "value = dense<[2, 3]> : tensor<2xi64>" in text
    assert weights_of(module)["c"].shape == (4, 8)


def test_external_data_loads(tmp_path):
    model = _conv_model()
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.data", size_threshold=0)
    assert (tmp_path / "m.data").exists()
    module = import_onnx(tmp_path / "m.onnx")
    assert weights_of(module)["conv.weight"].sum() == 28


def test_every_offending_node_is_listed():
    body = h.make_graph([], "body", [], [])
    model = _model(
        [h.make_node("If", ["c"], ["a"], name="branch", then_branch=body, else_branch=body),
         h.make_node("Relu", ["x"], ["r"], name="fine"),
         h.make_node("MyOp", ["r"], ["b"], name="custom", domain="com.example"),
         h.make_node("Abs", ["ghost"], ["d"], name="dangling")],
        [h.make_tensor_value_info("c", T.BOOL, []), h.make_tensor_value_info("x", T.FLOAT, [2]),
         h.make_tensor_value_info("s", T.STRING, [2])],
        [h.make_tensor_value_info("r", T.FLOAT, [2])])
    with pytest.raises(ModelImportError) as info:
        import_onnx(model)
    message = str(info.value)
    for expected in ["node 'branch' (If): subgraph attribute 'then_branch'",
                     "node 'custom' (MyOp): operator domain 'com.example' is not supported",
                     "node 'dangling' (Abs): input 'ghost' is not produced",
                     "node 's' (graph input): element type string is not supported"]:
        assert expected in message
    assert "'fine'" not in message
    assert len(info.value.problems) == 5  # both branches of the If


def test_malformed_inputs_are_clear(tmp_path):
    with pytest.raises(ModelImportError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot a model")
    with pytest.raises(ModelImportError, match="cannot read the model"):
        import_onnx(tmp_path / "junk.onnx")
    with pytest.raises(ModelImportError, match="not an ONNX model"):
        import_onnx(b"\x08\x07\xff\xff")
