"""The enums of TensorRT's network API (numbered as TensorRT numbers them) and the dtype names
the network API takes: numpy dtypes, TensorRT `DataType`s (anything with a TensorRT name) and
ember's precision strings."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import numpy as np

from ember.errors import EmberError, UnsupportedError
from ember.runtime.trt_types import DataType


class LayerType(enum.IntEnum):
    CONVOLUTION = 0
    CAST = 1
    ACTIVATION = 2
    POOLING = 3
    LRN = 4
    SCALE = 5
    SOFTMAX = 6
    DECONVOLUTION = 7
    CONCATENATION = 8
    ELEMENTWISE = 9
    PLUGIN = 10
    UNARY = 11
    PADDING = 12
    SHUFFLE = 13
    REDUCE = 14
    TOPK = 15
    GATHER = 16
    MATRIX_MULTIPLY = 17
    RAGGED_SOFTMAX = 18
    CONSTANT = 19
    IDENTITY = 20
    PLUGIN_V2 = 21
    SLICE = 22
    SHAPE = 23
    PARAMETRIC_RELU = 24
    RESIZE = 25
    TRIP_LIMIT = 26
    RECURRENCE = 27
    ITERATOR = 28
    LOOP_OUTPUT = 29
    SELECT = 30
    FILL = 31
    QUANTIZE = 32
    DEQUANTIZE = 33
    CONDITION = 34
    CONDITIONAL_INPUT = 35
    CONDITIONAL_OUTPUT = 36
    SCATTER = 37
    EINSUM = 38
    ASSERTION = 39
    ONE_HOT = 40
    NON_ZERO = 41
    GRID_SAMPLE = 42
    NMS = 43
    REVERSE_SEQUENCE = 44
    NORMALIZATION = 45
    PLUGIN_V3 = 46
    SQUEEZE = 47
    UNSQUEEZE = 48
    CUMULATIVE = 49


class ActivationType(enum.IntEnum):
    RELU = 0
    SIGMOID = 1
    TANH = 2
    LEAKY_RELU = 3
    ELU = 4
    SELU = 5
    SOFTSIGN = 6
    SOFTPLUS = 7
    CLIP = 8
    HARD_SIGMOID = 9
    SCALED_TANH = 10
    THRESHOLDED_RELU = 11
    GELU_ERF = 12
    GELU_TANH = 13


class PoolingType(enum.IntEnum):
    MAX = 0
    AVERAGE = 1
    MAX_AVERAGE_BLEND = 2


class PaddingMode(enum.IntEnum):
    EXPLICIT_ROUND_DOWN = 0
    EXPLICIT_ROUND_UP = 1
    SAME_UPPER = 2
    SAME_LOWER = 3


class ElementWiseOperation(enum.IntEnum):
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    SUB = 4
    DIV = 5
    POW = 6
    FLOOR_DIV = 7
    AND = 8
    OR = 9
    XOR = 10
    EQUAL = 11
    GREATER = 12
    LESS = 13


class UnaryOperation(enum.IntEnum):
    EXP = 0
    LOG = 1
    SQRT = 2
    RECIP = 3
    ABS = 4
    NEG = 5
    SIN = 6
    COS = 7
    TAN = 8
    SINH = 9
    COSH = 10
    ASIN = 11
    ACOS = 12
    ATAN = 13
    ASINH = 14
    ACOSH = 15
    ATANH = 16
    CEIL = 17
    FLOOR = 18
    ERF = 19
    NOT = 20
    SIGN = 21
    ROUND = 22
    ISINF = 23
    ISNAN = 24


class ReduceOperation(enum.IntEnum):
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    AVG = 4


class MatrixOperation(enum.IntEnum):
    NONE = 0
    TRANSPOSE = 1
    VECTOR = 2


class ScaleMode(enum.IntEnum):
    UNIFORM = 0
    CHANNEL = 1
    ELEMENTWISE = 2


class GatherMode(enum.IntEnum):
    DEFAULT = 0
    ELEMENT = 1
    ND = 2


class ScatterMode(enum.IntEnum):
    ELEMENT = 0
    ND = 1


class InterpolationMode(enum.IntEnum):
    NEAREST = 0
    LINEAR = 1
    CUBIC = 2


class ResizeCoordinateTransformation(enum.IntEnum):
    ALIGN_CORNERS = 0
    ASYMMETRIC = 1
    HALF_PIXEL = 2


class ResizeSelector(enum.IntEnum):
    FORMULA = 0
    UPPER = 1


class ResizeRoundMode(enum.IntEnum):
    HALF_UP = 0
    HALF_DOWN = 1
    FLOOR = 2
    CEIL = 3


class SampleMode(enum.IntEnum):
    STRICT_BOUNDS = 0
    WRAP = 1
    CLAMP = 2
    FILL = 3
    REFLECT = 4


class FillOperation(enum.IntEnum):
    LINSPACE = 0
    RANDOM_UNIFORM = 1
    RANDOM_NORMAL = 2


class TopKOperation(enum.IntEnum):
    MAX = 0
    MIN = 1


class CumulativeOperation(enum.IntEnum):
    SUM = 0


ENUMS = (LayerType, ActivationType, PoolingType, PaddingMode, ElementWiseOperation,
         UnaryOperation, ReduceOperation, MatrixOperation, ScaleMode, GatherMode, ScatterMode,
         InterpolationMode, ResizeCoordinateTransformation, ResizeSelector, ResizeRoundMode,
         SampleMode, FillOperation, TopKOperation, CumulativeOperation)


def enum_value(kind: type[enum.IntEnum], value: Any, what: str) -> Any:
    """`value` as a member of `kind` (a member, its name or its number), else an error naming
    `what`."""
    if isinstance(value, kind):
        return value
    name = getattr(value, "name", value)
    if isinstance(name, str) and name.upper() in kind.__members__:
        return kind[name.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and value in set(kind):
        return kind(value)
    raise EmberError(f"{what}: {value!r} is not a {kind.__name__} (one of "
                     f"{', '.join(kind.__members__)})")


def numpy_dtype(value: Any, what: str = "dtype") -> np.dtype:
    """A numpy dtype for np.float32 / "float32" / a TensorRT DataType (`trt.float32`,
    `DataType.HALF`, anything whose `.name` is one of TensorRT's) / its number."""
    name = getattr(value, "name", None)
    if isinstance(value, DataType):
        member = value
    elif not isinstance(value, np.dtype) and isinstance(name, str) \
            and name.upper() in DataType.__members__:
        member = DataType[name.upper()]
    elif isinstance(value, int) and not isinstance(value, bool):
        member = next((m for m in DataType if m.value == value), None)
        if member is None:
            raise EmberError(f"{what}: {value!r} has no numpy type ember computes in")
    else:
        try:
            return np.dtype(value)
        except TypeError:
            raise EmberError(f"{what}: {value!r} is not a dtype") from None
    try:
        return member.dtype
    except TypeError:
        raise EmberError(f"{what}: {value!r} has no numpy type ember computes in") from None


def data_type(dtype: np.dtype) -> Any:
    """What `ITensor.dtype` returns: TensorRT's `DataType` member, or the numpy dtype where
    TensorRT has none (float64)."""
    try:
        return DataType.from_numpy(dtype)
    except UnsupportedError:
        return np.dtype(dtype)


def int_tuple(values: Iterable[Any] | int, what: str) -> tuple[int, ...]:
    """Dims, tuples, lists and numpy arrays of ints as a tuple (an error naming `what` else)."""
    if isinstance(values, str | int | np.integer):
        raise EmberError(f"{what}: {values!r} is not a sequence of ints (give a tuple or Dims)")
    try:
        return tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise EmberError(f"{what}: {values!r} is not a sequence of ints") from None
