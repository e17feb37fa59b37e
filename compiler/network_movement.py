"""The data-movement layer kinds of the network API (TensorRT's IShuffleLayer, ISliceLayer,
IConcatenationLayer, IConstantLayer, ...), as network_layers holds the computing ones: each
keeps TensorRT's attributes and emits its ONNX nodes at build time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from onnx import helper

from ember.compiler.network_base import (
    Attr,
    Emitter,
    Layer,
    Unsupported,
    as_bool,
    as_dims,
    as_dims_or_none,
    as_dtype,
    as_enum,
    as_float,
    as_int,
    as_weights,
    default_axis,
)
from ember.compiler.network_types import (
    FillOperation,
    GatherMode,
    InterpolationMode,
    LayerType,
    ResizeCoordinateTransformation,
    ResizeRoundMode,
    ResizeSelector,
    SampleMode,
)
from ember.errors import EmberError, UnsupportedError


def _identity(n: int = 8) -> tuple[int, ...]:
    return tuple(range(n))


class ShuffleLayer(Layer):
    TYPE = LayerType.SHUFFLE
    KIND = "shuffle"
    __slots__ = ()
    EXTRA_INPUTS: ClassVar[dict[int, str | None]] = {1: None}
    first_transpose = Attr(as_dims, _identity())
    reshape_dims = Attr(as_dims_or_none)
    second_transpose = Attr(as_dims, _identity())
    zero_is_placeholder = Attr(as_bool, True)

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


class ConcatenationLayer(Layer):
    TYPE = LayerType.CONCATENATION
    KIND = "concat"
    __slots__ = ()
    axis = Attr(as_int, default_axis)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("Concat", ins, outs, self.name, axis=self.axis)


class SliceLayer(Layer):
    TYPE = LayerType.SLICE
    KIND = "slice"
    __slots__ = ()
    EXTRA_INPUTS: ClassVar[dict[int, str | None]] = {
        i: "slices with tensor start/size/stride/axes are not implemented (give Dims)"
        for i in range(1, 6)}
    start = Attr(as_dims)
    shape = Attr(as_dims)
    stride = Attr(as_dims)
    axes = Attr(as_dims_or_none)
    mode = Attr(as_enum(SampleMode), SampleMode.STRICT_BOUNDS)

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
    shape = Attr(as_dims_or_none)
    scales = Attr(lambda layer, v, what: None if v is None else tuple(float(s) for s in v))
    resize_mode = Attr(as_enum(InterpolationMode), InterpolationMode.NEAREST)
    coordinate_transformation = Attr(as_enum(ResizeCoordinateTransformation),
                                     ResizeCoordinateTransformation.ASYMMETRIC)
    selector_for_single_pixel = Attr(as_enum(ResizeSelector), ResizeSelector.FORMULA)
    nearest_rounding = Attr(as_enum(ResizeRoundMode), ResizeRoundMode.FLOOR)
    exclude_outside = Attr(as_bool, False)
    cubic_coeff = Attr(as_float, -0.75)

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
    to_type = Attr(as_dtype)

    def _dtype_of_output(self) -> np.dtype | None:
        return self.to_type

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

    def _dtype_of_output(self) -> np.dtype | None:
        return np.dtype(np.int64)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        g.node("Shape", ins, outs, self.name)


class GatherLayer(Layer):
    TYPE = LayerType.GATHER
    KIND = "gather"
    __slots__ = ()
    axis = Attr(as_int, 0)
    mode = Attr(as_enum(GatherMode), GatherMode.DEFAULT)
    num_elementwise_dims = Unsupported(0, "gathers with element-wise dims are not implemented")

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        if self.mode == GatherMode.ND:
            raise UnsupportedError(f"{self._what()}.mode = ND is not implemented through the "
                                   "network API (ONNX GatherND is); DEFAULT and ELEMENT are")
        op = "Gather" if self.mode == GatherMode.DEFAULT else "GatherElements"
        g.node(op, ins, outs, self.name, axis=self.axis)


class ConstantLayer(Layer):
    TYPE = LayerType.CONSTANT
    KIND = "const"
    __slots__ = ()
    weights = Attr(as_weights)
    shape = Attr(as_dims)

    def _dtype_of_output(self) -> np.dtype | None:
        return None if self.weights is None else self.weights.dtype

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        w = self._require(self.weights, "weights")
        if w.size != int(np.prod(self.shape)):
            raise EmberError(f"{self._what()}: {w.size} weights for shape {self.shape}")
        g.node("Identity", [g.weight(self._sub("weights"), w.reshape(self.shape))], outs,
               self.name)


class PaddingLayer(Layer):
    TYPE = LayerType.PADDING
    KIND = "pad"
    __slots__ = ()
    pre_padding_nd = Attr(as_dims)
    post_padding_nd = Attr(as_dims)

    def _emit(self, g: Emitter, ins: list[str | None], outs: list[str]) -> None:
        pre, post = self.pre_padding_nd, self.post_padding_nd
        if len(pre) != len(post):
            raise EmberError(f"{self._what()}: pre_padding_nd {pre} and post_padding_nd {post} "
                             "differ in length")
        lead = [0] * (len(self._in_shape(0)) - len(pre))
        g.node("Pad", [ins[0], g.ints(self._sub("pads"), lead + list(pre) + lead + list(post))],
               outs, self.name, mode="constant")


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
    shape = Attr(as_dims)
    operation = Attr(as_enum(FillOperation))
    alpha = Attr(as_float, 0.0)
    beta = Attr(lambda layer, v, what: tuple(float(b) for b in np.atleast_1d(v)), (1.0,))
    to_type = Attr(as_dtype, np.dtype(np.float32))

    def _dtype_of_output(self) -> np.dtype | None:
        return self.to_type

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
