"""The layer kinds of the network API (TensorRT's IConvolutionLayer, IPoolingLayer, ...): each
keeps TensorRT's attributes and emits the ONNX nodes that compute it (`_emit`), named after the
layer (helper nodes `<layer>/<what>`). The base classes and descriptors are in network_base."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from onnx import TensorProto

from ember.compiler.network_base import (
    Attr,
    Emitter,
    Layer,
    Unsupported,
    as_bool,
    as_dims,
    as_enum,
    as_float,
    as_float_weights,
    as_int,
    as_positive,
    axes_mask,
    default_axis,
    mask_axes,
)
from ember.compiler.network_types import (
    ActivationType,
    CumulativeOperation,
    ElementWiseOperation,
    LayerType,
    MatrixOperation,
    PaddingMode,
    PoolingType,
    ReduceOperation,
    ScaleMode,
    TopKOperation,
    UnaryOperation,
)
from ember.errors import EmberError, UnsupportedError


def _spatial(fill: int, size_attr: str) -> Callable[[Layer], tuple[int, ...]]:
    return lambda layer: (fill,) * len(getattr(layer, size_attr))


class _Windowed(Layer):
    """What convolution, deconvolution and pooling share: strides and paddings per spatial dim
    of the kernel/window."""

    __slots__ = ()
    stride_nd = Attr(as_dims, _spatial(1, "kernel_size_nd"))
    pre_padding = Attr(as_dims, _spatial(0, "kernel_size_nd"))
    post_padding = Attr(as_dims, _spatial(0, "kernel_size_nd"))
    padding_mode = Attr(as_enum(PaddingMode), PaddingMode.EXPLICIT_ROUND_DOWN)

    @property
    def padding_nd(self) -> tuple[int, ...]:
        """Symmetric padding: setting it sets pre_padding and post_padding (reads pre)."""
        return self.pre_padding

    @padding_nd.setter
    def padding_nd(self, value: Sequence[int]) -> None:
        self.pre_padding = value
        self.post_padding = value

    def _window_attrs(self, size: tuple[int, ...], *, ceil_ok: bool,
                      extents: Sequence[int] | None = None) -> dict[str, Any]:
        """ONNX's kernel_shape, strides and pads (or auto_pad / ceil_mode). EXPLICIT_ROUND_UP
        where ONNX has no ceil_mode (convolution, `extents` = dilated kernel sizes): more post
        padding, which the windows past the end would read as zeros."""
        self._check_rank({"stride_nd": self.stride_nd, "pre_padding": self.pre_padding,
                          "post_padding": self.post_padding}, len(size))
        attrs: dict[str, Any] = {"kernel_shape": list(size), "strides": list(self.stride_nd)}
        mode = self.padding_mode
        pre, post = list(self.pre_padding), list(self.post_padding)
        if mode in (PaddingMode.SAME_UPPER, PaddingMode.SAME_LOWER):
            attrs["auto_pad"] = mode.name
            return attrs
        if mode == PaddingMode.EXPLICIT_ROUND_UP and ceil_ok:
            attrs["ceil_mode"] = 1
        elif mode == PaddingMode.EXPLICIT_ROUND_UP:
            if extents is None:
                raise UnsupportedError(f"{self._what()}.padding_mode = EXPLICIT_ROUND_UP is not "
                                       "supported for this layer kind")
            spatial = self._in_shape(0)[-len(size):]
            if -1 in spatial:
                raise UnsupportedError(f"{self._what()}.padding_mode = EXPLICIT_ROUND_UP needs "
                                       f"static spatial dims, the input has {spatial}")
            post = [p + (-(n + a + p - e)) % st for n, a, p, e, st in
                    zip(spatial, pre, post, extents, self.stride_nd, strict=True)]
        attrs["pads"] = pre + post
        return attrs


class ConvolutionLayer(_Windowed):
    TYPE = LayerType.CONVOLUTION
    KIND = "conv"
    __slots__ = ()
    num_output_maps = Attr(as_positive)
    kernel_size_nd = Attr(as_dims)
    kernel = Attr(as_float_weights)
    bias = Attr(as_float_weights)
    dilation_nd = Attr(as_dims, _spatial(1, "kernel_size_nd"))
    num_groups = Attr(as_positive, 1)
    stride_nd = Attr(as_dims, _spatial(1, "kernel_size_nd"))
    pre_padding = Attr(as_dims, _spatial(0, "kernel_size_nd"))
    post_padding = Attr(as_dims, _spatial(0, "kernel_size_nd"))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        k = self.kernel_size_nd
        self._check_rank({"dilation_nd": self.dilation_nd}, len(k))
        attrs = self._window_attrs(k, ceil_ok=False, extents=[
            (n - 1) * d + 1 for n, d in zip(k, self.dilation_nd, strict=True)])
        m = self.num_output_maps
        kernel = self._require(self.kernel, "kernel")
        per_map = int(np.prod(k)) * m
        if kernel.size % per_map:
            raise EmberError(f"{self._what()}: {kernel.size} kernel weights are not "
                             f"{m} maps x C/groups x {'x'.join(map(str, k))}")
        dtype = self._weight_dtype()
        w = kernel.astype(dtype).reshape(m, -1, *k)
        weights = [g.weight(self._sub("kernel"), w)]
        if self.bias is not None:
            if self.bias.size != m:
                raise EmberError(f"{self._what()}: {self.bias.size} bias weights for {m} "
                                 "output maps")
            weights.append(g.weight(self._sub("bias"), self.bias.astype(dtype).reshape(m)))
        g.node("Conv", [ins[0], *weights], outs, self.name, dilations=list(self.dilation_nd),
               group=self.num_groups, **attrs)


class DeconvolutionLayer(_Windowed):
    TYPE = LayerType.DECONVOLUTION
    KIND = "deconv"
    __slots__ = ()
    num_output_maps = Attr(as_positive)
    kernel_size_nd = Attr(as_dims)
    kernel = Attr(as_float_weights)
    bias = Attr(as_float_weights)
    dilation_nd = Attr(as_dims, _spatial(1, "kernel_size_nd"))
    num_groups = Attr(as_positive, 1)
    stride_nd = Attr(as_dims, _spatial(1, "kernel_size_nd"))
    pre_padding = Attr(as_dims, _spatial(0, "kernel_size_nd"))
    post_padding = Attr(as_dims, _spatial(0, "kernel_size_nd"))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        k = self.kernel_size_nd
        self._check_rank({"dilation_nd": self.dilation_nd}, len(k))
        attrs = self._window_attrs(k, ceil_ok=True)
        attrs.pop("ceil_mode", None)  # TensorRT: both explicit modes give (I-1)*S + DK - B - A
        mode = self.padding_mode
        if mode in (PaddingMode.SAME_UPPER, PaddingMode.SAME_LOWER):
            # TensorRT's SAME for deconvolutions: P = max(DK - S, 0), the odd one after (UPPER)
            # or before (LOWER); the output is min(I * S, (I - 1) * S + DK)
            del attrs["auto_pad"]
            total = [max((n - 1) * d + 1 - st, 0)
                     for n, d, st in zip(k, self.dilation_nd, self.stride_nd, strict=True)]
            small = [p // 2 for p in total]
            large = [p - q for p, q in zip(total, small, strict=True)]
            attrs["pads"] = small + large if mode == PaddingMode.SAME_UPPER else large + small
        m, groups = self.num_output_maps, self.num_groups
        kernel = self._require(self.kernel, "kernel")
        if m % groups or kernel.size % (int(np.prod(k)) * (m // groups)):
            raise EmberError(f"{self._what()}: {kernel.size} kernel weights are not C x "
                             f"{m}/{groups} maps x {'x'.join(map(str, k))}")
        dtype = self._weight_dtype()
        w = kernel.astype(dtype).reshape(-1, m // groups, *k)
        weights = [g.weight(self._sub("kernel"), w)]
        if self.bias is not None:
            weights.append(g.weight(self._sub("bias"), self.bias.astype(dtype).reshape(m)))
        g.node("ConvTranspose", [ins[0], *weights], outs, self.name,
               dilations=list(self.dilation_nd), group=groups, **attrs)


class PoolingLayer(_Windowed):
    TYPE = LayerType.POOLING
    KIND = "pool"
    __slots__ = ()
    type = Attr(as_enum(PoolingType))
    window_size_nd = Attr(as_dims)
    stride_nd = Attr(as_dims, _spatial(1, "window_size_nd"))
    pre_padding = Attr(as_dims, _spatial(0, "window_size_nd"))
    post_padding = Attr(as_dims, _spatial(0, "window_size_nd"))
    average_count_excludes_padding = Attr(as_bool, True)
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
    type = Attr(as_enum(ActivationType))
    alpha = Attr(as_float, 0.0)
    beta = Attr(as_float, 0.0)

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
    op = Attr(as_enum(ElementWiseOperation))

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
    op = Attr(as_enum(UnaryOperation))

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
    op = Attr(as_enum(ReduceOperation))
    axes = Attr(axes_mask)
    keep_dims = Attr(as_bool)

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


class MatrixMultiplyLayer(Layer):
    TYPE = LayerType.MATRIX_MULTIPLY
    KIND = "matmul"
    __slots__ = ()
    op0 = Attr(as_enum(MatrixOperation))
    op1 = Attr(as_enum(MatrixOperation))

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


class SoftMaxLayer(Layer):
    TYPE = LayerType.SOFTMAX
    KIND = "softmax"
    __slots__ = ()
    axes = Attr(axes_mask, lambda layer: 1 << default_axis(layer))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        axes = mask_axes(self.axes)
        if len(axes) != 1:
            raise EmberError(f"{self._what()}: axes {self.axes:#b} must have one bit set")
        g.node("Softmax", ins, outs, self.name, axis=axes[0])


class ScaleLayer(Layer):
    """out = (in * scale + shift) ** power, the coefficients per tensor, channel or element."""

    TYPE = LayerType.SCALE
    KIND = "scale"
    __slots__ = ()
    mode = Attr(as_enum(ScaleMode))
    shift = Attr(as_float_weights)
    scale = Attr(as_float_weights)
    power = Attr(as_float_weights)
    channel_axis = Attr(as_int, lambda layer: max(len(layer._in_shape(0)) - 3, 0))

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
        return array.astype(self._weight_dtype()).reshape(want)

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
    epsilon = Attr(as_float, 1e-5)
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


class CumulativeLayer(Layer):
    TYPE = LayerType.CUMULATIVE
    KIND = "cumsum"
    __slots__ = ()
    exclusive = Attr(as_bool, False)
    reverse = Attr(as_bool, False)

    op = Attr(as_enum(CumulativeOperation), CumulativeOperation.SUM)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("CumSum", ins, outs, self.name, exclusive=int(self.exclusive),
               reverse=int(self.reverse))


def _indices_type(layer: Layer, value: Any, what: str) -> np.dtype:
    """TensorRT's indices types: INT32 (its default) or INT64."""
    from ember.compiler.network_base import as_dtype

    dtype = as_dtype(layer, value, what)
    if dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise EmberError(f"{what}: indices are int32 or int64, not {dtype}")
    return dtype


class TopKLayer(Layer):
    """The k largest (MAX) or smallest (MIN) values along the one axis of `axes` and their
    indices (`indices_type`, INT32 by default as TensorRT's): ONNX TopK, sorted."""

    TYPE = LayerType.TOPK
    KIND = "topk"
    NUM_OUTPUTS = 2
    EXTRA_INPUTS = {1: "a run-time k through set_input is not implemented: give k"}
    __slots__ = ()
    operation = Attr(as_enum(TopKOperation))
    k = Attr(as_positive)
    axes = Attr(axes_mask)
    indices_type = Attr(_indices_type, np.dtype(np.int32))

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        axes = mask_axes(self.axes)
        if len(axes) != 1:
            raise EmberError(f"{self._what()}: axes {self.axes:#b} must have one bit set")
        indices = outs[1] if self.indices_type == np.int64 else self._sub("indices")
        g.node("TopK", [ins[0], g.ints(self._sub("k"), [self.k])], [outs[0], indices],
               self.name, axis=axes[0], largest=int(self.operation == TopKOperation.MAX))
        if indices != outs[1]:
            g.node("Cast", [indices], [outs[1]], self._sub("cast"), to=TensorProto.INT32)


class NonZeroLayer(Layer):
    """The indices of the non-zero elements, [rank, count] (`indices_type`, INT32 by default as
    TensorRT's): ONNX NonZero, whose count depends on the data (a data-dependent dim)."""

    TYPE = LayerType.NON_ZERO
    KIND = "non_zero"
    __slots__ = ()
    indices_type = Attr(_indices_type, np.dtype(np.int32))

    def _dtype_of_output(self) -> np.dtype | None:
        return self.indices_type

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        if self.indices_type == np.int64:
            g.node("NonZero", ins, outs, self.name)
            return
        g.node("NonZero", ins, [self._sub("indices")], self.name)
        g.node("Cast", [self._sub("indices")], outs, self._sub("cast"), to=TensorProto.INT32)
