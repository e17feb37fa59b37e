"""NetworkDefinition: TensorRT's layer-by-layer network API, recorded as an ONNX graph.

Each `add_*` call appends ONNX nodes (and initializers for weights) and returns a layer whose
outputs are `Tensor`s; the builder then compiles the graph like any imported model.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

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


class Tensor:
    def __init__(self, network: NetworkDefinition, name: str) -> None:
        self.network = network
        self.name = name


class Layer:
    def __init__(self, network: NetworkDefinition, name: str, outputs: list[Tensor]) -> None:
        self.network = network
        self.name = name
        self._outputs = outputs
        self.precision: np.dtype | None = None  # per-layer precision (honoured by a later issue)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_output(self, index: int) -> Tensor:
        return self._outputs[index]


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

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def _layer(self, op_type: str, inputs: Sequence[Tensor | str], num_outputs: int = 1,
               **attrs) -> Layer:
        name = self._name(op_type.lower())
        outs = [f"{name}_out{i}" for i in range(num_outputs)]
        self.nodes.append(helper.make_node(op_type, [i.name if isinstance(i, Tensor) else i
                                                     for i in inputs], outs, name=name, **attrs))
        return Layer(self, name, [Tensor(self, o) for o in outs])

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
