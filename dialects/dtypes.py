"""Element types: the one table between ONNX TensorProto dtypes, numpy dtypes and xDSL types."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from onnx import TensorProto
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

# (onnx dtype, numpy dtype, xDSL element type); signed ONNX ints are signless MLIR ints.
_TABLE: list[tuple[int, np.dtype, Attribute]] = [
    (TensorProto.FLOAT, np.dtype(np.float32), Float32Type()),
    (TensorProto.FLOAT16, np.dtype(np.float16), Float16Type()),
    (TensorProto.DOUBLE, np.dtype(np.float64), Float64Type()),
    (TensorProto.INT8, np.dtype(np.int8), IntegerType(8)),
    (TensorProto.INT16, np.dtype(np.int16), IntegerType(16)),
    (TensorProto.INT32, np.dtype(np.int32), IntegerType(32)),
    (TensorProto.INT64, np.dtype(np.int64), IntegerType(64)),
    (TensorProto.UINT8, np.dtype(np.uint8), IntegerType(8, Signedness.UNSIGNED)),
    (TensorProto.UINT16, np.dtype(np.uint16), IntegerType(16, Signedness.UNSIGNED)),
    (TensorProto.UINT32, np.dtype(np.uint32), IntegerType(32, Signedness.UNSIGNED)),
    (TensorProto.UINT64, np.dtype(np.uint64), IntegerType(64, Signedness.UNSIGNED)),
    (TensorProto.BOOL, np.dtype(np.bool_), IntegerType(1)),
    (TensorProto.BFLOAT16, np.dtype(ml_dtypes.bfloat16), BFloat16Type()),
    # storage-only types (ml_dtypes', one element per byte): cast to and from, moved, quantized
    # to; no arithmetic is lowered on them and CUDA codegen refuses them (host steps)
    (TensorProto.FLOAT8E4M3FN, np.dtype(ml_dtypes.float8_e4m3fn), Float8E4M3FNType()),
    (TensorProto.FLOAT8E4M3FNUZ, np.dtype(ml_dtypes.float8_e4m3fnuz), Float8E4M3FNUZType()),
    (TensorProto.FLOAT8E5M2, np.dtype(ml_dtypes.float8_e5m2), Float8E5M2Type()),
    (TensorProto.FLOAT8E5M2FNUZ, np.dtype(ml_dtypes.float8_e5m2fnuz), Float8E5M2FNUZType()),
    (TensorProto.FLOAT8E8M0, np.dtype(ml_dtypes.float8_e8m0fnu), Float8E8M0FNUType()),
    (TensorProto.FLOAT4E2M1, np.dtype(ml_dtypes.float4_e2m1fn), Float4E2M1FNType()),
    (TensorProto.INT4, np.dtype(ml_dtypes.int4), IntegerType(4)),
    (TensorProto.UINT4, np.dtype(ml_dtypes.uint4), IntegerType(4, Signedness.UNSIGNED)),
    (TensorProto.INT2, np.dtype(ml_dtypes.int2), IntegerType(2)),
    (TensorProto.UINT2, np.dtype(ml_dtypes.uint2), IntegerType(2, Signedness.UNSIGNED)),
]

# the float8 types ONNX Cast's `saturate` applies to
FLOAT8_SATURATING = (Float8E4M3FNType, Float8E4M3FNUZType, Float8E5M2Type, Float8E5M2FNUZType,
                     Float8E8M0FNUType)

_BY_ONNX = {o: (n, x) for o, n, x in _TABLE}
_BY_NUMPY = {n: x for _, n, x in _TABLE}
_BY_XDSL = {x: (o, n) for o, n, x in _TABLE}


def onnx_dtype_name(onnx_dtype: int) -> str:
    try:
        return TensorProto.DataType.Name(onnx_dtype).lower()
    except ValueError:
        return f"dtype #{onnx_dtype}"


def is_supported_onnx_dtype(onnx_dtype: int) -> bool:
    return onnx_dtype in _BY_ONNX


def element_type_from_onnx(onnx_dtype: int) -> Attribute:
    if onnx_dtype not in _BY_ONNX:
        raise UnsupportedError(f"element type {onnx_dtype_name(onnx_dtype)} is not supported")
    return _BY_ONNX[onnx_dtype][1]


def element_type_from_numpy(dtype: np.dtype | type) -> Attribute:
    dtype = np.dtype(dtype)
    if dtype not in _BY_NUMPY:
        raise UnsupportedError(f"numpy dtype {dtype} is not supported")
    return _BY_NUMPY[dtype]


def numpy_dtype(element_type: Attribute) -> np.dtype:
    """The numpy dtype that holds values of an xDSL element type (bf16: ml_dtypes')."""
    if element_type not in _BY_XDSL:
        raise UnsupportedError(f"element type {element_type} has no numpy dtype")
    return _BY_XDSL[element_type][1]


def onnx_dtype(element_type: Attribute) -> int:
    if element_type not in _BY_XDSL:
        raise UnsupportedError(f"element type {element_type} has no ONNX dtype")
    return _BY_XDSL[element_type][0]


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
