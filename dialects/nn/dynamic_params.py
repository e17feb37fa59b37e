"""Run-time parameter operands of nn ops (ONNX parameters such as reshape shapes, slice bounds,
pad amounts that a model may compute at run time): the optional-operand plumbing the ops that
accept them share, and `DynamicParams`, the mixin with their static-form helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from xdsl.dialects.builtin import DenseArrayBase, i32
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import AttrSizedOperandSegments, ParsePropInAttrDict

from ember.dialects.nn.base import like
from ember.dialects.tensor_types import UNKNOWN, Dim, shape_of

SEGMENTED = (ParsePropInAttrDict(), AttrSizedOperandSegments(as_property=True))


def dynamic_format(*pairs: tuple[str, str], tail: str = "") -> str:
    """Assembly format `$input kw(%v : type) ... attr-dict : type($input) -> type($output)` with
    one optional `kw(...)` group per (keyword, operand)."""
    groups = " ".join(f"(`{kw}` `(` ${name}^ `:` type(${name}) `)`)?" for kw, name in pairs)
    return f"$input {groups} {tail}attr-dict `:` type($input) `->` type($output)"


def segments(*values: SSAValue | None) -> tuple[list[SSAValue], dict[str, Attribute]]:
    """Operands (None: an absent optional one) and the `operandSegmentSizes` property of an op
    with several optional operands, in the order the op defines them."""
    sizes = [int(v is not None) for v in values]
    return ([v for v in values if v is not None],
            {"operandSegmentSizes": DenseArrayBase.from_list(i32, sizes)})


def operand_length(value: SSAValue | None) -> int | None:
    """The static length of a 1-D operand (a scalar counts as 1); None if not known."""
    if value is None:
        return None
    shape = shape_of(value)
    if shape is None or len(shape) > 1:
        return None
    n = shape[0] if shape else 1
    return n if isinstance(n, int) else None


class DynamicParams:
    """What ops with run-time parameter operands share (mixed into NNOp subclasses)."""

    DYNAMIC: ClassVar[tuple[str, ...]] = ()  # the optional operands that carry run-time parameters

    @classmethod
    def create(cls, *, operands: Sequence[SSAValue] = (), properties: Mapping[str, Attribute] = {},
               **kwargs: Any) -> Any:
        """As Operation.create; an op of several parameter operands made with the input alone
        (its static form) gets its operand segment sizes filled in."""
        if (len(cls.DYNAMIC) > 1 and len(operands) == 1
                and "operandSegmentSizes" not in properties):
            properties = {**properties, **segments(operands[0], *[None] * len(cls.DYNAMIC))[1]}
        return super().create(operands=operands, properties=properties,  # type: ignore[misc]
                              **kwargs)

    def dynamic(self) -> bool:
        return any(getattr(self, n) is not None for n in self.DYNAMIC)

    def by_operand(self, arrays: Sequence[Any]) -> dict[str, Any]:
        """Values of the present parameter operands by operand name."""
        values = dict(zip(self.operands, arrays, strict=True))  # type: ignore[attr-defined]
        return {n: values[getattr(self, n)] for n in self.DYNAMIC if getattr(self, n) is not None}

    def refined(self, dims: Sequence[Dim]) -> Attribute:
        """The input's type with `dims`; an unknown dim is taken from the declared result type
        where that has the same rank (ONNX's inference may know more than the operand types)."""
        declared = shape_of(self.output)  # type: ignore[attr-defined]
        dims = list(dims)
        if declared is not None and len(declared) == len(dims):
            dims = [b if a == UNKNOWN else a for a, b in zip(dims, declared, strict=True)]
        return like(self.input, dims)  # type: ignore[attr-defined]

    def static_props(self, drop: Sequence[str] = ()) -> dict[str, Attribute]:
        """The properties a static form keeps (segment sizes and `drop` left out)."""
        return {k: v for k, v in self.properties.items()  # type: ignore[attr-defined]
                if k != "operandSegmentSizes" and k not in drop}
