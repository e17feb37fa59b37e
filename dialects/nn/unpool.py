"""Max pooling with the indices of its maxima, and max unpooling (ONNX MaxPool's Indices output,
MaxUnpool): nn.max_pool_indices and nn.max_unpool. Their semantics are the numpy kernels' in
runtime/cpu_kernels/unpool.py."""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, i64
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
from ember.errors import ShapeError
from ember.runtime.cpu_kernels.reduction import pool_output_dim
from ember.runtime.cpu_kernels.unpool import unpooled_shape


def _check(op: NNOp, kernel: list[int], strides: list[int], pads: list[int], rank: int) -> int:
    n = len(kernel)
    if rank != n + 2 or len(strides) != n or len(pads) != 2 * n:
        raise ShapeError(f"{op.name}: a {n}-d kernel needs a rank-{n + 2} input, {n} strides "
                         f"and {2 * n} pads")
    if min(kernel + strides, default=1) < 1 or min(pads, default=0) < 0:
        raise ShapeError(f"{op.name}: kernel and strides must be positive and pads "
                         "non-negative")
    return n


@irdl_op_definition
class MaxPoolIndicesOp(NNOp):
    """N-d max pooling of an (N, C, *spatial) tensor and the flat index of each maximum in it
    (i64; over the spatial dims row-major, or column-major with `storage_order` 1)."""

    name = "nn.max_pool_indices"
    input = operand_def()
    kernel = prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    ceil_mode = prop_def(IntegerAttr)
    storage_order = prop_def(IntegerAttr)
    output = result_def()
    indices = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output) `,` type($indices)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        kernel, strides = self.prop("kernel"), self.prop("strides")
        pads, dilations = self.prop("pads"), self.prop("dilations")
        n = _check(self, kernel, strides, pads, len(shape))
        if len(dilations) != n or min(dilations, default=1) < 1:
            raise ShapeError(f"{self.name}: {n} positive dilations are needed")
        if self.prop("storage_order") not in (0, 1):
            raise ShapeError(f"{self.name}: storage_order must be 0 or 1")
        out = [pool_output_dim(shape[2 + i], kernel[i], strides[i], dilations[i], pads[i],
                               pads[n + i], bool(self.prop("ceil_mode")), self.name)
               for i in range(n)]
        result = [shape[0], shape[1], *out]
        return [like(self.input, result), like(self.input, result, element_type=i64)]


@irdl_op_definition
class MaxUnpoolOp(NNOp):
    """Zeros of the unpooled shape ((in - 1) * stride - pads + kernel per spatial dim), each
    input element written at its flat index, placed at the start of `output_shape` where one
    is given (a run-time `dyn_output_shape` must equal it). `windowed`: the indices are a
    max_pool_indices' of this kernel, strides and pads over an input of the unpooled shape, so
    each lies in its element's window (a kernel may then gather instead of scatter)."""

    name = "nn.max_unpool"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_output_shape",)
    input = operand_def()
    indices = operand_def()
    dyn_output_shape = opt_operand_def()  # a run-time output_shape: checked against the property
    kernel = prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    output_shape = opt_prop_def(DenseArrayBase)
    windowed = opt_prop_def(IntegerAttr)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = ("$input `,` $indices (`output_shape` `(` $dyn_output_shape^ `:` "
                       "type($dyn_output_shape) `)`)? attr-dict `:` type($input) `,` "
                       "type($indices) `->` type($output)")

    def infer(self) -> list[Attribute]:
        shape, where = self.operand_shape(0), self.operand_shape(1)
        kernel, strides, pads = self.prop("kernel"), self.prop("strides"), self.prop("pads")
        _check(self, kernel, strides, pads, len(shape))
        if len(where) != len(shape):
            raise ShapeError(f"{self.name}: the indices {list(where)} do not match the input "
                             f"{list(shape)}")
        inferred = unpooled_shape(shape, kernel, strides, pads)
        given = self.prop("output_shape")
        if given is None:
            if self.dyn_output_shape is not None:
                raise ShapeError(f"{self.name}: a run-time output_shape needs the property "
                                 "it is checked against")
            return [like(self.input, inferred)]
        if len(given) != len(shape) or any(isinstance(i, int) and g < i
                                           for g, i in zip(given, inferred, strict=True)):
            raise ShapeError(f"{self.name}: output_shape {list(given)} is smaller than the "
                             f"unpooled {inferred}")
        return [like(self.input, list(given))]


OPS = [MaxPoolIndicesOp, MaxUnpoolOp]
