"""Data-movement nn ops: reshape, transpose, slice, concat, gather, pad, resize, shapes, ranges.

Each op computes its result type from its operand types and properties (symbolic dims are kept
where they decide a dim, "?" where they cannot), and `evaluate` gives ONNX's numpy semantics.

Parameters that ONNX may compute at run time (reshape/expand shapes, slice starts/ends/axes/steps,
pad pads/value/axes, tile repeats, resize roi/scales/sizes, squeeze/unsqueeze axes, trilu k,
cumsum axis) can instead be optional operands, in ONNX's own form: the result then keeps its rank
and the dims the value cannot change ("?" elsewhere, or what the declared result type knows), and
`evaluate` reads the value. `static_form(known)` (known: a value per operand, None where unknown)
gives the equivalent op with those parameters as properties once they are known (fold-constants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from xdsl.dialects.builtin import DenseArrayBase, FloatAttr, IntegerAttr, StringAttr, UnitAttr, i64
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
    build,
    dim_product,
    dim_quotient,
    like,
    normalize_axis,
)
from ember.dialects.nn.dynamic_params import (
    SEGMENTED,
    DynamicParams,
    dynamic_format,
    operand_length,
    segments,
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
from ember.runtime.cpu_kernels.common import BIG, known_floats, known_ints
from ember.runtime.cpu_kernels.movement import (
    PAD_MODES,
    RESIZE_MODES,
    SCATTER_REDUCTIONS,
    copy_zero_dims,
    full_pads,
    resize_params,
    slice_bounds,
    slice_length,
    slice_params,
    squeeze_dims,
    unsqueeze_dims,
)
from ember.runtime.cpu_kernels.movement import ints as _ints
from ember.runtime.cpu_kernels.movement import range_values as range_values  # re-exported

# -- helpers -------------------------------------------------------------------------------------

def resolve_reshape(input_shape: tuple, target: list, allowzero: bool = False) -> list:
    """ONNX Reshape's target dims: 0 copies the input dim (unless allowzero), -1 is inferred."""
    out = copy_zero_dims(input_shape, target, allowzero)
    if -1 in out:
        i = out.index(-1)
        known = dim_product([d for j, d in enumerate(out) if j != i])
        out[i] = dim_quotient(dim_product(list(input_shape)), known)
    return out


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
        dims = shape_of(out)
        if dims is not None and dims.count(UNKNOWN) == 1 and a != UNKNOWN:
            # one unknown dim: the input's element count over the others (symbols cancel)
            rest = dim_product([d for d in dims if d != UNKNOWN])
            missing = dim_quotient(a, rest)
            if missing != UNKNOWN:
                return [like(out, [missing if d == UNKNOWN else d for d in dims])]
        return [out]

    def static_form(self, known: list[Any]) -> NNOp | None:
        if self.shape is None or known[1] is None:
            return None
        target = [int(d) if isinstance(d, np.integer) else d
                  for d in np.asarray(known[1]).reshape(-1).tolist()]
        dims = resolve_reshape(shape_of(self.input), target, bool(self.prop("allowzero")))
        return build(ReshapeOp, [self.input], result_types=[like(self.input, dims)])


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


@irdl_op_definition
class SliceOp(DynamicParams, NNOp):
    """`input[starts:ends:steps]` with one entry per input dim, in ONNX's terms (negative values
    count from the end, then clamp; |value| >= 2^62 is unbounded). Legalization stores static
    dims clamped to [0, dim], writing "through index 0 backwards" as -(dim + 1).

    Run-time form: ONNX Slice's `starts`, `ends` and optional `axes`, `steps` as 1-D operands
    (no properties); the dims they may touch are unknown."""

    name = "nn.slice"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_starts", "dyn_ends", "dyn_axes", "dyn_steps")
    input = operand_def()
    dyn_starts = opt_operand_def()
    dyn_ends = opt_operand_def()
    dyn_axes = opt_operand_def()
    dyn_steps = opt_operand_def()
    starts = opt_prop_def(DenseArrayBase)
    ends = opt_prop_def(DenseArrayBase)
    steps = opt_prop_def(DenseArrayBase)
    output = result_def()
    traits = traits_def(Pure())
    irdl_options = SEGMENTED
    assembly_format = dynamic_format(("starts", "dyn_starts"), ("ends", "dyn_ends"),
                                     ("axes", "dyn_axes"), ("steps", "dyn_steps"))

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        rank = len(shape)
        if self.dynamic():
            if any(self.properties.get(n) is not None for n in ("starts", "ends", "steps")):
                raise ShapeError("nn.slice: give starts/ends/steps as properties or as operands, "
                                 "not both")
            if self.dyn_starts is None or self.dyn_ends is None:
                raise ShapeError("nn.slice: run-time slicing needs starts and ends operands")
            n = operand_length(self.dyn_starts)
            if n is not None and n > rank:
                raise ShapeError(f"nn.slice: {n} starts for rank {rank}")
            if self.dyn_axes is None and n is not None:  # the first n axes
                return [self.refined([UNKNOWN] * n + list(shape[n:]))]
            return [self.refined([UNKNOWN] * rank)]
        if self.starts is None or self.ends is None or self.steps is None:
            raise ShapeError("nn.slice: needs starts, ends and steps")
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

    def _params(self, shape: Sequence[Dim], values: dict[str, Any]) -> tuple | None:
        """Per-dim starts/ends/steps from the parameter operands' values (None if unknown)."""
        got = {n: known_ints(values.get(n)) for n in self.DYNAMIC}
        if any(got[n] is None for n in self.DYNAMIC if getattr(self, n) is not None):
            return None
        return slice_params(shape, got["dyn_starts"], got["dyn_ends"], got["dyn_axes"],
                            got["dyn_steps"])

    def static_form(self, known: list[Any]) -> NNOp | None:
        if not self.dynamic():
            return None
        params = self._params(self.operand_shape(0), self.by_operand(known))
        if params is None:
            return None
        starts, ends, steps = params
        return build(SliceOp, [self.input], {"starts": starts, "ends": ends, "steps": steps})


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


# -- gathers --------------------------------------------------------------------------------------


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


@irdl_op_definition
class ScatterElementsOp(NNOp):
    """`data` with `updates` written (or combined by `reduction`) at `indices` along `axis`:
    out[..., indices[i, j, ...], ...] = updates[i, j, ...] (ONNX ScatterElements)."""

    name = "nn.scatter_elements"
    data = operand_def()
    indices = operand_def()
    updates = operand_def()
    axis = prop_def(IntegerAttr)
    reduction = prop_def(StringAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = ("$data `,` $indices `,` $updates attr-dict `:` "
                       "functional-type(operands, results)")

    def infer(self) -> list[Attribute]:
        data, indices, updates = (self.operand_shape(i) for i in range(3))
        if len(indices) != len(data) or list(indices) != list(updates):
            raise ShapeError(f"{self.name}: indices {list(indices)} and updates "
                             f"{list(updates)} must match and have data's rank {len(data)}")
        normalize_axis(self.prop("axis"), len(data), self.name)
        _check_reduction(self)
        return [like(self.data)]


@irdl_op_definition
class ScatterNDOp(NNOp):
    """`data` with slices `updates[i...]` written (or combined by `reduction`) at the index
    tuples `indices[i..., :]` (ONNX ScatterND)."""

    name = "nn.scatter_nd"
    data = operand_def()
    indices = operand_def()
    updates = operand_def()
    reduction = prop_def(StringAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = ("$data `,` $indices `,` $updates attr-dict `:` "
                       "functional-type(operands, results)")

    def infer(self) -> list[Attribute]:
        data, indices, updates = (self.operand_shape(i) for i in range(3))
        k = indices[-1] if indices else None
        if not isinstance(k, int) or not 1 <= k <= len(data) \
                or list(updates) != list(indices[:-1]) + list(data[k:]):
            raise ShapeError(f"{self.name}: indices {list(indices)} and updates "
                             f"{list(updates)} do not fit data {list(data)}")
        _check_reduction(self)
        return [like(self.data)]


@irdl_op_definition
class GatherNDOp(NNOp):
    """Slices of `data` at the index tuples `indices[..., :]`, the first `batch_dims` dims
    shared (ONNX GatherND)."""

    name = "nn.gather_nd"
    data = operand_def()
    indices = operand_def()
    batch_dims = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$data `,` $indices attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        data, indices = self.operand_shape(0), self.operand_shape(1)
        b = self.prop("batch_dims")
        k = indices[-1] if indices else None
        if not isinstance(k, int) or not 0 <= b < min(len(data), len(indices)) \
                or not 1 <= k <= len(data) - b or list(indices[:b]) != list(data[:b]):
            raise ShapeError(f"{self.name}: indices {list(indices)} (batch_dims {b}) do not "
                             f"fit data {list(data)}")
        return [like(self.data, list(indices[:-1]) + list(data[b + k:]))]


def _check_reduction(op: NNOp) -> None:
    if op.prop("reduction") not in SCATTER_REDUCTIONS:
        raise ShapeError(f"{op.name}: reduction must be one of {', '.join(SCATTER_REDUCTIONS)}, "
                         f"not {op.prop('reduction')!r}")


# -- broadcasts and repeats ------------------------------------------------------------------------

@irdl_op_definition
class ExpandOp(NNOp):
    """`input` broadcast (numpy rules, both ways) with a target shape: the result type when there
    is no `shape` operand, else the run-time 1-D `shape` operand."""

    name = "nn.expand"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("shape",)  # read at run time (host steps on the GPU)
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

    def static_form(self, known: list[Any]) -> NNOp | None:
        if self.shape is None or known[1] is None:
            return None
        target = tuple(int(d) if isinstance(d, np.integer) else d
                       for d in np.asarray(known[1]).reshape(-1).tolist())
        dims = broadcast_shapes(shape_of(self.input), target, op=self.name)
        return build(ExpandOp, [self.input], result_types=[like(self.input, dims)])


@irdl_op_definition
class TileOp(DynamicParams, NNOp):
    """`input` repeated `repeats[i]` times along each dim i (or by the run-time 1-D `repeats`
    operand, which leaves the dims unknown)."""

    name = "nn.tile"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_repeats",)
    input = operand_def()
    dyn_repeats = opt_operand_def()
    repeats = opt_prop_def(DenseArrayBase)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = dynamic_format(("repeats", "dyn_repeats"))

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        if self.dyn_repeats is not None:
            if self.repeats is not None:
                raise ShapeError("nn.tile: give repeats as a property or an operand, not both")
            n = operand_length(self.dyn_repeats)
            if n is not None and n != len(shape):
                raise ShapeError(f"nn.tile: {n} repeats for rank {len(shape)}")
            return [self.refined([0 if d == 0 else UNKNOWN for d in shape])]
        if self.repeats is None:
            raise ShapeError("nn.tile: needs repeats")
        repeats = _ints("repeats", self.prop("repeats"), len(shape), self.name)
        if any(r < 0 for r in repeats):
            raise ShapeError(f"nn.tile: negative repeats {repeats}")
        return [like(self.input, [_scaled(d, r) for d, r in zip(shape, repeats, strict=True)])]

    def static_form(self, known: list[Any]) -> NNOp | None:
        repeats = None if self.dyn_repeats is None else known_ints(known[1])
        if repeats is None:
            return None
        return build(TileOp, [self.input], {"repeats": repeats})


@irdl_op_definition
class PadOp(DynamicParams, NNOp):
    """`input` padded by `pads` = [begin_0, ..., begin_n, end_0, ..., end_n] (negative crops) with
    `mode` constant (filled with `value`), reflect, edge or wrap.

    Run-time forms: ONNX Pad's `pads` (with optional `axes`) as operands, leaving the dims
    unknown; the fill value as a one-element `value` operand (exact in the input's type)."""

    name = "nn.pad"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_pads", "dyn_value", "dyn_axes")
    input = operand_def()
    dyn_pads = opt_operand_def()
    dyn_value = opt_operand_def()
    dyn_axes = opt_operand_def()
    pads = opt_prop_def(DenseArrayBase)
    mode = prop_def(StringAttr)
    value = opt_prop_def(FloatAttr)
    output = result_def()
    traits = traits_def(Pure())
    irdl_options = SEGMENTED
    assembly_format = dynamic_format(("pads", "dyn_pads"), ("value", "dyn_value"),
                                     ("axes", "dyn_axes"))

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        rank = len(shape)
        mode = self.prop("mode")
        if mode not in PAD_MODES:
            raise ShapeError(f"nn.pad: unknown mode '{mode}'")
        if self.dyn_value is not None and (self.value is not None or mode != "constant"):
            raise ShapeError("nn.pad: a value operand needs mode constant and no value property")
        if self.dyn_pads is not None:
            if self.pads is not None:
                raise ShapeError("nn.pad: give pads as a property or an operand, not both")
            return [self.refined([UNKNOWN] * rank)]
        if self.dyn_axes is not None:
            raise ShapeError("nn.pad: an axes operand needs a pads operand")
        if self.pads is None:
            raise ShapeError("nn.pad: needs pads")
        pads = _ints("pads", self.prop("pads"), 2 * rank, self.name)
        out: list[Dim] = []
        for i, d in enumerate(shape):
            extra = pads[i] + pads[rank + i]
            if isinstance(d, int):
                if d + extra < 0:
                    raise ShapeError(f"nn.pad: pads {pads} crop dim {i} below zero")
                if mode != "constant" and d == 0 and extra > 0:
                    raise ShapeError(f"nn.pad: mode {mode} cannot pad an empty dim")
                out.append(d + extra)
            else:
                out.append(d if extra == 0 else UNKNOWN)
        return [like(self.input, out)]

    def static_form(self, known: list[Any]) -> NNOp | None:
        if not self.dynamic():
            return None
        values = self.by_operand(known)
        props = self.static_props()
        pads_value, value_value, changed = self.dyn_pads, self.dyn_value, False
        if self.dyn_pads is not None:
            pads = known_ints(values["dyn_pads"])
            axes = known_ints(values["dyn_axes"]) if self.dyn_axes is not None else None
            if pads is not None and (self.dyn_axes is None or axes is not None):
                props["pads"] = full_pads(len(self.operand_shape(0)), pads, axes)
                pads_value, changed = None, True
        if self.dyn_value is not None:
            flat = known_floats(values["dyn_value"])
            if flat is not None:
                props["value"] = flat[0] if flat else 0.0
                value_value, changed = None, True
        if not changed:
            return None
        operands, sizes = segments(self.input, pads_value, value_value,
                                   self.dyn_axes if pads_value is not None else None)
        return build(PadOp, operands, {**props, **sizes})


# -- resize ---------------------------------------------------------------------------------------


@irdl_op_definition
class ResizeOp(DynamicParams, NNOp):
    """Interpolated resize (ONNX Resize): one `scales` entry per dim; the output size is the
    result type (`sizes`, -1 where not static, when given; else floor(dim * scale)).

    Run-time form: ONNX Resize's `roi` (tf_crop_and_resize only), `scales` and `sizes` as 1-D
    operands with its `axes` and `keep_aspect_ratio_policy` as properties (no scales/sizes/roi
    properties); the dims of `axes` are unknown."""

    name = "nn.resize"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_roi", "dyn_scales", "dyn_sizes")
    input = operand_def()
    dyn_roi = opt_operand_def()
    dyn_scales = opt_operand_def()
    dyn_sizes = opt_operand_def()
    mode = prop_def(StringAttr)
    coordinate_transformation_mode = opt_prop_def(StringAttr)
    nearest_mode = opt_prop_def(StringAttr)
    cubic_coeff_a = opt_prop_def(FloatAttr)
    exclude_outside = opt_prop_def(IntegerAttr)
    extrapolation_value = opt_prop_def(FloatAttr)
    antialias = opt_prop_def(IntegerAttr)
    scales = opt_prop_def(DenseArrayBase)
    sizes = opt_prop_def(DenseArrayBase)
    roi = opt_prop_def(DenseArrayBase)
    axes = opt_prop_def(DenseArrayBase)
    keep_aspect_ratio_policy = opt_prop_def(StringAttr)
    output = result_def()
    traits = traits_def(Pure())
    irdl_options = SEGMENTED
    assembly_format = dynamic_format(("roi", "dyn_roi"), ("scales", "dyn_scales"),
                                     ("sizes", "dyn_sizes"))

    def _crop(self) -> bool:
        return self.prop("coordinate_transformation_mode") == "tf_crop_and_resize"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        rank = len(shape)
        if self.prop("mode") not in RESIZE_MODES:
            raise ShapeError(f"nn.resize: unknown mode '{self.prop('mode')}'")
        if self.dynamic():
            if any(self.properties.get(n) is not None for n in ("scales", "sizes", "roi")):
                raise ShapeError("nn.resize: give scales/sizes/roi as properties or as "
                                 "operands, not both")
            if self.dyn_scales is None and self.dyn_sizes is None:
                raise ShapeError("nn.resize: needs a scales or sizes operand")
            axes = self.prop("axes")
            axes = range(rank) if axes is None else {normalize_axis(a, rank, self.name)
                                                     for a in axes}
            return [self.refined([UNKNOWN if i in axes else d for i, d in enumerate(shape)])]
        if self.axes is not None or self.keep_aspect_ratio_policy is not None:
            raise ShapeError("nn.resize: axes and keep_aspect_ratio_policy go with operands")
        if self.scales is None:
            raise ShapeError("nn.resize: needs scales")
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

    def _params(self, shape: Sequence[Dim], values: dict[str, Any]) -> tuple | None:
        """Per-dim scales, sizes and roi from the parameter operands' values (None if unknown)."""
        got: dict[str, Any] = {}
        for name, read in (("dyn_roi", known_floats), ("dyn_scales", known_floats),
                           ("dyn_sizes", known_ints)):
            got[name] = None
            if getattr(self, name) is not None:
                got[name] = read(values.get(name))
                if got[name] is None:
                    return None
        return resize_params(shape, got["dyn_scales"], got["dyn_sizes"], self.prop("axes"),
                             got["dyn_roi"], self.prop("keep_aspect_ratio_policy", "stretch"),
                             self._crop())

    def static_form(self, known: list[Any]) -> NNOp | None:
        if not self.dynamic():
            return None
        try:
            params = self._params(self.operand_shape(0), self.by_operand(known))
        except ShapeError:  # e.g. sizes on a symbolic dim: stays a run-time resize
            return None
        if params is None:
            return None
        scales, sizes, roi = params
        props = self.static_props(drop=("axes", "keep_aspect_ratio_policy"))
        return build(ResizeOp, [self.input], {**props, "scales": scales, "sizes": sizes,
                                              "roi": roi})


# -- generators and triangular/cumulative ops ---------------------------------------------------

@irdl_op_definition
class RangeOp(NNOp):
    """`start, start + delta, ...` up to (excluding) `limit`; operands are scalars. The length is
    only known when the operands are (folding makes the op a constant then), or where the result
    type declares it: fold-constants gives `Range(0, n, 1)` with a symbolic n the type `[n]` and
    the start as its limit operand, and kernels then read start and delta only. `declared`:
    the length is the model's declared one for run-time bounds, so a run checks that the bounds
    give it (on the host)."""

    name = "nn.range"
    start = operand_def()
    limit = operand_def()
    delta = operand_def()
    declared = opt_prop_def(UnitAttr)
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


@irdl_op_definition
class TriluOp(DynamicParams, NNOp):
    """Upper (`upper`) or lower triangle of the last two dims from diagonal `k` (default 0, or
    the run-time scalar operand `k`); the rest zero."""

    name = "nn.trilu"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_k",)
    input = operand_def()
    dyn_k = opt_operand_def()
    upper = prop_def(IntegerAttr)
    k = opt_prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = dynamic_format(("k", "dyn_k"))

    def infer(self) -> list[Attribute]:
        if len(self.operand_shape(0)) < 2:
            raise ShapeError("nn.trilu: the input must have rank 2 or more")
        if self.dyn_k is not None:
            if self.k is not None:
                raise ShapeError("nn.trilu: give k as a property or an operand, not both")
            if operand_length(self.dyn_k) not in (1, None):
                raise ShapeError("nn.trilu: k must be a scalar")
        return [like(self.input)]

    def static_form(self, known: list[Any]) -> NNOp | None:
        k = None if self.dyn_k is None else known_ints(known[1])
        if k is None or len(k) != 1:
            return None
        return build(TriluOp, [self.input], {"upper": self.upper, "k": k[0]})


@irdl_op_definition
class CumSumOp(DynamicParams, NNOp):
    """Running sum (running product with `product`: ONNX CumProd) along `axis` (or the
    run-time scalar operand `axis`, ONNX semantics: negative counts from the end); `exclusive`
    leaves the element itself out, `reverse` runs from the end."""

    name = "nn.cumsum"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_axis",)
    input = operand_def()
    dyn_axis = opt_operand_def()
    axis = opt_prop_def(IntegerAttr)
    exclusive = prop_def(IntegerAttr)
    reverse = prop_def(IntegerAttr)
    product = opt_prop_def(UnitAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = dynamic_format(("axis", "dyn_axis"))

    def infer(self) -> list[Attribute]:
        rank = len(self.operand_shape(0))
        if self.dyn_axis is not None:
            if self.axis is not None:
                raise ShapeError("nn.cumsum: give axis as a property or an operand, not both")
            if operand_length(self.dyn_axis) not in (1, None):
                raise ShapeError("nn.cumsum: axis must be a scalar")
            if rank == 0:
                raise ShapeError("nn.cumsum: the input must have rank 1 or more")
        elif self.axis is None:
            raise ShapeError("nn.cumsum: needs an axis")
        else:
            normalize_axis(self.prop("axis"), rank, self.name)
        return [like(self.input)]

    def static_form(self, known: list[Any]) -> NNOp | None:
        axis = None if self.dyn_axis is None else known_ints(known[1])
        if axis is None or len(axis) != 1:
            return None
        axis = normalize_axis(axis[0], len(self.operand_shape(0)), self.name)
        return build(CumSumOp, [self.input], {**self.static_props(), "axis": axis})


# -- squeeze / unsqueeze by run-time axes ------------------------------------------------------


class _AxesReshape(DynamicParams):
    """nn.squeeze / nn.unsqueeze: a reshape decided by the run-time 1-D `axes` operand (its
    length static); the static form is an nn.reshape."""

    DYNAMIC: ClassVar[tuple[str, ...]] = ("axes",)

    def _dims(self, shape: Sequence[Dim], axes: Sequence[int]) -> list[Dim]:
        raise NotImplementedError

    def _rank(self, rank: int, n: int) -> int:
        raise NotImplementedError

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)  # type: ignore[attr-defined]
        n = operand_length(self.axes)  # type: ignore[attr-defined]
        if n is None or len(shape_of(self.axes) or ()) != 1:  # type: ignore[attr-defined]
            raise ShapeError(f"{self.name}: axes must be 1-D of static length")  # type: ignore
        rank = self._rank(len(shape), n)
        if rank < 0:
            raise ShapeError(f"{self.name}: {n} axes for rank {len(shape)}")  # type: ignore
        return [self.refined([UNKNOWN] * rank)]

    def static_form(self, known: list[Any]) -> NNOp | None:
        axes = known_ints(known[1])
        if axes is None:
            return None
        dims = self._dims(self.operand_shape(0), axes)  # type: ignore[attr-defined]
        return build(ReshapeOp, [self.input],  # type: ignore[attr-defined]
                     result_types=[like(self.input, dims)])  # type: ignore[attr-defined]


@irdl_op_definition
class SqueezeOp(_AxesReshape, NNOp):
    """`input` without its size-1 dims at the run-time `axes` (ONNX Squeeze)."""

    name = "nn.squeeze"
    input = operand_def()
    axes = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input `,` $axes attr-dict `:` functional-type(operands, results)"

    def _dims(self, shape: Sequence[Dim], axes: Sequence[int]) -> list[Dim]:
        return squeeze_dims(shape, axes)

    def _rank(self, rank: int, n: int) -> int:
        return rank - n


@irdl_op_definition
class UnsqueezeOp(_AxesReshape, NNOp):
    """`input` with size-1 dims inserted at the run-time `axes` (ONNX Unsqueeze: axes in terms
    of the result's rank)."""

    name = "nn.unsqueeze"
    input = operand_def()
    axes = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input `,` $axes attr-dict `:` functional-type(operands, results)"

    def _dims(self, shape: Sequence[Dim], axes: Sequence[int]) -> list[Dim]:
        return unsqueeze_dims(shape, axes)

    def _rank(self, rank: int, n: int) -> int:
        return rank + n


@irdl_op_definition
class ReverseSequenceOp(NNOp):
    """Each batch row's first sequence_lens[row] steps along `time_axis` reversed (ONNX
    ReverseSequence); `batch_axis` and `time_axis` are 0 and 1 in some order."""

    name = "nn.reverse_sequence"
    input = operand_def()
    sequence_lens = operand_def()
    batch_axis = prop_def(IntegerAttr)
    time_axis = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input `,` $sequence_lens attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        axes = {self.prop("batch_axis"), self.prop("time_axis")}
        if len(shape) < 2 or axes != {0, 1}:
            raise ShapeError(f"nn.reverse_sequence: batch_axis / time_axis must be 0 and 1 "
                             f"(in some order) of a rank-2+ input, not {sorted(axes)} of "
                             f"rank {len(shape)}")
        lens = shape_of(self.sequence_lens)
        if lens is None or len(lens) != 1:
            raise ShapeError("nn.reverse_sequence: sequence_lens must be 1-D")
        return [like(self.input)]


OPS = [ReshapeOp, ShapeOfOp, TransposeOp, SliceOp, ConcatOp, GatherOp, GatherElementsOp,
       ScatterElementsOp, ScatterNDOp, GatherNDOp, ReverseSequenceOp,
       ExpandOp, TileOp, PadOp, ResizeOp, RangeOp, TriluOp, CumSumOp, SqueezeOp, UnsqueezeOp]
