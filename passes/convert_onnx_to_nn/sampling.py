"""Legalizer of ONNX GridSample (opsets 16, 20, 22) into nn.grid_sample: opset 16's mode names
(bilinear, bicubic) are its later ones (linear, cubic)."""

from __future__ import annotations

from xdsl.ir import SSAValue

from ember.dialects.nn.sampling import GridSampleOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of
from ember.passes.convert_onnx_to_nn.builder import NNBuilder
from ember.passes.convert_onnx_to_nn.registry import legalizes
from ember.runtime.cpu_kernels.sampling import MODES, PADDING_MODES

_OPSET16_MODES = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest"}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@legalizes("GridSample")
def grid_sample(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, grid = op.operands[0], op.operands[1]
    default = "bilinear" if b.opset < 20 else "linear"
    mode = _text(op.attr("mode", default))
    if b.opset < 20:
        if mode not in _OPSET16_MODES:
            raise b.unsupported(f"mode '{mode}' (opset {b.opset} has "
                                f"{', '.join(_OPSET16_MODES)})")
        mode = _OPSET16_MODES[mode]
    padding = _text(op.attr("padding_mode", "zeros"))
    if mode not in MODES or padding not in PADDING_MODES:
        raise b.unsupported(f"mode '{mode}' / padding_mode '{padding}' (modes "
                            f"{', '.join(MODES)}; padding {', '.join(PADDING_MODES)})")
    if element_type_of(grid) != element_type_of(x):
        grid = b.cast(grid, element_type_of(x))  # the grid's type T2 may differ from X's T1
    return [b.value(GridSampleOp, [x, grid], mode=mode, padding_mode=padding,
                    align_corners=bool(op.attr("align_corners", 0)))]
