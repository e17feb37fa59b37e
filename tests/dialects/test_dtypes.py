"""The element-type table (`ember.dialects.dtypes`): its ONNX numbers are TensorProto's, its
ml_dtypes names are ml_dtypes' (neither package loads with the module), and every lookup goes
both ways."""

from __future__ import annotations

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto

from ember.dialects import dtypes
from ember.errors import UnsupportedError


def test_onnx_numbers_are_tensorprotos() -> None:
    for name, number in dtypes.ONNX_DTYPES.items():
        assert getattr(TensorProto, name) == number, name


def test_the_ml_dtypes_names_are_their_dtypes_names() -> None:
    names = dtypes.numpy_dtype_names()
    for onnx_name, number in dtypes.ONNX_DTYPES.items():
        element = dtypes.element_type_from_onnx(number)
        numpy = dtypes.numpy_dtype(element)
        assert numpy.name in names, onnx_name
        assert dtypes.element_type_from_numpy(numpy) == element
        assert dtypes.onnx_dtype(element) == number
    assert dtypes.numpy_dtype(dtypes.element_type_from_numpy(ml_dtypes.bfloat16)) == \
        np.dtype(ml_dtypes.bfloat16)
    assert not dtypes.is_supported_onnx_dtype(TensorProto.STRING)
    with pytest.raises(UnsupportedError, match="element type string is not supported"):
        dtypes.element_type_from_onnx(TensorProto.STRING)
    with pytest.raises(UnsupportedError, match="numpy dtype complex64"):
        dtypes.element_type_from_numpy(np.complex64)


def test_neither_onnx_nor_ml_dtypes_loads_with_the_module() -> None:
    probe = ("import sys\nimport ember.dialects.dtypes as d\n"
             "d.numpy_dtype(d.element_type_from_onnx(1))\n"
             "print(sorted(m for m in ('onnx', 'ml_dtypes') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "[]", done.stderr
