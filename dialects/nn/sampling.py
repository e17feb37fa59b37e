"""Sampling and spectral ops: nn.grid_sample (ONNX GridSample: X [N, C, D1..Dr] read at the
normalized coordinates of a grid [N, O1..Ok, r]) and nn.dft (ONNX DFT); their semantics are the
numpy kernels' in runtime/cpu_kernels/sampling.py."""

from __future__ import annotations

from typing import Any, ClassVar

from xdsl.dialects.builtin import IntegerAttr, StringAttr
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, build, like, normalize_axis
from ember.dialects.nn.dynamic_params import (
    SEGMENTED,
    DynamicParams,
    dynamic_format,
    operand_length,
)
from ember.dialects.tensor_types import UNKNOWN, element_type_of
from ember.errors import ShapeError
from ember.runtime.cpu_kernels.common import known_ints
from ember.runtime.cpu_kernels.sampling import MODES, PADDING_MODES, dft_shape


@irdl_op_definition
class GridSampleOp(NNOp):
    """X sampled at `grid` (its last dim r, the spatial rank of X: x before y) with `mode`
    (linear, nearest, cubic), `padding_mode` (zeros, border, reflection) and `align_corners`;
    the result is [N, C, O1..Ok] of X's element type."""

    name = "nn.grid_sample"
    input = operand_def()
    grid = operand_def()
    mode = prop_def(StringAttr)
    padding_mode = prop_def(StringAttr)
    align_corners = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$mode $padding_mode $input `,` $grid attr-dict `:` " \
                      "functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        if self.mode.data not in MODES or self.padding_mode.data not in PADDING_MODES:
            raise ShapeError(f"nn.grid_sample: mode '{self.mode.data}' / padding_mode "
                             f"'{self.padding_mode.data}' (modes {', '.join(MODES)}; padding "
                             f"{', '.join(PADDING_MODES)})")
        x, grid = self.operand_shape(0), self.operand_shape(1)
        r = len(x) - 2
        if r < 1 or len(grid) != r + 2 or grid[-1] not in (r,) and isinstance(grid[-1], int):
            raise ShapeError(f"nn.grid_sample: X {list(x)} and grid {list(grid)} do not fit "
                             "([N, C, D1..Dr] and [N, O1..Or, r])")
        if isinstance(x[0], int) and isinstance(grid[0], int) and x[0] != grid[0]:
            raise ShapeError(f"nn.grid_sample: X has batch {x[0]}, the grid {grid[0]}")
        if element_type_of(self.grid) != element_type_of(self.input):
            raise ShapeError("nn.grid_sample: X and the grid must have one element type")
        return [like(self.input, [x[0], x[1], *grid[1:-1]])]


@irdl_op_definition
class DFTOp(DynamicParams, NNOp):
    """The discrete Fourier transform of the input [..., 1 or 2] (real, or real and imaginary
    parts) along `axis`, `dft_length` long, `inverse` and `onesided` as ONNX's DFT. The axis
    and the length may be run-time scalar operands: the result's dims they decide are then the
    model's declared ones (checked when the plan runs), else unknown."""

    name = "nn.dft"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_length", "dyn_axis")
    input = operand_def()
    dyn_length = opt_operand_def()
    dyn_axis = opt_operand_def()
    axis = opt_prop_def(IntegerAttr)
    dft_length = opt_prop_def(IntegerAttr)
    inverse = prop_def(IntegerAttr)
    onesided = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    irdl_options = SEGMENTED
    assembly_format = dynamic_format(("dft_length", "dyn_length"), ("axis", "dyn_axis"))

    def infer(self) -> list[Attribute]:
        shape = list(self.operand_shape(0))
        rank = len(shape)
        if rank < 2 or shape[-1] not in (1, 2) and isinstance(shape[-1], int):
            raise ShapeError(f"nn.dft: the input {shape} must end in 1 (real) or 2 (complex)")
        for name, operand, prop in (("axis", self.dyn_axis, self.axis),
                                    ("dft_length", self.dyn_length, self.dft_length)):
            if operand is not None and prop is not None:
                raise ShapeError(f"nn.dft: give {name} as a property or an operand, not both")
            if operand is not None and operand_length(operand) not in (1, None):
                raise ShapeError(f"nn.dft: {name} must be a scalar")
        inverse, onesided = bool(self.prop("inverse")), bool(self.prop("onesided"))
        if self.dyn_axis is None and self.axis is None:
            raise ShapeError("nn.dft: needs an axis")
        if self.dyn_axis is not None:  # which dims change is known at run time only
            return [self.refined([UNKNOWN] * rank)]
        axis = normalize_axis(self.prop("axis"), rank, self.name)
        if axis == rank - 1:
            raise ShapeError("nn.dft: the axis must not be the last (real, imaginary) dim")
        length = self.prop("dft_length")
        if self.dyn_length is not None or not isinstance(shape[axis], int) and length is None:
            out = dft_shape(shape, axis, 1, inverse, onesided)
            out[axis] = UNKNOWN
            return [self.refined(out)]
        return [like(self.input, dft_shape(shape, axis, length, inverse, onesided))]

    def static_form(self, known: list[Any]) -> NNOp | None:
        values = self.by_operand(known)
        props: dict[str, Any] = {**self.static_props()}
        for name, key in (("dyn_axis", "axis"), ("dyn_length", "dft_length")):
            if name in values:
                ints = known_ints(values[name])
                if ints is None or len(ints) != 1:
                    return None
                props[key] = ints[0]
        return build(DFTOp, [self.input], props)


@irdl_op_definition
class StftOp(DynamicParams, NNOp):
    """ONNX STFT of a signal [batch, length, 1 or 2]: `frame_step`, the window and
    `frame_length` are operands read when the plan runs; the result [batch, frames, bins, 2]
    takes its dims from the build (constants) or the model's declared shape (checked at run
    time), else they are unknown."""

    name = "nn.stft"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("frame_step", "window", "frame_length")
    input = operand_def()
    frame_step = operand_def()
    window = opt_operand_def()
    frame_length = opt_operand_def()
    onesided = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    irdl_options = SEGMENTED
    assembly_format = "$input `,` $frame_step (`window` `(` $window^ `:` type($window) `)`)? " \
                      "(`frame_length` `(` $frame_length^ `:` type($frame_length) `)`)? " \
                      "attr-dict `:` type($input) `,` type($frame_step) `->` type($output)"

    def infer(self) -> list[Attribute]:
        shape = list(self.operand_shape(0))
        if len(shape) != 3 or isinstance(shape[-1], int) and shape[-1] not in (1, 2):
            raise ShapeError(f"nn.stft: the signal {shape} must be [batch, length, 1 or 2]")
        return [self.refined([shape[0], UNKNOWN, UNKNOWN, 2])]


OPS = [GridSampleOp, DFTOp, StftOp]
