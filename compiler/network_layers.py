"""The layer kinds of the network API (TensorRT's IConvolutionLayer, IPoolingLayer, ...): each
keeps TensorRT's attributes and emits the ONNX nodes that compute it (`_emit`), named after the
layer (helper nodes `<layer>/<what>`). The base classes and descriptors are in network_base."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from onnx import helper

from ember.compiler.network_base import (
    Attr,
    Emitter,
    Layer,
    Unsupported,
    _bool,
    _dims,
    _dims_or_none,
    _dtype_attr,
    _enum,
    _float,
    _float_weights,
    _int,
    _positive,
    _weights,
    axes_mask,
    mask_axes,
)
from ember.compiler.network_types import (
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
    UnaryOperation,
)
from ember.errors import EmberError, UnsupportedError


def _spatial(fill: int, size_attr: str) -> Callable[[Layer], tuple[int, ...]]:
    return lambda layer: (fill,) * len(getattr(layer, size_attr))


class _Windowed(Layer):
    """What convolution, deconvolution and pooling share: strides and paddings per spatial dim
    of the kernel/window (`SIZE`)."""

    __slots__ = ()
    SIZE: ClassVar[str]
    stride_nd = Attr(_dims, _spatial(1, "kernel_size_nd"))
    pre_padding = Attr(_dims, _spatial(0, "kernel_size_nd"))
    post_padding = Attr(_dims, _spatial(0, "kernel_size_nd"))
    padding_mode = Attr(_enum(PaddingMode), PaddingMode.EXPLICIT_ROUND_DOWN)

    @property
    def padding_nd(self) -> tuple[int, ...]:
        """Symmetric padding: setting it sets pre_padding and post_padding (reads pre)."""
        return self.pre_padding

    @padding_nd.setter
    def padding_nd(self, value: Sequence[int]) -> None:
        self.pre_padding = value
        self.post_padding = value

    def _window_attrs(self, size: tuple[int, ...], *, ceil_ok: bool) -> dict[str, Any]:
        self._check_rank({"stride_nd": self.stride_nd, "pre_padding": self.pre_padding,
                          "post_padding": self.post_padding}, len(size))
        attrs: dict[str, Any] = {"kernel_shape": list(size), "strides": list(self.stride_nd)}
        mode = self.padding_mode
        if mode in (PaddingMode.SAME_UPPER, PaddingMode.SAME_LOWER):
            attrs["auto_pad"] = mode.name
        else:
            attrs["pads"] = list(self.pre_padding) + list(self.post_padding)
            if mode == PaddingMode.EXPLICIT_ROUND_UP:
                if not ceil_ok:
                    raise UnsupportedError(f"{self._what()}.padding_mode = EXPLICIT_ROUND_UP is "
                                           "not supported for this layer kind")
                attrs["ceil_mode"] = 1
        return attrs


class ConvolutionLayer(_Windowed):
    TYPE = LayerType.CONVOLUTION
    KIND = "conv"
    __slots__ = ()
    num_output_maps = Attr(_positive)
    kernel_size_nd = Attr(_dims)
    kernel = Attr(_float_weights)
    bias = Attr(_float_weights)
    dilation_nd = Attr(_dims, _spatial(1, "kernel_size_nd"))
    num_groups = Attr(_positive, 1)
    stride_nd = Attr(_dims, _spatial(1, "kernel_size_nd"))
    pre_padding = Attr(_dims, _spatial(0, "kernel_size_nd"))
    post_padding = Attr(_dims, _spatial(0, "kernel_size_nd"))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        k = self.kernel_size_nd
        attrs = self._window_attrs(k, ceil_ok=False)
        self._check_rank({"dilation_nd": self.dilation_nd}, len(k))
        m = self.num_output_maps
        kernel = self._require(self.kernel, "kernel")
        per_map = int(np.prod(k)) * m
        if kernel.size % per_map:
            raise EmberError(f"{self._what()}: {kernel.size} kernel weights are not "
                             f"{m} maps x C/groups x {'x'.join(map(str, k))}")
        w = kernel.astype(np.float32).reshape(m, -1, *k)
        weights = [g.weight(self._sub("kernel"), w)]
        if self.bias is not None:
            if self.bias.size != m:
                raise EmberError(f"{self._what()}: {self.bias.size} bias weights for {m} "
                                 "output maps")
            weights.append(g.weight(self._sub("bias"), self.bias.astype(np.float32).reshape(m)))
        g.node("Conv", [ins[0], *weights], outs, self.name, dilations=list(self.dilation_nd),
               group=self.num_groups, **attrs)


class DeconvolutionLayer(_Windowed):
    TYPE = LayerType.DECONVOLUTION
    KIND = "deconv"
    __slots__ = ()
    num_output_maps = Attr(_positive)
    kernel_size_nd = Attr(_dims)
    kernel = Attr(_float_weights)
    bias = Attr(_float_weights)
    dilation_nd = Attr(_dims, _spatial(1, "kernel_size_nd"))
    num_groups = Attr(_positive, 1)
    stride_nd = Attr(_dims, _spatial(1, "kernel_size_nd"))
    pre_padding = Attr(_dims, _spatial(0, "kernel_size_nd"))
    post_padding = Attr(_dims, _spatial(0, "kernel_size_nd"))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        k = self.kernel_size_nd
        if self.padding_mode != PaddingMode.EXPLICIT_ROUND_DOWN:
            raise UnsupportedError(f"{self._what()}.padding_mode = {self.padding_mode.name}: "
                                   "deconvolutions take explicit padding only")
        attrs = self._window_attrs(k, ceil_ok=False)
        self._check_rank({"dilation_nd": self.dilation_nd}, len(k))
        m, groups = self.num_output_maps, self.num_groups
        kernel = self._require(self.kernel, "kernel")
        if m % groups or kernel.size % (int(np.prod(k)) * (m // groups)):
            raise EmberError(f"{self._what()}: {kernel.size} kernel weights are not C x "
                             f"{m}/{groups} maps x {'x'.join(map(str, k))}")
        w = kernel.astype(np.float32).reshape(-1, m // groups, *k)
        weights = [g.weight(self._sub("kernel"), w)]
        if self.bias is not None:
            weights.append(g.weight(self._sub("bias"), self.bias.astype(np.float32).reshape(m)))
        g.node("ConvTranspose", [ins[0], *weights], outs, self.name,
               dilations=list(self.dilation_nd), group=groups, **attrs)


class PoolingLayer(_Windowed):
    TYPE = LayerType.POOLING
    KIND = "pool"
    __slots__ = ()
    type = Attr(_enum(PoolingType))
    window_size_nd = Attr(_dims)
    stride_nd = Attr(_dims, _spatial(1, "window_size_nd"))
    pre_padding = Attr(_dims, _spatial(0, "window_size_nd"))
    post_padding = Attr(_dims, _spatial(0, "window_size_nd"))
    average_count_excludes_padding = Attr(_bool, True)
    blend_factor = Unsupported(0.0, "MAX_AVERAGE_BLEND pooling is not implemented")

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        attrs = self._window_attrs(self.window_size_nd, ceil_ok=True)
        if self.type == PoolingType.MAX:
            g.node("MaxPool", ins, outs, self.name, **attrs)
        elif self.type == PoolingType.AVERAGE:
            g.node("AveragePool", ins, outs, self.name,
                   count_include_pad=int(not self.average_count_excludes_padding), **attrs)
        else:
            raise UnsupportedError(f"{self._what()}.type = {self.type.name} is not implemented "
                                   "(MAX, AVERAGE are)")


class ActivationLayer(Layer):
    TYPE = LayerType.ACTIVATION
    KIND = "act"
    __slots__ = ()
    type = Attr(_enum(ActivationType))
    alpha = Attr(_float, 0.0)
    beta = Attr(_float, 0.0)

    _SIMPLE: ClassVar[dict[ActivationType, str]] = {
        ActivationType.RELU: "Relu", ActivationType.SIGMOID: "Sigmoid",
        ActivationType.TANH: "Tanh", ActivationType.SOFTSIGN: "Softsign"}

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        t, a, b, x = self.type, self.alpha, self.beta, ins[0]
        if t in self._SIMPLE:
            g.node(self._SIMPLE[t], [x], outs, self.name)
        elif t == ActivationType.LEAKY_RELU:
            g.node("LeakyRelu", [x], outs, self.name, alpha=a)
        elif t == ActivationType.ELU:
            g.node("Elu", [x], outs, self.name, alpha=a)
        elif t == ActivationType.SELU:
            g.node("Selu", [x], outs, self.name, alpha=a, gamma=b)
        elif t == ActivationType.HARD_SIGMOID:
            g.node("HardSigmoid", [x], outs, self.name, alpha=a, beta=b)
        elif t == ActivationType.THRESHOLDED_RELU:
            g.node("ThresholdedRelu", [x], outs, self.name, alpha=a)
        elif t == ActivationType.CLIP:
            g.node("Clip", [x, g.scalar(self._sub("min"), a), g.scalar(self._sub("max"), b)],
                   outs, self.name)
        elif t in (ActivationType.GELU_ERF, ActivationType.GELU_TANH):
            g.node("Gelu", [x], outs, self.name,
                   approximate="none" if t == ActivationType.GELU_ERF else "tanh")
        elif t in (ActivationType.SOFTPLUS, ActivationType.SCALED_TANH):
            # alpha * f(beta * x)
            inner = g.node("Mul", [x, g.scalar(self._sub("beta"), b)], [self._sub("scaled")],
                           self._sub("scale_in"))
            f = g.node("Softplus" if t == ActivationType.SOFTPLUS else "Tanh", [inner],
                       [self._sub("f")], self.name)
            g.node("Mul", [f, g.scalar(self._sub("alpha"), a)], outs, self._sub("scale_out"))
        else:
            raise UnsupportedError(f"{self._what()}.type = {t!r} is not implemented")


class ElementWiseLayer(Layer):
    TYPE = LayerType.ELEMENTWISE
    KIND = "elementwise"
    __slots__ = ()
    op = Attr(_enum(ElementWiseOperation))

    _ONNX: ClassVar[dict[ElementWiseOperation, str]] = {
        ElementWiseOperation.SUM: "Add", ElementWiseOperation.PROD: "Mul",
        ElementWiseOperation.MAX: "Max", ElementWiseOperation.MIN: "Min",
        ElementWiseOperation.SUB: "Sub", ElementWiseOperation.DIV: "Div",
        ElementWiseOperation.POW: "Pow", ElementWiseOperation.AND: "And",
        ElementWiseOperation.OR: "Or", ElementWiseOperation.XOR: "Xor",
        ElementWiseOperation.EQUAL: "Equal", ElementWiseOperation.GREATER: "Greater",
        ElementWiseOperation.LESS: "Less"}

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        if self.op != ElementWiseOperation.FLOOR_DIV:
            g.node(self._ONNX[self.op], ins, outs, self.name)
        elif self._in_dtype(0).kind == "f":
            q = g.node("Div", ins, [self._sub("quotient")], self._sub("div"))
            g.node("Floor", [q], outs, self.name)
        else:  # integers: (a - a mod b) / b is exact and rounds toward -inf (Mod is Python's)
            r = g.node("Mod", ins, [self._sub("rem")], self._sub("mod"))
            d = g.node("Sub", [ins[0], r], [self._sub("diff")], self._sub("sub"))
            g.node("Div", [d, ins[1]], outs, self.name)


class UnaryLayer(Layer):
    TYPE = LayerType.UNARY
    KIND = "unary"
    __slots__ = ()
    op = Attr(_enum(UnaryOperation))

    _ONNX: ClassVar[dict[str, str]] = {
        "EXP": "Exp", "LOG": "Log", "SQRT": "Sqrt", "RECIP": "Reciprocal", "ABS": "Abs",
        "NEG": "Neg", "SIN": "Sin", "COS": "Cos", "TAN": "Tan", "SINH": "Sinh", "COSH": "Cosh",
        "ASIN": "Asin", "ACOS": "Acos", "ATAN": "Atan", "ASINH": "Asinh", "ACOSH": "Acosh",
        "ATANH": "Atanh", "CEIL": "Ceil", "FLOOR": "Floor", "ERF": "Erf", "NOT": "Not",
        "SIGN": "Sign", "ROUND": "Round", "ISINF": "IsInf", "ISNAN": "IsNaN"}

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node(self._ONNX[self.op.name], ins, outs, self.name)


class ReduceLayer(Layer):
    TYPE = LayerType.REDUCE
    KIND = "reduce"
    __slots__ = ()
    op = Attr(_enum(ReduceOperation))
    axes = Attr(axes_mask)
    keep_dims = Attr(_bool)

    _ONNX: ClassVar[dict[ReduceOperation, str]] = {
        ReduceOperation.SUM: "ReduceSum", ReduceOperation.PROD: "ReduceProd",
        ReduceOperation.MAX: "ReduceMax", ReduceOperation.MIN: "ReduceMin",
        ReduceOperation.AVG: "ReduceMean"}

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        axes = mask_axes(self.axes)
        if not axes:
            raise EmberError(f"{self._what()}: axes is 0 (no axis to reduce)")
        g.node(self._ONNX[self.op], [ins[0], g.ints(self._sub("axes"), axes)], outs, self.name,
               keepdims=int(self.keep_dims))


def _identity(n: int = 8) -> tuple[int, ...]:
    return tuple(range(n))


class ShuffleLayer(Layer):
    TYPE = LayerType.SHUFFLE
    KIND = "shuffle"
    __slots__ = ()
    EXTRA_INPUTS: ClassVar[dict[int, str | None]] = {1: None}
    first_transpose = Attr(_dims, _identity())
    reshape_dims = Attr(_dims_or_none)
    second_transpose = Attr(_dims, _identity())
    zero_is_placeholder = Attr(_bool, True)

    def _perm(self, attr: str, rank: Callable[[], int]) -> list[int] | None:
        perm = getattr(self, attr)
        if perm == _identity(len(perm)):
            return None
        n = rank()
        if len(perm) < n or perm[n:] != _identity(len(perm))[n:] or \
                sorted(perm[:n]) != list(range(n)):
            raise EmberError(f"{self._what()}: {attr} {perm} is not a permutation of the "
                             f"{n} dims")
        return list(perm[:n])

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        steps: list[tuple[str, list[str | None], dict]] = []
        perm = self._perm("first_transpose", lambda: len(self._in_shape(0)))
        if perm is not None:
            steps.append(("Transpose", [], {"perm": perm}))
        allowzero = int(not self.zero_is_placeholder)
        dynamic = self.num_inputs > 1 and self._inputs[1] is not None
        dims = self.reshape_dims
        if dynamic and isinstance(self._inputs[1]._producer, ConstantLayer):
            dynamic, dims = False, tuple(int(d) for d in self._inputs[1]._producer.weights)
        if dynamic:
            shape = ins[1]
            if self._in_dtype(1) != np.int64:
                shape = g.node("Cast", [shape], [self._sub("shape64")], self._sub("cast"),
                               to=helper.np_dtype_to_tensor_dtype(np.dtype(np.int64)))
            steps.append(("Reshape", [shape], {"allowzero": allowzero}))
        elif dims is not None:
            steps.append(("Reshape", [g.ints(self._sub("shape"), dims)],
                          {"allowzero": allowzero}))

        def reshaped_rank() -> int:
            if dynamic:
                return self._in_shape(1)[0]
            return len(dims) if dims is not None else len(self._in_shape(0))

        perm = self._perm("second_transpose", reshaped_rank)
        if perm is not None:
            steps.append(("Transpose", [], {"perm": perm}))
        if not steps:
            steps.append(("Identity", [], {}))
        x = ins[0]
        for i, (op, extra, attrs) in enumerate(steps):
            last = i == len(steps) - 1
            step = self._sub(f"{op.lower()}{i}")
            x = g.node(op, [x, *extra], outs if last else [step], self.name if last else step,
                       **attrs)


class MatrixMultiplyLayer(Layer):
    TYPE = LayerType.MATRIX_MULTIPLY
    KIND = "matmul"
    __slots__ = ()
    op0 = Attr(_enum(MatrixOperation))
    op1 = Attr(_enum(MatrixOperation))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        operands = []
        for i, (x, op) in enumerate(((ins[0], self.op0), (ins[1], self.op1))):
            if op == MatrixOperation.TRANSPOSE:
                x = g.node("Einsum", [x], [self._sub(f"t{i}")], self._sub(f"transpose{i}"),
                           equation="...ij->...ji")
            elif op == MatrixOperation.VECTOR:  # a stack of vectors: a 1-row / 1-column matrix
                x = g.node("Unsqueeze", [x, g.ints(self._sub(f"axis{i}"), [-2 if i == 0 else -1])],
                           [self._sub(f"v{i}")], self._sub(f"vector{i}"))
            operands.append(x)
        squeeze = [a for a, op in ((-2, self.op0), (-1, self.op1)) if op == MatrixOperation.VECTOR]
        if not squeeze:
            g.node("MatMul", operands, outs, self.name)
            return
        y = g.node("MatMul", operands, [self._sub("product")], self.name)
        g.node("Squeeze", [y, g.ints(self._sub("squeeze_axes"), squeeze)], outs,
               self._sub("squeeze"))


def _default_axis(layer: Layer) -> int:
    """TensorRT's default softmax / concatenation axis: rank - 3, or 0 below rank 3."""
    return max(len(layer._in_shape(0)) - 3, 0)


class SoftMaxLayer(Layer):
    TYPE = LayerType.SOFTMAX
    KIND = "softmax"
    __slots__ = ()
    axes = Attr(axes_mask, lambda layer: 1 << _default_axis(layer))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        axes = mask_axes(self.axes)
        if len(axes) != 1:
            raise EmberError(f"{self._what()}: axes {self.axes:#b} must have one bit set")
        g.node("Softmax", ins, outs, self.name, axis=axes[0])


class ConcatenationLayer(Layer):
    TYPE = LayerType.CONCATENATION
    KIND = "concat"
    __slots__ = ()
    axis = Attr(_int, _default_axis)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("Concat", ins, outs, self.name, axis=self.axis)


class SliceLayer(Layer):
    TYPE = LayerType.SLICE
    KIND = "slice"
    __slots__ = ()
    EXTRA_INPUTS: ClassVar[dict[int, str | None]] = {
        i: "slices with tensor start/size/stride/axes are not implemented (give Dims)"
        for i in range(1, 6)}
    start = Attr(_dims)
    shape = Attr(_dims)
    stride = Attr(_dims)
    axes = Attr(_dims_or_none)
    mode = Attr(_enum(SampleMode), SampleMode.STRICT_BOUNDS)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        if self.mode != SampleMode.STRICT_BOUNDS:
            raise UnsupportedError(f"{self._what()}.mode = {self.mode.name} is not implemented "
                                   "(STRICT_BOUNDS is)")
        start, size, stride = self.start, self.shape, self.stride
        in_shape = self._in_shape(0)
        axes = self.axes if self.axes is not None else tuple(range(len(start)))
        if not len(start) == len(size) == len(stride) == len(axes):
            raise EmberError(f"{self._what()}: start {start}, shape {size}, stride {stride} "
                             f"and axes {axes} differ in length")
        if self.axes is None and len(start) != len(in_shape):
            raise EmberError(f"{self._what()}: start has {len(start)} dims, the input "
                             f"{len(in_shape)}")
        ends = []
        for a, s, n, st in zip(axes, start, size, stride, strict=True):
            dim = in_shape[a]
            last = s + (n - 1) * st
            if n > 0 and dim >= 0 and not (0 <= s < dim and 0 <= last < dim):
                raise EmberError(f"{self._what()}: axis {a} reads [{s}, {last}] (stride {st}) "
                                 f"out of its {dim} elements (mode STRICT_BOUNDS)")
            end = s if n == 0 else last + (1 if st > 0 else -1)
            ends.append(end if end >= 0 else -(2**62))
        g.node("Slice", [ins[0], g.ints(self._sub("starts"), start),
                         g.ints(self._sub("ends"), ends), g.ints(self._sub("axes"), axes),
                         g.ints(self._sub("steps"), stride)], outs, self.name)


class ResizeLayer(Layer):
    TYPE = LayerType.RESIZE
    KIND = "resize"
    __slots__ = ()
    EXTRA_INPUTS: ClassVar[dict[int, str | None]] = {
        1: "resizes to a run-time shape tensor are not implemented (set shape or scales)"}
    shape = Attr(_dims_or_none)
    scales = Attr(lambda layer, v, what: None if v is None else tuple(float(s) for s in v))
    resize_mode = Attr(_enum(InterpolationMode), InterpolationMode.NEAREST)
    coordinate_transformation = Attr(_enum(ResizeCoordinateTransformation),
                                     ResizeCoordinateTransformation.ASYMMETRIC)
    selector_for_single_pixel = Attr(_enum(ResizeSelector), ResizeSelector.FORMULA)
    nearest_rounding = Attr(_enum(ResizeRoundMode), ResizeRoundMode.FLOOR)
    exclude_outside = Attr(_bool, False)
    cubic_coeff = Attr(_float, -0.75)

    _ROUNDING: ClassVar[dict[ResizeRoundMode, str]] = {
        ResizeRoundMode.HALF_UP: "round_prefer_ceil", ResizeRoundMode.HALF_DOWN:
        "round_prefer_floor", ResizeRoundMode.FLOOR: "floor", ResizeRoundMode.CEIL: "ceil"}

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in ("shape", "scales") and value is not None:  # the last one set wins
            self._attrs.pop("scales" if name == "shape" else "shape", None)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        ct = self.coordinate_transformation
        transform = {ResizeCoordinateTransformation.ALIGN_CORNERS: "align_corners",
                     ResizeCoordinateTransformation.ASYMMETRIC: "asymmetric",
                     ResizeCoordinateTransformation.HALF_PIXEL: "half_pixel"}[ct]
        if self.selector_for_single_pixel == ResizeSelector.UPPER:
            if ct != ResizeCoordinateTransformation.HALF_PIXEL:
                raise UnsupportedError(f"{self._what()}.selector_for_single_pixel = UPPER with "
                                       f"{ct.name} is not implemented (with HALF_PIXEL it is)")
            transform = "pytorch_half_pixel"
        if self.shape is not None:
            sizes: list[str | None] = ["", "", g.ints(self._sub("sizes"), self.shape)]
        elif self.scales is not None:
            sizes = ["", g.weight(self._sub("scales"), np.array(self.scales, np.float32))]
        else:
            raise EmberError(f"{self._what()}: set shape or scales before building")
        g.node("Resize", [ins[0], *sizes], outs, self.name,
               mode=self.resize_mode.name.lower(), coordinate_transformation_mode=transform,
               nearest_mode=self._ROUNDING[self.nearest_rounding],
               cubic_coeff_a=self.cubic_coeff, exclude_outside=int(self.exclude_outside))


class IdentityLayer(Layer):
    TYPE = LayerType.IDENTITY
    KIND = "identity"
    __slots__ = ()

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("Identity", ins, outs, self.name)


class CastLayer(Layer):
    TYPE = LayerType.CAST
    KIND = "cast"
    __slots__ = ()
    to_type = Attr(_dtype_attr)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("Cast", ins, outs, self.name, to=helper.np_dtype_to_tensor_dtype(self.to_type))


class SelectLayer(Layer):
    TYPE = LayerType.SELECT
    KIND = "select"
    __slots__ = ()

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("Where", ins, outs, self.name)


class ShapeLayer(Layer):
    TYPE = LayerType.SHAPE
    KIND = "shape"
    __slots__ = ()

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("Shape", ins, outs, self.name)


class GatherLayer(Layer):
    TYPE = LayerType.GATHER
    KIND = "gather"
    __slots__ = ()
    axis = Attr(_int, 0)
    mode = Attr(_enum(GatherMode), GatherMode.DEFAULT)
    num_elementwise_dims = Unsupported(0, "gathers with element-wise dims are not implemented")

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        if self.mode == GatherMode.ND:
            raise UnsupportedError(f"{self._what()}.mode = ND is not implemented (ember has no "
                                   "GatherND); DEFAULT and ELEMENT are")
        op = "Gather" if self.mode == GatherMode.DEFAULT else "GatherElements"
        g.node(op, ins, outs, self.name, axis=self.axis)


class ConstantLayer(Layer):
    TYPE = LayerType.CONSTANT
    KIND = "const"
    __slots__ = ()
    weights = Attr(_weights)
    shape = Attr(_dims)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        w = self._require(self.weights, "weights")
        if w.size != int(np.prod(self.shape)):
            raise EmberError(f"{self._what()}: {w.size} weights for shape {self.shape}")
        g.node("Identity", [g.weight(self._sub("weights"), w.reshape(self.shape))], outs,
               self.name)


class ScaleLayer(Layer):
    """out = (in * scale + shift) ** power, the coefficients per tensor, channel or element."""

    TYPE = LayerType.SCALE
    KIND = "scale"
    __slots__ = ()
    mode = Attr(_enum(ScaleMode))
    shift = Attr(_float_weights)
    scale = Attr(_float_weights)
    power = Attr(_float_weights)
    channel_axis = Attr(_int, lambda layer: max(len(layer._in_shape(0)) - 3, 0))

    def _coefficients(self, array: np.ndarray, what: str) -> np.ndarray:
        shape = self._in_shape(0)
        axis = self.channel_axis % len(shape)
        if self.mode == ScaleMode.UNIFORM:
            want: tuple[int, ...] = ()
        elif self.mode == ScaleMode.CHANNEL:
            want = (shape[axis],) + (1,) * (len(shape) - axis - 1)
        else:
            want = tuple(shape[axis:])
        if -1 in want or array.size != int(np.prod(want)):
            raise EmberError(f"{self._what()}: {array.size} {what} weights for mode "
                             f"{self.mode.name} on input shape {shape} (channel axis {axis})")
        return array.astype(np.float32).reshape(want)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        steps = [(op, w, attr) for op, w, attr in (("Mul", self.scale, "scale"),
                                                   ("Add", self.shift, "shift"),
                                                   ("Pow", self.power, "power"))
                 if w is not None]
        if not steps:
            g.node("Identity", ins, outs, self.name)
            return
        x = ins[0]
        for i, (op, w, attr) in enumerate(steps):
            last = i == len(steps) - 1
            c = g.weight(self._sub(attr), self._coefficients(w, attr))
            x = g.node(op, [x, c], outs if last else [self._sub(f"{attr}d")],
                       self.name if last else self._sub(attr + "_op"))


class NormalizationLayer(Layer):
    """(x - mean) / sqrt(var + epsilon) * scale + bias over `axes` (TensorRT's formula), as
    ONNX reductions and elementwise ops (fuse-normalization recognizes them)."""

    TYPE = LayerType.NORMALIZATION
    KIND = "norm"
    __slots__ = ()
    epsilon = Attr(_float, 1e-5)
    axes = Attr(axes_mask)
    num_groups = Unsupported(1, "group normalization through the network API is not "
                                "implemented (the ONNX GroupNormalization op is)")
    compute_precision = Unsupported(None, "the normalization computes in its input's type")

    @property
    def is_v2(self) -> bool:
        return False

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        x, scale, bias = ins
        axes = g.ints(self._sub("axes"), mask_axes(self.axes))
        s = self._sub
        mean = g.node("ReduceMean", [x, axes], [s("mean")], s("mean_op"), keepdims=1)
        d = g.node("Sub", [x, mean], [s("centered")], s("center"))
        sq = g.node("Mul", [d, d], [s("squared")], s("square"))
        var = g.node("ReduceMean", [sq, axes], [s("var")], s("var_op"), keepdims=1)
        ve = g.node("Add", [var, g.scalar(s("epsilon"), self.epsilon)], [s("var_eps")],
                    s("add_eps"))
        std = g.node("Sqrt", [ve], [s("std")], s("sqrt"))
        y = g.node("Div", [d, std], [s("normalized")], s("normalize"))
        y = g.node("Mul", [y, scale], [s("scaled")], s("mul_scale"))
        g.node("Add", [y, bias], outs, self.name)


class PaddingLayer(Layer):
    TYPE = LayerType.PADDING
    KIND = "pad"
    __slots__ = ()
    pre_padding_nd = Attr(_dims)
    post_padding_nd = Attr(_dims)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        pre, post = self.pre_padding_nd, self.post_padding_nd
        if len(pre) != len(post):
            raise EmberError(f"{self._what()}: pre_padding_nd {pre} and post_padding_nd {post} "
                             "differ in length")
        lead = [0] * (len(self._in_shape(0)) - len(pre))
        g.node("Pad", [ins[0], g.ints(self._sub("pads"), lead + list(pre) + lead + list(post))],
               outs, self.name, mode="constant")


class ParametricReLULayer(Layer):
    TYPE = LayerType.PARAMETRIC_RELU
    KIND = "prelu"
    __slots__ = ()

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("PRelu", ins, outs, self.name)


class EinsumLayer(Layer):
    TYPE = LayerType.EINSUM
    KIND = "einsum"
    __slots__ = ()
    equation = Attr(lambda layer, v, what: str(v))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("Einsum", ins, outs, self.name, equation=self.equation)


class _AxesTensorLayer(Layer):
    """Squeeze / unsqueeze: the axes are a tensor input (#1), as TensorRT 10 takes them."""

    __slots__ = ()
    ONNX: ClassVar[str]

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        axes = ins[1]
        producer = self._input(1)._producer
        if isinstance(producer, ConstantLayer):  # static axes: shapes stay inferable
            axes = g.ints(self._sub("axes"), np.asarray(producer.weights).reshape(-1))
        elif self._in_dtype(1) != np.int64:
            axes = g.node("Cast", [axes], [self._sub("axes64")], self._sub("cast"),
                          to=helper.np_dtype_to_tensor_dtype(np.dtype(np.int64)))
        g.node(self.ONNX, [ins[0], axes], outs, self.name)


class SqueezeLayer(_AxesTensorLayer):
    TYPE = LayerType.SQUEEZE
    KIND = "squeeze"
    ONNX = "Squeeze"
    __slots__ = ()


class UnsqueezeLayer(_AxesTensorLayer):
    TYPE = LayerType.UNSQUEEZE
    KIND = "unsqueeze"
    ONNX = "Unsqueeze"
    __slots__ = ()


class FillLayer(Layer):
    """LINSPACE with a static shape: alpha + sum_i beta[i] * index_i, computed at build time."""

    TYPE = LayerType.FILL
    KIND = "fill"
    __slots__ = ()
    EXTRA_INPUTS: ClassVar[dict[int, str | None]] = {
        i: "fills with tensor shape/alpha/beta are not implemented (set the attributes)"
        for i in range(3)}
    shape = Attr(_dims)
    operation = Attr(_enum(FillOperation))
    alpha = Attr(_float, 0.0)
    beta = Attr(lambda layer, v, what: tuple(float(b) for b in np.atleast_1d(v)), (1.0,))
    to_type = Attr(_dtype_attr, np.dtype(np.float32))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        if self.operation != FillOperation.LINSPACE:
            raise UnsupportedError(f"{self._what()}.operation = {self.operation.name}: random "
                                   "fills are not implemented (LINSPACE is)")
        shape, beta = self.shape, self.beta
        if len(beta) != len(shape):
            raise EmberError(f"{self._what()}: beta has {len(beta)} value(s), one per dim of "
                             f"shape {shape} is needed")
        value = np.full(shape, self.alpha, np.float64)
        for axis, b in enumerate(beta):
            index = np.arange(shape[axis]).reshape([-1 if i == axis else 1
                                                    for i in range(len(shape))])
            value = value + b * index
        g.node("Identity", [g.weight(self._sub("values"), value.astype(self.to_type))], outs,
               self.name)


class CumulativeLayer(Layer):
    TYPE = LayerType.CUMULATIVE
    KIND = "cumsum"
    __slots__ = ()
    exclusive = Attr(_bool, False)
    reverse = Attr(_bool, False)

    op = Attr(_enum(CumulativeOperation), CumulativeOperation.SUM)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("CumSum", ins, outs, self.name, exclusive=int(self.exclusive),
               reverse=int(self.reverse))
