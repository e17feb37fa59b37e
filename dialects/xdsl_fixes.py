"""Fixes for xDSL 0.74 that ember's IR needs to print and parse back to the same text.

xDSL prints non-finite floats in dense elements as hex bit patterns (`dense<0xff800000>` for
-inf) but parses those back as integers (4.28e9). Here a hex element of a float dense literal is
read as the bit pattern it is, as MLIR does.
"""

from __future__ import annotations

import struct

from xdsl.dialects.builtin import AnyFloat
from xdsl.parser.attribute_parser import AttrParser

_BITS = {16: ("<H", "<e"), 32: ("<I", "<f"), 64: ("<Q", "<d")}
_Element = AttrParser._TensorLiteralElement
_original_to_type = _Element.to_type


def _to_type(self, parser, type):  # type: ignore[no-untyped-def]
    text = self.span.text.lstrip("-")
    if isinstance(type, AnyFloat) and text[:2] in ("0x", "0X") and isinstance(self.value, int):
        width = type.bitwidth
        if width in _BITS and type.name in ("f16", "f32", "f64"):
            as_int, as_float = _BITS[width]
            return struct.unpack(as_float, struct.pack(as_int, int(text, 16)))[0]
    return _original_to_type(self, parser, type)


if getattr(_Element.to_type, "__name__", "") != "_to_type":
    _Element.to_type = _to_type
