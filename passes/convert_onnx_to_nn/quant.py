"""Legalizers of ONNX QuantizeLinear and DequantizeLinear (opsets 10, 13, 19, 21, 23+): per-tensor,
per-axis and blocked scales; a missing zero point quantizes to uint8 (or `output_dtype`)."""

from __future__ import annotations

from xdsl.ir import SSAValue

from ember.dialects.dtypes import element_type_from_onnx, is_float
from ember.dialects.nn.quant import DequantizeOp, QuantizeOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of
from ember.errors import UnsupportedError
from ember.passes.convert_onnx_to_nn.builder import NNBuilder
from ember.passes.convert_onnx_to_nn.registry import legalizes


def _dtype_attr(b: NNBuilder, op: OnnxOp, name: str):
    """The element type an ONNX dtype attribute names (None when unset or 0)."""
    value = op.attr(name, 0)
    if not value:
        return None
    try:
        return element_type_from_onnx(int(value))
    except UnsupportedError as e:
        raise b.unsupported(f"{name}: {e}") from None


def _common(op: OnnxOp) -> dict:
    block = op.attr("block_size", 0)
    return {"axis": int(op.attr("axis", 1)), "block_size": int(block) if block else None}


@legalizes("QuantizeLinear")
def quantize(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, scale = op.onnx_input("x"), op.onnx_input("y_scale")
    zp = op.onnx_input("y_zero_point")
    to = _dtype_attr(b, op, "output_dtype")
    precision = _dtype_attr(b, op, "precision")
    if precision is not None:
        if not is_float(precision):
            raise b.unsupported(f"precision {precision} is not a float type")
        x, scale = b.cast(x, precision), b.cast(scale, precision)
    saturate = op.attr("saturate", 1)
    operands = [x, scale] + ([zp] if zp is not None else [])
    return [b.value(QuantizeOp, operands, to=to,
                    saturate=None if saturate in (None, 1) else bool(saturate),
                    **_common(op))]


@legalizes("DequantizeLinear")
def dequantize(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, scale = op.onnx_input("x"), op.onnx_input("x_scale")
    zp = op.onnx_input("x_zero_point")
    to = _dtype_attr(b, op, "output_dtype")
    if to is not None and to == element_type_of(scale):
        to = None
    operands = [x, scale] + ([zp] if zp is not None else [])
    # kept even over constants (a quantized weight): fold-qdq reads the integer weight and its
    # scales from it; fold-constants folds what fold-qdq leaves
    props = {k: v for k, v in {"to": to, **_common(op)}.items() if v is not None}
    return [b.op(DequantizeOp, operands, props).results[0]]
