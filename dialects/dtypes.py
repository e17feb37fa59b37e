"""Element types: the one table between ONNX TensorProto dtypes, numpy dtypes and xDSL types.

Neither onnx nor ml_dtypes loads with this module (together ~1.5 s: `ember-opt`, which each IR
test starts, needs neither for most IR): the ONNX numbers are TensorProto's enum values (fixed
by the ONNX spec; tests/dialects/test_dtypes.py checks each against onnx's), and the rows of
ml_dtypes' types (bfloat16, the float8/float4 and 4/2-bit integers) join the table at the first
lookup that misses the others."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float4E2M1FNType,
    Float8E4M3FNType,
    Float8E4M3FNUZType,
    Float8E5M2FNUZType,
    Float8E5M2Type,
    Float8E8M0FNUType,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    Signedness,
)
from xdsl.ir import Attribute

from ember.errors import UnsupportedError

# TensorProto.DataType's values
ONNX_DTYPES = {"FLOAT": 1, "UINT8": 2, "INT8": 3, "UINT16": 4, "INT16": 5, "INT32": 6,
               "INT64": 7, "BOOL": 9, "FLOAT16": 10, "DOUBLE": 11, "UINT32": 12, "UINT64": 13,
               "BFLOAT16": 16, "FLOAT8E4M3FN": 17, "FLOAT8E4M3FNUZ": 18, "FLOAT8E5M2": 19,
               "FLOAT8E5M2FNUZ": 20, "UINT4": 21, "INT4": 22, "FLOAT4E2M1": 23,
               "FLOAT8E8M0": 24, "UINT2": 25, "INT2": 26}
_O = ONNX_DTYPES

# (onnx dtype, numpy dtype, xDSL element type); signed ONNX ints are signless MLIR ints.
_NUMPY_TABLE: list[tuple[int, np.dtype, Attribute]] = [
    (_O["FLOAT"], np.dtype(np.float32), Float32Type()),
    (_O["FLOAT16"], np.dtype(np.float16), Float16Type()),
    (_O["DOUBLE"], np.dtype(np.float64), Float64Type()),
    (_O["INT8"], np.dtype(np.int8), IntegerType(8)),
    (_O["INT16"], np.dtype(np.int16), IntegerType(16)),
    (_O["INT32"], np.dtype(np.int32), IntegerType(32)),
    (_O["INT64"], np.dtype(np.int64), IntegerType(64)),
    (_O["UINT8"], np.dtype(np.uint8), IntegerType(8, Signedness.UNSIGNED)),
    (_O["UINT16"], np.dtype(np.uint16), IntegerType(16, Signedness.UNSIGNED)),
    (_O["UINT32"], np.dtype(np.uint32), IntegerType(32, Signedness.UNSIGNED)),
    (_O["UINT64"], np.dtype(np.uint64), IntegerType(64, Signedness.UNSIGNED)),
    (_O["BOOL"], np.dtype(np.bool_), IntegerType(1)),
]


# ml_dtypes' types: ONNX name -> (the ml_dtypes attribute, also its numpy dtype's name; the
# xDSL type); storage-only but bfloat16 (one element per byte: cast to and from, moved,
# quantized to; no arithmetic is lowered on them and CUDA codegen refuses them: host steps)
_ML_DTYPES: dict[str, tuple[str, Attribute]] = {
    "BFLOAT16": ("bfloat16", BFloat16Type()),
    "FLOAT8E4M3FN": ("float8_e4m3fn", Float8E4M3FNType()),
    "FLOAT8E4M3FNUZ": ("float8_e4m3fnuz", Float8E4M3FNUZType()),
    "FLOAT8E5M2": ("float8_e5m2", Float8E5M2Type()),
    "FLOAT8E5M2FNUZ": ("float8_e5m2fnuz", Float8E5M2FNUZType()),
    "FLOAT8E8M0": ("float8_e8m0fnu", Float8E8M0FNUType()),
    "FLOAT4E2M1": ("float4_e2m1fn", Float4E2M1FNType()),
    "INT4": ("int4", IntegerType(4)),
    "UINT4": ("uint4", IntegerType(4, Signedness.UNSIGNED)),
    "INT2": ("int2", IntegerType(2)),
    "UINT2": ("uint2", IntegerType(2, Signedness.UNSIGNED)),
}


def _ml_dtypes_table() -> list[tuple[int, np.dtype, Attribute]]:
    import ml_dtypes

    return [(_O[onnx], np.dtype(getattr(ml_dtypes, name)), x)
            for onnx, (name, x) in _ML_DTYPES.items()]


def numpy_dtype_names() -> frozenset[str]:
    """The numpy dtype names of every element type (ml_dtypes' without importing it)."""
    return frozenset([n.name for _, n, _ in _NUMPY_TABLE]
                     + [name for name, _ in _ML_DTYPES.values()])


# the float8 types ONNX Cast's `saturate` applies to
FLOAT8_SATURATING = (Float8E4M3FNType, Float8E4M3FNUZType, Float8E5M2Type, Float8E5M2FNUZType,
                     Float8E8M0FNUType)


def _indexes(table: list) -> tuple[dict, dict, dict]:
    return ({o: (n, x) for o, n, x in table}, {n: x for _, n, x in table},
            {x: (o, n) for o, n, x in table})


_EAGER = _indexes(_NUMPY_TABLE)


@cache
def _full() -> tuple[dict, dict, dict]:
    return _indexes(_NUMPY_TABLE + _ml_dtypes_table())


def _lookup(which: int, key: Any) -> Any:
    """`key` in index `which` (0: by ONNX dtype, 1: by numpy dtype, 2: by xDSL type) of the
    table; KeyError where not even ml_dtypes' rows hold it."""
    found = _EAGER[which].get(key)
    return found if found is not None else _full()[which][key]


def onnx_dtype_name(onnx_dtype: int) -> str:
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(onnx_dtype).lower()
    except ValueError:
        return f"dtype #{onnx_dtype}"


def is_supported_onnx_dtype(onnx_dtype: int) -> bool:
    try:
        _lookup(0, onnx_dtype)
    except KeyError:
        return False
    return True


def element_type_from_onnx(onnx_dtype: int) -> Attribute:
    try:
        return _lookup(0, onnx_dtype)[1]
    except KeyError:
        raise UnsupportedError(f"element type {onnx_dtype_name(onnx_dtype)} is not supported") \
            from None


def element_type_from_numpy(dtype: np.dtype | type) -> Attribute:
    dtype = np.dtype(dtype)
    try:
        return _lookup(1, dtype)
    except KeyError:
        raise UnsupportedError(f"numpy dtype {dtype} is not supported") from None


def numpy_dtype(element_type: Attribute) -> np.dtype:
    """The numpy dtype that holds values of an xDSL element type (bf16: ml_dtypes')."""
    try:
        return _lookup(2, element_type)[1]
    except KeyError:
        raise UnsupportedError(f"element type {element_type} has no numpy dtype") from None


def onnx_dtype(element_type: Attribute) -> int:
    try:
        return _lookup(2, element_type)[0]
    except KeyError:
        raise UnsupportedError(f"element type {element_type} has no ONNX dtype") from None


def is_float(element_type: Attribute) -> bool:
    """A float type ember computes in (the float8/float4 storage types are not)."""
    return isinstance(element_type, Float16Type | Float32Type | Float64Type | BFloat16Type)


def is_storage_float(element_type: Attribute) -> bool:
    """A float8/float4 type: stored, cast to and from and quantized to; never computed in."""
    return isinstance(element_type, (*FLOAT8_SATURATING, Float4E2M1FNType))


def is_bool(element_type: Attribute) -> bool:
    return isinstance(element_type, IntegerType) and element_type.width.data == 1


def is_integer(element_type: Attribute) -> bool:
    return isinstance(element_type, IntegerType) and element_type.width.data > 1
