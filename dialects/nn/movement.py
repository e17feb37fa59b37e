"""Data-movement nn ops: reshape, transpose, slice, concat, gather, pad, resize, shapes, ranges.

Each op computes its result type from its operand types and properties (symbolic dims are kept
where they decide a dim, "?" where they cannot), and `evaluate` gives ONNX's numpy semantics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import DenseArrayBase, FloatAttr, IntegerAttr, StringAttr, i64
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import (
    NNOp,
    broadcast_shapes,
    dim_product,
    dim_quotient,
    like,
    normalize_axis,
)
from ember.dialects.tensor_types import (
    UNKNOWN,
    Dim,
    element_type_of,
    shape_of,
    static_shape,
    tensor_type,
)
from ember.errors import ShapeError

# ONNX uses INT64_MAX / INT64_MIN for "to the end" in Slice; anything this large is "unbounded".
BIG = 2**62


# -- helpers -------------------------------------------------------------------------------------

def resolve_reshape(input_shape: tuple, target: list, allowzero: bool = False) -> list:
    """ONNX Reshape's target dims: 0 copies the input dim (unless allowzero), -1 is inferred."""
    out = []
    for i, d in enumerate(target):
        if isinstance(d, int) and d == 0 and not allowzero:
            if i >= len(input_shape):
                raise ShapeError(
                    f"reshape: dim #{i} is 0 but the input has rank {len(input_shape)}")
            out.append(input_shape[i])
        else:
            out.append(d)
    if out.count(-1) > 1:
        raise ShapeError("reshape: more than one -1 in the target shape")
    if any(isinstance(d, int) and d < -1 for d in out):
        raise ShapeError(f"reshape: invalid target dim in {list(target)}")
    if -1 in out:
        i = out.index(-1)
        known = dim_product([d for j, d in enumerate(out) if j != i])
        out[i] = dim_quotient(dim_product(list(input_shape)), known)
    return out


def concrete_shape(shape: Sequence[Dim], bindings: dict[str, int]) -> list[int]:
    """Dims of a (possibly symbolic) shape made concrete with symbol values seen at run time;
    a dim that stays unknown is -1 (numpy's reshape infers it)."""
    out = []
    for d in shape:
        if isinstance(d, int):
            out.append(d)
            continue
        value = 1
        for part in d.split("*"):
            if part.isdigit():
                value *= int(part)
            elif part in bindings:
                value *= bindings[part]
            else:
                value = -1
                break
        out.append(value)
    return out


def bind_symbols(shape: Sequence[Dim] | None, actual: Sequence[int]) -> dict[str, int]:
    """Symbol -> value for the plain symbols of `shape` given the actual dims."""
    if shape is None:
        return {}
    return {d: int(a) for d, a in zip(shape, actual, strict=False)
            if isinstance(d, str) and re.fullmatch(r"[^*?]+", d)}


def _ints(name: str, values: Sequence[int], rank: int, op: str) -> list[int]:
    values = [int(v) for v in values]
    if len(values) != rank:
        raise ShapeError(f"{op}: {name} has {len(values)} entries for rank {rank}")
    return values


def _scaled(d: Dim, k: int) -> Dim:
    return d if k == 1 else dim_product([d, k])


# -- reshape and shapes --------------------------------------------------------------------------

@irdl_op_definition
class ReshapeOp(NNOp):
    """Same elements, new shape: the result type is the target. With a `shape` operand the target
    is only known at run time (ONNX semantics: 0 copies, -1 infers); folding makes it static."""

    name = "nn.reshape"
    input = operand_def()
    shape = opt_operand_def()
    allowzero = opt_prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input (`,` $shape^)? attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        out = self.output.type
        if element_type_of(out) != element_type_of(self.input):
            raise ShapeError("nn.reshape: the element type must not change")
        if self.shape is not None:
            n = static_shape(self.shape)
            if n is None or len(n) != 1:
                raise ShapeError("nn.reshape: the shape operand must be 1-D of static length")
            if len(shape_of(out) or ()) != n[0]:
                return [tensor_type(["?"] * n[0], element_type_of(self.input))]
            return [out]
        a, b = dim_product(self.operand_shape(0)), dim_product(shape_of(out) or ())
        if isinstance(a, int) and isinstance(b, int) and a != b:
            raise ShapeError(f"nn.reshape: {a} elements cannot become {b}")
        return [out]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        if self.shape is None:
            target = concrete_shape(shape_of(self.output) or (),
                                    bind_symbols(shape_of(self.input), x.shape))
            if target.count(-1) > 1:
                raise ShapeError(f"nn.reshape: cannot resolve {shape_of(self.output)} at run time")
            return [x.reshape(target)]
        target = resolve_reshape(x.shape, [int(d) for d in inputs[1]], bool(self.prop("allowzero")))
        return [x.reshape(target)]


@irdl_op_definition
class ShapeOfOp(NNOp):
    """The dims `start:end` of a tensor's shape as a 1-D i64 tensor (ONNX Shape)."""

    name = "nn.shape_of"
    input = operand_def()
    start = opt_prop_def(IntegerAttr)
    end = opt_prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def dims(self) -> tuple:
        shape = self.operand_shape(0)
        start, end = self.prop("start", 0), self.prop("end", len(shape))
        return shape[slice(start, end)]

    def infer(self) -> list[Attribute]:
        return [tensor_type([len(self.dims())], i64)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.array(inputs[0].shape[slice(self.prop("start", 0), self.prop("end"))], np.int64)]


# -- permutations, slices, joins ------------------------------------------------------------------

@irdl_op_definition
class TransposeOp(NNOp):
    """Dims permuted: result dim i is input dim perm[i]."""

    name = "nn.transpose"
    input = operand_def()
    perm = prop_def(DenseArrayBase)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        perm = self.prop("perm")
        if sorted(perm) != list(range(len(shape))):
            raise ShapeError(f"nn.transpose: perm {perm} is not a permutation of rank {len(shape)}")
        return [like(self.input, [shape[p] for p in perm])]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.ascontiguousarray(np.transpose(inputs[0], self.prop("perm")))]


def slice_bounds(start: int, end: int, step: int, dim: int) -> tuple[int, int]:
    """ONNX Slice's clamping of one axis: negative starts/ends count from the end; the result
    lies in [0, dim] for positive steps and [-1, dim - 1] for negative ones."""
    if step == 0:
        raise ShapeError("nn.slice: a step must not be 0")
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)


def slice_length(start: int, end: int, step: int) -> int:
    """Number of elements of a clamped slice."""
    if step > 0:
        return max(0, -(-(end - start) // step))
    return max(0, -(-(start - end) // -step))


@irdl_op_definition
class SliceOp(NNOp):
    """`input[starts:ends:steps]` with one entry per input dim, in ONNX's terms (negative values
    count from the end, then clamp; |value| >= 2^62 is unbounded). Legalization stores static
    dims clamped to [0, dim], writing "through index 0 backwards" as -(dim + 1)."""

    name = "nn.slice"
    input = operand_def()
    starts = prop_def(DenseArrayBase)
    ends = prop_def(DenseArrayBase)
    steps = prop_def(DenseArrayBase)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        rank = len(shape)
        starts = _ints("starts", self.prop("starts"), rank, self.name)
        ends = _ints("ends", self.prop("ends"), rank, self.name)
        steps = _ints("steps", self.prop("steps"), rank, self.name)
        out: list[Dim] = []
        for d, s, e, st in zip(shape, starts, ends, steps, strict=True):
            if st == 0:
                raise ShapeError("nn.slice: a step must not be 0")
            if isinstance(d, int):
                out.append(slice_length(*slice_bounds(s, e, st, d), st))
            elif (st == 1 and s == 0 and e >= BIG) or (st == -1 and s >= BIG and e <= -BIG):
                out.append(d)
            else:
                out.append(UNKNOWN)
        return [like(self.input, out)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        index = []
        for d, s, e, st in zip(x.shape, self.prop("starts"), self.prop("ends"),
                               self.prop("steps"), strict=True):
            s, e = slice_bounds(int(s), int(e), int(st), d)
            index.append(slice(s, None if e < 0 else e, int(st)))
        return [np.ascontiguousarray(x[tuple(index)])]


@irdl_op_definition
class ConcatOp(NNOp):
    """Operands joined along `axis` (all other dims agree)."""

    name = "nn.concat"
    inputs = var_operand_def()
    axis = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$inputs attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        if not self.inputs:
            raise ShapeError("nn.concat: needs at least one operand")
        shapes = [self.operand_shape(i) for i in range(len(self.inputs))]
        rank = len(shapes[0])
        element = element_type_of(self.inputs[0])
        for i, s in enumerate(shapes):
            if len(s) != rank:
                raise ShapeError(f"nn.concat: operand #{i} has rank {len(s)}, expected {rank}")
            if element_type_of(self.inputs[i]) != element:
                raise ShapeError(f"nn.concat: operand #{i} has another element type")
        axis = normalize_axis(self.prop("axis"), rank, self.name)
        out: list[Dim] = []
        for k in range(rank):
            dims = [s[k] for s in shapes]
            if k == axis:
                static = sum(d for d in dims if isinstance(d, int))
                symbols = [d for d in dims if isinstance(d, str)]
                if not symbols:
                    out.append(static)
                elif len(symbols) == 1 and static == 0:
                    out.append(symbols[0])
                else:
                    out.append(UNKNOWN)
                continue
            ints = {d for d in dims if isinstance(d, int)}
            if len(ints) > 1:
                raise ShapeError(f"nn.concat: dim {k} differs between operands: {sorted(ints)}")
            out.append(ints.pop() if ints else (dims[0] if len(set(dims)) == 1 else UNKNOWN))
        return [like(self.inputs[0], out)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.concatenate(inputs, axis=self.prop("axis"))]


# -- gathers --------------------------------------------------------------------------------------

def _fix_indices(indices: np.ndarray, dim: int, op: str) -> np.ndarray:
    indices = np.asarray(indices).astype(np.int64)
    if indices.size and (indices.min() < -dim or indices.max() >= dim):
        raise ShapeError(f"{op}: an index is out of range for a dim of {dim}")
    return np.where(indices < 0, indices + dim, indices)


@irdl_op_definition
class GatherOp(NNOp):
    """`data` indexed along `axis` by `indices` (negative indices count from the end)."""

    name = "nn.gather"
    data = operand_def()
    indices = operand_def()
    axis = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$data `,` $indices attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        data, indices = self.operand_shape(0), self.operand_shape(1)
        axis = normalize_axis(self.prop("axis"), len(data), self.name)
        return [like(self.data, data[:axis] + indices + data[axis + 1:])]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        data, indices = inputs
        axis = normalize_axis(self.prop("axis"), data.ndim, self.name)
        return [np.take(data, _fix_indices(indices, data.shape[axis], self.name), axis=axis)]


@irdl_op_definition
class GatherElementsOp(NNOp):
    """out[i][j][k] = data[index][j][k] where index = indices[i][j][k] (for axis 0), etc."""

    name = "nn.gather_elements"
    data = operand_def()
    indices = operand_def()
    axis = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$data `,` $indices attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        data, indices = self.operand_shape(0), self.operand_shape(1)
        if len(data) != len(indices):
            raise ShapeError(f"{self.name}: data has rank {len(data)}, indices {len(indices)}")
        normalize_axis(self.prop("axis"), len(data), self.name)
        return [like(self.data, indices)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        data, indices = inputs
        axis = normalize_axis(self.prop("axis"), data.ndim, self.name)
        idx = _fix_indices(indices, data.shape[axis], self.name)
        return [np.take_along_axis(data, idx, axis=axis)]


# -- broadcasts and repeats ------------------------------------------------------------------------

@irdl_op_definition
class ExpandOp(NNOp):
    """`input` broadcast (numpy rules, both ways) with a target shape: the result type when there
    is no `shape` operand, else the run-time 1-D `shape` operand."""

    name = "nn.expand"
    input = operand_def()
    shape = opt_operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input (`,` $shape^)? attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        out = self.output.type
        if element_type_of(out) != element_type_of(self.input):
            raise ShapeError("nn.expand: the element type must not change")
        shape = self.operand_shape(0)
        if self.shape is not None:
            n = static_shape(self.shape)
            if n is None or len(n) != 1:
                raise ShapeError("nn.expand: the shape operand must be 1-D of static length")
            rank = max(n[0], len(shape))
            declared = shape_of(out)
            if declared is None or len(declared) != rank:
                return [like(self.input, [UNKNOWN] * rank)]
            return [out]
        target = shape_of(out) or ()
        result = broadcast_shapes(shape, target, op=self.name)
        if len(result) != len(target) or any(
                isinstance(a, int) and isinstance(b, int) and a != b
                for a, b in zip(result, target, strict=True)):
            raise ShapeError(f"nn.expand: {list(shape)} does not broadcast to {list(target)}")
        return [out]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        if self.shape is not None:
            target = [int(d) for d in inputs[1]]
        else:
            target = concrete_shape(shape_of(self.output) or (),
                                    bind_symbols(shape_of(self.input), x.shape))
            target = [1 if d < 0 else d for d in target]  # unknown: taken from the input
        shape = np.broadcast_shapes(x.shape, tuple(target))
        return [np.ascontiguousarray(np.broadcast_to(x, shape))]


@irdl_op_definition
class TileOp(NNOp):
    """`input` repeated `repeats[i]` times along each dim i."""

    name = "nn.tile"
    input = operand_def()
    repeats = prop_def(DenseArrayBase)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        repeats = _ints("repeats", self.prop("repeats"), len(shape), self.name)
        if any(r < 0 for r in repeats):
            raise ShapeError(f"nn.tile: negative repeats {repeats}")
        return [like(self.input, [_scaled(d, r) for d, r in zip(shape, repeats, strict=True)])]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.tile(inputs[0], self.prop("repeats"))]


PAD_MODES = ("constant", "reflect", "edge", "wrap")


@irdl_op_definition
class PadOp(NNOp):
    """`input` padded by `pads` = [begin_0, ..., begin_n, end_0, ..., end_n] (negative crops) with
    `mode` constant (filled with `value`), reflect, edge or wrap."""

    name = "nn.pad"
    input = operand_def()
    pads = prop_def(DenseArrayBase)
    mode = prop_def(StringAttr)
    value = opt_prop_def(FloatAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        rank = len(shape)
        pads = _ints("pads", self.prop("pads"), 2 * rank, self.name)
        if self.prop("mode") not in PAD_MODES:
            raise ShapeError(f"nn.pad: unknown mode '{self.prop('mode')}'")
        out: list[Dim] = []
        for i, d in enumerate(shape):
            extra = pads[i] + pads[rank + i]
            if isinstance(d, int):
                if d + extra < 0:
                    raise ShapeError(f"nn.pad: pads {pads} crop dim {i} below zero")
                if self.prop("mode") != "constant" and d == 0 and extra > 0:
                    raise ShapeError(f"nn.pad: mode {self.prop('mode')} cannot pad an empty dim")
                out.append(d + extra)
            else:
                out.append(d if extra == 0 else UNKNOWN)
        return [like(self.input, out)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        rank = x.ndim
        pads = [int(p) for p in self.prop("pads")]
        crop = tuple(slice(max(-pads[i], 0), x.shape[i] - max(-pads[rank + i], 0))
                     for i in range(rank))
        x = x[crop]
        width = [(max(pads[i], 0), max(pads[rank + i], 0)) for i in range(rank)]
        mode = self.prop("mode")
        if mode == "constant":
            value = np.array(self.prop("value", 0.0)).astype(x.dtype)
            return [np.pad(x, width, mode="constant", constant_values=value)]
        return [np.pad(x, width, mode=mode)]


# -- resize ---------------------------------------------------------------------------------------

def _nearest_weights(ratio: np.ndarray, rule: str) -> np.ndarray:
    """Weights of the two neighbours [floor, floor + 1] of each source coordinate."""
    if rule == "round_prefer_floor":
        up = ratio > 0.5
    elif rule == "round_prefer_ceil":
        up = ratio >= 0.5
    elif rule == "floor":
        up = np.zeros_like(ratio, dtype=bool)
    elif rule == "ceil":
        up = ratio > 0
    else:
        raise ShapeError(f"nn.resize: unknown nearest_mode '{rule}'")
    return np.stack([~up, up], axis=-1).astype(np.float64)


def _cubic_kernel(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _source_coords(mode: str, out_len: int, in_len: int, scale: float,
                   roi: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Source coordinate of each output index along one axis (and where it extrapolates)."""
    y = np.arange(out_len, dtype=np.float64)
    scaled_len = scale * in_len
    outside = None
    if mode == "align_corners":
        x = np.zeros(out_len) if scaled_len == 1 else y * (in_len - 1) / (scaled_len - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        lo, hi = roi if roi is not None else (0.0, 1.0)
        if scaled_len == 1:
            x = np.full(out_len, (hi - lo) * (in_len - 1) / 2)
        else:
            x = y * (hi - lo) * (in_len - 1) / (scaled_len - 1)
        x = x + lo * (in_len - 1)
        outside = (x < 0) | (x > in_len - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out_len, -0.5) if scaled_len == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / scaled_len)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        raise ShapeError(f"nn.resize: unknown coordinate_transformation_mode '{mode}'")
    return x, outside


def _resize_axis(data: np.ndarray, axis: int, out_len: int, scale: float, op: ResizeOp,
                 roi: tuple[float, float] | None) -> np.ndarray:
    in_len = data.shape[axis]
    if out_len == 0 or in_len == 0:
        shape = list(data.shape)
        shape[axis] = out_len
        return np.zeros(shape, data.dtype)
    x, outside = _source_coords(op.prop("coordinate_transformation_mode", "half_pixel"),
                                out_len, in_len, scale, roi)
    base = np.floor(x)
    ratio = x - base
    base = base.astype(np.int64)
    mode = op.prop("mode", "nearest")
    antialias = bool(op.prop("antialias", False)) and scale < 1
    if mode == "nearest":
        weights = _nearest_weights(ratio, op.prop("nearest_mode", "round_prefer_floor"))
        offsets = np.array([0, 1])
    elif mode in ("linear", "cubic"):
        half = 1 if mode == "linear" else 2  # the kernel's support radius
        s = min(scale, 1.0) if antialias else 1.0
        first = int(np.floor(-half / s)) + 1
        offsets = np.arange(first, 1 - first + 1) if antialias else np.arange(1 - half, half + 1)
        dist = (offsets[None, :] - ratio[:, None]) * s
        if mode == "linear":
            weights = np.clip(1 - np.abs(dist), 0, None)
        else:
            weights = _cubic_kernel(dist, op.prop("cubic_coeff_a", -0.75))
        if antialias:
            weights = weights / weights.sum(axis=1, keepdims=True)
    else:
        raise ShapeError(f"nn.resize: unknown mode '{mode}'")
    index = base[:, None] + offsets[None, :]
    if op.prop("exclude_outside", False):
        weights = np.where((index < 0) | (index >= in_len), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    gathered = np.take(data, np.clip(index, 0, in_len - 1), axis=axis)
    w_shape = (1,) * axis + weights.shape + (1,) * (data.ndim - axis - 1)
    result = (gathered * weights.reshape(w_shape)).sum(axis=axis + 1)
    if outside is not None and outside.any():
        m_shape = (1,) * axis + (out_len,) + (1,) * (data.ndim - axis - 1)
        result = np.where(outside.reshape(m_shape), op.prop("extrapolation_value", 0.0), result)
    return result


RESIZE_MODES = ("nearest", "linear", "cubic")


@irdl_op_definition
class ResizeOp(NNOp):
    """Interpolated resize (ONNX Resize): one `scales` entry per dim; the output size is the
    result type (`sizes`, -1 where not static, when given; else floor(dim * scale))."""

    name = "nn.resize"
    input = operand_def()
    mode = prop_def(StringAttr)
    coordinate_transformation_mode = opt_prop_def(StringAttr)
    nearest_mode = opt_prop_def(StringAttr)
    cubic_coeff_a = opt_prop_def(FloatAttr)
    exclude_outside = opt_prop_def(IntegerAttr)
    extrapolation_value = opt_prop_def(FloatAttr)
    antialias = opt_prop_def(IntegerAttr)
    scales = prop_def(DenseArrayBase)
    sizes = opt_prop_def(DenseArrayBase)
    roi = opt_prop_def(DenseArrayBase)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        rank = len(shape)
        if self.prop("mode") not in RESIZE_MODES:
            raise ShapeError(f"nn.resize: unknown mode '{self.prop('mode')}'")
        scales = [float(s) for s in self.prop("scales")]
        if len(scales) != rank:
            raise ShapeError(f"nn.resize: {len(scales)} scales for rank {rank}")
        if any(s <= 0 for s in scales):
            raise ShapeError(f"nn.resize: scales must be positive, got {scales}")
        roi = self.prop("roi")
        if roi is not None and len(roi) != 2 * rank:
            raise ShapeError(f"nn.resize: roi has {len(roi)} entries for rank {rank}")
        sizes = self.prop("sizes")
        if sizes is not None:
            sizes = _ints("sizes", sizes, rank, self.name)
        out: list[Dim] = []
        for i, (d, s) in enumerate(zip(shape, scales, strict=True)):
            if sizes is not None and sizes[i] >= 0:
                out.append(sizes[i])
            elif isinstance(d, int):
                out.append(int(math.floor(d * s)))
            else:
                out.append(d if s == 1 else UNKNOWN)
        return [like(self.input, out)]

    def output_sizes(self, in_shape: Sequence[int]) -> list[int]:
        sizes = self.prop("sizes") or [-1] * len(in_shape)
        return [int(n) if n >= 0 else int(math.floor(d * s))
                for d, s, n in zip(in_shape, self.prop("scales"), sizes, strict=True)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        rank = x.ndim
        scales = [float(s) for s in self.prop("scales")]
        sizes = self.output_sizes(x.shape)
        roi = self.prop("roi")
        result = x.astype(np.float64)
        for axis in range(rank):
            axis_roi = None if roi is None else (float(roi[axis]), float(roi[rank + axis]))
            trivial_roi = axis_roi is None or (math.isclose(axis_roi[0], 0.0)
                                               and math.isclose(axis_roi[1], 1.0))
            if math.isclose(scales[axis], 1.0) and sizes[axis] == x.shape[axis] and trivial_roi:
                continue
            result = _resize_axis(result, axis, sizes[axis], scales[axis], self, axis_roi)
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            result = np.clip(np.round(result), info.min, info.max)
        return [result.astype(x.dtype)]


# -- generators and triangular/cumulative ops ---------------------------------------------------

@irdl_op_definition
class RangeOp(NNOp):
    """`start, start + delta, ...` up to (excluding) `limit`; operands are scalars. The length is
    only known when the operands are (folding makes the op a constant then)."""

    name = "nn.range"
    start = operand_def()
    limit = operand_def()
    delta = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$start `,` $limit `,` $delta attr-dict `:` functional-type(operands, results)"
    )

    def infer(self) -> list[Attribute]:
        element = element_type_of(self.start)
        for i, name in enumerate(("start", "limit", "delta")):
            shape = self.operand_shape(i)
            if len(shape) > 1 or (shape and shape[0] not in (1, UNKNOWN)):
                raise ShapeError(f"nn.range: {name} must be a scalar, got shape {list(shape)}")
            if element_type_of(self.operands[i]) != element:
                raise ShapeError(f"nn.range: {name} has another element type than start")
        declared = shape_of(self.output)
        if declared is not None and len(declared) == 1:
            return [tensor_type(declared, element)]
        return [tensor_type([UNKNOWN], element)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return [range_values(*(np.asarray(v).reshape(()) for v in inputs))]


def range_values(start: np.ndarray, limit: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """ONNX Range: max(ceil((limit - start) / delta), 0) elements start + i * delta."""
    dtype = np.asarray(start).dtype
    if delta == 0:
        raise ShapeError("nn.range: delta must not be 0")
    return np.arange(start, limit, delta).astype(dtype)


@irdl_op_definition
class TriluOp(NNOp):
    """Upper (`upper`) or lower triangle of the last two dims from diagonal `k`; rest zero."""

    name = "nn.trilu"
    input = operand_def()
    upper = prop_def(IntegerAttr)
    k = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        if len(self.operand_shape(0)) < 2:
            raise ShapeError("nn.trilu: the input must have rank 2 or more")
        return [like(self.input)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        fn = np.triu if self.prop("upper") else np.tril
        return [fn(inputs[0], self.prop("k"))]


@irdl_op_definition
class CumSumOp(NNOp):
    """Running sum along `axis`; `exclusive` leaves the element itself out, `reverse` runs from
    the end."""

    name = "nn.cumsum"
    input = operand_def()
    axis = prop_def(IntegerAttr)
    exclusive = prop_def(IntegerAttr)
    reverse = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        normalize_axis(self.prop("axis"), len(self.operand_shape(0)), self.name)
        return [like(self.input)]

    def evaluate(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        axis = normalize_axis(self.prop("axis"), x.ndim, self.name)
        if self.prop("reverse"):
            x = np.flip(x, axis)
        out = np.cumsum(x, axis=axis, dtype=x.dtype)
        if self.prop("exclusive"):  # shifted by one: [0, x0, x0 + x1, ...]
            zero = np.zeros_like(np.take(out, [0], axis=axis))
            out = np.concatenate([zero, np.delete(out, -1, axis=axis)], axis=axis) \
                if x.shape[axis] else out
        if self.prop("reverse"):
            out = np.flip(out, axis)
        return [np.ascontiguousarray(out)]


OPS = [ReshapeOp, ShapeOfOp, TransposeOp, SliceOp, ConcatOp, GatherOp, GatherElementsOp,
       ExpandOp, TileOp, PadOp, ResizeOp, RangeOp, TriluOp, CumSumOp]
