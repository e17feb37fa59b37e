"""convert-onnx-to-nn on elementwise operators: numbers against onnx.reference."""

import numpy as np
import pytest

from tests.onnx_cases import check_against_reference, single_node_model

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4)).astype(np.float32)
Y = rng.standard_normal((3, 4)).astype(np.float32) + 3


@pytest.mark.parametrize("op_type,attrs", [
    ("Relu", {}), ("LeakyRelu", {"alpha": 0.2}), ("Elu", {}), ("Selu", {}), ("Sigmoid", {}),
    ("HardSigmoid", {}), ("HardSwish", {}), ("Softplus", {}), ("Tanh", {}), ("Exp", {}),
    ("Abs", {}), ("Neg", {}), ("Erf", {}), ("Gelu", {}), ("Gelu", {"approximate": "tanh"}),
])
def test_unary(op_type, attrs):
    check_against_reference(single_node_model(op_type, {"x": X}, **attrs), {"x": X})


@pytest.mark.parametrize("op_type", ["Sqrt", "Log", "Reciprocal"])
def test_unary_positive(op_type):
    x = np.abs(X) + 0.5
    check_against_reference(single_node_model(op_type, {"x": x}), {"x": x})


@pytest.mark.parametrize("op_type", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum",
                                     "Mean", "Equal", "Less", "Greater", "LessOrEqual",
                                     "GreaterOrEqual"])
def test_binary_broadcast(op_type):
    x = np.abs(X) if op_type == "Pow" else X
    check_against_reference(single_node_model(op_type, {"x": x, "y": Y}), {"x": x, "y": Y},
                            rtol=1e-5)


@pytest.mark.parametrize("op_type", ["And", "Or", "Xor"])
def test_logical(op_type):
    a, b = X > 0, Y > 3
    check_against_reference(single_node_model(op_type, {"a": a, "b": b}), {"a": a, "b": b})


def test_not_where_cast():
    c = X > 0
    check_against_reference(single_node_model("Not", {"c": c}), {"c": c})
    check_against_reference(single_node_model("Where", {"c": c, "x": X, "y": Y}),
                            {"c": c, "x": X, "y": Y})
    check_against_reference(single_node_model("Cast", {"x": X * 10}, to=6), {"x": X * 10})


def test_clip_constant_and_computed_bounds():
    lo, hi = np.array(-0.5, np.float32), np.array(0.5, np.float32)
    check_against_reference(
        single_node_model("Clip", {"x": X}, initializers={"lo": lo, "hi": hi}), {"x": X})
    check_against_reference(single_node_model("Clip", {"x": X, "lo": lo, "hi": hi}),
                            {"x": X, "lo": lo, "hi": hi})
    check_against_reference(single_node_model("Clip", {"x": X}, opset=6, min=-0.1, max=0.2),
                            {"x": X})


def test_clip_without_bounds_on_bfloat16():
    """ml_dtypes' bfloat16 is a float (numpy's `np.floating` test says it is not): an unbounded
    Clip takes its finfo limits instead of failing in `np.iinfo`."""
    import ml_dtypes

    x = X.astype(ml_dtypes.bfloat16)
    check_against_reference(single_node_model("Clip", {"x": x}), {"x": x})


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_mod_takes_the_divisors_or_the_dividends_sign(fmod, dtype):
    """fmod=0 is Python's % (the divisor's sign), on floats too (onnx >= 1.20)."""
    x = np.array([5, -5, 5, -5, 7, 0, -9, 3], dtype)
    y = np.array([3, 3, -3, -3, 2, 4, 4, -7], dtype)
    if dtype != np.int32:
        x, y = x + dtype(0.25), y * dtype(1.5)
    model = single_node_model("Mod", {"x": x, "y": y}, fmod=fmod, opset=13)
    check_against_reference(model, {"x": x, "y": y})
