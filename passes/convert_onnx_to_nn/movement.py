"""Legalizers of ONNX's data-movement operators: reshapes, transposes, slices, joins, gathers, pads,
resizes, constants and shape queries."""

from __future__ import annotations

import numpy as np
from xdsl.dialects.builtin import UnitAttr, i64
from xdsl.ir import Attribute, SSAValue

from ember.dialects.dtypes import element_type_from_numpy
from ember.dialects.nn.base import (
    broadcast_shapes,
    dim_product,
    dim_quotient,
    like,
    normalize_axis,
)
from ember.dialects.nn.dynamic_params import segments
from ember.dialects.nn.elementwise import FillOp, scalar_attr
from ember.dialects.nn.kv_cache import TensorScatterOp
from ember.dialects.nn.movement import (
    ConcatOp,
    CumSumOp,
    ExpandOp,
    GatherElementsOp,
    GatherNDOp,
    GatherOp,
    PadOp,
    RangeOp,
    ReshapeOp,
    ResizeOp,
    ScatterElementsOp,
    ScatterNDOp,
    ShapeOfOp,
    SliceOp,
    SqueezeOp,
    TileOp,
    TransposeOp,
    TriluOp,
    UnsqueezeOp,
    full_pads,
    range_values,
    resize_params,
    resolve_reshape,
    slice_params,
    squeeze_dims,
    unsqueeze_dims,
)
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import (
    element_type_of,
    is_static,
    shape_of,
    static_shape,
    tensor_type,
)
from ember.errors import ShapeError
from ember.passes.convert_onnx_to_nn.builder import NNBuilder, declared_type, with_declared
from ember.passes.convert_onnx_to_nn.registry import legalizes


def _run_time(b: NNBuilder, op: OnnxOp, *names: str) -> bool:
    """Whether any of the named ONNX inputs is given but not a compile-time constant."""
    return any(op.onnx_input(n) is not None and b.const(op.onnx_input(n)) is None for n in names)


def _shape_error(b: NNBuilder, e: ShapeError):
    return b.unsupported(str(e).split(": ", 1)[-1] if str(e).startswith("nn.") else str(e))


def _axis(b: NNBuilder, axis: int, rank: int) -> int:
    try:
        return normalize_axis(axis, rank, b.node.ONNX_TYPE)
    except ShapeError as e:
        raise b.unsupported(str(e)) from None


# -- reshapes -----------------------------------------------------------------------------------

@legalizes("Reshape")
def reshape(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.onnx_input("data")
    allowzero = bool(op.attr("allowzero", 0))
    if op.has_attr("shape"):  # opset 1-4
        target = [int(d) for d in op.attr("shape")]
    else:
        shape = op.onnx_input("shape")
        array = b.const(shape)
        if array is None:
            n = static_shape(shape)
            if n is None or len(n) != 1:
                raise b.unsupported("a computed shape must be 1-D of static length")
            t = declared_type(op, x, n[0])
            return [b.op(ReshapeOp, [x, shape], {"allowzero": allowzero or None},
                         result_types=[t] if t else None).results[0]]
        target = [int(d) for d in np.asarray(array).reshape(-1)]
    try:
        dims = resolve_reshape(b.shape(x), target, allowzero)
    except ShapeError as e:
        raise b.unsupported(str(e)) from None
    return [b.reshape(x, dims)]


@legalizes("Flatten")
def flatten(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    shape = b.shape(x)
    axis = op.attr("axis", 1)
    if not -len(shape) <= axis <= len(shape):
        raise b.unsupported(f"axis {axis} is out of range for rank {len(shape)}")
    if axis < 0:
        axis += len(shape)
    return [b.reshape(x, [dim_product(shape[:axis]), dim_product(shape[axis:])])]


@legalizes("Squeeze")
def squeeze(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    shape = b.shape(x)
    if not op.has_attr("axes") and _run_time(b, op, "axes"):
        axes_value = op.onnx_input("axes")
        n = static_shape(axes_value)
        if n is None or len(n) != 1:
            raise b.unsupported("run-time axes must be a 1-D tensor of static length")
        hint = declared_type(op, x, len(shape) - n[0])
        return [with_declared(b, SqueezeOp, [x, axes_value], {}, hint)]
    axes = b.ints("axes")
    if axes is None:
        if not is_static(shape):
            raise b.unsupported("Squeeze without axes needs static dims (which dims are 1?)")
        axes = [i for i, d in enumerate(shape) if d == 1]
    try:
        return [b.reshape(x, squeeze_dims(shape, axes))]
    except ShapeError as e:
        raise _shape_error(b, e) from None


@legalizes("Unsqueeze")
def unsqueeze(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    shape = list(b.shape(x))
    if not op.has_attr("axes") and _run_time(b, op, "axes"):
        axes_value = op.onnx_input("axes")
        n = static_shape(axes_value)
        if n is None or len(n) != 1:
            raise b.unsupported("run-time axes must be a 1-D tensor of static length")
        hint = declared_type(op, x, len(shape) + n[0])
        return [with_declared(b, UnsqueezeOp, [x, axes_value], {}, hint)]
    axes = b.ints("axes")
    if axes is None:
        raise b.unsupported("Unsqueeze needs axes")
    try:
        return [b.reshape(x, unsqueeze_dims(shape, axes))]
    except ShapeError as e:
        raise _shape_error(b, e) from None


# -- transposes, DepthToSpace -------------------------------------------------------------------

def _transpose(b: NNBuilder, x: SSAValue, perm: list[int]) -> SSAValue:
    if perm == list(range(len(perm))):
        return x
    return b.value(TransposeOp, [x], perm=perm)


@legalizes("Transpose")
def transpose(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    rank = len(b.shape(x))
    perm = op.attr("perm")
    perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
    perm = [p + rank if p < 0 else p for p in perm]
    return [b.value(TransposeOp, [x], perm=perm)]


def _nchw(b: NNBuilder, x: SSAValue) -> tuple:
    shape = b.shape(x)
    if len(shape) != 4:
        raise b.unsupported(f"the input must be 4-D, got rank {len(shape)}")
    return shape


@legalizes("DepthToSpace")
def depth_to_space(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    n, c, h, w = _nchw(b, x)
    k = int(op.attr("blocksize"))
    c2 = dim_quotient(c, k * k)
    if isinstance(c, int) and c % (k * k):
        raise b.unsupported(f"channels {c} are not divisible by blocksize^2 = {k * k}")
    if op.attr("mode", "DCR") == "DCR":
        y = b.reshape(x, [n, k, k, c2, h, w])
        y = _transpose(b, y, [0, 3, 4, 1, 5, 2])
    else:
        y = b.reshape(x, [n, c2, k, k, h, w])
        y = _transpose(b, y, [0, 1, 4, 2, 5, 3])
    return [b.reshape(y, [n, c2, dim_product([h, k]), dim_product([w, k])])]


@legalizes("SpaceToDepth")
def space_to_depth(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    n, c, h, w = _nchw(b, x)
    k = int(op.attr("blocksize"))
    for d in (h, w):
        if isinstance(d, int) and d % k:
            raise b.unsupported(f"spatial dim {d} is not divisible by blocksize {k}")
    h2, w2 = dim_quotient(h, k), dim_quotient(w, k)
    y = b.reshape(x, [n, c, h2, k, w2, k])
    crd = op.attr("mode", "DCR") == "CRD"
    y = _transpose(b, y, [0, 1, 3, 5, 2, 4] if crd else [0, 3, 5, 1, 2, 4])
    return [b.reshape(y, [n, dim_product([c, k * k]), h2, w2])]


# -- slices and joins ---------------------------------------------------------------------------

def _slice(b: NNBuilder, x: SSAValue, starts: list[int], ends: list[int],
           axes: list[int] | None = None, steps: list[int] | None = None) -> SSAValue:
    """x sliced along the given axes (ONNX values); other axes whole."""
    shape = b.shape(x)
    try:
        s_all, e_all, st_all = slice_params(shape, starts, ends, axes, steps)
    except ShapeError as e:
        raise _shape_error(b, e) from None
    if all(isinstance(d, int) and s == 0 and e == d and st == 1
           for d, s, e, st in zip(shape, s_all, e_all, st_all, strict=True)):
        return x
    return b.value(SliceOp, [x], starts=s_all, ends=e_all, steps=st_all)


_SLICE_INPUTS = ("starts", "ends", "axes", "steps")


@legalizes("Slice")
def slice_(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    rank = len(b.shape(x))
    if not op.has_attr("starts") and _run_time(b, op, *_SLICE_INPUTS):
        values = [op.onnx_input(n) for n in _SLICE_INPUTS]
        if values[0] is None or values[1] is None:
            raise b.unsupported("starts and ends must be given")
        operands, props = segments(x, *values)
        return [with_declared(b, SliceOp, operands, props, declared_type(op, x, rank))]
    starts, ends = b.ints("starts"), b.ints("ends")
    if starts is None or ends is None or len(starts) != len(ends):
        raise b.unsupported("starts and ends must be given, of equal length")
    return [_slice(b, x, starts, ends, b.ints("axes"), b.ints("steps"))]


@legalizes("Split")
def split(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    shape = b.shape(x)
    axis = _axis(b, op.attr("axis", 0), len(shape))
    count = len(op.results)
    if not op.has_attr("split") and _run_time(b, op, "split"):
        return _split_at_run_time(b, op, x, axis)
    sizes = b.ints("split")
    d = shape[axis]
    if sizes is None:
        if not isinstance(d, int):
            raise b.unsupported(f"splitting symbolic dim '{d}' needs static split sizes")
        n = int(op.attr("num_outputs", count) or count)
        chunk = -(-d // n)
        sizes = [min(chunk, max(d - i * chunk, 0)) for i in range(n)]
        if not op.has_attr("num_outputs") and d % n:
            raise b.unsupported(f"dim {d} does not split evenly into {n} outputs")
    if len(sizes) != count:
        raise b.unsupported(f"{len(sizes)} split sizes for {count} outputs")
    if isinstance(d, int) and sum(sizes) != d:
        raise b.unsupported(f"split sizes {sizes} do not add up to dim {d}")
    results, start = [], 0
    for size in sizes:
        results.append(_slice(b, x, [start], [start + size], [axis], [1]))
        start += size
    return results


def _split_at_run_time(b: NNBuilder, op: OnnxOp, x: SSAValue, axis: int) -> list[SSAValue]:
    """Split by run-time sizes: output i is x[ends[i] - sizes[i] : ends[i]] along `axis`, with
    the offsets a running sum of the sizes (all of it folds once the sizes are constants)."""
    sizes = op.onnx_input("split")
    count = len(op.results)
    n = static_shape(sizes)
    if n is None or len(n) != 1:
        raise b.unsupported("run-time split sizes must be a 1-D tensor of static length")
    if n[0] != count:
        raise b.unsupported(f"{n[0]} split sizes for {count} outputs")
    sizes = b.cast(sizes, element_type_from_numpy(np.dtype(np.int64)))
    starts = b.value(CumSumOp, [sizes], axis=0, exclusive=True, reverse=False)
    ends = b.value(CumSumOp, [sizes], axis=0, exclusive=False, reverse=False)
    axes = b.constant(np.array([axis], np.int64))
    rank = len(b.shape(x))
    results = []
    for i in range(count):
        one = {"starts": [i], "ends": [i + 1], "steps": [1]}
        operands, props = segments(x, b.value(SliceOp, [starts], **one),
                                   b.value(SliceOp, [ends], **one), axes, None)
        results.append(with_declared(b, SliceOp, operands, props,
                                     declared_type(op, x, rank, i)))
    return results


@legalizes("Concat")
def concat(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    values = list(op.operands)
    if len(values) == 1:
        return [values[0]]
    return [b.value(ConcatOp, values, axis=int(op.attr("axis", 0)))]


# -- gathers, expand, tile, pad -----------------------------------------------------------------

@legalizes("Gather")
def gather(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    data, indices = op.operands
    axis = _axis(b, op.attr("axis", 0), len(b.shape(data)))
    known = _shape_dims(b, data)
    index = b.const(indices)
    if known is not None and index is not None:  # dims picked from a shape: static ones fold
        try:
            picked = np.take(np.array(known, dtype=object), np.asarray(index))
        except IndexError:
            raise b.unsupported(f"indices {np.asarray(index).tolist()} are out of range") from None
        if all(isinstance(d, int) for d in np.ravel(picked)):
            return [b.constant(np.asarray(picked, dtype=np.int64))]
    return [b.value(GatherOp, [data, indices], axis=axis)]


def _shape_dims(b: NNBuilder, value: SSAValue) -> tuple | None:
    """The dims (ints and symbols) a `nn.shape_of` result holds, else None."""
    owner = value.owner
    return owner.dims() if isinstance(owner, ShapeOfOp) else None


@legalizes("GatherElements")
def gather_elements(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    data, indices = op.operands
    axis = _axis(b, op.attr("axis", 0), len(b.shape(data)))
    return [b.value(GatherElementsOp, [data, indices], axis=axis)]


@legalizes("ScatterElements", "Scatter")
def scatter_elements(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """ScatterElements (and Scatter, its opset 9-10 name): `reduction` from opset 16."""
    data, indices, updates = op.operands
    axis = _axis(b, op.attr("axis", 0), len(b.shape(data)))
    return [b.value(ScatterElementsOp, [data, indices, updates], axis=axis,
                    reduction=str(op.attr("reduction", "none")))]


@legalizes("ScatterND")
def scatter_nd(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    data, indices, updates = op.operands
    return [b.value(ScatterNDOp, [data, indices, updates],
                    reduction=str(op.attr("reduction", "none")))]


@legalizes("Col2Im")
def col2im(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """Col2Im: image_shape and block_shape are constants (properties), or read when the plan
    runs (the image shape is then the declared result's, checked at run time)."""
    from ember.dialects.nn.col2im import Col2ImOp
    from ember.dialects.nn.dynamic_params import segments

    x, image_in, block_in = op.operands
    image, block = b.const(image_in), b.const(block_in)
    declared = shape_of(op.results[0].type)
    props: dict = {}
    if image is not None:
        props["image_shape"] = [int(v) for v in np.asarray(image).reshape(-1)]
    elif declared is not None and len(declared) >= 3 and all(isinstance(d, int)
                                                              for d in declared[2:]):
        props["image_shape"] = list(declared[2:])
    else:
        raise b.unsupported("image_shape is a run-time input and the result's shape is not "
                            "declared")
    n = len(props["image_shape"])
    if block is not None:
        props["block_shape"] = [int(v) for v in np.asarray(block).reshape(-1)]
    props.update(strides=[int(v) for v in op.attr("strides") or [1] * n],
                 pads=[int(v) for v in op.attr("pads") or [0] * (2 * n)],
                 dilations=[int(v) for v in op.attr("dilations") or [1] * n])
    operands, segment = segments(x, None if image is not None else b.cast(image_in, i64),
                                 None if block is not None else b.cast(block_in, i64))
    t = declared_type(op, x, n + 2)
    return [b.op(Col2ImOp, operands, {**props, **segment},
                 result_types=[t] if block is None and t is not None else None).results[0]]


@legalizes("CenterCropPad")
def center_crop_pad(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """CenterCropPad as a slice (the centred crop) and a pad (centred, zeros) to the target
    shape: the shape input where it is a constant, else the declared result's, which the shape
    input must then equal when the plan runs (an nn.assert)."""
    x, shape_in = op.operands
    shape = list(b.shape(x))
    rank = len(shape)
    axes = [normalize_axis(int(a), rank, "CenterCropPad") for a in op.attr("axes")] \
        if op.has_attr("axes") else list(range(rank))
    value = b.const(shape_in)
    if value is not None:
        targets = [int(v) for v in np.asarray(value).reshape(-1)]
    else:
        declared = shape_of(op.results[0].type)
        if declared is None or len(declared) != rank or not all(
                isinstance(declared[a], int) for a in axes):
            raise b.unsupported("the shape input is computed at run time and the result's "
                                "shape is not declared")
        targets = [int(declared[a]) for a in axes]  # type: ignore[arg-type]
        b.assume_equal(shape_in, targets, "its shape input")
    if len(targets) != len(axes):
        raise b.unsupported(f"{len(targets)} target sizes for the {len(axes)} axes")
    if not all(isinstance(shape[a], int) for a in axes):
        raise b.unsupported(f"the cropped or padded dims of {shape} must be static")
    starts, ends = [0] * rank, list(shape)
    pads = [0] * (2 * rank)
    for a, target in zip(axes, targets, strict=True):
        dim = shape[a]
        if target < dim:
            starts[a] = (dim - target) // 2
            ends[a] = starts[a] + target
        elif target > dim:
            pads[a] = (target - dim) // 2
            pads[rank + a] = target - dim - pads[a]
    y = x
    if starts != [0] * rank or ends != shape:
        y = b.value(SliceOp, [y], starts=starts, ends=ends, steps=[1] * rank)
    if any(pads):
        y = b.value(PadOp, [y], pads=pads, mode="constant", value=0.0)
    return [y]


@legalizes("TensorScatter")
def tensor_scatter(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """The KV-cache update (opset 24): the past cache with the update written at each batch
    sample's write index."""
    past, update = op.operands[0], op.operands[1]
    where = op.onnx_input("write_indices")
    operands = [past, update] + ([b.cast(where, i64)] if where is not None else [])
    return [b.value(TensorScatterOp, operands, axis=int(op.attr("axis", -2)),
                    mode=str(op.attr("mode", "linear")))]


@legalizes("GatherND")
def gather_nd(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    data, indices = op.operands
    return [b.value(GatherNDOp, [data, indices], batch_dims=int(op.attr("batch_dims", 0)))]


@legalizes("Expand")
def expand(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, shape = op.operands
    array = b.const(shape)
    if array is None:
        n = static_shape(shape)
        if n is None or len(n) != 1:
            raise b.unsupported("a computed shape must be 1-D of static length")
        t = declared_type(op, x, max(n[0], len(b.shape(x))))
        return [b.op(ExpandOp, [x, shape], result_types=[t] if t else None).results[0]]
    target = tuple(int(d) for d in np.asarray(array).reshape(-1))
    try:
        out = broadcast_shapes(b.shape(x), target, op="Expand")
    except ShapeError as e:
        raise b.unsupported(str(e)) from None
    if out == b.shape(x):
        return [x]
    return [b.emit(ExpandOp, [x], result_types=[like(x, out)])]


@legalizes("Tile")
def tile(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    if _run_time(b, op, "repeats"):
        repeats = op.onnx_input("repeats")
        return [with_declared(b, TileOp, [x, repeats], {},
                              declared_type(op, x, len(b.shape(x))))]
    repeats = [int(r) for r in np.asarray(b.required_const("repeats")).reshape(-1)]
    return [b.value(TileOp, [x], repeats=repeats)]


@legalizes("Pad")
def pad(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    rank = len(b.shape(x))
    mode = op.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise b.unsupported(f"mode '{mode}' is not supported")
    value_operand = None
    if op.has_attr("pads") or op.has_attr("paddings"):  # opset < 11
        pads = [int(p) for p in op.attr("pads", op.attr("paddings"))]
        value = float(op.attr("value", 0.0))
    else:
        if op.onnx_input("pads") is None:
            raise b.unsupported("pads must be given")
        value = 0.0
        if mode == "constant" and _run_time(b, op, "constant_value"):
            value_operand = op.onnx_input("constant_value")
        else:
            cv = b.const(op.onnx_input("constant_value"))
            if cv is not None and np.asarray(cv).size:
                value = float(np.asarray(cv).reshape(-1)[0])
        if _run_time(b, op, "pads", "axes"):
            operands, props = segments(x, op.onnx_input("pads"), value_operand,
                                       op.onnx_input("axes"))
            props.update(mode=mode, value=value if mode == "constant" and value_operand is None
                         else None)
            return [with_declared(b, PadOp, operands, props, declared_type(op, x, rank))]
        pads = b.ints("pads")
        axes = b.ints("axes") if op.onnx_input("axes") is not None else None
        try:
            pads = full_pads(rank, pads, axes)
        except ShapeError as e:
            raise _shape_error(b, e) from None
    if len(pads) != 2 * rank:
        raise b.unsupported(f"{len(pads)} pads for rank {rank}")
    if not any(pads):
        return [x]
    if value_operand is not None:
        operands, props = segments(x, None, value_operand, None)
        return [b.value(PadOp, operands, pads=pads, mode=mode, **props)]
    return [b.value(PadOp, [x], pads=pads, mode=mode,
                    value=value if mode == "constant" else None)]


# -- resize -------------------------------------------------------------------------------------

def _resize_input(b: NNBuilder, op: OnnxOp, name: str) -> tuple[list[float] | None, bool]:
    """A Resize parameter: its constant values (None if absent or empty) and whether it is
    instead computed at run time."""
    value = op.onnx_input(name)
    if value is None:
        return None, False
    array = b.const(value)
    if array is None:
        return None, static_shape(value) != (0,)
    array = np.asarray(array).reshape(-1)
    return (None if array.size == 0 else [float(v) for v in array]), False


def _resize(b: NNBuilder, op: OnnxOp, x: SSAValue, props: dict, inputs: dict[str, str],
            axes: list[int] | None = None, policy: str = "stretch",
            scales: list[float] | None = None) -> SSAValue:
    """x resized by the ONNX inputs named in `inputs` ("roi"/"scales"/"sizes" -> input name) or
    `scales` given as an attribute; a run-time op when any input that matters is computed at
    run time."""
    if props.get("mode") not in ("nearest", "linear", "cubic"):
        raise b.unsupported(f"mode '{props.get('mode')}' is not supported")
    crop = props.get("coordinate_transformation_mode") == "tf_crop_and_resize"
    got = {k: _resize_input(b, op, n) for k, n in inputs.items() if crop or k != "roi"}
    sizes, roi = got.get("sizes", (None, False))[0], got.get("roi", (None, False))[0]
    scales = scales if scales is not None else got.get("scales", (None, False))[0]
    if any(run_time for _, run_time in got.values()):
        present = {k: op.onnx_input(inputs[k]) for k, (v, run_time) in got.items()
                   if v is not None or run_time}
        operands, seg = segments(x, present.get("roi"), present.get("scales"),
                                 present.get("sizes"))
        dyn_props = {**props, **seg, "axes": axes,
                     "keep_aspect_ratio_policy": None if policy == "stretch" else policy}
        return with_declared(b, ResizeOp, operands, dyn_props,
                             declared_type(op, x, len(b.shape(x))))
    try:
        full_scales, full_sizes, full_roi = resize_params(
            b.shape(x), scales, None if sizes is None else [int(s) for s in sizes], axes, roi,
            policy, crop)
    except ShapeError as e:
        raise _shape_error(b, e) from None
    return b.value(ResizeOp, [x], scales=full_scales, sizes=full_sizes, roi=full_roi, **props)


_RESIZE_INPUTS = {"roi": "roi", "scales": "scales", "sizes": "sizes"}


@legalizes("Resize")
def resize(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    mode = op.attr("mode", "nearest")
    if op.onnx_input("roi") is None and op.onnx_input("sizes") is None and op.SINCE_VERSION < 11:
        props = {"mode": mode, "coordinate_transformation_mode": "asymmetric",
                 "nearest_mode": "floor"}
        return [_resize(b, op, x, props, {"scales": "scales"})]
    props = {
        "mode": mode,
        "coordinate_transformation_mode": op.attr("coordinate_transformation_mode", "half_pixel"),
        "nearest_mode": op.attr("nearest_mode", "round_prefer_floor"),
        "cubic_coeff_a": float(op.attr("cubic_coeff_a", -0.75)),
        "exclude_outside": bool(op.attr("exclude_outside", 0)),
        "extrapolation_value": float(op.attr("extrapolation_value", 0.0)),
        "antialias": bool(op.attr("antialias", 0)) or None,
    }
    axes = [int(a) for a in op.attr("axes")] if op.has_attr("axes") else None
    return [_resize(b, op, x, props, _RESIZE_INPUTS, axes,
                    op.attr("keep_aspect_ratio_policy", "stretch"))]


@legalizes("Upsample")
def upsample(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    mode = op.attr("mode", "nearest")
    props = {"mode": "linear" if mode in ("linear", "bilinear") else mode,
             "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    if op.has_attr("scales"):  # opset 7
        return [_resize(b, op, x, props, {}, scales=[float(s) for s in op.attr("scales")])]
    return [_resize(b, op, x, props, {"scales": "scales"})]


# -- identities and constants -------------------------------------------------------------------

def _fill(b: NNBuilder, like_value: SSAValue, value, element: Attribute) -> SSAValue:
    """A tensor shaped like `like_value` full of `value`."""
    shape = b.shape(like_value)
    props = {"value": scalar_attr(value, element)}
    if is_static(shape):
        return b.op(FillOp, [], props, result_types=[tensor_type(shape, element)]).results[0]
    dims = b.value(ShapeOfOp, [like_value])
    return b.op(FillOp, [dims], props,
                result_types=[tensor_type(shape, element)]).results[0]


@legalizes("Identity")
def identity(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    return [op.operands[0]]


@legalizes("Dropout")
def dropout(b: NNBuilder, op: OnnxOp) -> list[SSAValue | None]:
    x = op.operands[0]
    training = b.required_const("training_mode")
    if training is not None and bool(np.asarray(training).reshape(-1)[0]):
        ratio = b.required_const("ratio")
        ratio = 0.5 if ratio is None else float(np.asarray(ratio).reshape(-1)[0])
        if ratio != 0:
            raise b.unsupported("training_mode=true with a non-zero ratio is random")
    mask = None
    if len(op.results) > 1 and op.results[1].uses:
        mask = _fill(b, x, True, element_type_of(op.results[1]))  # bool since opset 10, T before
    return [x, mask]


def _constant_array(b: NNBuilder, op: OnnxOp) -> np.ndarray:
    if op.has_attr("value"):
        return np.asarray(op.attr("value"))
    if op.has_attr("value_float"):
        return np.array(op.attr("value_float"), np.float32)
    if op.has_attr("value_floats"):
        return np.array(op.attr("value_floats"), np.float32)
    if op.has_attr("value_int"):
        return np.array(op.attr("value_int"), np.int64)
    if op.has_attr("value_ints"):
        return np.array(op.attr("value_ints"), np.int64)
    if op.has_attr("value_string") or op.has_attr("value_strings"):
        raise b.unsupported("string constants are not supported")
    raise b.unsupported("no value given")


@legalizes("Constant")
def constant(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    return [b.constant(_constant_array(b, op))]


@legalizes("ConstantOfShape")
def constant_of_shape(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    shape = op.operands[0]
    value = np.asarray(op.attr("value")) if op.has_attr("value") else np.zeros(1, np.float32)
    if value.size != 1:
        raise b.unsupported("value must hold one element")
    element = element_type_from_numpy(value.dtype)
    props = {"value": scalar_attr(value.reshape(-1)[0].item(), element)}
    array = b.const(shape)
    if array is not None:
        dims = [int(d) for d in np.asarray(array).reshape(-1)]
        return [b.op(FillOp, [], props, result_types=[tensor_type(dims, element)]).results[0]]
    n = static_shape(shape)
    if n is None or len(n) != 1:
        raise b.unsupported("a computed shape must be 1-D of static length")
    t = op.results[0].type
    declared = shape_of(t)
    dims = declared if declared is not None and len(declared) == n[0] else ["?"] * n[0]
    return [b.op(FillOp, [shape], props, result_types=[tensor_type(dims, element)]).results[0]]


@legalizes("Shape")
def shape(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    dims = b.shape(x)
    start, end = op.attr("start", 0), op.attr("end")
    picked = dims[slice(start, end)]
    if is_static(picked):
        return [b.constant(np.array(picked, np.int64))]
    return [b.value(ShapeOfOp, [x], start=start or None, end=end)]


@legalizes("Size")
def size(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    n = dim_product(b.shape(op.operands[0]))
    if not isinstance(n, int):
        raise b.unsupported(f"the size of a tensor with symbolic dims ({n}) is not supported")
    return [b.constant(np.array(n, np.int64))]


@legalizes("Range")
def range_(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    values = list(op.operands)
    arrays = [b.const(v) for v in values]
    if all(a is not None for a in arrays):
        try:
            out = range_values(*(np.asarray(a).reshape(()) for a in arrays))
        except ShapeError as e:
            raise b.unsupported(str(e)) from None
        return [b.constant(out)]
    # run-time bounds: the length is the declared one where ONNX's inference gives a number
    # (fold-constants makes Range(0, n) of a symbolic n a symbolic length instead)
    hint = declared_type(op, values[0], 1)
    static = hint is not None and all(isinstance(d, int) for d in shape_of(hint) or ())
    if not static:
        return [b.value(RangeOp, values)]
    return [with_declared(b, RangeOp, values, {"declared": UnitAttr()}, hint)]


@legalizes("Trilu")
def trilu(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, upper = op.operands[0], bool(op.attr("upper", 1))
    if _run_time(b, op, "k"):
        return [b.value(TriluOp, [x, op.onnx_input("k")], upper=upper)]
    k = b.required_const("k")
    k = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
    return [b.value(TriluOp, [x], upper=upper, k=k)]


@legalizes("CumSum", "CumProd")
def cumsum(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    flags = {"exclusive": bool(op.attr("exclusive", 0)), "reverse": bool(op.attr("reverse", 0))}
    if op.ONNX_TYPE == "CumProd":
        flags["product"] = UnitAttr()
    if _run_time(b, op, "axis"):
        return [b.value(CumSumOp, [x, op.onnx_input("axis")], **flags)]
    axis = int(np.asarray(b.required_const("axis")).reshape(-1)[0])
    axis = _axis(b, axis, len(b.shape(x)))
    return [b.value(CumSumOp, [x], axis=axis, **flags)]



@legalizes("ReverseSequence")
def reverse_sequence(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    from ember.dialects.nn.movement import ReverseSequenceOp

    x, lens = op.onnx_input("input"), op.onnx_input("sequence_lens")
    try:
        return [b.value(ReverseSequenceOp, [x, lens], batch_axis=int(op.attr("batch_axis", 1)),
                        time_axis=int(op.attr("time_axis", 0)))]
    except ShapeError as e:
        raise _shape_error(b, e) from None
