"""NetworkDefinition: TensorRT's layer-by-layer network API, recorded as an ONNX graph.

Each `add_*` call appends ONNX nodes (and initializers for weights) and returns a layer whose
outputs are `Tensor`s; the builder then compiles the graph like any imported model.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ember.errors import EmberError


class ElementWiseOperation(enum.Enum):
    SUM = "Add"
    SUB = "Sub"
    PROD = "Mul"
    DIV = "Div"
    POW = "Pow"
    MAX = "Max"
    MIN = "Min"
    EQUAL = "Equal"
    LESS = "Less"
    GREATER = "Greater"
    AND = "And"
    OR = "Or"
    XOR = "Xor"


class ActivationType(enum.Enum):
    RELU = "Relu"
    SIGMOID = "Sigmoid"
    TANH = "Tanh"
    LEAKY_RELU = "LeakyRelu"
    ELU = "Elu"
    SELU = "Selu"
    SOFTPLUS = "Softplus"
    HARD_SIGMOID = "HardSigmoid"
    GELU_ERF = "Gelu"
    CLIP = "Clip"


class PoolingType(enum.Enum):
    MAX = "MaxPool"
    AVERAGE = "AveragePool"


class ReduceOperation(enum.Enum):
    SUM = "ReduceSum"
    PROD = "ReduceProd"
    MAX = "ReduceMax"
    MIN = "ReduceMin"
    AVG = "ReduceMean"


class MatrixOperation(enum.Enum):
    NONE = 0
    TRANSPOSE = 1


_DTYPES = {np.dtype(t): helper.np_dtype_to_tensor_dtype(np.dtype(t))
           for t in (np.float32, np.float16, np.int32, np.int64, np.int8, np.bool_)}


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


class Tensor:
    def __init__(self, network: NetworkDefinition, name: str) -> None:
        self.network = network
        self.name = name


_DTYPE_OF = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _dtype(precision: str) -> np.dtype:
    if precision == "bf16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_DTYPE_OF[precision])


class Layer:
    """One ONNX node of the network. `precision` and `set_output_type` are TensorRT's per-layer
    constraints: the builder honours them under OBEY_PRECISION_CONSTRAINTS (an error where it
    cannot), else follows them where it can (a warning elsewhere)."""

    def __init__(self, network: NetworkDefinition, name: str, outputs: list[Tensor]) -> None:
        self.network = network
        self.name = name
        self._outputs = outputs
        self._precision: str | None = None
        self._output_types: dict[int, str] = {}

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_output(self, index: int) -> Tensor:
        return self._outputs[index]

    @property
    def precision(self) -> np.dtype:
        """The precision the layer computes in (float32 until set): ember.float16, np.float16
        or "fp16" set it."""
        return _dtype(self._precision or "fp32")

    @precision.setter
    def precision(self, value: object) -> None:
        self._check_name()
        self._precision = precision_name(value, f"layer '{self.name}'")

    @property
    def precision_is_set(self) -> bool:
        return self._precision is not None

    def reset_precision(self) -> None:
        self._precision = None

    def set_output_type(self, index: int, dtype: object) -> None:
        """Store output `index` in `dtype` (a cast after the layer where it computes in
        another precision)."""
        self._check_name()
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

    def _check_name(self) -> None:
        if not self.name:
            raise EmberError("this layer's ONNX node has no name: per-layer precisions are "
                             "keyed by node name (name the model's nodes)")


class NetworkDefinition:
    """A graph under construction; `to_onnx()` gives the model the builder compiles."""

    OPSET = 21

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[str] = []
        self.initializers: list[onnx.TensorProto] = []
        self.parsed_model: onnx.ModelProto | None = None
        self._count = 0
        self._layers: list[Layer] = []
        self._parsed_layers: list[Layer] | None = None

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def _layer(self, op_type: str, inputs: Sequence[Tensor | str], num_outputs: int = 1,
               **attrs) -> Layer:
        name = self._name(op_type.lower())
        outs = [f"{name}_out{i}" for i in range(num_outputs)]
        self.nodes.append(helper.make_node(op_type, [i.name if isinstance(i, Tensor) else i
                                                     for i in inputs], outs, name=name, **attrs))
        layer = Layer(self, name, [Tensor(self, o) for o in outs])
        self._layers.append(layer)
        return layer

    # -- layers ----------------------------------------------------------------------------------
    def _all_layers(self) -> list[Layer]:
        if self.parsed_model is None:
            return self._layers
        if self._parsed_layers is None:  # one Layer per node of the parsed model, kept
            self._parsed_layers = [Layer(self, n.name, [Tensor(self, o) for o in n.output])
                                   for n in self.parsed_model.graph.node]
        return self._parsed_layers

    @property
    def num_layers(self) -> int:
        return len(self._all_layers())

    def get_layer(self, index: int) -> Layer:
        layers = self._all_layers()
        if not 0 <= index < len(layers):
            raise EmberError(f"layer index {index} out of range: the network has "
                             f"{len(layers)} layer(s)")
        return layers[index]

    def __iter__(self):
        return iter(self._all_layers())

    def apply_layer_precisions(self, config):
        """`config` with this network's per-layer precisions and output types added (a copy;
        the config's own entries win)."""
        import dataclasses

        precisions = {layer.name: layer._precision for layer in self._all_layers()
                      if layer._precision is not None}
        types = {(layer.name, i): t for layer in self._all_layers()
                 for i, t in layer._output_types.items()}
        if not precisions and not types:
            return config
        return dataclasses.replace(config,
                                   layer_precisions={**precisions, **config.layer_precisions},
                                   layer_output_types={**types, **config.layer_output_types})

    def _weights(self, array: np.ndarray, kind: str = "w") -> str:
        name = self._name(kind)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    # -- the layer API ---------------------------------------------------------------------------
    def add_input(self, name: str, dtype: type | np.dtype, shape: Sequence[int | str]) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype not in _DTYPES:
            raise EmberError(f"add_input '{name}': dtype {dtype} is not supported")
        dims = [d if isinstance(d, str) or d >= 0 else f"{name}_dim{i}"
                for i, d in enumerate(shape)]
        self.inputs.append(helper.make_tensor_value_info(name, _DTYPES[dtype], dims))
        return Tensor(self, name)

    def add_constant(self, shape: Sequence[int], weights: np.ndarray) -> Layer:
        array = np.asarray(weights).reshape(shape)
        return self._layer("Identity", [self._weights(array, "const")])

    def add_convolution(self, input: Tensor, num_output_maps: int, kernel_shape: Sequence[int],
                        kernel: np.ndarray, bias: np.ndarray | None = None, *,
                        stride: Sequence[int] | None = None, padding: Sequence[int] | None = None,
                        dilation: Sequence[int] | None = None, num_groups: int = 1) -> Layer:
        kernel = np.asarray(kernel, np.float32)
        k = list(kernel_shape)
        w = kernel.reshape(num_output_maps, -1, *k)
        ins: list[Tensor | str] = [input, self._weights(w)]
        if bias is not None:
            ins.append(self._weights(np.asarray(bias, np.float32).reshape(num_output_maps), "b"))
        pads = list(padding or [0] * len(k))
        return self._layer("Conv", ins, kernel_shape=k, strides=list(stride or [1] * len(k)),
                           pads=pads + pads, dilations=list(dilation or [1] * len(k)),
                           group=num_groups)

    def add_matrix_multiply(self, a: Tensor, op_a: MatrixOperation, b: Tensor,
                            op_b: MatrixOperation) -> Layer:
        ins = []
        for t, op in ((a, op_a), (b, op_b)):
            if op == MatrixOperation.TRANSPOSE:
                t = self._layer("Einsum", [t], equation="...ij->...ji").get_output(0)
            ins.append(t)
        return self._layer("MatMul", ins)

    def add_elementwise(self, a: Tensor, b: Tensor, op: ElementWiseOperation) -> Layer:
        return self._layer(op.value, [a, b])

    def add_activation(self, input: Tensor, type: ActivationType, alpha: float | None = None,
                       beta: float | None = None) -> Layer:
        if type == ActivationType.CLIP:
            lo = self._weights(np.array(alpha if alpha is not None else 0, np.float32), "min")
            hi = self._weights(np.array(beta if beta is not None else 6, np.float32), "max")
            return self._layer("Clip", [input, lo, hi])
        attrs = {} if alpha is None else {"alpha": alpha}
        if beta is not None:
            attrs["beta" if type != ActivationType.SELU else "gamma"] = beta
        return self._layer(type.value, [input], **attrs)

    def add_pooling(self, input: Tensor, type: PoolingType, window_size: Sequence[int], *,
                    stride: Sequence[int] | None = None,
                    padding: Sequence[int] | None = None) -> Layer:
        pads = list(padding or [0] * len(window_size))
        return self._layer(type.value, [input], kernel_shape=list(window_size),
                           strides=list(stride or window_size), pads=pads + pads)

    def add_softmax(self, input: Tensor, axis: int = -1) -> Layer:
        return self._layer("Softmax", [input], axis=axis)

    def add_reduce(self, input: Tensor, op: ReduceOperation, axes: Sequence[int],
                   keep_dims: bool) -> Layer:
        return self._layer(op.value, [input, self._weights(np.array(list(axes), np.int64), "axes")],
                           keepdims=int(keep_dims))

    def add_shuffle(self, input: Tensor, *, first_transpose: Sequence[int] | None = None,
                    reshape_dims: Sequence[int] | None = None,
                    second_transpose: Sequence[int] | None = None) -> Layer:
        layer = None
        t = input
        if first_transpose is not None:
            layer = self._layer("Transpose", [t], perm=list(first_transpose))
            t = layer.get_output(0)
        if reshape_dims is not None:
            layer = self._layer("Reshape", [t, self._weights(np.array(list(reshape_dims),
                                                                      np.int64), "shape")])
            t = layer.get_output(0)
        if second_transpose is not None:
            layer = self._layer("Transpose", [t], perm=list(second_transpose))
        return layer or self._layer("Identity", [t])

    def add_concatenation(self, inputs: Sequence[Tensor], axis: int = 0) -> Layer:
        return self._layer("Concat", list(inputs), axis=axis)

    def add_slice(self, input: Tensor, start: Sequence[int], shape: Sequence[int],
                  stride: Sequence[int]) -> Layer:
        ends = [s + (n - 1) * st + (1 if st > 0 else -1) for s, n, st in zip(start, shape, stride,
                                                                             strict=True)]
        ends = [e if e >= 0 else -(2**62) for e in ends]
        names = [self._weights(np.array(list(v), np.int64), k)
                 for k, v in (("starts", start), ("ends", ends),
                              ("axes", range(len(start))), ("steps", stride))]
        return self._layer("Slice", [input, *names])

    def add_gather(self, input: Tensor, indices: Tensor, axis: int) -> Layer:
        return self._layer("Gather", [input, indices], axis=axis)

    def mark_output(self, tensor: Tensor) -> None:
        self.outputs.append(tensor.name)

    def to_onnx(self) -> onnx.ModelProto:
        if self.parsed_model is not None:
            return self.parsed_model
        if not self.outputs:
            raise EmberError("the network has no outputs: call mark_output(tensor)")
        graph = helper.make_graph(
            self.nodes, "network", self.inputs,
            [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None)
             for o in self.outputs], self.initializers)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.OPSET)])
