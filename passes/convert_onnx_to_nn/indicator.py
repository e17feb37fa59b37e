"""Legalizers of the ops that make 0/1-pattern tensors from a shape or from indices: EyeLike
(a constant where the shape is static) and OneHot ((iota == index) selecting on/off values)."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import UnitAttr
from xdsl.ir import SSAValue

from ember.dialects.dtypes import element_type_from_onnx, numpy_dtype
from ember.dialects.nn.base import normalize_axis
from ember.dialects.nn.elementwise import SelectOp
from ember.dialects.nn.movement import GatherOp, RangeOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of, shape_of, tensor_type
from ember.passes.convert_onnx_to_nn.builder import NNBuilder
from ember.passes.convert_onnx_to_nn.registry import legalizes
from ember.runtime.cpu_kernels.movement import unsqueeze_dims

I64 = 7  # TensorProto.INT64


@legalizes("EyeLike")
def eye_like(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """Ones on the k-th diagonal of a 2-D tensor shaped as the input, in `dtype` (else the
    input's type): a constant, so the input's shape must be static."""
    x = op.operands[0]
    shape = b.shape(x)
    if len(shape) != 2:
        raise b.unsupported(f"EyeLike needs a 2-D input, got rank {len(shape)}")
    if not all(isinstance(d, int) for d in shape):
        raise b.unsupported(f"EyeLike of a symbolic shape {list(shape)}")
    dtype = numpy_dtype(element_type_from_onnx(op.attr("dtype")) if op.has_attr("dtype")
                        else element_type_of(x))
    return [b.constant(np.eye(shape[0], shape[1], k=int(op.attr("k", 0)), dtype=dtype))]


@legalizes("OneHot")
def one_hot(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """values[1] where iota == index along the new `axis`, values[0] elsewhere; a negative
    index counts from `depth`, one out of [-depth, depth) hits nothing. `depth` sizes the
    result: a constant, or at run time where the model declares the result's shape (the iota
    is then a Range to `depth` of the declared length, whose host step checks at run time that
    `depth` gives it). `values` may be a run-time tensor too."""
    indices, depth_value, values_value = op.operands
    shape = list(b.shape(indices))
    axis = normalize_axis(int(op.attr("axis", -1)), len(shape) + 1, op.ONNX_TYPE)
    i64 = element_type_from_onnx(I64)
    depth = b.const(depth_value)
    if depth is not None:
        depth = int(np.asarray(depth).reshape(-1)[0])
        if depth < 1:
            raise b.unsupported(f"depth {depth} must be >= 1")
        depth_at_run = b.constant(np.array(depth, np.int64))
        iota = b.constant(np.arange(depth, dtype=np.int64))
    else:
        declared = shape_of(op.results[0].type)
        if declared is None or len(declared) != len(shape) + 1 \
                or not isinstance(declared[axis], int):
            raise b.unsupported("depth is a run-time parameter and the result's shape is not "
                                "declared: depth sizes the result (give it as a constant, or "
                                "declare the output's shape)")
        depth = declared[axis]
        depth_at_run = b.cast(b.reshape(depth_value, []), i64)
        iota = b.op(RangeOp, [b.constant(np.array(0, np.int64)), depth_at_run,
                              b.constant(np.array(1, np.int64))], {"declared": UnitAttr()},
                    result_types=[tensor_type([depth], i64)]).results[0]
    values = b.const(values_value)
    if values is not None:
        values = np.asarray(values).reshape(-1)
        if values.size != 2:
            raise b.unsupported(f"values hold [off, on], got {values.size} value(s)")
        off, on = (b.constant(values[i:i + 1].reshape(())) for i in (0, 1))
    else:
        off, on = (b.value(GatherOp, [values_value, b.constant(np.array(i, np.int64))], axis=0)
                   for i in (0, 1))
    index = b.cast(indices, i64)
    negative = b.binary("lt", index, b.constant(0, like=index))
    index = b.value(SelectOp, [negative, b.binary("add", index, depth_at_run), index])
    index = b.reshape(index, unsqueeze_dims(shape, [axis]))
    dims = [1] * (len(shape) + 1)
    dims[axis] = depth
    hit = b.binary("eq", b.reshape(iota, dims), index)
    return [b.value(SelectOp, [hit, on, off])]
