"""Elementwise nn ops and constants: unary/binary/select with broadcasting, casts, constants."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    UnitAttr,
    i1,
)
from xdsl.ir import Attribute, TypeAttribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import Pure

from ember.dialects.constants import dense_to_numpy
from ember.dialects.nn.base import NNOp, broadcast_shapes, like
from ember.dialects.nn.functions import BINARY, MIXED_TYPES, UNARY
from ember.dialects.tensor_types import element_type_of, shape_of, tensor_type
from ember.errors import ShapeError


@irdl_op_definition
class ConstantOp(NNOp):
    """A small tensor held inline (shape values, scalars); large ones are `nn.weight`."""

    name = "nn.constant"
    value = prop_def(DenseIntOrFPElementsAttr)
    output = result_def()
    traits = traits_def(Pure())

    def infer(self) -> list[Attribute]:
        return [self.value.type]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [dense_to_numpy(self.value)]

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_attribute(self.value)

    @classmethod
    def parse(cls, parser: Parser) -> ConstantOp:
        value = parser.parse_attribute()
        if not isinstance(value, DenseIntOrFPElementsAttr):
            parser.raise_error("nn.constant expects a dense elements attribute")
        return cls.create(properties={"value": value}, result_types=[value.type])


@irdl_op_definition
class WeightOp(NNOp):
    """A named tensor of the module's weight store."""

    name = "nn.weight"
    ref = prop_def(StringAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$ref attr-dict `:` type($output)"


@irdl_op_definition
class FillOp(NNOp):
    """A tensor of one value: static when its result type is, else shaped by the `shape` operand."""

    name = "nn.fill"
    shape = opt_operand_def()
    value = prop_def(Attribute)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "($shape^)? attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        element = element_type_of(self.output)
        if self.shape is not None:
            n = shape_of(self.shape)
            if n is None or len(n) != 1 or not isinstance(n[0], int):
                raise ShapeError("nn.fill: the shape operand must be a 1-D tensor of known length")
            if len(shape_of(self.output) or ()) != n[0]:
                return [tensor_type(["?"] * n[0], element)]
        return [self.output.type]


@irdl_op_definition
class UnaryOp(NNOp):
    """`fn` applied to each element (see `functions.UNARY`); `alpha`/`beta` are its parameters."""

    name = "nn.unary"
    fn = prop_def(StringAttr)
    alpha = opt_prop_def(FloatAttr)
    beta = opt_prop_def(FloatAttr)
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$fn $input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        if self.fn.data not in UNARY:
            raise ShapeError(f"nn.unary: unknown function '{self.fn.data}'")
        return [like(self.input, element_type=i1 if UNARY[self.fn.data][1] else None)]


@irdl_op_definition
class BinaryOp(NNOp):
    """`fn` of two tensors with numpy broadcasting (see `functions.BINARY`)."""

    name = "nn.binary"
    fn = prop_def(StringAttr)
    lhs = operand_def()
    rhs = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$fn $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($output)"
    )

    def infer(self) -> list[Attribute]:
        fn = self.fn.data
        if fn not in BINARY:
            raise ShapeError(f"nn.binary: unknown function '{fn}'")
        a, b = element_type_of(self.lhs), element_type_of(self.rhs)
        if a != b and fn not in MIXED_TYPES:
            raise ShapeError(f"nn.binary {fn}: element types {a} and {b} differ")
        shape = broadcast_shapes(self.operand_shape(0), self.operand_shape(1), op=f"nn.binary {fn}")
        return [like(self.lhs, shape, i1 if BINARY[fn][1] else None)]


@irdl_op_definition
class SelectOp(NNOp):
    """`condition ? true_value : false_value` per element, with broadcasting (ONNX Where)."""

    name = "nn.select"
    condition = operand_def()
    true_value = operand_def()
    false_value = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$condition `,` $true_value `,` $false_value attr-dict `:` "
        "functional-type(operands, results)"
    )

    def infer(self) -> list[Attribute]:
        if element_type_of(self.condition) != i1:
            raise ShapeError("nn.select: the condition must be a tensor of i1")
        if element_type_of(self.true_value) != element_type_of(self.false_value):
            raise ShapeError("nn.select: the two value operands differ in element type")
        shape = broadcast_shapes(*(self.operand_shape(i) for i in range(3)), op="nn.select")
        return [like(self.true_value, shape)]


@irdl_op_definition
class CastOp(NNOp):
    """Convert each element to the element type `to` (float -> int truncates, as ONNX Cast).
    `saturate` (float8 results only, ONNX Cast's default): values beyond the type's range
    become its largest finite value instead of inf/NaN."""

    name = "nn.cast"
    to = prop_def(TypeAttribute)
    saturate = opt_prop_def(UnitAttr)
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        return [like(self.input, element_type=self.to)]


@irdl_op_definition
class BitCastOp(NNOp):
    """Each element's bits read as the element type `to` of the same width (ONNX BitCast;
    little endian, as numpy's view)."""

    name = "nn.bitcast"
    to = prop_def(TypeAttribute)
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        from ember.dialects.dtypes import numpy_dtype

        have, want = numpy_dtype(element_type_of(self.input)), numpy_dtype(self.to)
        if have.itemsize != want.itemsize:
            raise ShapeError(f"nn.bitcast: {have} ({have.itemsize * 8} bits) and {want} "
                             f"({want.itemsize * 8} bits) differ in width")
        return [like(self.input, element_type=self.to)]


def scalar_attr(value: float | int | bool, element_type: Attribute) -> Attribute:
    """A property holding one value of `element_type` (for `nn.fill`)."""
    from ember.dialects.dtypes import is_float

    if is_float(element_type):
        return FloatAttr(float(value), element_type)
    return IntegerAttr(int(value), element_type)


OPS = [ConstantOp, WeightOp, FillOp, UnaryOp, BinaryOp, SelectOp, CastOp, BitCastOp]
