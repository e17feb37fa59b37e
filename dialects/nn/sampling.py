"""Sampling ops: nn.grid_sample (ONNX GridSample: X [N, C, D1..Dr] read at the normalized
coordinates of a grid [N, O1..Ok, r]; runtime/cpu_kernels/sampling.py holds the semantics)."""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, StringAttr
from xdsl.ir import Attribute
from xdsl.irdl import irdl_op_definition, operand_def, prop_def, result_def, traits_def
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, like
from ember.dialects.tensor_types import element_type_of
from ember.errors import ShapeError
from ember.runtime.cpu_kernels.sampling import MODES, PADDING_MODES


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


OPS = [GridSampleOp]
