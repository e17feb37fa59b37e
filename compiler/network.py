"""NetworkDefinition: TensorRT's layer-by-layer network API, recorded as layers that become an
ONNX graph when the builder asks (`to_onnx()`), so attributes set after `add_*` take effect.

Tensor shapes and dtypes (`ITensor.shape`) come from ONNX shape inference over the layers as
they are at the time of asking. A network an OnnxParser filled holds the parsed model's nodes
as layers (`OnnxNodeLayer`), so inputs, outputs, names and per-layer precisions work the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ember.compiler.network_base import Emitter, Layer, LayerView, Tensor, precision_name
from ember.compiler.network_layers import (
    ActivationLayer,
    ConvolutionLayer,
    CumulativeLayer,
    DeconvolutionLayer,
    EinsumLayer,
    ElementWiseLayer,
    MatrixMultiplyLayer,
    NonZeroLayer,
    NormalizationLayer,
    ParametricReLULayer,
    PoolingLayer,
    ReduceLayer,
    ScaleLayer,
    SoftMaxLayer,
    TopKLayer,
    UnaryLayer,
)
from ember.compiler.network_movement import (
    CastLayer,
    ConcatenationLayer,
    ConstantLayer,
    FillLayer,
    GatherLayer,
    IdentityLayer,
    PaddingLayer,
    ResizeLayer,
    SelectLayer,
    ShapeLayer,
    ShuffleLayer,
    SliceLayer,
    SqueezeLayer,
    UnsqueezeLayer,
)
from ember.compiler.network_parsed import emit_initializers, layers_of_model
from ember.compiler.network_types import (  # noqa: F401  (the public names of the network API)
    ENUMS,
    ActivationType,
    CumulativeOperation,
    ElementWiseOperation,
    FillOperation,
    GatherMode,
    InterpolationMode,
    LayerType,
    MatrixOperation,
    PaddingMode,
    PoolingType,
    ReduceOperation,
    ResizeCoordinateTransformation,
    ResizeRoundMode,
    ResizeSelector,
    SampleMode,
    ScaleMode,
    ScatterMode,
    TopKOperation,
    UnaryOperation,
    numpy_dtype,
)
from ember.compiler.plugins_network import PluginV3Layer, plugin_call_layer, plugin_v3_layer
from ember.errors import EmberError, UnsupportedError
from ember.runtime.trt_types import ContextManaged

__all__ = ["NetworkDefinition", "Tensor", "Layer", "precision_name"] + [e.__name__ for e in ENUMS]

_INPUT_DTYPES = {np.dtype(t) for t in (np.float32, np.float16, np.int32, np.int64, np.int8,
                                        np.uint8, np.bool_)}

# TensorRT network methods ember does not implement, and why
_UNSUPPORTED = {
    "add_scatter": "not implemented through the network API (ONNX ScatterElements / "
                   "ScatterND are: parse the model)",
    "add_lrn": "LRN through the network API is not implemented (the ONNX LRN op is)",
    "add_ragged_softmax": "ragged softmax is not implemented",
    "add_plugin_v2": "IPluginV2 objects are Python code at run time; ember plans carry none "
                     "(use ember.plugin and add_plugin_v3 / add_plugin)",
    "add_loop": "loops are not implemented (plans are straight-line)",
    "add_if_conditional": "conditionals are not implemented (plans are straight-line)",
    "add_assertion": "not implemented through the network API (ember asserts run-time "
                     "shape inputs of parsed models itself)",
    "add_grid_sample": "not implemented through the network API (ONNX GridSample is)",
    "add_nms": "not implemented through the network API (ONNX NonMaxSuppression is)",
    "add_quantize": "not implemented through the network API (INT8 comes from ONNX Q/DQ "
                    "nodes or BuilderFlag.INT8 calibration)",
    "add_dequantize": "not implemented through the network API (INT8 comes from ONNX Q/DQ "
                      "nodes or BuilderFlag.INT8 calibration)",
    "add_dynamic_quantize": "dynamic quantization is not implemented",
    "add_dynamic_quantize_v2": "dynamic quantization is not implemented",
    "add_one_hot": "not implemented through the network API (ONNX OneHot is)",
    "add_reverse_sequence": "not implemented through the network API (ONNX ReverseSequence "
                            "is)",
    "add_normalization_v2": "use add_normalization",
    "add_attention": "the attention layer is not implemented (attention built of matmul "
                     "and softmax layers is recognized by fuse-attention)",
    "add_attention_v2": "the attention layer is not implemented",
    "add_rotary_embedding": "rotary embedding is not implemented",
    "add_kv_cache_update": "not implemented through the network API (ONNX TensorScatter, the "
                           "KV-cache update, is)",
    "add_moe": "mixture of experts is not implemented",
    "add_dist_collective": "ember builds for one GPU",
    "mark_weights_refittable": "weights are not marked refittable one by one "
    "(REFIT_INDIVIDUAL): BuilderFlag.REFIT makes every weight it can refittable",
    "unmark_weights_refittable": "weights are not marked refittable one by one "
    "(REFIT_INDIVIDUAL): BuilderFlag.REFIT makes every weight it can refittable",
    "are_weights_marked_refittable": "weights are not marked refittable one by one "
    "(REFIT_INDIVIDUAL): BuilderFlag.REFIT makes every weight it can refittable",
    "set_weights_name": "weights are named after their layer (<layer>/kernel, ...)",
    "mark_debug": "debug tensors are not implemented",
    "unmark_debug": "debug tensors are not implemented",
    "is_debug_tensor": "debug tensors are not implemented",
    "mark_unfused_tensors_as_debug_tensors": "debug tensors are not implemented",
    "unmark_unfused_tensors_as_debug_tensors": "debug tensors are not implemented",
    "mark_output_for_shapes": "shape outputs are not implemented",
    "unmark_output_for_shapes": "shape outputs are not implemented",
    "remove_tensor": "tensors are removed by dead-code elimination of unmarked outputs",
    "error_recorder": "errors are raised as exceptions (ember.errors)",
}


class NetworkDefinition(ContextManaged):
    """A graph under construction (TensorRT's INetworkDefinition); `to_onnx()` gives the model
    the builder compiles."""

    OPSET = 21
    __slots__ = ("_layers", "_inputs", "_outputs", "_tensors", "_layer_names", "_version",
                 "_shapes", "_parsed", "_parsed_dirty", "_name", "flags")

    def __init__(self, flags: int = 0) -> None:
        self._layers: list[Layer] = []
        self._inputs: list[Tensor] = []
        self._outputs: list[Tensor] = []
        self._tensors: dict[str, Tensor] = {}
        self._layer_names: set[str] = set()
        self._version = 0
        self._shapes: tuple[int, dict[str, tuple[tuple[int, ...], np.dtype]]] = (-1, {})
        self._parsed: onnx.ModelProto | None = None
        self._parsed_dirty = False
        self._name = "network"
        self.flags = flags

    def __getattr__(self, name: str) -> Any:
        if name in _UNSUPPORTED:
            def unsupported(*args: Any, **kwargs: Any) -> Any:
                raise UnsupportedError(f"network.{name}: {_UNSUPPORTED[name]}")

            return unsupported
        raise AttributeError(f"'NetworkDefinition' object has no attribute {name!r}")

    # -- bookkeeping -------------------------------------------------------------------------------
    def _touch(self) -> None:
        self._version += 1
        self._parsed_dirty = True

    def _new_layer_name(self, kind: str) -> str:
        n = len(self._layers) + 1
        while f"{kind}_{n}" in self._layer_names:
            n += 1
        self._layer_names.add(f"{kind}_{n}")
        return f"{kind}_{n}"

    def _new_tensor_name(self, base: str) -> str:
        name, n = base, 1
        while name in self._tensors:
            name, n = f"{base}_{n}", n + 1
        self._tensors[name] = None  # type: ignore[assignment]  # reserved; set by _register
        return name

    def _register(self, tensor: Tensor) -> Tensor:
        self._tensors[tensor.name] = tensor
        return tensor

    def _add(self, layer: Layer) -> Layer:
        for t in layer._outputs:
            self._register(t)
        self._layers.append(layer)
        self._touch()
        return layer

    def _own(self, tensor: Any, what: str) -> Tensor:
        if not isinstance(tensor, Tensor):
            raise EmberError(f"{what}: expected a tensor of this network, got {tensor!r}")
        if tensor._network is not self:
            raise EmberError(f"{what}: tensor '{tensor.name}' belongs to another network")
        return tensor

    def _rename_tensor(self, tensor: Tensor, name: str) -> None:
        if name == tensor.name:
            return
        if not name:
            raise EmberError(f"tensor '{tensor.name}': a tensor name cannot be empty")
        if name in self._tensors:
            raise EmberError(f"cannot rename tensor '{tensor.name}' to '{name}': the network "
                             "has a tensor of that name")
        del self._tensors[tensor.name]
        tensor._name = name
        self._tensors[name] = tensor
        self._touch()

    def _rename_layer(self, layer: Layer, name: str) -> None:
        if name == layer.name:
            return
        if not name:
            raise EmberError(f"layer '{layer.name}': a layer name cannot be empty")
        if name in self._layer_names:
            raise EmberError(f"cannot rename layer '{layer.name}' to '{name}': the network "
                             "has a layer of that name (per-layer precisions and the layer "
                             "table key on names)")
        self._layer_names.discard(layer.name)
        self._layer_names.add(name)
        layer._name = name
        self._touch()

    # -- the parsed model an OnnxParser gives ---------------------------------------------------
    @property
    def parsed_model(self) -> onnx.ModelProto | None:
        return self._parsed

    @parsed_model.setter
    def parsed_model(self, model: onnx.ModelProto | None) -> None:
        if self._layers or self._inputs:
            raise EmberError("the network already has layers: parse into a new network")
        self._parsed = model
        # unnamed nodes get names, which only a regenerated model carries
        self._parsed_dirty = model is not None and layers_of_model(self, model)

    # -- INetworkDefinition ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_layer(self, index: int) -> LayerView:
        """The layer as TensorRT's base ILayer: `.type` is its LayerType (on the object
        `add_*` returned, a pooling or activation layer's `.type` is its PoolingType /
        ActivationType, as in TensorRT)."""
        if not 0 <= index < len(self._layers):
            raise EmberError(f"layer index {index} out of range: the network has "
                             f"{len(self._layers)} layer(s)")
        return LayerView(self._layers[index])

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int) -> LayerView:
        return self.get_layer(index if index >= 0 else len(self._layers) + index)

    def __iter__(self) -> Iterator[LayerView]:
        return iter([LayerView(layer) for layer in self._layers])

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    def get_input(self, index: int) -> Tensor:
        if not 0 <= index < len(self._inputs):
            raise EmberError(f"input index {index} out of range: the network has "
                             f"{len(self._inputs)} input(s)")
        return self._inputs[index]

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_output(self, index: int) -> Tensor:
        if not 0 <= index < len(self._outputs):
            raise EmberError(f"output index {index} out of range: the network has "
                             f"{len(self._outputs)} output(s)")
        return self._outputs[index]

    def mark_output(self, tensor: Tensor) -> None:
        tensor = self._own(tensor, "mark_output")
        if not any(t is tensor for t in self._outputs):
            self._outputs.append(tensor)
            self._touch()

    def unmark_output(self, tensor: Tensor) -> None:
        tensor = self._own(tensor, "unmark_output")
        if not any(t is tensor for t in self._outputs):
            raise EmberError(f"unmark_output: tensor '{tensor.name}' is not a network output")
        self._outputs = [t for t in self._outputs if t is not tensor]
        self._touch()

    @property
    def has_implicit_batch_dimension(self) -> bool:
        return False

    # -- per-layer precisions ----------------------------------------------------------------------
    def apply_layer_precisions(self, config):
        """`config` with this network's per-layer precisions and output types added (a copy;
        the config's own entries win)."""
        import dataclasses

        precisions = {layer.name: layer._precision for layer in self._layers
                      if layer._precision is not None}
        types = {(layer.name, i): t for layer in self._layers
                 for i, t in layer._output_types.items()}
        if not precisions and not types:
            return config
        return dataclasses.replace(config,
                                   layer_precisions={**precisions, **config.layer_precisions},
                                   layer_output_types={**types, **config.layer_output_types})

    # -- inputs ------------------------------------------------------------------------------------
    def _input_dtype(self, name: str, dtype: Any) -> np.dtype:
        dtype = numpy_dtype(dtype, f"add_input '{name}'")
        if dtype not in _INPUT_DTYPES and dtype.name != "bfloat16":
            raise EmberError(f"add_input '{name}': dtype {dtype} is not supported")
        return dtype

    def _input_dims(self, name: str, shape: Any) -> tuple[int | str, ...]:
        dims = tuple(shape) if not isinstance(shape, str | int) else None
        if dims is None or not all(isinstance(d, str) or int(d) >= -1 for d in dims):
            raise EmberError(f"add_input '{name}': shape {shape!r} is not a sequence of dims "
                             "(ints, -1 for a dynamic one, or a symbol name)")
        return tuple(d if isinstance(d, str) else int(d) for d in dims)

    def add_input(self, name: str, dtype: Any, shape: Sequence[int | str]) -> Tensor:
        """A network input; `dtype` a numpy dtype or a TensorRT DataType (trt.float32, ...),
        -1 in `shape` a dynamic dim (its range from an optimization profile)."""
        name = str(name)
        if name in self._tensors:
            raise EmberError(f"add_input '{name}': the network has a tensor of that name")
        tensor = Tensor(self, name, None, self._input_dtype(name, dtype),
                        self._input_dims(name, shape))
        self._inputs.append(self._register(tensor))
        self._touch()
        return tensor

    # -- the layer API -----------------------------------------------------------------------------
    def add_convolution_nd(self, input: Tensor, num_output_maps: int, kernel_shape: Sequence[int],
                           kernel: Any, bias: Any = None) -> ConvolutionLayer:
        return self._add(ConvolutionLayer(self, [input], num_output_maps=num_output_maps,
                                          kernel_size_nd=kernel_shape, kernel=kernel, bias=bias))

    def add_deconvolution_nd(self, input: Tensor, num_output_maps: int,
                             kernel_shape: Sequence[int], kernel: Any,
                             bias: Any = None) -> DeconvolutionLayer:
        return self._add(DeconvolutionLayer(self, [input], num_output_maps=num_output_maps,
                                            kernel_size_nd=kernel_shape, kernel=kernel,
                                            bias=bias))

    def add_pooling_nd(self, input: Tensor, type: PoolingType,
                       window_size: Sequence[int]) -> PoolingLayer:
        return self._add(PoolingLayer(self, [input], type=type, window_size_nd=window_size))

    def add_convolution(self, input: Tensor, num_output_maps: int, kernel_shape: Sequence[int],
                        kernel: Any, bias: Any = None, *, stride: Sequence[int] | None = None,
                        padding: Sequence[int] | None = None,
                        dilation: Sequence[int] | None = None,
                        num_groups: int = 1) -> ConvolutionLayer:
        """ember's shorthand (TensorRT 10 has only add_convolution_nd): the attributes as
        keywords."""
        layer = self.add_convolution_nd(input, num_output_maps, kernel_shape, kernel, bias)
        for attr, value in (("stride_nd", stride), ("padding_nd", padding),
                            ("dilation_nd", dilation), ("num_groups", num_groups)):
            if value is not None:
                setattr(layer, attr, value)
        return layer

    def add_pooling(self, input: Tensor, type: PoolingType, window_size: Sequence[int], *,
                    stride: Sequence[int] | None = None,
                    padding: Sequence[int] | None = None) -> PoolingLayer:
        """ember's shorthand (TensorRT 10 has only add_pooling_nd): stride defaults to the
        window, as in TensorRT's old add_pooling."""
        layer = self.add_pooling_nd(input, type, window_size)
        layer.stride_nd = window_size if stride is None else stride
        if padding is not None:
            layer.padding_nd = padding
        return layer

    def add_activation(self, input: Tensor, type: ActivationType) -> ActivationLayer:
        return self._add(ActivationLayer(self, [input], type=type))

    def add_elementwise(self, input1: Tensor, input2: Tensor,
                        op: ElementWiseOperation) -> ElementWiseLayer:
        return self._add(ElementWiseLayer(self, [input1, input2], op=op))

    def add_unary(self, input: Tensor, op: UnaryOperation) -> UnaryLayer:
        return self._add(UnaryLayer(self, [input], op=op))

    def add_reduce(self, input: Tensor, op: ReduceOperation, axes: int,
                   keep_dims: bool) -> ReduceLayer:
        """`axes`: TensorRT's bit mask (1 << axis per axis); a sequence of axes also works."""
        return self._add(ReduceLayer(self, [input], op=op, axes=axes, keep_dims=keep_dims))

    def add_shuffle(self, input: Tensor) -> ShuffleLayer:
        return self._add(ShuffleLayer(self, [input]))

    def add_matrix_multiply(self, input0: Tensor, op0: MatrixOperation, input1: Tensor,
                            op1: MatrixOperation) -> MatrixMultiplyLayer:
        return self._add(MatrixMultiplyLayer(self, [input0, input1], op0=op0, op1=op1))

    def add_softmax(self, input: Tensor) -> SoftMaxLayer:
        return self._add(SoftMaxLayer(self, [input]))

    def add_concatenation(self, inputs: Sequence[Tensor]) -> ConcatenationLayer:
        if not inputs:
            raise EmberError("add_concatenation: no inputs")
        return self._add(ConcatenationLayer(self, list(inputs)))

    def add_slice(self, input: Tensor, start: Sequence[int], shape: Sequence[int],
                  stride: Sequence[int]) -> SliceLayer:
        return self._add(SliceLayer(self, [input], start=start, shape=shape, stride=stride))

    def add_resize(self, input: Tensor) -> ResizeLayer:
        return self._add(ResizeLayer(self, [input]))

    def add_identity(self, input: Tensor) -> IdentityLayer:
        return self._add(IdentityLayer(self, [input]))

    def add_cast(self, input: Tensor, to_type: Any) -> CastLayer:
        return self._add(CastLayer(self, [input], to_type=to_type))

    def add_topk(self, input: Tensor, op: TopKOperation, k: int, axes: int) -> TopKLayer:
        return self._add(TopKLayer(self, [input], operation=op, k=k, axes=axes))

    def add_non_zero(self, input: Tensor) -> NonZeroLayer:
        return self._add(NonZeroLayer(self, [input]))

    def add_select(self, condition: Tensor, then_input: Tensor,
                   else_input: Tensor) -> SelectLayer:
        return self._add(SelectLayer(self, [condition, then_input, else_input]))

    def add_fill(self, shape: Sequence[int], op: FillOperation,
                 output_type: Any = np.float32) -> FillLayer:
        return self._add(FillLayer(self, [], shape=shape, operation=op, to_type=output_type))

    def add_shape(self, input: Tensor) -> ShapeLayer:
        return self._add(ShapeLayer(self, [input]))

    def add_gather(self, input: Tensor, indices: Tensor, axis: int) -> GatherLayer:
        return self._add(GatherLayer(self, [input, indices], axis=axis))

    def add_gather_v2(self, input: Tensor, indices: Tensor, mode: GatherMode) -> GatherLayer:
        return self._add(GatherLayer(self, [input, indices], mode=mode))

    def add_constant(self, shape: Sequence[int], weights: Any) -> ConstantLayer:
        return self._add(ConstantLayer(self, [], shape=shape, weights=weights))

    def add_scale(self, input: Tensor, mode: ScaleMode, shift: Any = None, scale: Any = None,
                  power: Any = None) -> ScaleLayer:
        return self._add(ScaleLayer(self, [input], mode=mode, shift=shift, scale=scale,
                                    power=power))

    def add_scale_nd(self, input: Tensor, mode: ScaleMode, shift: Any = None, scale: Any = None,
                     power: Any = None, channel_axis: int = 1) -> ScaleLayer:
        return self._add(ScaleLayer(self, [input], mode=mode, shift=shift, scale=scale,
                                    power=power, channel_axis=channel_axis))

    def add_normalization(self, input: Tensor, scale: Tensor, bias: Tensor,
                          axesMask: int) -> NormalizationLayer:  # noqa: N803 (TensorRT's name)
        return self._add(NormalizationLayer(self, [input, scale, bias], axes=axesMask))

    def add_padding_nd(self, input: Tensor, pre_padding: Sequence[int],
                       post_padding: Sequence[int]) -> PaddingLayer:
        return self._add(PaddingLayer(self, [input], pre_padding_nd=pre_padding,
                                      post_padding_nd=post_padding))

    def add_parametric_relu(self, input: Tensor, slopes: Tensor) -> ParametricReLULayer:
        return self._add(ParametricReLULayer(self, [input, slopes]))

    def add_einsum(self, inputs: Sequence[Tensor], equation: str) -> EinsumLayer:
        return self._add(EinsumLayer(self, list(inputs), equation=equation))

    def add_squeeze(self, input: Tensor, axes: Tensor) -> SqueezeLayer:
        return self._add(SqueezeLayer(self, [input, axes]))

    def add_unsqueeze(self, input: Tensor, axes: Tensor) -> UnsqueezeLayer:
        return self._add(UnsqueezeLayer(self, [input, axes]))

    def add_cumulative(self, input: Tensor, axis: Tensor, op: CumulativeOperation,
                       exclusive: bool, reverse: bool) -> CumulativeLayer:
        return self._add(CumulativeLayer(self, [input, axis], op=op, exclusive=exclusive,
                                         reverse=reverse))

    def add_plugin_v3(self, inputs: Sequence[Tensor], shape_inputs: Sequence[Tensor],
                      plugin: Any) -> PluginV3Layer:
        """A plugin a creator made (`get_plugin_registry().get_creator(...).create_plugin`)."""
        return self._add(plugin_v3_layer(self, inputs, shape_inputs, plugin))

    def add_plugin(self, call: Any, aot: bool | None = None) -> PluginV3Layer:
        """A plugin call `ember.plugin.op.<namespace>.<name>(inputs..., attrs...)` (TensorRT's
        `add_plugin`); ember's plugins are always ahead-of-time kernels (`aot=False`, a Python
        implementation at run time, is refused)."""
        return self._add(plugin_call_layer(self, call, aot))

    # -- to ONNX -----------------------------------------------------------------------------------
    def _emit(self, g: Emitter, layers: Sequence[Layer]) -> None:
        if self._parsed is not None:
            emit_initializers(g, self._parsed)
        for layer in layers:
            ins = [None if t is None else t.name for t in layer._inputs]
            layer._emit(g, ins, [t.name for t in layer._outputs])

    def _graph(self, g: Emitter, outputs: Sequence[onnx.ValueInfoProto]) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info(
            t.name, helper.np_dtype_to_tensor_dtype(t._input_dtype),
            [d if isinstance(d, str) or d >= 0 else f"{t.name}_dim{i}"
             for i, d in enumerate(t._input_dims)]) for t in self._inputs]
        graph = helper.make_graph(g.nodes, self._name, inputs + g.weight_inputs, list(outputs),
                                  g.initializers, value_info=g.value_infos)
        opsets = [helper.make_opsetid(d, v) for d, v in g.opsets.items()]
        if self._parsed is not None:
            model = onnx.ModelProto()
            model.CopyFrom(self._parsed)
            model.graph.CopyFrom(graph)
            have = {o.domain for o in model.opset_import}
            model.opset_import.extend(o for o in opsets if o.domain not in have)
            return model
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.OPSET),
                                                       *opsets])

    def _ordered(self, roots: Sequence[Layer]) -> list[Layer]:
        """`roots` and the layers they depend on, each after its inputs' producers (layers
        may be added before the layers that make their inputs, as in TensorRT)."""
        done: dict[int, Layer] = {}
        active: set[int] = set()
        for root in roots:
            stack = [(root, False)]
            while stack:
                layer, expanded = stack.pop()
                if id(layer) in done:
                    continue
                if expanded:
                    active.discard(id(layer))
                    done[id(layer)] = layer
                    continue
                if id(layer) in active:
                    raise EmberError(f"layer '{layer.name}' depends on its own output (a cycle)")
                active.add(id(layer))
                stack.append((layer, True))
                for t in reversed(layer._inputs):
                    if t is not None and t._producer is not None and id(t._producer) not in done:
                        stack.append((t._producer, False))
        return list(done.values())

    def to_onnx(self) -> onnx.ModelProto:
        if self._parsed is not None and not self._parsed_dirty:
            return self._parsed
        if not self._outputs:
            raise EmberError("the network has no outputs: call mark_output(tensor)")
        g = Emitter()
        self._emit(g, self._ordered(self._layers))
        return self._graph(g, [helper.make_tensor_value_info(t.name, onnx.TensorProto.UNDEFINED,
                                                             None) for t in self._outputs])

    def _infer(self, tensor: Tensor) -> tuple[tuple[int, ...], np.dtype]:
        """`tensor`'s shape (-1 for a dynamic dim) and dtype, by ONNX shape inference over
        the layers up to its producer (cached until the network changes)."""
        version, known = self._shapes
        if version != self._version:
            known = {}
            self._shapes = (self._version, known)
        if tensor.name in known:
            return known[tensor.name]
        producer = tensor._producer
        g = Emitter(for_shapes=True)
        self._emit(g, self._ordered([producer]))
        model = self._graph(g, [])
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True,
                                                         data_prop=True)
        except onnx.shape_inference.InferenceError as e:
            raise EmberError(f"the shape of tensor '{tensor.name}' (layer "
                             f"'{producer.name}') cannot be inferred: {e}") from None
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
            tt = vi.type.tensor_type
            if not tt.HasField("shape"):
                continue
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
            known[vi.name] = (dims, helper.tensor_dtype_to_np_dtype(tt.elem_type))
        # the cache may have been reset by a nested inference of an earlier prefix
        self._shapes[1].update(known)
        if tensor.name not in known:
            raise EmberError(f"the shape of tensor '{tensor.name}' (layer '{producer.name}') "
                             "cannot be inferred")
        return known[tensor.name]


# TensorRT's interface names for the classes (`isinstance(layer, trt.IConvolutionLayer)`)
ILayer, ITensor, INetworkDefinition = Layer, Tensor, NetworkDefinition
LAYER_CLASSES = (ConvolutionLayer, DeconvolutionLayer, PoolingLayer, ActivationLayer,
                 ElementWiseLayer, UnaryLayer, ReduceLayer, ShuffleLayer, MatrixMultiplyLayer,
                 SoftMaxLayer, ConcatenationLayer, SliceLayer, ResizeLayer, IdentityLayer,
                 CastLayer, SelectLayer, FillLayer, ShapeLayer, GatherLayer, ConstantLayer,
                 ScaleLayer, NormalizationLayer, PaddingLayer, ParametricReLULayer, EinsumLayer,
                 SqueezeLayer, UnsqueezeLayer, CumulativeLayer, TopKLayer, NonZeroLayer)
globals().update({f"I{cls.__name__}": cls for cls in LAYER_CLASSES})
__all__ += ["ILayer", "ITensor", "INetworkDefinition"] + [f"I{c.__name__}" for c in LAYER_CLASSES]
