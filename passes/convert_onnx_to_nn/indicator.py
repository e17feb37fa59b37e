"""Legalizers of the ops that make 0/1-pattern tensors from a shape or from indices: EyeLike
(a constant where the shape is static) and OneHot ((iota == index) selecting on/off values)."""

from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from ember.dialects.dtypes import element_type_from_onnx, numpy_dtype
from ember.dialects.nn.base import normalize_axis
from ember.dialects.nn.elementwise import SelectOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of
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
    index counts from `depth`, one out of [-depth, depth) hits nothing. `depth` and `values`
    must be constants (depth sizes the result)."""
    indices, depth_value, values_value = op.operands
    depth, values = b.const(depth_value), b.const(values_value)
    if depth is None or values is None:
        raise b.unsupported("depth and values are run-time parameters here; they must be "
                            "constants (depth sizes the result)")
    depth = int(np.asarray(depth).reshape(-1)[0])
    values = np.asarray(values).reshape(-1)
    if depth < 1 or values.size != 2:
        raise b.unsupported(f"depth {depth} must be >= 1 and values hold [off, on], got "
                            f"{values.size} value(s)")
    shape = list(b.shape(indices))
    axis = normalize_axis(int(op.attr("axis", -1)), len(shape) + 1, op.ONNX_TYPE)
    index = b.cast(indices, element_type_from_onnx(I64))
    negative = b.binary("lt", index, b.constant(0, like=index))
    index = b.value(SelectOp, [negative, b.binary("add", index, b.constant(depth, like=index)),
                               index])
    index = b.reshape(index, unsqueeze_dims(shape, [axis]))
    dims = [1] * (len(shape) + 1)
    dims[axis] = depth
    hit = b.binary("eq", b.constant(np.arange(depth, dtype=np.int64).reshape(dims)), index)
    off, on = (b.constant(values[i:i + 1].reshape(())) for i in (0, 1))
    return [b.value(SelectOp, [hit, on, off])]
