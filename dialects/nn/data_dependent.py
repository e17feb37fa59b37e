"""Ops whose result length depends on the data: nn.nonzero, nn.compress, nn.unique and
nn.non_max_suppression (ONNX NonZero, Compress, Unique, NonMaxSuppression).

Each sizes that length with a data-dependent symbol it names (`size`, recorded with its upper
bound in the module's `ember.data_symbols`, see dialects/symbol_ranges.py): memory is planned for
the bound, the op's step binds the symbol to the length it found when the plan runs, and the ops
after it take the symbol as they take an input's dynamic dim. Their semantics are the numpy
kernels' in runtime/cpu_kernels/data_dependent.py; they have no CUDA kernel (host steps in GPU
plans).
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, StringAttr, i64
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, dim_product, like, normalize_axis
from ember.dialects.tensor_types import element_type_of, tensor_type
from ember.errors import ShapeError


class DataDependent(NNOp):
    """What the data-dependent ops share: `size`, the symbol of their result length."""

    def size_symbol(self) -> str:
        size = self.properties.get("size")
        if not isinstance(size, StringAttr) or not size.data.isidentifier():
            raise ShapeError(f"{self.name}: `size` must name the symbol of its result length")
        return size.data


@irdl_op_definition
class NonZeroOp(DataDependent):
    """The indices of the non-zero elements of `input`, [rank, size] i64 in row-major order."""

    name = "nn.nonzero"
    input = operand_def()
    size = prop_def(StringAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        rank = len(self.operand_shape(0))
        return [tensor_type((rank, self.size_symbol()), i64)]


@irdl_op_definition
class CompressOp(DataDependent):
    """The slices of `input` along `axis` (the flattened input without it) whose `condition`
    (1-D bool, at most as long) is true."""

    name = "nn.compress"
    input = operand_def()
    condition = operand_def()
    axis = opt_prop_def(IntegerAttr)
    size = prop_def(StringAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input `,` $condition attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        shape = list(self.operand_shape(0))
        if len(self.operand_shape(1)) != 1:
            raise ShapeError(f"{self.name}: the condition must be 1-D, not "
                             f"{list(self.operand_shape(1))}")
        if self.axis is None:
            return [like(self.input, (self.size_symbol(),))]
        axis = normalize_axis(self.prop("axis"), len(shape), self.name)
        shape[axis] = self.size_symbol()
        return [like(self.input, shape)]


@irdl_op_definition
class UniqueOp(DataDependent):
    """The unique elements of `input` (its unique slices along `axis`), sorted or in the order
    of first occurrence, with the index of each one's first occurrence, the index into them of
    every element (slice) of the input, and their counts."""

    name = "nn.unique"
    input = operand_def()
    axis = opt_prop_def(IntegerAttr)
    sorted = prop_def(IntegerAttr)
    size = prop_def(StringAttr)
    output = result_def()
    indices = result_def()
    inverse_indices = result_def()
    counts = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        shape = list(self.operand_shape(0))
        size = self.size_symbol()
        if self.axis is None:
            y: list = [size]
            every = dim_product(shape)
        else:
            axis = normalize_axis(self.prop("axis"), len(shape), self.name)
            every = shape[axis]
            y = list(shape)
            y[axis] = size
        return [like(self.input, y), tensor_type((size,), i64), tensor_type((every,), i64),
                tensor_type((size,), i64)]


@irdl_op_definition
class NonMaxSuppressionOp(DataDependent):
    """ONNX NonMaxSuppression: boxes [B, N, 4], scores [B, C, N] and the optional scalar inputs
    (an empty tensor where the model gives none): max boxes per class (i64), IoU threshold and
    score threshold (the boxes' type). The result is [size, 3] i64 (batch, class, box)."""

    name = "nn.non_max_suppression"
    boxes = operand_def()
    scores = operand_def()
    max_output = operand_def()
    iou_threshold = operand_def()
    score_threshold = operand_def()
    center_point_box = prop_def(IntegerAttr)
    size = prop_def(StringAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = ("$boxes `,` $scores `,` $max_output `,` $iou_threshold `,` "
                       "$score_threshold attr-dict `:` functional-type(operands, results)")

    def infer(self) -> list[Attribute]:
        boxes, scores = self.operand_shape(0), self.operand_shape(1)
        if len(boxes) != 3 or len(scores) != 3 or boxes[2] not in (4,) and isinstance(
                boxes[2], int):
            raise ShapeError(f"{self.name}: boxes must be [B, N, 4] and scores [B, C, N], not "
                             f"{list(boxes)} and {list(scores)}")
        if self.prop("center_point_box") not in (0, 1):
            raise ShapeError(f"{self.name}: center_point_box must be 0 or 1")
        if element_type_of(self.scores) != element_type_of(self.boxes):
            raise ShapeError(f"{self.name}: boxes and scores must be of one type")
        return [tensor_type((self.size_symbol(), 3), i64)]


OPS = [NonZeroOp, CompressOp, UniqueOp, NonMaxSuppressionOp]
