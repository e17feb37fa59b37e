"""The tensors and the layer base of the network API (TensorRT's ITensor / ILayer).

A layer keeps its attributes, not ONNX nodes: `NetworkDefinition.to_onnx()` asks each layer to
emit its nodes from the attributes as they are then, so an attribute set after `add_*`
(`stride_nd`, `reshape_dims`, `.name`, ...) takes effect. The node that computes a layer's
result carries the layer's name (the origin per-layer precisions and the layer table use);
helper nodes are named `<layer>/<what>`. An attribute TensorRT has and ember does not implement
raises on set, naming it; unknown attributes raise AttributeError (every class has __slots__).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from onnx import helper, numpy_helper

from ember.compiler.network_types import (
    LayerType,
    data_type,
    enum_value,
    int_tuple,
    numpy_dtype,
)
from ember.errors import EmberError, UnsupportedError

if TYPE_CHECKING:
    from ember.compiler.network import NetworkDefinition


_PRECISION_NAMES = {"fp32": "fp32", "float32": "fp32", "float": "fp32", "fp16": "fp16",
                    "float16": "fp16", "half": "fp16", "bf16": "bf16", "bfloat16": "bf16"}


def precision_name(value: Any, what: str = "precision") -> str:
    """"fp32" / "fp16" / "bf16" for a name or a dtype (np.float16, ember.float16, "half")."""
    name = value if isinstance(value, str) else getattr(value, "name", None)
    if name is None:
        try:
            name = np.dtype(value).name
        except TypeError:
            name = repr(value)
    precision = _PRECISION_NAMES.get(str(name).lower())
    if precision is None:
        raise EmberError(f"{what}: precision {value!r} is not one of fp32, fp16, bf16")
    return precision


_DTYPE_OF = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _dtype(precision: str) -> np.dtype:
    return numpy_dtype(_DTYPE_OF[precision])


# -- the ONNX graph a network becomes --------------------------------------------------------------

class Emitter:
    """Collects the ONNX nodes and initializers the layers emit. `for_shapes`: the graph is
    only for shape inference, so big float weights become typed inputs (no data copied)."""

    def __init__(self, for_shapes: bool = False) -> None:
        self.for_shapes = for_shapes
        self.nodes: list = []
        self.initializers: list = []
        self.weight_inputs: list = []
        self.value_infos: list = []  # types ONNX cannot infer (a plugin's outputs)
        self.opsets: dict[str, int] = {}  # custom domains the nodes use (plugins)

    def node(self, op_type: str, inputs: Sequence[str | None], outputs: Sequence[str],
             name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, [i or "" for i in inputs], list(outputs),
                                           name=name, **attrs))
        return outputs[0]

    def weight(self, name: str, array: np.ndarray) -> str:
        array = np.asarray(array)
        if self.for_shapes and array.size > 64 and array.dtype.kind == "f":
            self.weight_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape)))
        else:
            self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def ints(self, name: str, values: Sequence[int]) -> str:
        return self.weight(name, np.array(list(values), np.int64))

    def scalar(self, name: str, value: float, dtype: Any = np.float32) -> str:
        return self.weight(name, np.array(value, dtype))


# -- attribute descriptors -------------------------------------------------------------------------

class Attr:
    """A layer attribute: validated on set (`convert(layer, value)`), read at emit time; its
    default may depend on the layer (`default(layer)`)."""

    def __init__(self, convert: Callable[[Layer, Any, str], Any], default: Any = None) -> None:
        self.convert = convert
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, layer: Layer | None, owner: type) -> Any:
        if layer is None:
            return self
        if self.name in layer._attrs:
            return layer._attrs[self.name]
        return self.default(layer) if callable(self.default) else self.default

    def __set__(self, layer: Layer, value: Any) -> None:
        layer._attrs[self.name] = self.convert(layer, value, f"{layer._what()}.{self.name}")
        layer._network._touch()


class Unsupported:
    """An attribute TensorRT has that ember does not implement: it reads as TensorRT's default
    and setting anything else raises UnsupportedError naming it."""

    def __init__(self, default: Any, why: str) -> None:
        self.default = default
        self.why = why

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, layer: Any, owner: type) -> Any:
        return self if layer is None else self.default

    def __set__(self, layer: Any, value: Any) -> None:
        if value == self.default or (isinstance(self.default, str) and
                                     getattr(value, "name", None) == self.default):
            return
        what = layer._what() if isinstance(layer, Layer) else f"tensor '{layer.name}'"
        raise UnsupportedError(f"{what}.{self.name} = {value!r}: {self.why}")


def as_dims(layer: Layer, value: Any, what: str) -> tuple[int, ...]:
    return int_tuple(value, what)


def as_dims_or_none(layer: Layer, value: Any, what: str) -> tuple[int, ...] | None:
    return None if value is None else int_tuple(value, what)


def as_int(layer: Layer, value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise EmberError(f"{what}: {value!r} is not an int")
    return int(value)


def as_positive(layer: Layer, value: Any, what: str) -> int:
    value = as_int(layer, value, what)
    if value < 1:
        raise EmberError(f"{what}: {value} must be at least 1")
    return value


def as_float(layer: Layer, value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EmberError(f"{what}: {value!r} is not a number") from None


def as_bool(layer: Layer, value: Any, what: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise EmberError(f"{what}: {value!r} is not a bool")
    return bool(value)


def as_enum(kind: type) -> Callable[[Layer, Any, str], Any]:
    return lambda layer, value, what: enum_value(kind, value, what)


def as_dtype(layer: Layer, value: Any, what: str) -> np.dtype:
    return numpy_dtype(value, what)


_WEIGHT_DTYPES = {np.dtype(t) for t in (np.float32, np.float16, np.int32, np.int64, np.int8,
                                         np.uint8, np.bool_)}


def weights_array(value: Any, what: str) -> np.ndarray | None:
    """A numpy array from TensorRT-style weights (a numpy array, anything with `.numpy()`);
    None for none or empty weights."""
    if value is None:
        return None
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    array = np.array(value)  # a copy: the caller may reuse its buffer, as TensorRT allows
    if array.size == 0:
        return None
    if array.dtype not in _WEIGHT_DTYPES and array.dtype.name != "bfloat16":
        raise EmberError(f"{what}: weights of dtype {array.dtype} are not supported (float32, "
                         "float16, bfloat16, int8, uint8, int32, int64, bool)")
    return array


def as_weights(layer: Layer, value: Any, what: str) -> np.ndarray | None:
    return weights_array(value, what)


def as_float_weights(layer: Layer, value: Any, what: str) -> np.ndarray | None:
    array = weights_array(value, what)
    if array is not None and array.dtype.kind != "f" and array.dtype.name != "bfloat16":
        raise EmberError(f"{what}: float weights expected, got {array.dtype}")
    return array


def axes_mask(layer: Layer, value: Any, what: str) -> int:
    """TensorRT's axes bit mask (bit i: axis i); a sequence of non-negative axes also works."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        if value < 0:
            raise EmberError(f"{what}: the bit mask {value} is negative")
        return int(value)
    axes = int_tuple(value, what)
    if any(a < 0 for a in axes):
        raise EmberError(f"{what}: negative axes {axes}: give TensorRT's bit mask (1 << axis)")
    return sum(1 << a for a in set(axes))


def mask_axes(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


# -- tensors ---------------------------------------------------------------------------------------

class Tensor:
    """TensorRT's ITensor: a value of the network, named, with a shape and dtype (inferred
    from the layers as they are now; -1 for a dynamic dim)."""

    __slots__ = ("_network", "_name", "_producer", "_input_dtype", "_input_dims")

    location = Unsupported("DEVICE", "ember places every tensor on the device it builds for")
    allowed_formats = Unsupported(None, "use BuilderConfig.allowed_io_formats for network I/O")
    dynamic_range = Unsupported(None, "INT8 builds are not implemented")
    broadcast_across_batch = Unsupported(False, "implicit batch dims are gone (TensorRT 10)")

    def set_dynamic_range(self, min: float, max: float) -> bool:
        raise UnsupportedError(f"tensor '{self.name}'.set_dynamic_range: INT8 builds are not "
                               "implemented")

    def reset_dynamic_range(self) -> None:
        raise UnsupportedError(f"tensor '{self.name}'.reset_dynamic_range: INT8 builds are not "
                               "implemented")

    @property
    def is_shape_tensor(self) -> bool:
        raise UnsupportedError(f"tensor '{self.name}'.is_shape_tensor: ember does not tell "
                               "shape tensors apart (shape computations fold at build time)")

    @property
    def is_execution_tensor(self) -> bool:
        raise UnsupportedError(f"tensor '{self.name}'.is_execution_tensor: ember does not tell "
                               "shape tensors apart (shape computations fold at build time)")

    def set_dimension_name(self, index: int, name: str) -> None:
        """Name a network input's dynamic dim: inputs that share a name share the size (the
        plan's symbol)."""
        dims = self._input_dims
        if dims is None:
            raise EmberError(f"tensor '{self.name}': only a network input's dims can be named")
        if not 0 <= index < len(dims) or (isinstance(dims[index], int) and dims[index] >= 0):
            raise EmberError(f"tensor '{self.name}': dim #{index} is not a dynamic dim of "
                             f"{self.shape}")
        self._input_dims = dims[:index] + (str(name),) + dims[index + 1:]
        self._network._touch()

    def get_dimension_name(self, index: int) -> str | None:
        dims = self._input_dims or ()
        return dims[index] if 0 <= index < len(dims) and isinstance(dims[index], str) else None

    def __init__(self, network: NetworkDefinition, name: str, producer: Layer | None = None,
                 dtype: np.dtype | None = None, dims: tuple | None = None) -> None:
        self._network = network
        self._name = name
        self._producer = producer
        self._input_dtype = dtype
        self._input_dims = dims

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._network._rename_tensor(self, str(value))

    @property
    def shape(self) -> tuple[int, ...]:
        if self._input_dims is not None:
            return tuple(d if isinstance(d, int) else -1 for d in self._input_dims)
        return self._network._infer(self)[0]

    @shape.setter
    def shape(self, value: Sequence[int]) -> None:
        if self._input_dims is None:
            raise EmberError(f"tensor '{self.name}': only a network input's shape can be set "
                             "(others follow from their layers)")
        self._input_dims = self._network._input_dims(self.name, value)
        self._network._touch()

    @property
    def dtype(self) -> Any:
        if self._input_dtype is not None:
            return data_type(self._input_dtype)
        return data_type(self._network._infer(self)[1])

    @dtype.setter
    def dtype(self, value: Any) -> None:
        if self._input_dtype is None:
            raise EmberError(f"tensor '{self.name}': only a network input's dtype can be set "
                             "(add a cast layer to change another's)")
        self._input_dtype = self._network._input_dtype(self.name, value)
        self._network._touch()

    @property
    def is_network_input(self) -> bool:
        return self._input_dims is not None

    @property
    def is_network_output(self) -> bool:
        return any(t is self for t in self._network._outputs)

    def __repr__(self) -> str:
        return f"<Tensor '{self.name}'>"


# -- layers ----------------------------------------------------------------------------------------

class Layer:
    """TensorRT's ILayer. `precision` and `set_output_type` are TensorRT's per-layer
    constraints: the builder honours them under OBEY_PRECISION_CONSTRAINTS (an error where it
    cannot), else follows them where it can (a warning elsewhere)."""

    __slots__ = ("_network", "_name", "_inputs", "_outputs", "_attrs", "_precision",
                 "_output_types")
    TYPE: ClassVar[LayerType]
    KIND: ClassVar[str] = "layer"
    NUM_OUTPUTS: ClassVar[int] = 1
    # the input indices set_input may set beyond the ones add_* gave: index -> why unsupported
    # (None: supported)
    EXTRA_INPUTS: ClassVar[dict[int, str | None]] = {}

    metadata = Unsupported("", "ember keeps no per-layer metadata")
    num_ranks = Unsupported(1, "ember builds for one GPU")

    def __init__(self, network: NetworkDefinition, inputs: Sequence[Tensor | None],
                 num_outputs: int | None = None, **attrs: Any) -> None:
        self._network = network
        self._name = network._new_layer_name(self.KIND)
        self._inputs: list[Tensor | None] = []
        for i, t in enumerate(inputs):
            self._inputs.append(None if t is None else network._own(t, f"{self._name} input #{i}"))
        self._attrs: dict[str, Any] = {}
        self._precision: str | None = None
        self._output_types: dict[int, str] = {}
        self._outputs = [Tensor(network, network._new_tensor_name(f"{self._name}_out{i}"), self)
                         for i in range(num_outputs or self.NUM_OUTPUTS)]
        for key, value in attrs.items():
            setattr(self, key, value)

    def _what(self) -> str:
        return f"layer '{self._name}' ({type(self).__name__})"

    # -- ILayer ------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._network._rename_layer(self, str(value))

    @property
    def type(self) -> LayerType:
        return self._layer_type()

    def _layer_type(self) -> LayerType:
        return self.TYPE

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int) -> Tensor | None:
        if not 0 <= index < self.num_inputs:
            raise EmberError(f"{self._what()} has {self.num_inputs} input(s), no #{index}")
        return self._inputs[index]

    def get_output(self, index: int) -> Tensor:
        if not 0 <= index < self.num_outputs:
            raise EmberError(f"{self._what()} has {self.num_outputs} output(s), no #{index}")
        return self._outputs[index]

    def set_input(self, index: int, tensor: Tensor) -> None:
        if index > self.num_inputs or (index == self.num_inputs and index not in
                                       self.EXTRA_INPUTS):
            raise EmberError(f"{self._what()}.set_input({index}): the layer has "
                             f"{self.num_inputs} input(s)")
        why = self.EXTRA_INPUTS.get(index) if index >= len(self._inputs) or \
            self._inputs[index] is None else None
        if why is not None:
            raise UnsupportedError(f"{self._what()}.set_input({index}): {why}")
        tensor = self._network._own(tensor, f"{self._what()} input #{index}")
        if index == self.num_inputs:
            self._inputs.append(tensor)
        else:
            self._inputs[index] = tensor
        self._network._touch()

    @property
    def precision(self) -> np.dtype:
        """The precision the layer computes in (float32 until set): ember.float16, np.float16
        or "fp16" set it."""
        return _dtype(self._precision or "fp32")

    @precision.setter
    def precision(self, value: object) -> None:
        self._precision = precision_name(value, f"layer '{self.name}'")

    @property
    def precision_is_set(self) -> bool:
        return self._precision is not None

    def reset_precision(self) -> None:
        self._precision = None

    def set_output_type(self, index: int, dtype: object) -> None:
        """Store output `index` in `dtype` (a cast after the layer where it computes in
        another precision)."""
        if not 0 <= index < self.num_outputs:
            raise EmberError(f"layer '{self.name}' has {self.num_outputs} output(s), no "
                             f"#{index}")
        self._output_types[index] = precision_name(dtype, f"layer '{self.name}' output #{index}")

    def get_output_type(self, index: int) -> np.dtype:
        return _dtype(self._output_types.get(index, "fp32"))

    def output_type_is_set(self, index: int) -> bool:
        return index in self._output_types

    def reset_output_type(self, index: int) -> None:
        self._output_types.pop(index, None)

    # -- for the subclasses ------------------------------------------------------------------------
    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        raise NotImplementedError  # each layer kind defines how it becomes ONNX nodes

    def _in_shape(self, index: int) -> tuple[int, ...]:
        return self._input(index).shape

    def _in_dtype(self, index: int) -> np.dtype:
        t = self._input(index)
        return t._input_dtype if t._input_dtype is not None else self._network._infer(t)[1]

    def _dtype_of_output(self) -> np.dtype | None:
        """The type this layer's outputs have when it does not take its first input's (a
        cast's, a constant's); None: the first input's."""
        return None

    def _weight_dtype(self) -> np.dtype:
        """The type a layer's float weights take: its input's (as TensorRT converts them),
        followed up the first inputs to the layer that sets it (no shape inference)."""
        t = self._input(0)
        while t._input_dtype is None:
            layer = t._producer
            dtype = layer._dtype_of_output()
            if dtype is not None:
                break
            if not layer._inputs or layer._inputs[0] is None:
                dtype = self._network._infer(t)[1]
                break
            t = layer._inputs[0]
        else:
            dtype = t._input_dtype
        dtype = np.dtype(dtype)
        if dtype.kind != "f" and dtype.name != "bfloat16":
            raise EmberError(f"{self._what()}: input of type {dtype}, a float type is needed")
        return dtype

    def _input(self, index: int) -> Tensor:
        t = self._inputs[index] if index < len(self._inputs) else None
        if t is None:
            raise EmberError(f"{self._what()}: input #{index} is not set")
        return t

    def _sub(self, what: str) -> str:
        """The name of a helper node or value of this layer."""
        return f"{self._name}/{what}"

    def _require(self, value: Any, attr: str) -> Any:
        if value is None:
            raise EmberError(f"{self._what()}: set {attr} before building")
        return value

    def _check_rank(self, attrs: dict[str, Sequence[int]], n: int) -> None:
        for attr, value in attrs.items():
            if len(value) != n:
                raise EmberError(f"{self._what()}: {attr} {tuple(value)} has {len(value)} "
                                 f"dim(s), the kernel/window has {n}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} '{self.name}'>"


class LayerView:
    """A layer seen as TensorRT's base ILayer (what `network.get_layer(i)` returns): `.type`
    is the LayerType; every other attribute is the layer's own."""

    __slots__ = ("_layer",)

    def __init__(self, layer: Layer) -> None:
        object.__setattr__(self, "_layer", layer)

    @property
    def type(self) -> LayerType:
        return self._layer._layer_type()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._layer, name, value)

    def __eq__(self, other: object) -> bool:
        other = other._layer if isinstance(other, LayerView) else other
        return other is self._layer

    def __hash__(self) -> int:
        return id(self._layer)

    def __repr__(self) -> str:
        return repr(self._layer)


def default_axis(layer: Layer) -> int:
    """TensorRT's default softmax / concatenation axis: rank - 3, or 0 below rank 3."""
    return max(len(layer._in_shape(0)) - 3, 0)
