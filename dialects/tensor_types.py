"""Tensor types with symbolic dims and formats: `tensor<?x3xf32, #nn.layout<"NCHW", ["batch"]>>`.

A dim is an `int` (static) or a `str` (a symbol such as "batch", or "?" for an unknown dim). The
builtin tensor type holds `?` for each symbolic dim; its encoding, `#nn.layout`, names the format
("" is the plain row-major layout of ONNX) and the symbol of each `?` dim, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import (
    DYNAMIC_INDEX,
    ArrayAttr,
    NoneAttr,
    StringAttr,
    TensorType,
    UnrankedTensorType,
)
from xdsl.ir import Attribute, ParametrizedAttribute, SSAValue
from xdsl.irdl import irdl_attr_definition, param_def
from xdsl.parser import AttrParser
from xdsl.printer import Printer

Dim = int | str
Shape = tuple[Dim, ...]
UNKNOWN = "?"


@irdl_attr_definition
class LayoutAttr(ParametrizedAttribute):
    """Format of a tensor and the symbols of its dynamic dims."""

    name = "nn.layout"
    format: StringAttr = param_def()
    symbols: ArrayAttr[StringAttr] = param_def()

    # text: #nn.layout<NHWC>, #nn.layout<["batch"]>, #nn.layout<NHWC, ["batch"]>
    def print_parameters(self, printer: Printer) -> None:
        parts = [self.format.data] if self.format.data else []
        if self.symbols.data:
            parts.append("[" + ", ".join(f'"{s.data}"' for s in self.symbols.data) + "]")
        printer.print_string("<" + ", ".join(parts) + ">")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> list[Attribute]:
        parser.parse_punctuation("<")
        fmt = parser.parse_optional_identifier() or ""
        symbols: list[StringAttr] = []
        if not fmt or parser.parse_optional_punctuation(","):
            symbols = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE, lambda: StringAttr(parser.parse_str_literal()))
        parser.parse_punctuation(">")
        return [StringAttr(fmt), ArrayAttr(symbols)]


def tensor_type(shape: Sequence[Dim] | None, element_type: Attribute, fmt: str = "") -> Attribute:
    """The builtin tensor type for a shape of ints and symbols (None: unranked)."""
    if shape is None:
        return UnrankedTensorType(element_type)
    shape = [int(d) if isinstance(d, int | np.integer) else str(d) for d in shape]
    symbols = [d for d in shape if isinstance(d, str)]
    dims = [d if isinstance(d, int) else DYNAMIC_INDEX for d in shape]
    if all(s == UNKNOWN for s in symbols) and not fmt:
        symbols = []
    if not symbols and not fmt:
        return TensorType(element_type, dims)
    names = ArrayAttr([StringAttr("" if s == UNKNOWN else s) for s in symbols])
    return TensorType(element_type, dims, LayoutAttr(StringAttr(fmt), names))


def shape_of(t: Attribute | SSAValue) -> Shape | None:
    """Dims of a tensor type (or value), symbols included; None where the rank is unknown."""
    if isinstance(t, SSAValue):
        t = t.type
    if not isinstance(t, TensorType):
        return None
    symbols = iter(())
    if isinstance(t.encoding, LayoutAttr):
        symbols = iter(s.data or UNKNOWN for s in t.encoding.symbols.data)
    return tuple(d if d >= 0 else next(symbols, UNKNOWN) for d in t.get_shape())


def format_of(t: Attribute | SSAValue) -> str:
    if isinstance(t, SSAValue):
        t = t.type
    if isinstance(t, TensorType) and isinstance(t.encoding, LayoutAttr):
        return t.encoding.format.data
    return ""


def element_type_of(t: Attribute | SSAValue) -> Attribute:
    if isinstance(t, SSAValue):
        t = t.type
    if isinstance(t, TensorType | UnrankedTensorType):
        return t.element_type
    return t


def is_static(shape: Shape | None) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def static_shape(t: Attribute | SSAValue) -> tuple[int, ...] | None:
    shape = shape_of(t)
    return shape if is_static(shape) else None  # type: ignore[return-value]


def plan_dims(t: Attribute | SSAValue) -> Shape | None:
    """The shape if every dim is static or a product of named symbols (what a plan can hold:
    kernels take the symbols' values at run time); None where a dim is unknown."""
    shape = shape_of(t)
    if shape is None or any(isinstance(d, str) and UNKNOWN in d for d in shape):
        return None
    return shape


def same_type_with(t: Attribute, *, shape: Sequence[Dim] | None = None,
                   element_type: Attribute | None = None) -> Attribute:
    """`t` with its shape or element type replaced."""
    return tensor_type(
        shape_of(t) if shape is None else shape,
        element_type or element_type_of(t),
        format_of(t),
    )


__all__ = [
    "Dim", "Shape", "UNKNOWN", "LayoutAttr", "NoneAttr", "tensor_type", "shape_of", "format_of",
    "element_type_of", "is_static", "static_shape", "plan_dims", "same_type_with",
]
