"""nn.col2im (ONNX Col2Im, torch's fold): columns of sliding blocks summed back into an image.
Its semantics are the numpy kernel's in runtime/cpu_kernels/col2im.py."""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import DenseArrayBase
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

from ember.dialects.nn.base import NNOp, like
from ember.dialects.nn.dynamic_params import SEGMENTED, DynamicParams, dynamic_format
from ember.errors import ShapeError
from ember.runtime.cpu_kernels.col2im import blocks


@irdl_op_definition
class Col2ImOp(DynamicParams, NNOp):
    """input [N, C * prod(block_shape), L] -> [N, C, *image_shape]. `image_shape` is a property
    (a run-time `dyn_image_shape` is checked against it); `block_shape` a property or the
    run-time `dyn_block_shape` (C then comes from the declared result type)."""

    name = "nn.col2im"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_image_shape", "dyn_block_shape")
    input = operand_def()
    dyn_image_shape = opt_operand_def()
    dyn_block_shape = opt_operand_def()
    image_shape = prop_def(DenseArrayBase)
    block_shape = opt_prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    output = result_def()
    traits = traits_def(Pure())
    irdl_options = SEGMENTED
    assembly_format = dynamic_format(("image_shape", "dyn_image_shape"),
                                     ("block_shape", "dyn_block_shape"))

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        image, block = self.prop("image_shape"), self.prop("block_shape")
        strides, pads, dilations = self.prop("strides"), self.prop("pads"), self.prop("dilations")
        n = len(image)
        if len(shape) != 3 or len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
            raise ShapeError(f"{self.name}: a [N, C * K, L] input and {n} strides, dilations "
                             f"and {2 * n} pads for a {n}-d image, not {list(shape)}")
        if (block is None) == (self.dyn_block_shape is None):
            raise ShapeError(f"{self.name}: give block_shape as a property or an operand")
        if block is None:
            return [self.refined([shape[0], "?", *image])]
        taps = 1
        for k in block:
            taps *= k
        if len(block) != n or min(block, default=1) < 1:
            raise ShapeError(f"{self.name}: block_shape {list(block)} for a {n}-d image")
        counts = blocks(image, block, strides, pads, dilations)
        count = 1
        for c in counts:
            count *= c
        if isinstance(shape[1], int) and shape[1] % taps or isinstance(shape[2], int) and \
                shape[2] != count:
            raise ShapeError(f"{self.name}: an input {list(shape)} does not fit image "
                             f"{list(image)} in blocks {list(block)} ({counts} sliding "
                             "blocks)")
        channels = shape[1] // taps if isinstance(shape[1], int) else "?"
        return [like(self.input, [shape[0], channels, *image])]


OPS = [Col2ImOp]
