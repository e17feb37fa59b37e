"""Quantization nn ops: `nn.quantize` (float -> integer) and `nn.dequantize` (integer -> float),
with ONNX QuantizeLinear/DequantizeLinear semantics: per-tensor (scalar scale), per-axis (1-D scale
along `axis`) and blocked (scale shaped like x but `ceil(dim / block_size)` along `axis`)."""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, IntegerType, Signedness
from xdsl.ir import Attribute, TypeAttribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from ember.dialects.dtypes import is_float, is_storage_float
from ember.dialects.nn.base import NNOp, like, normalize_axis
from ember.dialects.tensor_types import Shape, element_type_of
from ember.errors import ShapeError

UI8 = IntegerType(8, Signedness.UNSIGNED)


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _check_params(op: NNOp, x: Shape, index: int, what: str) -> None:
    """A scale or zero point: scalar / one element, 1-D along `axis`, or blocked along `axis`."""
    p = op.operand_shape(index)
    size = 1
    for d in p:
        size = size * d if isinstance(d, int) and isinstance(size, int) else None
    if size == 1 and len(p) <= 1:
        return
    block = op.prop("block_size", 0) or 0
    axis = normalize_axis(op.prop("axis", 1), len(x), op.name)
    if not block:
        if len(p) != 1:
            raise ShapeError(f"{op.name}: the {what} {_fmt(p)} must be a scalar or 1-D along "
                             f"axis {axis} of the input {_fmt(x)} (or give block_size)")
        d = x[axis]
        if isinstance(d, int) and isinstance(p[0], int) and p[0] != d:
            raise ShapeError(f"{op.name}: the {what} has {p[0]} values but axis {axis} of the "
                             f"input {_fmt(x)} has {d}")
        return
    if block < 0:
        raise ShapeError(f"{op.name}: block_size must be positive, not {block}")
    if len(p) != len(x):
        raise ShapeError(f"{op.name}: a blocked {what} {_fmt(p)} must have the input's rank "
                         f"({_fmt(x)})")
    for i, (a, b) in enumerate(zip(x, p, strict=True)):
        if not (isinstance(a, int) and isinstance(b, int)):
            continue
        want = -(-a // block) if i == axis else a
        if b != want:
            raise ShapeError(f"{op.name}: the blocked {what} {_fmt(p)} does not fit the input "
                             f"{_fmt(x)} with block_size {block} along axis {axis}")


@irdl_op_definition
class QuantizeOp(NNOp):
    """y = saturate(round_half_even(x / scale) + zero_point), in zero_point's element type (or
    `to`, else ui8); to a float8/float4 type: x / scale + zero_point rounded to nearest even,
    `saturate` (default 1) clamping float8 results to the type's range."""

    name = "nn.quantize"
    input = operand_def()
    scale = operand_def()
    zero_point = opt_operand_def()
    axis = opt_prop_def(IntegerAttr)
    block_size = opt_prop_def(IntegerAttr)
    saturate = opt_prop_def(IntegerAttr)
    to = opt_prop_def(TypeAttribute)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $scale (`,` $zero_point^)? attr-dict `:` functional-type(operands, results)"
    )

    def result_element_type(self) -> Attribute:
        if self.zero_point is not None:
            zp = element_type_of(self.zero_point)
            if self.to is not None and self.to != zp:
                raise ShapeError(f"nn.quantize: `to` {self.to} differs from the zero point's "
                                 f"element type {zp}")
            return zp
        return self.to if self.to is not None else UI8

    def infer(self) -> list[Attribute]:
        x = self.operand_shape(0)
        if not is_float(element_type_of(self.input)):
            raise ShapeError(f"nn.quantize: the input must be a float tensor, not "
                             f"{element_type_of(self.input)}")
        out = self.result_element_type()
        if not (isinstance(out, IntegerType) and out.width.data > 1 or is_storage_float(out)):
            raise ShapeError(f"nn.quantize: cannot quantize to {out} (an integer, float8 or "
                             f"float4 type is needed)")
        _check_params(self, x, 1, "scale")
        if self.zero_point is not None:
            _check_params(self, x, 2, "zero point")
        return [like(self.input, element_type=out)]


@irdl_op_definition
class DequantizeOp(NNOp):
    """y = (x - zero_point) * scale, in the scale's element type (or `to`)."""

    name = "nn.dequantize"
    input = operand_def()
    scale = operand_def()
    zero_point = opt_operand_def()
    axis = opt_prop_def(IntegerAttr)
    block_size = opt_prop_def(IntegerAttr)
    to = opt_prop_def(TypeAttribute)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $scale (`,` $zero_point^)? attr-dict `:` functional-type(operands, results)"
    )

    def infer(self) -> list[Attribute]:
        x = self.operand_shape(0)
        scale_type = element_type_of(self.scale)
        if not is_float(scale_type):
            raise ShapeError(f"nn.dequantize: the scale must be a float tensor, not {scale_type}")
        if self.zero_point is not None and element_type_of(self.zero_point) != element_type_of(
                self.input):
            raise ShapeError(f"nn.dequantize: the zero point's element type "
                             f"{element_type_of(self.zero_point)} differs from the input's "
                             f"{element_type_of(self.input)}")
        _check_params(self, x, 1, "scale")
        if self.zero_point is not None:
            _check_params(self, x, 2, "zero point")
        out = self.to if self.to is not None else scale_type
        if not is_float(out):
            raise ShapeError(f"nn.dequantize: cannot dequantize to {out} (a float type is needed)")
        return [like(self.input, element_type=out)]


OPS = [QuantizeOp, DequantizeOp]
