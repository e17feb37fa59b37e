"""convert-onnx-to-nn on QuantizeLinear / DequantizeLinear: numbers against onnx.reference
(per-tensor, per-axis, blocked; opsets 10, 13, 19, 21), rounding, saturation and errors."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from xdsl.dialects.builtin import IntegerType, Signedness, f32
from xdsl.ir import Block
from xdsl.parser import Parser

from ember.compiler.interpret import interpret
from ember.dialects import ember_context
from ember.dialects.nn.base import build
from ember.dialects.nn.quant import DequantizeOp, QuantizeOp
from ember.dialects.tensor_types import element_type_of, tensor_type
from ember.errors import EmberError, ShapeError
from tests.onnx_cases import check_against_reference, legalize, single_node_model

rng = np.random.default_rng(0)
X = (rng.standard_normal((2, 3, 4)) * 40).astype(np.float32)


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
@pytest.mark.parametrize("zp_dtype", [np.uint8, np.int8, None])
def test_quantize_per_tensor(opset, zp_dtype):
    inits = {"scale": np.array(0.5, np.float32)}
    if zp_dtype is not None:
        inits["zp"] = np.array(3, zp_dtype)
    model = single_node_model("QuantizeLinear", {"x": X}, initializers=inits, opset=opset)
    check_against_reference(model, {"x": X})


def test_quantize_missing_zero_point_is_uint8():
    model = single_node_model("QuantizeLinear", {"x": X},
                              initializers={"scale": np.array(0.25, np.float32)})
    module = legalize(model)
    q = next(op for op in module.walk() if isinstance(op, QuantizeOp))
    assert element_type_of(q.output) == IntegerType(8, Signedness.UNSIGNED)


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1000.0, -1000.0, 126.5, 127.5], np.float32)
    for zp in (np.array(0, np.int8), np.array(0, np.uint8), np.array(-3, np.int16)):
        model = single_node_model("QuantizeLinear", {"x": x},
                                  initializers={"scale": np.array(1.0, np.float32), "zp": zp})
        check_against_reference(model, {"x": x})


@pytest.mark.parametrize("axis", [1, -2, 0, 2])
def test_quantize_and_dequantize_per_axis(axis):
    n = X.shape[axis]
    scale = (rng.random(n) + 0.1).astype(np.float32)
    zp = rng.integers(-5, 5, n).astype(np.int8)
    model = single_node_model("QuantizeLinear", {"x": X},
                              initializers={"scale": scale, "zp": zp}, axis=axis)
    check_against_reference(model, {"x": X})
    q = rng.integers(-128, 127, X.shape).astype(np.int8)
    model = single_node_model("DequantizeLinear", {"q": q},
                              initializers={"scale": scale, "zp": zp}, axis=axis)
    check_against_reference(model, {"q": q})


@pytest.mark.parametrize("block_size,with_zp", [(2, True), (3, False), (4, True)])
def test_blocked(block_size, with_zp):
    x = (rng.standard_normal((3, 7)) * 10).astype(np.float32)
    nblocks = -(-7 // block_size)
    scale = (rng.random((3, nblocks)) + 0.1).astype(np.float32)
    inits = {"scale": scale}
    if with_zp:
        inits["zp"] = rng.integers(0, 20, (3, nblocks)).astype(np.uint8)
    model = single_node_model("QuantizeLinear", {"x": x}, initializers=inits, axis=1,
                              block_size=block_size)
    check_against_reference(model, {"x": x})
    q = rng.integers(0, 255, (3, 7)).astype(np.uint8)
    model = single_node_model("DequantizeLinear", {"q": q}, initializers=inits, axis=-1,
                              block_size=block_size)
    check_against_reference(model, {"q": q})


@pytest.mark.parametrize("opset", [10, 13, 19, 21])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
def test_dequantize_per_tensor(opset, dtype):
    q = rng.integers(0, 100, (2, 5)).astype(dtype)
    inits = {"scale": np.array(0.125, np.float32)}
    if dtype != np.int32:
        inits["zp"] = np.array(7, dtype)
    model = single_node_model("DequantizeLinear", {"q": q}, initializers=inits, opset=opset)
    if opset >= 19:
        check_against_reference(model, {"q": q})
        return
    # onnx.reference has no DequantizeLinear before 19; the semantics did not change since 10
    got = interpret(legalize(model), {"q": q})["y"]
    newer = single_node_model("DequantizeLinear", {"q": q}, initializers=inits, opset=19)
    want = onnx.reference.ReferenceEvaluator(newer).run(None, {"q": q})[0]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_float16_scale():
    x = X.astype(np.float16)
    scale = np.array(0.5, np.float16)
    model = single_node_model("QuantizeLinear", {"x": x},
                              initializers={"scale": scale, "zp": np.array(1, np.int8)})
    check_against_reference(model, {"x": x})
    q = rng.integers(-128, 127, (4,)).astype(np.int8)
    model = single_node_model("DequantizeLinear", {"q": q}, initializers={"scale": scale})
    check_against_reference(model, {"q": q})


def test_output_dtype_attribute():
    model = single_node_model("QuantizeLinear", {"x": X},
                              initializers={"scale": np.array(0.5, np.float32)},
                              output_dtype=TensorProto.INT16)
    check_against_reference(model, {"x": X})


def test_qdq_pair_and_ir_text_round_trip():
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q0"),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq0")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s"),
         onnx.numpy_helper.from_array(np.array(-2, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module = legalize(model)
    text = str(module)
    assert "nn.quantize" in text and "nn.dequantize" in text
    assert '#nn.layout<["N"]>' in text
    assert str(Parser(ember_context(), text).parse_module()) == text
    x = rng.standard_normal((3, 4)).astype(np.float32)
    got = interpret(module, {"x": x})["y"]
    want = onnx.reference.ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got, want)


def test_bad_scale_shape_names_the_node():
    model = single_node_model("QuantizeLinear", {"x": X},
                              initializers={"scale": np.ones(5, np.float32)}, axis=1)
    with pytest.raises(EmberError, match=r"node 'quantizelinear0' \(QuantizeLinear\).*5 values"):
        legalize(model)


def test_verifier_errors():
    block = Block(arg_types=[tensor_type([2, 3], f32), tensor_type([], f32),
                             tensor_type([], IntegerType(8)), tensor_type([2, 3], IntegerType(8))])
    x, s, z, q = block.args
    with pytest.raises(ShapeError, match="float tensor"):
        build(QuantizeOp, [q, s])
    with pytest.raises(ShapeError, match="differs"):
        build(QuantizeOp, [x, s, z], {"to": IntegerType(16)})
    with pytest.raises(ShapeError, match="zero point's element type"):
        build(DequantizeOp, [q, s, x])
    assert element_type_of(build(DequantizeOp, [q, s, z]).output) == f32


# -- QLinearConv, QLinearMatMul, DynamicQuantizeLinear (passes/convert_onnx_to_nn/qlinear.py) --

def _q(shape, dtype):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_qlinear_conv_against_the_reference(dtype, per_channel):
    x, w = _q((1, 3, 7, 7), dtype), _q((4, 3, 3, 3), dtype)
    channels = 4 if per_channel else 1
    inits = {"x_scale": np.array(0.02, np.float32), "x_zero_point": np.array(5, dtype),
             "w": w, "w_scale": (rng.random(channels) * 0.01 + 0.005).astype(np.float32),
             "w_zero_point": np.full(channels, 2 if dtype == np.uint8 else -1, dtype),
             "y_scale": np.array(0.3, np.float32), "y_zero_point": np.array(7, dtype),
             "B": rng.integers(-500, 500, 4).astype(np.int32)}
    if not per_channel:
        inits["w_scale"], inits["w_zero_point"] = inits["w_scale"][0], inits["w_zero_point"][0]
    inputs = {"x": x}
    names = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
             "y_zero_point", "B"]
    model = single_node_model("QLinearConv", inputs, initializers=inits, pads=[1, 1, 1, 1],
                              strides=[2, 2])
    model.graph.node[0].input[:] = names
    check_against_reference(model, inputs, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_qlinear_matmul_per_column(dtype):
    a, b = _q((2, 5, 6), dtype), _q((6, 3), dtype)
    inits = {"a_scale": np.array(0.03, np.float32),
             "a_zero_point": np.array(-2 if dtype == np.int8 else 9, dtype),
             "b": b, "b_scale": (rng.random((3,)) * 0.05 + 0.01).astype(np.float32),
             "b_zero_point": _q((3,), dtype),
             "y_scale": np.array(0.4, np.float32), "y_zero_point": np.array(3, dtype)}
    names = ["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale",
             "y_zero_point"]
    model = single_node_model("QLinearMatMul", {"a": a}, initializers=inits)
    model.graph.node[0].input[:] = names
    check_against_reference(model, {"a": a}, rtol=0, atol=0)


def test_dynamic_quantize_linear_against_the_reference():
    x = (rng.standard_normal((3, 4, 5)) * 3 + 1).astype(np.float32)
    model = single_node_model("DynamicQuantizeLinear", {"x": x},
                              outputs=("y", "y_scale", "y_zero_point"))
    check_against_reference(model, {"x": x}, rtol=0, atol=0)


def test_qlinear_matmul_refuses_a_per_row_scale():
    a, b = _q((5, 6), np.int8), _q((6, 3), np.int8)
    inits = {"a_scale": np.full(5, 0.1, np.float32), "a_zero_point": np.array(0, np.int8),
             "b": b, "b_scale": np.array(0.1, np.float32), "b_zero_point": np.array(0, np.int8),
             "y_scale": np.array(0.4, np.float32), "y_zero_point": np.array(0, np.int8)}
    model = single_node_model("QLinearMatMul", {"a": a}, initializers=inits)
    model.graph.node[0].input[:] = ["a", *inits]
    with pytest.raises(EmberError, match="a_scale has shape \\[5\\]; it is per tensor"):
        legalize(model)
