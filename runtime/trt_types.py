"""TensorRT's names for tensor properties, defined once for the runtime and the compiler:
DataType (with `nptype` and the `float32`/`float16`/... aliases), TensorIOMode, TensorFormat
(mapped onto ember's formats in `runtime/formats.py`), Dims and `volume`.
Imports: numpy and the standard library only.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Iterable
from typing import Any

import numpy as np

from ember.errors import EmberError, UnsupportedError
from ember.runtime import formats


class Numbered(enum.Enum):
    """An enum whose `int()` is TensorRT's number for the member (a bit position for the flag
    enums)."""

    def __int__(self) -> int:
        return self.value


class DataType(Numbered):
    """TensorRT's DataType, numbered as TensorRT numbers it. A member is accepted wherever numpy
    takes a dtype (`np.dtype(DataType.HALF)`, `a.astype(trt.float32)`), through its `dtype`;
    `itemsize` is bytes per element (0.5 for the 4-bit types)."""

    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9
    FP4 = 10

    @property
    def itemsize(self) -> float:
        return _ITEMSIZE[self]

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype (bfloat16 and FP8, TensorRT's E4M3, through ml_dtypes; INT4/FP4
        have none: TypeError)."""
        if self in (DataType.BF16, DataType.FP8):
            try:
                import ml_dtypes  # (registers its types with numpy; an onnx dependency)
            except ImportError:
                raise TypeError(f"DataType.{self.name} needs the ml_dtypes package for a numpy "
                                "dtype") from None
            return np.dtype(ml_dtypes.bfloat16 if self is DataType.BF16
                            else ml_dtypes.float8_e4m3fn)
        name = _NUMPY.get(self)
        if name is None:
            raise TypeError(f"DataType.{self.name} has no numpy dtype")
        return np.dtype(name)

    @classmethod
    def from_numpy(cls, dtype: Any) -> DataType:
        """The DataType of a numpy dtype (or its name, "bfloat16" included)."""
        if isinstance(dtype, DataType):
            return dtype
        name = np.dtype(dtype).name
        member = _FROM_NUMPY.get(name)
        if member is None:
            raise UnsupportedError(f"numpy dtype {name} has no TensorRT DataType")
        return member


_NUMPY = {DataType.FLOAT: "float32", DataType.HALF: "float16", DataType.INT8: "int8",
          DataType.INT32: "int32", DataType.BOOL: "bool", DataType.UINT8: "uint8",
          DataType.INT64: "int64"}
_FROM_NUMPY = {v: k for k, v in _NUMPY.items()} | {"bfloat16": DataType.BF16,
                                                   "float8_e4m3fn": DataType.FP8}
_ITEMSIZE = {DataType.FLOAT: 4, DataType.HALF: 2, DataType.INT8: 1, DataType.INT32: 4,
             DataType.BOOL: 1, DataType.UINT8: 1, DataType.FP8: 1, DataType.BF16: 2,
             DataType.INT64: 8, DataType.INT4: 0.5, DataType.FP4: 0.5}

# TensorRT's module-level aliases of the DataType members (`trt.float32` is DataType.FLOAT)
DTYPE_ALIASES = {"float32": DataType.FLOAT, "float16": DataType.HALF,
                 "bfloat16": DataType.BF16, "int8": DataType.INT8, "int32": DataType.INT32,
                 "int64": DataType.INT64, "bool": DataType.BOOL, "uint8": DataType.UINT8,
                 "fp8": DataType.FP8, "int4": DataType.INT4, "fp4": DataType.FP4}


def nptype(trt_type: DataType) -> type:
    """The numpy scalar type of a DataType (TensorRT's `trt.nptype`); TypeError for the types
    numpy lacks (BF16, FP8, INT4, FP4), as TensorRT's."""
    if not isinstance(trt_type, DataType) or trt_type not in _NUMPY:
        raise TypeError(f"{trt_type!r} has no equivalent numpy type")
    return np.dtype(_NUMPY[trt_type]).type


class TensorIOMode(Numbered):
    """What an engine's tensor is (`engine.get_tensor_mode`)."""

    NONE = 0
    INPUT = 1
    OUTPUT = 2


class TensorFormat(Numbered):
    """TensorRT's tensor formats, numbered as TensorRT numbers them. ember has three of them:
    LINEAR (ONNX's NCHW, and every tensor that is not 4-D), HWC (NHWC) and CHW4 (NC4HW4);
    `ember_format` gives ember's name, and None for the ones ember does not implement."""

    LINEAR = 0
    CHW2 = 1
    HWC8 = 2
    CHW4 = 3
    CHW16 = 4
    CHW32 = 5
    DHWC8 = 6
    CDHW32 = 7
    HWC = 8
    DLA_LINEAR = 9
    DLA_HWC4 = 10
    HWC16 = 11
    DHWC = 12

    @property
    def ember_format(self) -> str | None:
        return formats.ALIASES.get(self.name)

    @classmethod
    def of(cls, fmt: str) -> TensorFormat:
        """The TensorFormat of one of ember's format names ("" / "plain": LINEAR)."""
        names = {v: k for k, v in formats.ALIASES.items() if k in cls.__members__}
        return cls[names.get(fmt, "LINEAR")]


def int_dims(value: Any, what: str, error: type[EmberError] = EmberError) -> tuple[int, ...]:
    """A shape given to the API: a sequence of integers (Python or numpy ints, not booleans,
    floats or strings), else `error` naming `what`."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise error(f"{what}: a shape is a sequence of integers, not {value!r}")
    dims = []
    for d in value:
        if isinstance(d, bool | np.bool_):
            raise error(f"{what}: dims are integers, not {d!r} in {value!r}")
        try:
            dims.append(operator.index(d))
        except TypeError:
            raise error(f"{what}: dims are integers, not {d!r} in {value!r}") from None
    return tuple(dims)


class Dims(tuple):
    """TensorRT's Dims: a tuple of ints (-1 for a dynamic dim) that compares equal to any
    tuple or list of the same ints. `Dims(shape)`, or Dims2/Dims3/Dims4/DimsHW from the dims."""

    MAX_DIMS = 8

    def __new__(cls, shape: Iterable[int] = ()) -> Dims:
        dims = tuple(int(d) for d in shape)
        if len(dims) > cls.MAX_DIMS:
            raise EmberError(f"Dims: {len(dims)} dims, at most {cls.MAX_DIMS}")
        return super().__new__(cls, dims)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            other = tuple(other)
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"({', '.join(map(str, self))})"


class _FixedDims(Dims):
    RANK = 0

    def __new__(cls, *dims: int) -> Dims:
        if len(dims) == 1 and isinstance(dims[0], Iterable):
            dims = tuple(dims[0])
        if len(dims) != cls.RANK:
            raise EmberError(f"{cls.__name__} takes {cls.RANK} dims, got {len(dims)}")
        return super().__new__(cls, dims)


class Dims2(_FixedDims):
    RANK = 2


class Dims3(_FixedDims):
    RANK = 3


class Dims4(_FixedDims):
    RANK = 4


class DimsHW(Dims2):
    @property
    def h(self) -> int:
        return self[0]

    @property
    def w(self) -> int:
        return self[1]


def volume(shape: Iterable[int]) -> int:
    """The product of the dims (1 for a scalar's empty shape), as TensorRT's `trt.volume`."""
    v = 1
    for d in shape:
        v *= d
    return v


class HostMemory(bytes):
    """TensorRT's IHostMemory: what `build_serialized_network` and `engine.serialize()` return.
    It is bytes (the buffer protocol, `len`, `bytes(x)`, `memoryview(x)`, writing to a file),
    with TensorRT's `nbytes` and `dtype`."""

    @property
    def nbytes(self) -> int:
        return len(self)

    @property
    def dtype(self) -> DataType:
        return DataType.UINT8

    def __enter__(self) -> HostMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class ContextManaged:
    """`with` support as TensorRT's objects have it (`with trt.Builder(logger) as builder`):
    entering gives the object; leaving frees nothing early (memory goes with the last
    reference, as in TensorRT 10, whose context managers are no-ops too)."""

    __slots__ = ()  # a base of slotted classes too

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class IOutputAllocator:
    """TensorRT's output allocator, for an output whose size is known only as the plan runs
    (a data-dependent length: NonZero's, NonMaxSuppression's, ...): set with
    `context.set_output_allocator(name, allocator)`. Once a run knows the output's size,
    `reallocate_output_async` (TensorRT 10's; `reallocate_output` where a subclass overrides only
    that) is asked for memory of `size` bytes (the address it returned last time is `memory`) and
    returns its address: a device address for a CUDA engine; a host address or a numpy array
    large enough for a CPU engine. The output is copied there, then `notify_shape` gets its
    shape."""

    def reallocate_output(self, tensor_name: str, memory: int, size: int,
                          alignment: int) -> Any:
        raise NotImplementedError("an IOutputAllocator implements reallocate_output_async "
                                  "(or reallocate_output)")

    def reallocate_output_async(self, tensor_name: str, memory: int, size: int, alignment: int,
                                stream: Any) -> Any:
        return self.reallocate_output(tensor_name, memory, size, alignment)

    def notify_shape(self, tensor_name: str, shape: Dims) -> None:
        raise NotImplementedError("an IOutputAllocator implements notify_shape")


__all__ = ["DTYPE_ALIASES", "ContextManaged", "DataType", "Dims", "Dims2", "Dims3", "Dims4",
           "DimsHW", "HostMemory", "IOutputAllocator", "TensorFormat", "TensorIOMode", "nptype",
           "volume"]
