"""Ops that sample an image bilinearly at computed points: nn.roi_align (ONNX RoiAlign) and
nn.deform_conv (ONNX DeformConv, 2-D). Their semantics are the numpy kernels' in
runtime/cpu_kernels/bilinear.py; both have CUDA kernels."""

from __future__ import annotations

from xdsl.dialects.builtin import ArrayAttr, DenseArrayBase, FloatAttr, IntegerAttr, StringAttr
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, like
from ember.dialects.tensor_types import element_type_of
from ember.errors import ShapeError
from ember.runtime.cpu_kernels.reduction import pool_output_dim


@irdl_op_definition
class RoiAlignOp(NNOp):
    """X [N, C, H, W], rois [R, 4] (x1, y1, x2, y2) and batch_indices [R] -> [R, C,
    output_height, output_width]: each region's bins averaged (or max-ed) over bilinear
    samples."""

    name = "nn.roi_align"
    input = operand_def()
    rois = operand_def()
    batch_indices = operand_def()
    mode = prop_def(StringAttr)
    coordinate_transformation_mode = prop_def(StringAttr)
    output_height = prop_def(IntegerAttr)
    output_width = prop_def(IntegerAttr)
    sampling_ratio = prop_def(IntegerAttr)
    spatial_scale = prop_def(FloatAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = ("$input `,` $rois `,` $batch_indices attr-dict `:` "
                       "functional-type(operands, results)")

    def infer(self) -> list[Attribute]:
        x, rois, batch = (self.operand_shape(i) for i in range(3))
        if len(x) != 4 or len(rois) != 2 or len(batch) != 1 or rois[1] not in (4,) and \
                isinstance(rois[1], int):
            raise ShapeError(f"{self.name}: X {list(x)}, rois {list(rois)} and batch_indices "
                             f"{list(batch)} must be [N, C, H, W], [R, 4] and [R]")
        if self.mode.data not in ("avg", "max") or self.coordinate_transformation_mode.data \
                not in ("half_pixel", "output_half_pixel"):
            raise ShapeError(f"{self.name}: mode '{self.mode.data}' / coordinate "
                             f"transformation mode "
                             f"'{self.coordinate_transformation_mode.data}' is not ONNX's")
        if min(self.prop("output_height"), self.prop("output_width")) < 1 \
                or self.prop("sampling_ratio") < 0:
            raise ShapeError(f"{self.name}: the output size must be positive and the sampling "
                             "ratio non-negative")
        if element_type_of(self.rois) != element_type_of(self.input):
            raise ShapeError(f"{self.name}: X and rois must be of one type")
        return [like(self.input, [rois[0], x[1], self.prop("output_height"),
                                  self.prop("output_width")])]


@irdl_op_definition
class DeformConvOp(NNOp):
    """2-D deformable convolution: X [N, C, H, W], W [OC, C / group, kH, kW], offset [N,
    offset_group * kH * kW * 2, oH, oW], then the bias [OC] and the mask [N, offset_group *
    kH * kW, oH, oW] where `present` names them -> [N, OC, oH, oW]."""

    name = "nn.deform_conv"
    inputs = var_operand_def()
    present = opt_prop_def(ArrayAttr)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    group = prop_def(IntegerAttr)
    offset_group = prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$inputs attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        present = self.prop("present") or []
        if len(self.inputs) != 3 + len(present) or not set(present) <= {"bias", "mask"}:
            raise ShapeError(f"{self.name}: X, W, offset and the optional inputs `present` "
                             f"names, not {len(self.inputs)} operands for {present}")
        x, w, offset = (self.operand_shape(i) for i in range(3))
        if len(x) != 4 or len(w) != 4 or len(offset) != 4:
            raise ShapeError(f"{self.name}: 2-D only: X, W and offset must have rank 4")
        group, offset_group = self.prop("group"), self.prop("offset_group")
        static = all(isinstance(d, int) for d in (*x[1:2], *w, offset[1]))
        if static and (x[1] != w[1] * group or w[0] % group or x[1] % offset_group
                       or offset[1] != offset_group * w[2] * w[3] * 2):
            raise ShapeError(f"{self.name}: X {list(x)}, W {list(w)} and offset {list(offset)} "
                             f"do not fit group {group} and offset_group {offset_group}")
        strides, pads, dilations = self.prop("strides"), self.prop("pads"), self.prop("dilations")
        for d in range(2):
            size, k, out = x[2 + d], w[2 + d], offset[2 + d]
            if all(isinstance(v, int) for v in (size, k, out)) and out != pool_output_dim(
                    size, k, strides[d], dilations[d], pads[d], pads[2 + d], False, self.name):
                raise ShapeError(f"{self.name}: the offset's output size {list(offset[2:])} "
                                 f"does not follow from X {list(x)}, the kernel, strides, pads "
                                 "and dilations")
        return [like(self.inputs[0], [x[0], w[0], offset[2], offset[3]])]


OPS = [RoiAlignOp, DeformConvOp]
