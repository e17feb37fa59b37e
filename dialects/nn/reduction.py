"""Reduction, normalization and pooling nn ops: reduce, arg_reduce, softmax, batch/layer/group
norm, LRN and N-d pooling. Layouts are ONNX's: channels on dim 1, spatial dims after it."""

from __future__ import annotations

from typing import ClassVar

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
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, like, normalize_axis
from ember.dialects.tensor_types import UNKNOWN, Dim, Shape, shape_of
from ember.errors import ShapeError
from ember.runtime.cpu_kernels.reduction import REDUCE_FUNCTIONS, pool_output_dim

# -- nn.reduce ----------------------------------------------------------------------------------


def _reduced_shape(shape: Shape, axes: list[int], keepdims: bool) -> list[Dim]:
    return [1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes]


@irdl_op_definition
class ReduceOp(NNOp):
    """`fn` over `axes` (normalized, sorted, non-empty); keepdims keeps them as 1s. Where the
    axes are only known at run time they come as the 1-D i64 operand `dynamic_axes` instead
    (ONNX semantics: negative axes count from the end), and the reduced dims are unknown."""

    name = "nn.reduce"
    fn = prop_def(StringAttr)
    axes = opt_prop_def(DenseArrayBase)
    keepdims = prop_def(IntegerAttr)
    input = operand_def()
    dynamic_axes = opt_operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$fn $input (`,` $dynamic_axes^)? attr-dict `:` functional-type(operands, results)"
    )
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dynamic_axes",)

    def infer(self) -> list[Attribute]:
        fn = self.fn.data
        if fn not in REDUCE_FUNCTIONS:
            raise ShapeError(f"nn.reduce: unknown function '{fn}'")
        shape = self.operand_shape(0)
        keepdims = bool(self.prop("keepdims"))
        if self.dynamic_axes is not None:
            if self.axes is not None:
                raise ShapeError("nn.reduce: give axes as a property or an operand, not both")
            n = shape_of(self.dynamic_axes)
            if n is None or len(n) != 1 or not isinstance(n[0], int) or n[0] < 1:
                raise ShapeError("nn.reduce: dynamic axes must be a non-empty 1-D tensor of "
                                 "static length")
            if n[0] > len(shape):
                raise ShapeError(f"nn.reduce: {n[0]} axes for rank {len(shape)}")
            declared = shape_of(self.output)
            if keepdims:
                fits = declared is not None and len(declared) == len(shape) and all(
                    isinstance(d, int) and (d == 1 or d == s)
                    for d, s in zip(declared, shape, strict=True))
                return [like(self.input, declared if fits else
                             [1 if d == 1 else UNKNOWN for d in shape])]
            fits = declared is not None and len(declared) == len(shape) - n[0] and all(
                isinstance(d, int) for d in declared)
            # a declared result shape (the model's) sizes the result; the run time checks it
            return [like(self.input, declared if fits else [UNKNOWN] * (len(shape) - n[0]))]
        axes = self.prop("axes")
        if not axes:
            raise ShapeError("nn.reduce: axes must not be empty")
        if axes != sorted(set(axes)) or axes[0] < 0 or axes[-1] >= len(shape):
            raise ShapeError(f"nn.reduce: axes {axes} must be sorted, unique and in range for "
                             f"rank {len(shape)}")
        return [like(self.input, _reduced_shape(shape, axes, keepdims))]


# -- nn.arg_reduce ------------------------------------------------------------------------------

@irdl_op_definition
class ArgReduceOp(NNOp):
    """Index (i64) of the max/min along `axis`; the first one, or the last with
    `select_last_index`."""

    name = "nn.arg_reduce"
    fn = prop_def(StringAttr)
    axis = prop_def(IntegerAttr)
    keepdims = prop_def(IntegerAttr)
    select_last_index = prop_def(IntegerAttr)
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$fn $input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        if self.fn.data not in ("max", "min"):
            raise ShapeError(f"nn.arg_reduce: unknown function '{self.fn.data}'")
        shape = self.operand_shape(0)
        axis = self.prop("axis")
        if not 0 <= axis < max(len(shape), 1):
            raise ShapeError(f"nn.arg_reduce: axis {axis} is out of range for rank {len(shape)}")
        keepdims = bool(self.prop("keepdims"))
        return [like(self.input, _reduced_shape(shape, [axis], keepdims), i64)]


# -- nn.softmax ---------------------------------------------------------------------------------

@irdl_op_definition
class SoftmaxOp(NNOp):
    """exp(x) / sum(exp(x)) along one `axis` (log: its logarithm, computed stably)."""

    name = "nn.softmax"
    axis = prop_def(IntegerAttr)
    log = prop_def(IntegerAttr)
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        axis = self.prop("axis")
        if not 0 <= axis < max(len(shape), 1):
            raise ShapeError(f"nn.softmax: axis {axis} is out of range for rank {len(shape)}")
        return [like(self.input)]


# -- normalizations -----------------------------------------------------------------------------

def _check_channel_param(op: NNOp, index: int, channels: Dim, what: str) -> None:
    shape = op.operand_shape(index)
    if len(shape) != 1:
        raise ShapeError(f"{op.name}: {what} must be 1-D (one value per channel), not rank "
                         f"{len(shape)}")
    if isinstance(shape[0], int) and isinstance(channels, int) and shape[0] != channels:
        raise ShapeError(f"{op.name}: {what} has {shape[0]} values for {channels} channels")


@irdl_op_definition
class BatchNormOp(NNOp):
    """Inference batch norm: (x - mean) / sqrt(var + epsilon) * scale + bias, per channel
    (dim 1)."""

    name = "nn.batch_norm"
    epsilon = prop_def(FloatAttr)
    input = operand_def()
    scale = operand_def()
    bias = operand_def()
    mean = operand_def()
    var = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $scale `,` $bias `,` $mean `,` $var attr-dict `:` "
        "functional-type(operands, results)"
    )

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        if len(shape) < 2:
            raise ShapeError(f"nn.batch_norm: the input must have rank >= 2, not {len(shape)}")
        for i, what in enumerate(("scale", "bias", "mean", "var"), start=1):
            _check_channel_param(self, i, shape[1], what)
        return [like(self.input)]


@irdl_op_definition
class LayerNormOp(NNOp):
    """Normalize over dims `axis`..end: (x - mean) / sqrt(var + epsilon) * scale (+ bias);
    scale and bias broadcast to those dims. With `rms` (RMSNorm) nothing is subtracted:
    x / sqrt(mean(x²) + epsilon) * scale (+ bias)."""

    name = "nn.layer_norm"
    axis = prop_def(IntegerAttr)
    epsilon = prop_def(FloatAttr)
    rms = opt_prop_def(IntegerAttr)
    input = operand_def()
    scale = operand_def()
    bias = opt_operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $scale (`,` $bias^)? attr-dict `:` functional-type(operands, results)"
    )

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        axis = self.prop("axis")
        if not 0 <= axis < max(len(shape), 1):
            raise ShapeError(f"nn.layer_norm: axis {axis} is out of range for rank {len(shape)}")
        inner = shape[axis:]
        for i in range(1, len(self.operands)):
            p = self.operand_shape(i)
            what = "scale" if i == 1 else "bias"
            if len(p) > len(inner) or any(
                    isinstance(a, int) and isinstance(b, int) and a not in (1, b)
                    for a, b in zip(p, inner[len(inner) - len(p):], strict=True)):
                raise ShapeError(f"nn.layer_norm: {what} of shape {list(p)} does not broadcast "
                                 f"to the normalized dims {list(inner)}")
        return [like(self.input)]


@irdl_op_definition
class GroupNormOp(NNOp):
    """Normalize each group of channels (dim 1 split into `groups`) over its channels and spatial
    dims, then scale and shift per channel. groups = channels is instance norm."""

    name = "nn.group_norm"
    groups = prop_def(IntegerAttr)
    epsilon = prop_def(FloatAttr)
    input = operand_def()
    scale = operand_def()
    bias = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input `,` $scale `,` $bias attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        if len(shape) < 2:
            raise ShapeError(f"nn.group_norm: the input must have rank >= 2, not {len(shape)}")
        groups, channels = self.prop("groups"), shape[1]
        if groups < 1 or (isinstance(channels, int) and channels % groups):
            raise ShapeError(f"nn.group_norm: {channels} channels do not split into {groups} "
                             "groups")
        _check_channel_param(self, 1, channels, "scale")
        _check_channel_param(self, 2, channels, "bias")
        return [like(self.input)]


@irdl_op_definition
class LRNOp(NNOp):
    """Local response normalization across channels (ONNX LRN):
    x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels) ^ beta."""

    name = "nn.lrn"
    size = prop_def(IntegerAttr)
    alpha = prop_def(FloatAttr)
    beta = prop_def(FloatAttr)
    bias = prop_def(FloatAttr)
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        if len(shape) < 2:
            raise ShapeError(f"nn.lrn: the input must have rank >= 2, not {len(shape)}")
        if self.prop("size") < 1:
            raise ShapeError(f"nn.lrn: size must be positive, not {self.prop('size')}")
        return [like(self.input)]


# -- nn.pool ------------------------------------------------------------------------------------


@irdl_op_definition
class PoolOp(NNOp):
    """N-d pooling (max, avg, lp) of an (N, C, *spatial) tensor. `pads` are [begin..., end...];
    avg divides by the window's count of input elements, or with `count_include_pad` of input and
    pad elements; lp is (sum |x|^p)^(1/p) over the input elements of the window."""

    name = "nn.pool"
    fn = prop_def(StringAttr)
    kernel = prop_def(DenseArrayBase)
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    ceil_mode = prop_def(IntegerAttr)
    count_include_pad = opt_prop_def(IntegerAttr)
    p = opt_prop_def(FloatAttr)
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$fn $input attr-dict `:` type($input) `->` type($output)"

    def params(self) -> tuple[list[int], list[int], list[int], list[int]]:
        return (self.prop("kernel"), self.prop("strides"), self.prop("pads"),
                self.prop("dilations"))

    def infer(self) -> list[Attribute]:
        fn = self.fn.data
        if fn not in ("max", "avg", "lp"):
            raise ShapeError(f"nn.pool: unknown function '{fn}'")
        shape = self.operand_shape(0)
        kernel, strides, pads, dilations = self.params()
        n = len(kernel)
        if len(shape) != n + 2:
            raise ShapeError(f"nn.pool: a {n}-d kernel needs an input of rank {n + 2}, not "
                             f"{len(shape)}")
        if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
            raise ShapeError(f"nn.pool: strides, dilations and pads must have {n}, {n} and "
                             f"{2 * n} values")
        if min(kernel + strides + dilations, default=1) < 1 or min(pads, default=0) < 0:
            raise ShapeError("nn.pool: kernel, strides and dilations must be positive and pads "
                             "non-negative")
        if fn == "lp" and not self.prop("p", 2.0) > 0:
            raise ShapeError("nn.pool: p must be positive")
        ceil_mode = bool(self.prop("ceil_mode"))
        out = [pool_output_dim(shape[2 + i], kernel[i], strides[i], dilations[i], pads[i],
                               pads[n + i], ceil_mode) for i in range(n)]
        return [like(self.input, [shape[0], shape[1], *out])]


@irdl_op_definition
class TopKOp(NNOp):
    """The `k` largest (`largest`, else smallest) values along `axis` and their indices (i64),
    in order (equal values: the lower index first), as ONNX TopK with sorted=1; `k` a property
    or the run-time scalar operand `dyn_k` (its result dims then come from the declared
    result types)."""

    name = "nn.topk"
    DYNAMIC: ClassVar[tuple[str, ...]] = ("dyn_k",)
    input = operand_def()
    dyn_k = opt_operand_def()
    k = opt_prop_def(IntegerAttr)
    axis = prop_def(IntegerAttr)
    largest = prop_def(IntegerAttr)
    values = result_def()
    indices = result_def()
    traits = traits_def(Pure())
    assembly_format = ("$input (`k` `(` $dyn_k^ `:` type($dyn_k) `)`)? attr-dict `:` "
                       "type($input) `->` type($values) `,` type($indices)")

    def infer(self) -> list[Attribute]:
        shape = list(self.operand_shape(0))
        axis = normalize_axis(self.prop("axis"), len(shape), self.name)
        if (self.k is None) == (self.dyn_k is None):
            raise ShapeError(f"{self.name}: give k as a property or an operand (one of them)")
        if self.k is not None:
            k = self.prop("k")
            if isinstance(shape[axis], int) and not 0 <= k <= shape[axis]:
                raise ShapeError(f"{self.name}: k={k} is out of range for a dim of "
                                 f"{shape[axis]}")
            shape[axis] = k
        else:
            declared = shape_of(self.values)
            shape[axis] = declared[axis] if declared is not None and \
                len(declared) == len(shape) else UNKNOWN
        return [like(self.input, shape), like(self.input, shape, element_type=i64)]


OPS = [ReduceOp, ArgReduceOp, SoftmaxOp, BatchNormOp, LayerNormOp, GroupNormOp, LRNOp, PoolOp,
       TopKOp]
