"""convert-onnx-to-nn on linear-algebra operators (Conv, ConvTranspose, Gemm, MatMul, Einsum,
MatMulInteger, ConvInteger): numbers against onnx.reference, symbolic dims, errors."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from xdsl.dialects.builtin import f32
from xdsl.ir import Block
from xdsl.parser import Parser

from ember.compiler.interpret import interpret
from ember.dialects import ember_context
from ember.dialects.nn.base import build
from ember.dialects.nn.linear import ConvOp, EinsumOp, MatMulOp
from ember.dialects.tensor_types import shape_of, tensor_type
from ember.errors import EmberError, ShapeError, UnsupportedError
from tests.onnx_cases import check_against_reference, legalize, single_node_model

rng = np.random.default_rng(0)


def randn(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# -- Conv ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((1, 2, 9), (3, 2, 3), {}),                                                     # 1-D
    ((2, 3, 7), (4, 3, 2), {"strides": [2], "pads": [1, 0], "dilations": [2]}),      # 1-D
    ((1, 3, 8, 8), (4, 3, 3, 3), {}),                                               # 2-D
    ((2, 3, 8, 7), (4, 3, 3, 2), {"pads": [1, 0, 2, 1]}),                           # asymmetric
    ((1, 3, 9, 9), (4, 3, 3, 3), {"strides": [2, 3], "pads": [1, 1, 1, 1]}),        # stride
    ((1, 2, 9, 9), (2, 2, 3, 3), {"dilations": [2, 3]}),                            # dilation
    ((1, 4, 6, 6), (6, 2, 3, 3), {"group": 2, "pads": [1, 1, 1, 1]}),               # groups
    ((1, 4, 6, 6), (4, 1, 3, 3), {"group": 4}),                                     # depthwise
    ((1, 2, 5, 6, 4), (3, 2, 3, 2, 2), {"pads": [1, 0, 1, 1, 0, 0]}),               # 3-D
    ((1, 3, 7, 8), (2, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 3, 7, 8), (2, 3, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 1]}),
    ((1, 3, 7, 8), (2, 3, 3, 3), {"auto_pad": "VALID", "strides": [2, 2]}),
    ((1, 3, 8, 8), (2, 3, 3, 3), {"kernel_shape": [3, 3]}),
])
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv(x_shape, w_shape, attrs, with_bias):
    x, w = randn(*x_shape), randn(*w_shape)
    inits = {"w": w} | ({"b": randn(w_shape[0])} if with_bias else {})
    model = single_node_model("Conv", {"x": x}, initializers=inits, **attrs)
    check_against_reference(model, {"x": x}, rtol=1e-4, atol=1e-5)


def test_conv_weight_as_input_float64_and_float16():
    x, w = randn(1, 2, 6, 6, dtype=np.float64), randn(3, 2, 3, 3, dtype=np.float64)
    check_against_reference(single_node_model("Conv", {"x": x, "w": w}), {"x": x, "w": w})
    x16, w16 = x.astype(np.float16), w.astype(np.float16)
    check_against_reference(single_node_model("Conv", {"x": x16, "w": w16}),
                            {"x": x16, "w": w16}, rtol=1e-2, atol=1e-2)


def test_conv_integer_and_matmul_integer():
    x = rng.integers(0, 255, (1, 2, 5, 5)).astype(np.uint8)
    w = rng.integers(0, 255, (3, 2, 2, 2)).astype(np.uint8)
    zp = np.array(12, np.uint8)
    check_against_reference(single_node_model("ConvInteger", {"x": x, "w": w, "zp": zp},
                                              pads=[1, 1, 0, 0]), {"x": x, "w": w, "zp": zp})
    a = rng.integers(-128, 127, (4, 3)).astype(np.int8)
    bm = rng.integers(-128, 127, (3, 5)).astype(np.int8)
    azp, bzp = np.array(3, np.int8), np.array([1, 2, 3, 4, 5], np.int8)
    inputs = {"a": a, "b": bm, "azp": azp, "bzp": bzp}
    check_against_reference(single_node_model("MatMulInteger", inputs), inputs)


# -- ConvTranspose ------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((1, 2, 5), (2, 3, 3), {}),                                                     # 1-D
    ((1, 1, 3, 3), (1, 2, 3, 3), {}),
    ((2, 3, 4, 3), (3, 2, 3, 3), {"strides": [2, 3], "pads": [1, 0, 2, 1]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [3, 2], "output_padding": [1, 1]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [3, 2], "output_shape": [10, 8]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [2, 2], "output_shape": [7, 7]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [2, 2], "dilations": [2, 2]}),
    ((1, 1, 3, 3), (1, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 3, 4), (2, 1, 3, 3), {"group": 2}),
    ((1, 1, 2, 3, 3), (1, 2, 2, 2, 3), {"strides": [1, 2, 1]}),                      # 3-D
])
def test_conv_transpose(x_shape, w_shape, attrs):
    x, w = randn(*x_shape), randn(*w_shape)
    model = single_node_model("ConvTranspose", {"x": x}, initializers={"w": w}, **attrs)
    check_against_reference(model, {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attrs", [
    {"group": 2, "strides": [2, 1], "pads": [1, 0, 0, 1]},
    {"group": 3, "output_padding": [1, 0], "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
])
def test_conv_transpose_groups_and_bias_against_onnxruntime(attrs):
    ort = pytest.importorskip("onnxruntime")
    groups = attrs.get("group", 1)
    x, w, bias = randn(2, 6, 4, 5), randn(6, 4 // groups * 2, 3, 2), randn(4 // groups * 2 * groups)
    model = single_node_model("ConvTranspose", {"x": x}, initializers={"w": w, "b": bias},
                              opset=17, **attrs)
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT  # onnxruntime wants it
    got = interpret(legalize(model), {"x": x})["y"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# -- Gemm / MatMul ------------------------------------------------------------------------------

@pytest.mark.parametrize("trans_a", [0, 1])
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0), (1.0, 0.0)])
@pytest.mark.parametrize("c_shape", [None, (5,), (3, 5), (1,), ()])
def test_gemm(trans_a, trans_b, alpha, beta, c_shape):
    a = randn(4, 3) if trans_a else randn(3, 4)
    bm = randn(5, 4) if trans_b else randn(4, 5)
    inits = {} if c_shape is None else {"c": randn(*c_shape)}
    model = single_node_model("Gemm", {"a": a, "b": bm}, initializers=inits, transA=trans_a,
                              transB=trans_b, alpha=alpha, beta=beta)
    check_against_reference(model, {"a": a, "b": bm}, rtol=1e-5, atol=1e-5)


def test_gemm_opset6_broadcast():
    a, bm, c = randn(3, 4), randn(4, 5), randn(5)
    model = single_node_model("Gemm", {"a": a, "b": bm}, initializers={"c": c}, opset=6,
                              broadcast=1)
    check_against_reference(model, {"a": a, "b": bm})


@pytest.mark.parametrize("a_shape,b_shape", [
    ((3, 4), (4, 5)), ((4,), (4,)), ((4,), (2, 4, 5)), ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 6)),
    ((1, 3, 4), (2, 4, 2)), ((6, 3, 4), (4, 2)),
])
def test_matmul(a_shape, b_shape):
    a, bm = randn(*a_shape), randn(*b_shape)
    check_against_reference(single_node_model("MatMul", {"a": a, "b": bm}), {"a": a, "b": bm},
                            rtol=1e-5, atol=1e-5)


def test_matmul_int32():
    a = rng.integers(-9, 9, (2, 3, 4)).astype(np.int32)
    bm = rng.integers(-9, 9, (4, 5)).astype(np.int32)
    check_against_reference(single_node_model("MatMul", {"a": a, "b": bm}), {"a": a, "b": bm})


# -- Einsum -------------------------------------------------------------------------------------

@pytest.mark.parametrize("equation,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bij, bjk -> bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij->ji", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("i,i", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,kj", [(3, 4), (5, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    # a repeated label: the diagonal (a transpose, a reshape, a gather), then the einsum
    ("ii->i", [(3, 3)]),
    ("ii->", [(4, 4)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("iji->j", [(3, 5, 3)]),
    ("ii,ij->j", [(3, 3), (3, 4)]),
    ("bii->bi", [(2, 3, 3)]),
])
def test_einsum(equation, shapes):
    inputs = {f"x{i}": randn(*s) for i, s in enumerate(shapes)}
    check_against_reference(single_node_model("Einsum", inputs, equation=equation), inputs,
                            rtol=1e-5, atol=1e-5)


def test_einsum_infer_ellipsis_broadcast_and_symbols():
    block = Block(arg_types=[tensor_type(["B", 1, 3, 4], f32), tensor_type([5, 4, 6], f32)])
    op = build(EinsumOp, block.args, {"equation": "...ij,...jk->...ik"})
    assert shape_of(op.output) == ("B", 5, 3, 6)
    op = build(EinsumOp, block.args[:1], {"equation": "...ij"})  # implicit: '...' then i, j
    assert shape_of(op.output) == ("B", 1, 3, 4)
    op = build(EinsumOp, block.args[:1], {"equation": "abij->ji"})
    assert shape_of(op.output) == (4, 3)
    with pytest.raises(ShapeError, match="label 'j'"):
        build(EinsumOp, block.args, {"equation": "...ij,...kj->...ik"})


def test_einsum_rejects_unequal_diagonal_dims_and_three_operands():
    x = randn(3, 4)
    with pytest.raises(UnsupportedError, match="'ii->i'.*diagonal of label i needs equal"):
        legalize(single_node_model("Einsum", {"x": x}, equation="ii->i"))
    inputs = {"a": randn(2, 3), "b": randn(3, 4), "c": randn(4, 5)}
    with pytest.raises(UnsupportedError, match="3 operands"):
        legalize(single_node_model("Einsum", inputs, equation="ij,jk,kl->il"))


# -- symbolic dims, IR text, errors -------------------------------------------------------------

def _symbolic_conv_model(x_dims, w, **attrs):
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv0", **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_symbolic_batch_dim_is_kept():
    w = randn(4, 3, 3, 3)
    model = _symbolic_conv_model(["N", 3, 8, 8], w, pads=[1, 1, 1, 1])
    module = legalize(model)
    text = str(module)
    assert '#nn.layout<["N"]>' in text
    assert "nn.conv" in text
    conv = next(op for op in module.walk() if isinstance(op, ConvOp))
    assert shape_of(conv.output) == ("N", 4, 8, 8)
    x = randn(2, 3, 8, 8)
    got = interpret(module, {"x": x})["y"]
    want = onnx.reference.ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_symbolic_spatial_same_upper_stride_1():
    model = _symbolic_conv_model(["N", 3, "H", "W"], randn(2, 3, 3, 3), auto_pad="SAME_UPPER")
    conv = next(op for op in legalize(model).walk() if isinstance(op, ConvOp))
    assert conv.prop("pads") == [1, 1, 1, 1]
    assert shape_of(conv.output)[:2] == ("N", 2)


def test_symbolic_spatial_same_with_stride_is_unsupported():
    model = _symbolic_conv_model(["N", 3, "H", "W"], randn(2, 3, 3, 3), auto_pad="SAME_UPPER",
                                 strides=[2, 2])
    with pytest.raises(UnsupportedError, match="conv0.*static input size"):
        legalize(model)


def test_ir_text_round_trips():
    x, w, bias = randn(1, 4, 8, 8), randn(6, 2, 3, 3), randn(6)
    module = legalize(single_node_model("Conv", {"x": x}, initializers={"w": w, "b": bias},
                                        group=2, strides=[2, 1], pads=[1, 0, 2, 1]))
    text = str(module)
    assert "nn.conv %0, %1, %2 {" in text
    assert str(Parser(ember_context(), text).parse_module()) == text
    a, bm = randn(4, 3), randn(5, 4)
    module = legalize(single_node_model("Gemm", {"a": a, "b": bm}, transA=1, transB=1))
    text = str(module)
    assert "transpose_a = true" in text and "transpose_b = true" in text
    assert str(Parser(ember_context(), text).parse_module()) == text


def test_conv_channel_mismatch_names_the_node():
    model = _symbolic_conv_model([1, 3, 8, 8], randn(5, 4, 3, 3))
    with pytest.raises(EmberError, match=r"node 'conv0' \(Conv\).*3 channels.*expects 4"):
        legalize(model)


def test_conv_kernel_shape_mismatch():
    model = _symbolic_conv_model([1, 3, 8, 8], randn(5, 3, 3, 3), kernel_shape=[2, 2])
    with pytest.raises(UnsupportedError, match="conv0.*kernel_shape"):
        legalize(model)


def test_matmul_contraction_mismatch():
    block = Block(arg_types=[tensor_type([3, 4], f32), tensor_type([5, 6], f32)])
    with pytest.raises(ShapeError, match="contracted dim"):
        build(MatMulOp, block.args)
    op = build(MatMulOp, block.args[:1] * 2, {"transpose_b": True})
    assert shape_of(op.output) == (3, 3)


def test_conv_verifier_rejects_bad_pads():
    block = Block(arg_types=[tensor_type([1, 3, 8, 8], f32), tensor_type([4, 3, 3, 3], f32)])
    with pytest.raises(ShapeError, match="pads"):
        build(ConvOp, block.args, {"strides": [1, 1], "pads": [1, 1], "dilations": [1, 1],
                                   "groups": 1})
