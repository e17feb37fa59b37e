"""Data-movement nn ops: reshape, transpose, slice, concat, gather, pad, resize, shapes, ranges."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import IntegerAttr, i64
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, dim_product
from ember.dialects.tensor_types import element_type_of, shape_of, static_shape, tensor_type
from ember.errors import ShapeError


def resolve_reshape(input_shape: tuple, target: list, allowzero: bool = False) -> list:
    """ONNX Reshape's target dims: 0 copies the input dim (unless allowzero), -1 is inferred."""
    from ember.dialects.nn.base import dim_quotient

    out = []
    for i, d in enumerate(target):
        if isinstance(d, int) and d == 0 and not allowzero:
            if i >= len(input_shape):
                raise ShapeError(f"reshape: dim #{i} is 0 but the input has rank {len(input_shape)}")
            out.append(input_shape[i])
        else:
            out.append(d)
    if out.count(-1) > 1:
        raise ShapeError("reshape: more than one -1 in the target shape")
    if -1 in out:
        i = out.index(-1)
        known = dim_product([d for j, d in enumerate(out) if j != i])
        out[i] = dim_quotient(dim_product(list(input_shape)), known)
    return out


@irdl_op_definition
class ReshapeOp(NNOp):
    """Same elements, new shape: the result type is the target. With a `shape` operand the target
    is only known at run time (ONNX semantics: 0 copies, -1 infers); folding makes it static."""

    name = "nn.reshape"
    input = operand_def()
    shape = opt_operand_def()
    allowzero = opt_prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input (`,` $shape^)? attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        out = self.output.type
        if element_type_of(out) != element_type_of(self.input):
            raise ShapeError("nn.reshape: the element type must not change")
        if self.shape is not None:
            n = static_shape(self.shape)
            if n is None or len(n) != 1:
                raise ShapeError("nn.reshape: the shape operand must be 1-D of static length")
            if len(shape_of(out) or ()) != n[0]:
                return [tensor_type(["?"] * n[0], element_type_of(self.input))]
            return [out]
        a, b = dim_product(self.operand_shape(0)), dim_product(shape_of(out) or ())
        if isinstance(a, int) and isinstance(b, int) and a != b:
            raise ShapeError(f"nn.reshape: {a} elements cannot become {b}")
        return [out]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        if self.shape is None:
            return [x.reshape(static_shape(self.output))]
        target = resolve_reshape(x.shape, [int(d) for d in inputs[1]], bool(self.prop("allowzero")))
        return [x.reshape(target)]


@irdl_op_definition
class ShapeOfOp(NNOp):
    """The dims `start:end` of a tensor's shape as a 1-D i64 tensor (ONNX Shape)."""

    name = "nn.shape_of"
    input = operand_def()
    start = opt_prop_def(IntegerAttr)
    end = opt_prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def dims(self) -> tuple:
        shape = self.operand_shape(0)
        start, end = self.prop("start", 0), self.prop("end", len(shape))
        return shape[slice(start, end)]

    def infer(self) -> list[Attribute]:
        return [tensor_type([len(self.dims())], i64)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.array(inputs[0].shape[slice(self.prop("start", 0), self.prop("end"))], np.int64)]


OPS = [ReshapeOp, ShapeOfOp]
