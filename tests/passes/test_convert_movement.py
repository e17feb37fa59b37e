"""convert-onnx-to-nn on data-movement operators: numbers against onnx.reference, symbolic dims
kept through inference, and clear errors for what cannot be legalized."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ember.compiler.interpret import interpret
from ember.dialects import ember_context
from ember.dialects.nn.base import NNOp
from ember.dialects.nn.movement import PadOp, ResizeOp, SliceOp
from ember.dialects.tensor_types import shape_of
from ember.errors import UnsupportedError
from tests.onnx_cases import check_against_reference, legalize, single_node_model

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
IMG = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
I64 = np.int64


def check(op_type, inputs, initializers=None, outputs=None, opset=21, rtol=1e-5, **attrs):
    model = single_node_model(op_type, inputs, outputs, initializers=initializers, opset=opset,
                              **attrs)
    check_against_reference(model, inputs, rtol=rtol)


def symbolic_model(op_type, dims, initializers=None, outputs=("y",), opset=21,
                   elem=TensorProto.FLOAT, out_elem=TensorProto.UNDEFINED, **attrs):
    """One node over graph input `x` with dims given as ints and strings."""
    initializers = initializers or {}
    node = helper.make_node(op_type, ["x", *initializers], list(outputs),
                            name=f"{op_type.lower()}0", **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", elem, dims)],
        [helper.make_tensor_value_info(o, out_elem, None) for o in outputs],
        [onnx.numpy_helper.from_array(a, n) for n, a in initializers.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


# -- reshapes ------------------------------------------------------------------------------------

def test_reshape_constant_and_computed():
    check("Reshape", {"x": X}, {"s": np.array([0, -1], I64)})
    check("Reshape", {"x": X}, {"s": np.array([4, 0, 2], I64)}, allowzero=0)
    check("Reshape", {"x": X, "s": np.array([6, 4], I64)})


def test_flatten_squeeze_unsqueeze():
    for axis in (0, 1, 2, -1, 3):
        check("Flatten", {"x": X}, axis=axis)
    x = rng.standard_normal((1, 3, 1, 4)).astype(np.float32)
    check("Squeeze", {"x": x}, {"axes": np.array([0, -2], I64)})
    check("Squeeze", {"x": x})
    check("Squeeze", {"x": x}, opset=11, axes=[2])
    check("Unsqueeze", {"x": X}, {"axes": np.array([0, -1], I64)})
    check("Unsqueeze", {"x": X}, opset=11, axes=[1, 4])


def test_transpose_depth_space():
    check("Transpose", {"x": X})
    check("Transpose", {"x": X}, perm=[1, 0, 2])
    x = rng.standard_normal((1, 8, 2, 3)).astype(np.float32)
    for mode in ("DCR", "CRD"):
        check("DepthToSpace", {"x": x}, blocksize=2, mode=mode)
        check("SpaceToDepth", {"x": IMG}, blocksize=2, mode=mode, opset=28)


# -- slices and joins ----------------------------------------------------------------------------

@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([0, 1], [2, 3], [0, 2], [1, 1]),
    ([-1], [-4], [2], [-1]),
    ([10], [-100], [1], [-2]),
    ([2**63 - 1], [-(2**63)], [2], [-1]),
    ([1, -(2**63)], [2**63 - 1, 2], [-1, 0], [2, 1]),
    ([5], [9], [2], [1]),
])
def test_slice(starts, ends, axes, steps):
    inits = {"starts": np.array(starts, I64), "ends": np.array(ends, I64),
             "axes": np.array(axes, I64), "steps": np.array(steps, I64)}
    check("Slice", {"x": X}, inits)


def test_slice_attribute_form():
    check("Slice", {"x": X}, opset=9, starts=[0, 1], ends=[1, 1000], axes=[0, 2])


def test_split_forms():
    x = rng.standard_normal((5, 6)).astype(np.float32)
    check("Split", {"x": x}, outputs=("a", "b", "c"), axis=1, opset=13)
    check("Split", {"x": x}, {"split": np.array([2, 3], I64)}, outputs=("a", "b"))
    check("Split", {"x": x}, outputs=("a", "b"), opset=11, split=[1, 4])
    check("Split", {"x": x}, outputs=("a", "b", "c"), opset=18, num_outputs=3)


def test_concat():
    y = rng.standard_normal((2, 5, 4)).astype(np.float32)
    check("Concat", {"x": X, "y": y}, axis=1)
    check("Concat", {"x": X, "y": X}, axis=-1)


# -- gathers, expand, tile, pad ------------------------------------------------------------------

def test_gather_negative_indices():
    idx = np.array([[0, -1], [2, 1]], I64)
    check("Gather", {"x": X, "i": idx}, axis=1)
    check("Gather", {"x": X}, {"i": np.array(-2, I64)}, axis=2)
    idx = rng.integers(0, 4, (2, 3, 2)).astype(I64)
    check("GatherElements", {"x": X, "i": idx}, axis=2)


def test_expand_tile():
    x = rng.standard_normal((3, 1)).astype(np.float32)
    check("Expand", {"x": x}, {"s": np.array([2, 1, 4], I64)})
    check("Expand", {"x": x, "s": np.array([2, 3, 5], I64)})
    check("Tile", {"x": X}, {"r": np.array([2, 1, 3], I64)})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes(mode):
    pads = np.array([0, 1, 2, 0, 2, 1], I64)
    value = np.array(1.5, np.float32)
    inits = {"pads": pads, "value": value} if mode == "constant" else {"pads": pads}
    check("Pad", {"x": X}, inits, mode=mode)


def test_pad_axes_negative_and_old_form():
    check("Pad", {"x": X}, {"pads": np.array([1, 2], I64), "v": np.array(0, np.float32),
                            "axes": np.array([-1], I64)})
    # negative pads crop (onnx.reference cannot run them)
    model = single_node_model("Pad", {"x": X}, initializers={"pads": np.array([0, -1, 2, 0, 1, -1],
                                                                              I64)})
    y = interpret(legalize(model), {"x": X})["y"]
    np.testing.assert_array_equal(y, np.pad(X[:, 1:, :-1], [(0, 0), (0, 1), (2, 0)]))
    check("Pad", {"x": X}, opset=10, pads=[0, 0, 1, 0, 0, 2], value=3.0)
    xi = np.arange(12, dtype=np.int32).reshape(3, 4)
    check("Pad", {"x": xi}, {"pads": np.array([1, 1, 1, 1], I64), "v": np.array(7, np.int32)})


# -- resize --------------------------------------------------------------------------------------

@pytest.mark.parametrize("attrs", [
    {"mode": "nearest"},
    {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "ceil"},
    {"mode": "linear"},
    {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
    {"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5},
    {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
    {"mode": "linear", "antialias": 1},
    {"mode": "cubic", "antialias": 1},
])
@pytest.mark.parametrize("scales", [[1, 1, 2, 1.5], [1, 1, 0.5, 0.75]])
def test_resize_scales(attrs, scales):
    check("Resize", {"x": IMG}, {"roi": np.array([], np.float32),
                                 "scales": np.array(scales, np.float32)}, rtol=1e-4, **attrs)


def test_resize_sizes_axes_roi():
    check("Resize", {"x": IMG}, {"roi": np.array([], np.float32),
                                 "scales": np.array([], np.float32),
                                 "sizes": np.array([1, 2, 7, 3], I64)}, mode="linear")
    check("Resize", {"x": IMG}, {"roi": np.array([], np.float32),
                                 "scales": np.array([], np.float32),
                                 "sizes": np.array([5, 5], I64)},
          mode="nearest", axes=[3, 2], keep_aspect_ratio_policy="not_larger")
    check("Resize", {"x": IMG}, {"roi": np.array([0.1, 0.2, 0.9, 0.7], np.float32),
                                 "scales": np.array([2, 0.5], np.float32)},
          mode="linear", axes=[2, 3], coordinate_transformation_mode="tf_crop_and_resize",
          extrapolation_value=9.0)


def test_resize_integer_input_rounds():
    x = np.arange(24, dtype=np.uint8).reshape(1, 1, 4, 6) * 10
    check("Resize", {"x": x}, {"roi": np.array([], np.float32),
                               "scales": np.array([1, 1, 1.5, 0.5], np.float32)}, mode="cubic")


# -- identities, constants, shapes, ranges -------------------------------------------------------

def test_identity_dropout():
    check("Identity", {"x": X})
    check("Dropout", {"x": X}, outputs=("y", "mask"))
    check("Dropout", {"x": X}, {"r": np.array(0.0, np.float32), "t": np.array(True)},
          outputs=("y", "mask"))


@pytest.mark.parametrize("attrs", [
    {"value": onnx.numpy_helper.from_array(np.arange(6, dtype=np.int32).reshape(2, 3))},
    {"value": onnx.numpy_helper.from_array(rng.standard_normal((5, 5)).astype(np.float32))},
    {"value_float": 2.5}, {"value_floats": [1.0, 2.0]}, {"value_int": 3},
    {"value_ints": [1, 2, 3]},
])
def test_constant_forms(attrs):
    model = single_node_model("Constant", {}, **attrs)
    check_against_reference(model, {})


def test_constant_of_shape_shape_size():
    check("ConstantOfShape", {}, {"s": np.array([2, 3], I64)},
          value=onnx.numpy_helper.from_array(np.array([7], np.int32)))
    check("ConstantOfShape", {}, {"s": np.array([4], I64)})
    check("ConstantOfShape", {"s": np.array([2, 2], I64)})
    check("Shape", {"x": X})
    check("Shape", {"x": X}, start=-2)
    check("Shape", {"x": X}, start=1, end=-1)
    check("Size", {"x": X})


def test_range_trilu_cumsum():
    check("Range", {}, {"a": np.array(1, I64), "b": np.array(10, I64), "d": np.array(3, I64)})
    check("Range", {"a": np.array(5.0, np.float32), "b": np.array(1.0, np.float32),
                    "d": np.array(-1.5, np.float32)})
    m = rng.standard_normal((2, 4, 5)).astype(np.float32)
    check("Trilu", {"x": m})
    check("Trilu", {"x": m}, {"k": np.array(-1, I64)}, upper=0)
    xi = np.arange(12, dtype=np.int32).reshape(3, 4)
    check("CumSum", {"x": xi}, {"axis": np.array(1, I64)})
    check("CumSum", {"x": X}, {"axis": np.array(-3, I64)}, exclusive=1, reverse=1)


def test_shape_subgraph_folds_to_constants():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape on a static input: all constant."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zero"], ["n1"]),
        helper.make_node("Concat", ["n1", "m1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [onnx.numpy_helper.from_array(np.array(0, I64), "i"),
             onnx.numpy_helper.from_array(np.array([0], I64), "zero"),
             onnx.numpy_helper.from_array(np.array([-1], I64), "m1")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", 1, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module = legalize(model)
    names = {op.name for op in module.walk()}
    assert "nn.reshape" in names and "nn.gather" not in names and "nn.concat" not in names
    assert "tensor<2x12xf32>" in str(module)
    check_against_reference(model, {"x": X})


# -- symbolic dims -------------------------------------------------------------------------------

def _run(model, x):
    module = legalize(model)
    return module, interpret(module, {"x": x})["y"]


def test_symbolic_flatten_and_reshape():
    module, y = _run(symbolic_model("Flatten", ["N", 3, 4]), X)
    assert 'tensor<?x12xf32, #nn.layout<["N"]>>' in str(module)
    assert y.shape == (2, 12)
    module, y = _run(symbolic_model("Reshape", ["N", 3, 4], {"s": np.array([0, -1], I64)}), X)
    assert 'tensor<?x12xf32, #nn.layout<["N"]>>' in str(module)
    assert y.shape == (2, 12)
    module, y = _run(symbolic_model("Reshape", ["N", 3, 4], {"s": np.array([-1, 2], I64)}), X)
    assert 'tensor<?x2xf32, #nn.layout<["6*N"]>>' in str(module)
    assert y.shape == (12, 2)


def test_symbolic_transpose_unsqueeze_slice_concat():
    module, y = _run(symbolic_model("Transpose", ["N", 3, 4], perm=[2, 0, 1]), X)
    assert 'tensor<4x?x3xf32, #nn.layout<["N"]>>' in str(module)
    np.testing.assert_array_equal(y, X.transpose(2, 0, 1))
    module, y = _run(symbolic_model("Unsqueeze", ["N", 3, 4], {"a": np.array([1], I64)}), X)
    assert 'tensor<?x1x3x4xf32, #nn.layout<["N"]>>' in str(module)
    inits = {"s": np.array([1, -1], I64), "e": np.array([2**63 - 1, -3], I64),
             "a": np.array([2, 0], I64)}
    module, y = _run(symbolic_model("Slice", ["N", 3, 4], inits), X)
    assert 'tensor<?x3x3xf32>' in str(module)
    np.testing.assert_array_equal(y, X[-1:-3, :, 1:])
    module, y = _run(symbolic_model("Slice", ["N", 3, 4], {
        "s": np.array([1], I64), "e": np.array([3], I64), "a": np.array([1], I64)}), X)
    assert 'tensor<?x2x4xf32, #nn.layout<["N"]>>' in str(module)
    np.testing.assert_array_equal(y, X[:, 1:3])


def test_symbolic_pad_tile_expand_resize_shape():
    module, y = _run(symbolic_model("Pad", ["N", 3, 4], {"p": np.array([0, 0, 1, 0, 0, 1], I64)}),
                     X)
    assert 'tensor<?x3x6xf32, #nn.layout<["N"]>>' in str(module)
    assert y.shape == (2, 3, 6)
    module, y = _run(symbolic_model("Expand", ["N", 1, 4], {"s": np.array([1, 3, 1], I64)}),
                     X[:, :1])
    assert 'tensor<?x3x4xf32, #nn.layout<["N"]>>' in str(module)
    np.testing.assert_array_equal(y, np.broadcast_to(X[:, :1], (2, 3, 4)))
    module, y = _run(symbolic_model("Tile", ["N", 3, 4], {"r": np.array([2, 1, 1], I64)}), X)
    assert 'tensor<?x3x4xf32, #nn.layout<["2*N"]>>' in str(module)
    assert y.shape == (4, 3, 4)
    module, y = _run(symbolic_model("Resize", ["N", 2, 4, 6], {
        "roi": np.array([], np.float32), "sc": np.array([1, 1, 2, 2], np.float32)}), IMG)
    assert 'tensor<?x2x8x12xf32, #nn.layout<["N"]>>' in str(module)
    assert y.shape == (1, 2, 8, 12)
    module, y = _run(symbolic_model("Shape", ["N", 3, 4], start=1), X)
    assert "nn.shape_of" not in str(module)
    np.testing.assert_array_equal(y, [3, 4])
    module, y = _run(symbolic_model("Shape", ["N", 3, 4]), X)
    assert "nn.shape_of" in str(module)
    np.testing.assert_array_equal(y, [2, 3, 4])


def test_symbolic_depth_to_space_and_dropout_mask():
    x = rng.standard_normal((2, 8, 2, 3)).astype(np.float32)
    module, y = _run(symbolic_model("DepthToSpace", ["N", 8, 2, 3], blocksize=2), x)
    assert 'tensor<?x2x4x6xf32, #nn.layout<["N"]>>' in str(module)
    want = x.reshape(2, 2, 2, 2, 2, 3).transpose(0, 3, 4, 1, 5, 2).reshape(2, 2, 4, 6)
    np.testing.assert_array_equal(y, want)
    model = symbolic_model("Dropout", ["N", 3, 4], outputs=("y", "mask"))
    module = legalize(model)
    got = interpret(module, {"x": X})
    assert got["mask"].dtype == np.bool_ and got["mask"].all() and got["mask"].shape == X.shape


def test_nn_text_round_trips():
    from xdsl.parser import Parser

    module = legalize(symbolic_model("Resize", ["N", 2, 4, 6], {
        "roi": np.array([], np.float32), "sc": np.array([1, 1, 2, 2], np.float32)},
        mode="linear"))
    text = str(module)
    assert "nn.resize" in text
    again = Parser(ember_context(), text).parse_module()
    assert str(again) == text
    resize = next(op for op in again.walk() if isinstance(op, ResizeOp))
    assert resize.prop("scales") == [1.0, 1.0, 2.0, 2.0]


# -- errors --------------------------------------------------------------------------------------

def test_dropout_training_mode_at_run_time_is_unsupported():
    model = single_node_model("Dropout", {"x": X, "r": np.array(0.5, np.float32),
                                          "t": np.array(True)})
    with pytest.raises(UnsupportedError, match=r"node 'dropout0' \(Dropout\).*"
                                               r"'training_mode' must be a constant"):
        legalize(model)


@pytest.mark.parametrize("op_type,inputs,inits,attrs,pattern", [
    ("Concat", {"x": X, "y": X[:, :2, :3]}, {}, {"axis": 1}, "differs between operands"),
])
def test_bad_inputs_name_the_node(op_type, inputs, inits, attrs, pattern):
    model = single_node_model(op_type, inputs, initializers=inits, **attrs)
    with pytest.raises(UnsupportedError, match=rf"node '{op_type.lower()}0' \({op_type}\)"
                                               rf"(.|\n)*{pattern}"):
        legalize(model)


@pytest.mark.parametrize("op_type,inits,attrs,pattern", [
    ("Transpose", {}, {"perm": [0, 0, 1]}, "not a permutation"),
    ("Squeeze", {"a": np.array([1], I64)}, {}, "cannot squeeze axis 1 of size 3"),
    ("Gather", {"i": np.array([0], I64)}, {"axis": 3}, "out of range"),
    ("Pad", {"p": np.array([0, 0, -5, 0, 0, 0], I64)}, {}, "below zero"),
    ("Slice", {"s": np.array([0], I64), "e": np.array([1], I64), "a": np.array([0], I64),
               "st": np.array([0], I64)}, {}, "step 0"),
])
def test_bad_attributes_name_the_node(op_type, inits, attrs, pattern):
    """Models ONNX's inference rejects too (output types declared so import goes through)."""
    model = symbolic_model(op_type, [2, 3, 4], inits, out_elem=TensorProto.FLOAT, **attrs)
    with pytest.raises(UnsupportedError, match=rf"node '{op_type.lower()}0' \({op_type}\)"
                                               rf"(.|\n)*{pattern}"):
        legalize(model)


def test_size_of_symbolic_input_is_unsupported():
    with pytest.raises(UnsupportedError, match="symbolic"):
        legalize(symbolic_model("Size", ["N", 3]))


def test_slice_op_verifier_rejects_bad_props():
    module = legalize(single_node_model("Slice", {"x": X}, initializers={
        "s": np.array([1], I64), "e": np.array([2], I64)}))
    op = next(o for o in module.walk() if isinstance(o, SliceOp))
    assert op.prop("starts") == [1, 0, 0] and op.prop("ends") == [2, 3, 4]


def test_static_dims_of_a_symbolic_shape_fold():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i"], ["y"], axis=0)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", 1, ["N", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
        [onnx.numpy_helper.from_array(np.array([2, 1], I64), "i")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module, y = _run(model, X)
    assert "nn.gather" not in str(module)
    np.testing.assert_array_equal(y, [4, 3])


def test_upsample_and_resize_10():
    x = rng.standard_normal((1, 2, 2, 3)).astype(np.float32)
    module = legalize(single_node_model("Upsample", {"x": x}, opset=7, scales=[1.0, 1.0, 2.0, 3.0]))
    y = interpret(module, {"x": x})["y"]
    np.testing.assert_array_equal(y, x.repeat(2, axis=2).repeat(3, axis=3))
    check("Upsample", {"x": x}, {"s": np.array([1, 1, 2, 2], np.float32)}, opset=9)
    module = legalize(single_node_model("Resize", {"x": x}, opset=10, mode="nearest",
                                        initializers={"s": np.array([1, 1, 2, 2], np.float32)}))
    y = interpret(module, {"x": x})["y"]
    np.testing.assert_array_equal(y, x.repeat(2, axis=2).repeat(2, axis=3))


def test_every_movement_op_round_trips_as_text():
    from xdsl.parser import Parser

    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    c = onnx.numpy_helper.from_array
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
        helper.make_node("Tile", ["p", "reps"], ["t"]),
        helper.make_node("CumSum", ["t", "ax"], ["cs"], exclusive=1),
        helper.make_node("Slice", ["cs", "st", "en", "axs", "stp"], ["sl"]),
        helper.make_node("Concat", ["sl", "sl"], ["cc"], axis=1),
        helper.make_node("Transpose", ["cc"], ["tr"], perm=[1, 0, 2]),
        helper.make_node("Resize", ["x", "", "sc"], ["rs"], mode="cubic"),
        helper.make_node("Shape", ["x"], ["sh"]),
        helper.make_node("Gather", ["sh", "zero"], ["n"]),
        helper.make_node("Range", ["zero", "n", "one"], ["rg"]),
        helper.make_node("Trilu", ["x"], ["tl"], upper=0),
        helper.make_node("GatherElements", ["x", "gi"], ["ge"], axis=1),
        helper.make_node("Expand", ["x", "sh"], ["ex"]),
        helper.make_node("ConstantOfShape", ["sh"], ["co"]),
    ]
    outs = ["tr", "rs", "rg", "tl", "ge", "ex", "co"]
    inits = [c(np.array([0, 1, 1, 0, 1, 1], I64), "pads"), c(np.array([1, 2, 1], I64), "reps"),
             c(np.array(2, I64), "ax"), c(np.array([1, -1], I64), "st"),
             c(np.array([-1, -100], I64), "en"), c(np.array([1, 2], I64), "axs"),
             c(np.array([1, -2], I64), "stp"), c(np.array([1, 1, 2.0], np.float32), "sc"),
             c(np.array(0, I64), "zero"), c(np.array(1, I64), "one")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", f, ["N", 3, 4]),
                     helper.make_tensor_value_info("gi", i64, ["N", 2, 4])],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module = legalize(model)
    text = str(module)
    for name in ("nn.pad", "nn.tile", "nn.cumsum", "nn.slice", "nn.concat", "nn.transpose",
                 "nn.resize", "nn.shape_of", "nn.range", "nn.trilu", "nn.gather_elements",
                 "nn.expand", "nn.fill"):
        assert name in text, name
    assert str(Parser(ember_context(), text).parse_module()) == text
    inputs = {"x": X, "gi": rng.integers(0, 3, (2, 2, 4)).astype(I64)}
    got = interpret(module, inputs)
    from onnx.reference import ReferenceEvaluator

    want = ReferenceEvaluator(model).run(None, inputs)
    for name, w in zip(outs, want, strict=True):
        assert got[name].dtype == w.dtype and got[name].shape == w.shape, name
        np.testing.assert_allclose(got[name], w, rtol=1e-5, atol=1e-5, err_msg=name)


def test_symbolic_full_reverse_slice_keeps_the_symbol():
    inits = {"s": np.array([2**63 - 1], I64), "e": np.array([-(2**63)], I64),
             "a": np.array([0], I64), "st": np.array([-1], I64)}
    module, y = _run(symbolic_model("Slice", ["N", 3, 4], inits), X)
    assert 'tensor<?x3x4xf32, #nn.layout<["N"]>>' in str(module)
    np.testing.assert_array_equal(y, X[::-1])


# -- parameters computed at run time -------------------------------------------------------------

F32 = np.float32


@pytest.mark.parametrize("op_type,inputs,inits,outputs,attrs", [
    ("Slice", {"x": X, "s": np.array([0, 1], I64), "e": np.array([2, 3], I64),
               "a": np.array([0, 2], I64), "st": np.array([1, 1], I64)}, {}, ("y",), {}),
    ("Slice", {"x": X, "s": np.array([-1, 10], I64), "e": np.array([-4, -100], I64)},
     {"a": np.array([2, 1], I64), "st": np.array([-1, -2], I64)}, ("y",), {}),
    ("Slice", {"x": X, "s": np.array([1], I64), "e": np.array([2**63 - 1], I64)}, {}, ("y",),
     {}),
    ("Split", {"x": X, "sp": np.array([1, 3], I64)}, {}, ("a", "b"), {"axis": 2}),
    ("Split", {"x": X, "sp": np.array([0, 2], I64)}, {}, ("a", "b"), {"axis": -3}),
    ("Unsqueeze", {"x": X, "a": np.array([0, -1], I64)}, {}, ("y",), {}),
    ("Unsqueeze", {"x": X, "a": np.array([4, 1], I64)}, {}, ("y",), {}),
    ("Squeeze", {"x": X[:1, :, 1:2], "a": np.array([0, -1], I64)}, {}, ("y",), {}),
    ("Tile", {"x": X, "r": np.array([2, 1, 3], I64)}, {}, ("y",), {}),
    ("Pad", {"x": X, "p": np.array([0, 1, 2, 0, 2, 1], I64), "v": np.array(1.5, F32)}, {},
     ("y",), {}),
    ("Pad", {"x": X, "p": np.array([1, 2], I64)}, {"v": np.array(0, F32),
                                                    "a": np.array([-1], I64)}, ("y",), {}),
    ("Pad", {"x": X, "p": np.array([0, 1, 2, 0, 2, 1], I64)}, {}, ("y",), {"mode": "reflect"}),
    ("Pad", {"x": X, "p": np.array([0, 1, 2, 0, 1, 3], I64)}, {}, ("y",), {"mode": "edge"}),
    ("Trilu", {"x": X, "k": np.array(-1, I64)}, {}, ("y",), {"upper": 0}),
    ("Trilu", {"x": X, "k": np.array(2, I64)}, {}, ("y",), {}),
    ("CumSum", {"x": X, "a": np.array(-3, I64)}, {}, ("y",), {"exclusive": 1, "reverse": 1}),
    ("CumSum", {"x": np.arange(12, dtype=np.int32).reshape(3, 4), "a": np.array(1, np.int32)},
     {}, ("y",), {}),
])
def test_run_time_parameters(op_type, inputs, inits, outputs, attrs):
    check(op_type, inputs, inits, outputs=outputs, **attrs)


def test_pad_run_time_value_only():
    """Constant pads, run-time fill value: the pads are properties, the dims are known."""
    xi = np.arange(12, dtype=np.int64).reshape(3, 4)
    node = helper.make_node("Pad", ["x", "p", "v"], ["y"], name="pad0")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.INT64, [3, 4]),
                      helper.make_tensor_value_info("v", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)],
        [onnx.numpy_helper.from_array(np.array([1, 0, 0, 2], I64), "p")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module = legalize(model)
    pad = next(op for op in module.walk() if isinstance(op, PadOp))
    assert pad.prop("pads") == [1, 0, 0, 2] and pad.dyn_value is not None
    assert "tensor<4x6xi64>" in str(module)
    # the value is exact, not through a float
    check_against_reference(model, {"x": xi, "v": np.array(2**60 + 1, I64)})


@pytest.mark.parametrize("inputs,inits,attrs", [
    ({"sc": np.array([1, 1, 2, 1.5], F32)}, {}, {"mode": "linear"}),
    ({"sz": np.array([1, 2, 7, 3], I64)}, {}, {"mode": "cubic"}),
    ({"sz": np.array([5, 5], I64)}, {}, {"mode": "nearest", "axes": [3, 2],
                                         "keep_aspect_ratio_policy": "not_larger"}),
    ({"roi": np.array([0.1, 0.2, 0.9, 0.7], F32), "sc": np.array([2, 0.5], F32)}, {},
     {"mode": "linear", "axes": [2, 3], "coordinate_transformation_mode": "tf_crop_and_resize",
      "extrapolation_value": 9.0}),
])
def test_resize_run_time_parameters(inputs, inits, attrs):
    names = {"roi": "", "sc": "", "sz": ""}
    given = {**inputs, **inits}
    node_inputs = ["x"] + [n if n in given else "" for n in names]
    while node_inputs[-1] == "":
        node_inputs.pop()
    node = helper.make_node("Resize", node_inputs, ["y"], name="resize0", **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in {"x": IMG, **inputs}.items()],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)],
        [onnx.numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module = legalize(model)
    resize = next(op for op in module.walk() if isinstance(op, ResizeOp))
    assert resize.dynamic()
    check_against_reference(model, {"x": IMG, **inputs}, rtol=1e-4)


def test_run_time_parameters_keep_what_is_known():
    """Rank, untouched dims and symbols survive run-time parameters; the IR text round-trips."""
    from xdsl.parser import Parser

    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    nodes = [
        helper.make_node("Slice", ["x", "s", "e"], ["sl"]),
        helper.make_node("Trilu", ["x", "k"], ["tl"]),
        helper.make_node("CumSum", ["x", "k"], ["cs"]),
        helper.make_node("Tile", ["x", "r"], ["tt"]),
        helper.make_node("Unsqueeze", ["x", "s"], ["us"]),
        helper.make_node("Pad", ["x", "p", "", "s"], ["pd"]),
        helper.make_node("Resize", ["x", "", "", "sz"], ["rs"], axes=[2]),
    ]
    outs = ["sl", "tl", "cs", "tt", "us", "pd", "rs"]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", f, ["N", 3, 4]),
                     helper.make_tensor_value_info("s", i64, [1]),
                     helper.make_tensor_value_info("e", i64, [1]),
                     helper.make_tensor_value_info("k", i64, []),
                     helper.make_tensor_value_info("r", i64, [3]),
                     helper.make_tensor_value_info("p", i64, [2]),
                     helper.make_tensor_value_info("sz", i64, [1])],
        [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    module = legalize(model)
    text = str(module)
    assert "nn.slice %0 starts(%1 : tensor<1xi64>) ends(%2 : tensor<1xi64>) :" in text
    assert "nn.trilu %0 k(%3 : tensor<i64>) {upper = true} :" in text
    assert "nn.unsqueeze %0, %1 : (tensor<?x3x4xf32, " in text
    shapes = {op.name: shape_of(op.results[0]) for op in module.walk() if isinstance(op, NNOp)}
    assert shapes["nn.slice"][1:] == (3, 4)  # only the first dim is touched
    assert shapes["nn.trilu"] == shapes["nn.cumsum"] == ("N", 3, 4)
    assert len(shapes["nn.tile"]) == 3 and len(shapes["nn.pad"]) == 3
    assert len(shapes["nn.unsqueeze"]) == 4
    assert shapes["nn.resize"][:2] == ("N", 3)  # only axis 2 is resized
    assert str(Parser(ember_context(), text).parse_module()) == text
    inputs = {"x": X, "s": np.array([1], I64), "e": np.array([2], I64), "k": np.array(1, I64),
              "r": np.array([1, 2, 1], I64), "p": np.array([1, 0], I64),
              "sz": np.array([6], I64)}
    got = interpret(module, inputs)
    from onnx.reference import ReferenceEvaluator

    want = ReferenceEvaluator(model).run(None, inputs)
    for name, w in zip(outs, want, strict=True):
        assert got[name].dtype == w.dtype and got[name].shape == w.shape, name
        np.testing.assert_allclose(got[name], w, rtol=1e-5, atol=1e-5, err_msg=name)
