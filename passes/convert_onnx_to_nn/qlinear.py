"""Legalizers of ONNX's quantized operators with their arithmetic spelled out: QLinearConv,
QLinearMatMul and DynamicQuantizeLinear, in nn ops (integer conv/matmul on the zero-point-
shifted int32 operands, a float rescale, a quantize), as ONNX's reference computes them:
y = saturate(round((Σ (x - x_zp)(w - w_zp) [+ B]) · x_scale · w_scale / y_scale) + y_zp)."""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerType, f32
from xdsl.ir import SSAValue

from ember.dialects.nn.linear import MatMulOp
from ember.dialects.nn.quant import UI8, QuantizeOp
from ember.dialects.nn.reduction import ReduceOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of
from ember.passes.convert_onnx_to_nn.builder import NNBuilder
from ember.passes.convert_onnx_to_nn.linear import conv_from_attrs, minus_zero_point
from ember.passes.convert_onnx_to_nn.registry import legalizes

I32 = IntegerType(32)


def _size(b: NNBuilder, value: SSAValue) -> int | None:
    size = 1
    for d in b.shape(value):
        if not isinstance(d, int):
            return None
        size *= d
    return size


def _per(b: NNBuilder, param: SSAValue, target: list) -> SSAValue:
    """A scale or zero point: one value as it is, else reshaped to broadcast as `target`."""
    return param if _size(b, param) == 1 else b.reshape(param, target)


def _requantize(b: NNBuilder, acc: SSAValue, scales: list[SSAValue], y_scale: SSAValue,
                y_zp: SSAValue | None) -> SSAValue:
    """quantize(acc · s0 · s1 / y_scale, 1, y_zp): the combined multiplier is formed in the
    scales' type (as the reference does), the product in float32."""
    multiplier = b.binary("div", b.binary("mul", scales[0], scales[1]), y_scale)
    real = b.binary("mul", b.cast(acc, f32), b.cast(multiplier, f32))
    one = b.constant(1.0, like=real)
    operands = [real, one] + ([y_zp] if y_zp is not None else [])
    return b.value(QuantizeOp, operands)


@legalizes("QLinearConv")
def qlinear_conv(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, w = op.onnx_input("x"), op.onnx_input("w")
    nd = len(b.shape(w)) - 2
    channels = b.shape(w)[0]
    per_channel = [channels, *([1] * (nd + 1))]
    x32 = minus_zero_point(b, x, op.onnx_input("x_zero_point"))
    wzp = op.onnx_input("w_zero_point")
    w32 = minus_zero_point(b, w, wzp, per_channel if wzp is not None and _size(b, wzp) != 1
                            else None)
    acc = conv_from_attrs(b, op, x32, w32, None)
    bias = op.onnx_input("B")
    if bias is not None:
        acc = b.binary("add", acc, b.reshape(b.cast(bias, I32), [1, channels, *([1] * nd)]))
    out_channel = [1, channels, *([1] * nd)]
    scales = [op.onnx_input("x_scale"), _per(b, op.onnx_input("w_scale"), out_channel)]
    return [_requantize(b, acc, scales, op.onnx_input("y_scale"),
                        op.onnx_input("y_zero_point"))]


@legalizes("QLinearMatMul")
def qlinear_matmul(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """a's scale and zero point per tensor; b's per tensor or per column (they broadcast along
    the last dim as they are)."""
    a, bm = op.onnx_input("a"), op.onnx_input("b")
    for name in ("a_scale", "a_zero_point"):
        value = op.onnx_input(name)
        if value is not None and _size(b, value) != 1:
            raise b.unsupported(f"{name} has shape {list(b.shape(value))}; it is per tensor "
                                "(one value)")
    a32 = minus_zero_point(b, a, op.onnx_input("a_zero_point"))
    b32 = minus_zero_point(b, bm, op.onnx_input("b_zero_point"))
    acc = b.value(MatMulOp, [a32, b32])
    scales = [op.onnx_input("a_scale"), op.onnx_input("b_scale")]
    return [_requantize(b, acc, scales, op.onnx_input("y_scale"),
                        op.onnx_input("y_zero_point"))]


@legalizes("DynamicQuantizeLinear")
def dynamic_quantize(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """uint8 with the range of x (widened to hold 0): scale = (max - min) / 255, zero point =
    saturate(round(-min / scale)), y = saturate(round(x / scale) + zero point)."""
    x = op.onnx_input("x")
    if element_type_of(x) != f32:
        raise b.unsupported(f"x is {element_type_of(x)}; DynamicQuantizeLinear takes float32")
    axes = list(range(len(b.shape(x))))
    zero = b.constant(0.0, like=x)
    if axes:
        low = b.value(ReduceOp, [x], fn="min", axes=axes, keepdims=False)
        high = b.value(ReduceOp, [x], fn="max", axes=axes, keepdims=False)
    else:
        low = high = x
    low, high = b.binary("min", low, zero), b.binary("max", high, zero)
    scale = b.binary("div", b.binary("sub", high, low), b.constant(255.0, like=x))
    zp = b.value(QuantizeOp, [b.unary("neg", low), scale], to=UI8)
    return [b.value(QuantizeOp, [x, scale, zp]), scale, zp]
