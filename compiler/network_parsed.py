"""The layers of a network an OnnxParser filled: one `OnnxNodeLayer` per node of the parsed
model, its tensors the model's values, so renaming, marking outputs and per-layer precisions
work on parsed networks as on built ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import onnx
from onnx import helper

from ember.compiler.network_base import Emitter, Layer, Tensor
from ember.compiler.network_types import LayerType

if TYPE_CHECKING:
    from ember.compiler.network import NetworkDefinition

# the layer type TensorRT's ONNX parser gives each ONNX op (the ones with a plain counterpart)
_TYPES: dict[str, LayerType] = {
    **{op: LayerType.CONVOLUTION for op in ("Conv",)},
    **{op: LayerType.DECONVOLUTION for op in ("ConvTranspose",)},
    **{op: LayerType.POOLING for op in ("MaxPool", "AveragePool", "GlobalAveragePool",
                                        "GlobalMaxPool", "LpPool", "GlobalLpPool")},
    **{op: LayerType.ACTIVATION for op in ("Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu",
                                           "Selu", "Softsign", "Softplus", "Clip",
                                           "HardSigmoid", "ThresholdedRelu", "Gelu",
                                           "HardSwish", "Mish", "Celu")},
    **{op: LayerType.ELEMENTWISE for op in ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min",
                                            "And", "Or", "Xor", "Equal", "Greater", "Less",
                                            "GreaterOrEqual", "LessOrEqual", "Mod", "Sum",
                                            "Mean", "BitShift", "BitwiseAnd", "BitwiseOr",
                                            "BitwiseXor")},
    **{op: LayerType.UNARY for op in ("Exp", "Log", "Sqrt", "Reciprocal", "Abs", "Neg", "Sin",
                                      "Cos", "Tan", "Sinh", "Cosh", "Asin", "Acos", "Atan",
                                      "Asinh", "Acosh", "Atanh", "Ceil", "Floor", "Erf", "Not",
                                      "Sign", "Round", "IsInf", "IsNaN", "BitwiseNot")},
    **{op: LayerType.REDUCE for op in ("ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin",
                                       "ReduceMean", "ReduceL1", "ReduceL2", "ReduceLogSum",
                                       "ReduceLogSumExp", "ReduceSumSquare", "ArgMax",
                                       "ArgMin")},
    **{op: LayerType.SHUFFLE for op in ("Reshape", "Transpose", "Flatten", "DepthToSpace",
                                        "SpaceToDepth")},
    **{op: LayerType.MATRIX_MULTIPLY for op in ("MatMul", "Gemm", "MatMulInteger")},
    **{op: LayerType.SOFTMAX for op in ("Softmax", "LogSoftmax")},
    **{op: LayerType.CONCATENATION for op in ("Concat",)},
    **{op: LayerType.SLICE for op in ("Slice", "Split", "Tile", "Expand")},
    **{op: LayerType.RESIZE for op in ("Resize", "Upsample")},
    **{op: LayerType.IDENTITY for op in ("Identity", "Dropout")},
    **{op: LayerType.CAST for op in ("Cast", "CastLike")},
    **{op: LayerType.SELECT for op in ("Where",)},
    **{op: LayerType.SHAPE for op in ("Shape", "Size")},
    **{op: LayerType.GATHER for op in ("Gather", "GatherElements")},
    **{op: LayerType.CONSTANT for op in ("Constant",)},
    **{op: LayerType.FILL for op in ("ConstantOfShape", "Range")},
    **{op: LayerType.SCALE for op in ("BatchNormalization",)},
    **{op: LayerType.NORMALIZATION for op in ("LayerNormalization", "InstanceNormalization",
                                              "GroupNormalization")},
    **{op: LayerType.PADDING for op in ("Pad",)},
    **{op: LayerType.PARAMETRIC_RELU for op in ("PRelu",)},
    **{op: LayerType.LRN for op in ("LRN",)},
    **{op: LayerType.EINSUM for op in ("Einsum",)},
    **{op: LayerType.SQUEEZE for op in ("Squeeze",)},
    **{op: LayerType.UNSQUEEZE for op in ("Unsqueeze",)},
    **{op: LayerType.CUMULATIVE for op in ("CumSum",)},
    **{op: LayerType.QUANTIZE for op in ("QuantizeLinear",)},
    **{op: LayerType.DEQUANTIZE for op in ("DequantizeLinear",)},
}


class OnnxNodeLayer(Layer):
    """One node of a parsed model. Its type is the LayerType TensorRT's parser gives that op
    (PLUGIN_V3 for ops with no plain counterpart, as TensorRT's parser makes plugins of
    them)."""

    __slots__ = ("_node",)
    KIND = "node"
    EXTRA_INPUTS: ClassVar[dict[int, str | None]] = {}

    def _dtype_of_output(self) -> np.dtype | None:
        return self._network._infer(self._outputs[0])[1] if self._outputs else None

    def _layer_type(self) -> LayerType:
        return _TYPES.get(self._node.op_type, LayerType.PLUGIN_V3)

    @property
    def op_type(self) -> str:
        return self._node.op_type

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        node = onnx.NodeProto()
        node.CopyFrom(self._node)
        node.name = self.name
        del node.input[:]
        node.input.extend(i if i is not None else original
                          for i, original in zip(ins, self._node.input, strict=True))
        del node.output[:]
        node.output.extend(out if original else ""
                           for out, original in zip(outs, self._node.output, strict=True))
        g.nodes.append(node)


def layers_of_model(network: NetworkDefinition, model: onnx.ModelProto) -> bool:
    """Fill `network` with `model`'s inputs, nodes and outputs; whether a node had no name
    (it gets one, and the network is then regenerated when built so that its name holds)."""
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    tensors = network._tensors
    for vi in graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param or -1
                     for d in tt.shape.dim)
        t = Tensor(network, vi.name, None, helper.tensor_dtype_to_np_dtype(tt.elem_type), dims)
        network._inputs.append(network._register(t))
    renamed = False
    for node in graph.node:
        layer = OnnxNodeLayer.__new__(OnnxNodeLayer)
        layer._node = node
        layer._network = network
        name = node.name
        if not name or name in network._layer_names:
            name, renamed = network._new_layer_name(node.op_type.lower()), True
        network._layer_names.add(name)
        layer._name = name
        layer._inputs = [tensors.get(i) if i else None for i in node.input]
        layer._attrs = {}
        layer._precision = None
        layer._output_types = {}
        layer._outputs = []
        for i, out in enumerate(node.output):
            t = Tensor(network, out or f"{name}/unused{i}", layer)
            layer._outputs.append(network._register(t))
        network._layers.append(layer)
    network._outputs = [tensors[vi.name] for vi in graph.output if vi.name in tensors]
    return renamed


def emit_initializers(g: Emitter, model: onnx.ModelProto) -> None:
    """The parsed model's initializers, into the graph a changed parsed network becomes."""
    for t in model.graph.initializer:
        if g.for_shapes and t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) \
                and int(np.prod(t.dims)) > 64:
            g.weight_inputs.append(helper.make_tensor_value_info(t.name, t.data_type,
                                                                 list(t.dims)))
        else:
            g.initializers.append(t)
