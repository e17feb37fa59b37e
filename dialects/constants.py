"""Dense elements attributes <-> numpy arrays (inline constants; large tensors go to the store)."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import BytesAttr, DenseIntOrFPElementsAttr, TensorType

from ember.dialects.dtypes import element_type_from_numpy, numpy_dtype


def dense_from_numpy(array: np.ndarray) -> DenseIntOrFPElementsAttr:
    array = np.asarray(array)
    element_type = element_type_from_numpy(array.dtype)
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return DenseIntOrFPElementsAttr(TensorType(element_type, array.shape),
                                    BytesAttr(data.tobytes()))


def dense_to_numpy(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    dtype = numpy_dtype(attr.get_element_type()).newbyteorder("<")
    shape = attr.get_shape()
    flat = np.frombuffer(attr.data.data, dtype=dtype)
    count = int(np.prod(shape)) if shape else 1
    if flat.size == 1 and count != 1:  # splat
        flat = np.broadcast_to(flat, (count,))
    return flat.reshape(shape).astype(dtype.newbyteorder("="))
