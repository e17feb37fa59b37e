"""Python values <-> xDSL attributes, for properties of the `onnx` and `nn` ops."""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    UnitAttr,
    f64,
    i64,
)
from xdsl.ir import Attribute, TypeAttribute


def attribute_value(attr: Attribute) -> Any:
    """Python data of an attribute: bool, int, float, str, list, numpy array, or the type."""
    if isinstance(attr, IntegerAttr):
        value = attr.value.data
        if isinstance(attr.type, IntegerType) and attr.type.width.data == 1:
            return bool(value)
        return value
    if isinstance(attr, FloatAttr):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DenseArrayBase):
        return list(attr.get_values())
    if isinstance(attr, ArrayAttr):
        return [attribute_value(a) for a in attr.data]
    if isinstance(attr, DictionaryAttr):
        return {k: attribute_value(v) for k, v in attr.data.items()}
    if isinstance(attr, DenseIntOrFPElementsAttr):
        from ember.dialects.constants import dense_to_numpy

        return dense_to_numpy(attr)
    if isinstance(attr, TypeAttribute):
        return attr
    if isinstance(attr, UnitAttr):  # a flag property (nn.conv's `tf32`)
        return True
    raise TypeError(f"no Python value for attribute {attr}")


def to_attribute(value: Any) -> Attribute:
    """The attribute for a Python value (ints as i64, floats as f64, lists as dense arrays)."""
    if isinstance(value, Attribute):
        return value
    if isinstance(value, bool | np.bool_):
        return IntegerAttr.from_bool(bool(value))
    if isinstance(value, int | np.integer):
        return IntegerAttr(int(value), i64)
    if isinstance(value, float | np.floating):
        return FloatAttr(float(value), f64)
    if isinstance(value, str):
        return StringAttr(value)
    if isinstance(value, dict):
        return DictionaryAttr({str(k): to_attribute(v) for k, v in value.items()})
    if isinstance(value, np.ndarray):
        from ember.dialects.constants import dense_from_numpy

        return dense_from_numpy(value)
    if isinstance(value, list | tuple):
        items = list(value)
        if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items):
            return DenseArrayBase.from_list(i64, [int(v) for v in items])
        if all(isinstance(v, int | float | np.number) for v in items):
            return DenseArrayBase.from_list(f64, [float(v) for v in items])
        return ArrayAttr([to_attribute(v) for v in items])
    raise TypeError(f"no attribute for Python value {value!r}")
