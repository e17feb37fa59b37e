"""Legalizers of ONNX's reductions, softmax, normalizations, LRN and pooling."""

from __future__ import annotations

import math

import numpy as np
from xdsl.dialects.builtin import i64
from xdsl.ir import SSAValue

from ember.dialects.dtypes import element_type_from_onnx, is_float
from ember.dialects.nn.base import dim_product, like, normalize_axis
from ember.dialects.nn.elementwise import SelectOp
from ember.dialects.nn.reduction import (
    ArgReduceOp,
    BatchNormOp,
    GroupNormOp,
    LayerNormOp,
    LRNOp,
    PoolOp,
    ReduceOp,
    SoftmaxOp,
    TopKOp,
)
from ember.dialects.nn.unpool import MaxPoolIndicesOp, MaxUnpoolOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of, shape_of
from ember.errors import UnsupportedError
from ember.passes.convert_onnx_to_nn.builder import NNBuilder, declared_type, with_declared
from ember.passes.convert_onnx_to_nn.registry import legalizes
from ember.runtime.cpu_kernels.unpool import unpooled_shape

_REDUCE = {
    "ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min",
    "ReduceProd": "prod", "ReduceL1": "l1", "ReduceL2": "l2", "ReduceSumSquare": "sum_square",
    "ReduceLogSum": "log_sum", "ReduceLogSumExp": "log_sum_exp",
}


def _x(op: OnnxOp) -> SSAValue:
    return op.operands[0]


def _outputs_used(op: OnnxOp, first: int) -> bool:
    return any(r.uses for r in list(op.results)[first:])


def reduce(b: NNBuilder, x: SSAValue, fn: str, axes: list[int], keepdims: bool) -> SSAValue:
    """`fn` of x over `axes` (any order and sign; empty: every axis)."""
    rank = len(b.shape(x))
    if rank == 0:  # a scalar: reduce it as a 1-element vector
        return b.value(ReduceOp, [b.reshape(x, [1])], fn=fn, axes=[0], keepdims=False)
    normalized = [normalize_axis(a, rank, b.node.ONNX_TYPE) for a in axes] or list(range(rank))
    if len(set(normalized)) != len(normalized):
        raise b.unsupported(f"axes {axes} name an axis twice")
    return b.value(ReduceOp, [x], fn=fn, axes=sorted(normalized), keepdims=keepdims)


@legalizes(*_REDUCE)
def reduce_op(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    fn, x = _REDUCE[op.ONNX_TYPE], _x(op)
    keepdims = bool(op.attr("keepdims", 1))
    noop = bool(op.attr("noop_with_empty_axes", 0))
    if op.has_attr("axes"):  # older opsets: an attribute
        axes = [int(a) for a in op.attr("axes")]
    else:
        value = op.onnx_input("axes")
        array = b.const(value)
        if value is None:
            axes = []
        elif array is not None:
            axes = [int(a) for a in np.asarray(array).reshape(-1)]
        else:  # computed at run time: its length must be static
            n = shape_of(value)
            if n is None or len(n) != 1 or not isinstance(n[0], int):
                raise b.unsupported("run-time axes must be a 1-D tensor of static length")
            if n[0] > 0:
                if not b.shape(x):
                    raise b.unsupported("run-time axes on a scalar input")
                axes_i64 = b.cast(value, element_type_from_onnx(7))
                rank = len(b.shape(x)) - (0 if keepdims else n[0])
                return [with_declared(b, ReduceOp, [x, axes_i64],  # the declared shape
                                      {"fn": fn, "keepdims": keepdims},
                                      declared_type(op, x, rank))]
            axes = []
    if not axes and noop:
        return [x]
    return [reduce(b, x, fn, axes, keepdims)]


@legalizes("ArgMax", "ArgMin")
def arg_reduce(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = _x(op)
    axis = normalize_axis(int(op.attr("axis", 0)), len(b.shape(x)), op.ONNX_TYPE)
    fn = "max" if op.ONNX_TYPE == "ArgMax" else "min"
    return [b.value(ArgReduceOp, [x], fn=fn, axis=axis, keepdims=bool(op.attr("keepdims", 1)),
                    select_last_index=bool(op.attr("select_last_index", 0)))]


def _flatten_2d(b: NNBuilder, x: SSAValue, axis: int) -> SSAValue:
    """x as [prod(dims[:axis]), prod(dims[axis:])] (a run-time reshape where dims are symbols)."""
    from ember.dialects.nn.movement import ReshapeOp

    dims = b.shape(x)
    outer, inner = dim_product(list(dims[:axis])), dim_product(list(dims[axis:]))
    if isinstance(outer, int) and isinstance(inner, int):
        return b.reshape(x, [outer, inner])
    if isinstance(inner, int):
        target = [-1, inner]
    elif isinstance(outer, int):
        target = [outer, -1]
    else:
        raise b.unsupported(f"cannot flatten dims {list(dims)} at axis {axis}: both sides are "
                            "symbolic")
    shape = b.constant(np.array(target, np.int64))
    return b.op(ReshapeOp, [x, shape], result_types=[like(x, [outer, inner])]).results[0]


def _unflatten(b: NNBuilder, y: SSAValue, like_value: SSAValue) -> SSAValue:
    from ember.dialects.nn.movement import ReshapeOp, ShapeOfOp

    dims = b.shape(like_value)
    if all(isinstance(d, int) for d in dims):
        return b.reshape(y, dims)
    shape = b.value(ShapeOfOp, [like_value])
    return b.op(ReshapeOp, [y, shape], result_types=[like(like_value)]).results[0]


@legalizes("Softmax", "LogSoftmax")
def softmax(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = _x(op)
    rank = len(b.shape(x))
    log = op.ONNX_TYPE == "LogSoftmax"
    new = b.opset >= 13
    axis = int(op.attr("axis")) if op.has_attr("axis") else (-1 if new else 1)
    axis = normalize_axis(axis, rank, op.ONNX_TYPE)
    if new or axis == rank - 1 or rank == 0:
        return [b.value(SoftmaxOp, [x], axis=axis, log=log)]
    # before opset 13: softmax over the dims axis..end taken together
    y = b.value(SoftmaxOp, [_flatten_2d(b, x, axis)], axis=1, log=log)
    return [_unflatten(b, y, x)]


def _channel_param(b: NNBuilder, value: SSAValue, x: SSAValue) -> SSAValue:
    return b.cast(value, element_type_of(x))


@legalizes("BatchNormalization")
def batch_norm(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    if op.attr("training_mode", 0):
        return _batch_norm_training(b, op)
    if _outputs_used(op, 1):
        raise b.unsupported("the running mean/variance outputs are not supported "
                            "(inference only)")
    if op.has_attr("spatial") and not op.attr("spatial"):
        raise b.unsupported("spatial=0 is not supported")
    if op.has_attr("is_test") and not op.attr("is_test"):
        raise b.unsupported("is_test=0 (training) is not supported")
    x = _x(op)
    params = [_channel_param(b, v, x) for v in list(op.operands)[1:5]]
    return [b.value(BatchNormOp, [x, *params], epsilon=float(op.attr("epsilon", 1e-5)))]


def _batch_norm_training(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """training_mode=1 (opset 14 on): Y normalized with the batch's own mean and (population)
    variance per channel, and the running mean and variance moved toward them by
    1 - momentum."""
    x = _x(op)
    rank = len(b.shape(x))
    if rank < 2:
        raise b.unsupported(f"the input must have rank >= 2, not {rank}")
    scale, bias, mean, var = (_channel_param(b, v, x) for v in list(op.operands)[1:5])
    axes = [0, *range(2, rank)]
    channels = [1, b.shape(x)[1], *([1] * (rank - 2))]
    batch_mean = reduce(b, x, "mean", axes, False)
    centred = b.binary("sub", x, b.reshape(batch_mean, channels))
    batch_var = reduce(b, b.binary("mul", centred, centred), "mean", axes, False)
    y = b.value(BatchNormOp, [x, scale, bias, batch_mean, batch_var],
                epsilon=float(op.attr("epsilon", 1e-5)))
    momentum = float(op.attr("momentum", 0.9))

    def moved(running: SSAValue, current: SSAValue) -> SSAValue:
        return b.binary("add", b.binary("mul", running, b.constant(momentum, like=running)),
                        b.binary("mul", current, b.constant(1 - momentum, like=current)))

    return [y, moved(mean, batch_mean), moved(var, batch_var)]


@legalizes("InstanceNormalization")
def instance_norm(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, scale, bias = op.operands
    channels = b.shape(x)[1] if len(b.shape(x)) >= 2 else None
    if not isinstance(channels, int):
        raise b.unsupported("the channel dim must be static")
    return [b.value(GroupNormOp, [x, _channel_param(b, scale, x), _channel_param(b, bias, x)],
                    groups=channels, epsilon=float(op.attr("epsilon", 1e-5)))]


@legalizes("GroupNormalization")
def group_norm(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, scale, bias = op.operands
    groups = int(op.attr("num_groups"))
    shape = b.shape(x)
    if len(shape) < 2:
        raise b.unsupported(f"the input must have rank >= 2, not {len(shape)}")
    channels = shape[1]
    if b.opset < 21:  # scale and bias per group: repeat them per channel
        if not isinstance(channels, int) or channels % groups:
            raise b.unsupported(f"{channels} channels do not split into {groups} groups")
        values = []
        for name, v in (("scale", scale), ("bias", bias)):
            array = b.const(v)
            if array is None:
                raise b.unsupported(f"per-group {name} must be a constant (opset < 21)")
            values.append(b.constant(np.repeat(np.asarray(array).reshape(-1),
                                               channels // groups)))
        scale, bias = values
    return [b.value(GroupNormOp, [x, _channel_param(b, scale, x), _channel_param(b, bias, x)],
                    groups=groups, epsilon=float(op.attr("epsilon", 1e-5)))]


@legalizes("LayerNormalization")
def layer_norm(b: NNBuilder, op: OnnxOp) -> list[SSAValue | None]:
    x = _x(op)
    rank = len(b.shape(x))
    axis = normalize_axis(int(op.attr("axis", -1)), rank, op.ONNX_TYPE)
    epsilon = float(op.attr("epsilon", 1e-5))
    operands = [x, op.onnx_input("Scale")]
    if op.onnx_input("B") is not None:
        operands.append(op.onnx_input("B"))
    y = b.value(LayerNormOp, operands, axis=axis, epsilon=epsilon)
    if not _outputs_used(op, 1):
        return [y]
    # Mean and InvStdDev are asked for: compute them in stash_type
    try:
        stash = element_type_from_onnx(int(op.attr("stash_type", 1)))
    except UnsupportedError as e:
        raise b.unsupported(str(e)) from None
    if not is_float(stash):
        raise b.unsupported("stash_type must be a float type")
    xs = b.cast(x, stash)
    axes = list(range(axis, rank))
    mean = reduce(b, xs, "mean", axes, True)
    d = b.binary("sub", xs, mean)
    var = reduce(b, b.binary("mul", d, d), "mean", axes, True)
    inv = b.unary("reciprocal", b.unary("sqrt", b.binary("add", var,
                                                         b.constant(epsilon, like=var))))
    return [y, mean, inv]


@legalizes("LRN")
def lrn(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    return [b.value(LRNOp, [_x(op)], size=int(op.attr("size")),
                    alpha=float(op.attr("alpha", 1e-4)), beta=float(op.attr("beta", 0.75)),
                    bias=float(op.attr("bias", 1.0)))]


def _pool_params(b: NNBuilder, op: OnnxOp, x: SSAValue) -> dict:
    shape = b.shape(x)
    kernel = [int(k) for k in op.attr("kernel_shape")]
    n = len(kernel)
    if len(shape) != n + 2:
        raise b.unsupported(f"a {n}-d kernel_shape needs an input of rank {n + 2}, not "
                            f"{len(shape)}")
    strides = [int(s) for s in op.attr("strides") or [1] * n]
    dilations = [int(d) for d in op.attr("dilations") or [1] * n]
    pads = [int(p) for p in op.attr("pads") or [0] * (2 * n)]
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise b.unsupported(f"strides, dilations and pads must have {n}, {n} and {2 * n} values")
    ceil_mode = bool(op.attr("ceil_mode", 0))
    auto_pad = op.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad == "VALID":
        pads = [0] * (2 * n)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * n)
        for i in range(n):
            size, window = shape[2 + i], (kernel[i] - 1) * dilations[i] + 1
            if isinstance(size, int):
                out = -(-size // strides[i])
                total = max(0, (out - 1) * strides[i] + window - size)
            elif strides[i] == 1:
                total = window - 1
            else:
                raise b.unsupported(f"auto_pad={auto_pad} needs static spatial dims with "
                                    f"stride {strides[i]}")
            small, large = total // 2, total - total // 2
            pads[i], pads[n + i] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
        ceil_mode = False
    elif auto_pad != "NOTSET":
        raise b.unsupported(f"auto_pad={auto_pad} is not supported")
    return {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations,
            "ceil_mode": ceil_mode}


@legalizes("MaxPool")
def max_pool(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = _x(op)
    if _outputs_used(op, 1):  # the Indices too (a MaxUnpool's, SegNet-style)
        return list(b.op(MaxPoolIndicesOp, [x], {
            **_pool_params(b, op, x), "storage_order": int(op.attr("storage_order", 0))},
            num_results=2).results)
    return [b.value(PoolOp, [x], fn="max", **_pool_params(b, op, x))]


@legalizes("MaxUnpool")
def max_unpool(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, where = op.operands[0], op.operands[1]
    kernel = [int(k) for k in op.attr("kernel_shape")]
    n = len(kernel)
    props: dict = {"kernel": kernel, "strides": [int(s) for s in op.attr("strides") or [1] * n],
                   "pads": [int(p) for p in op.attr("pads") or [0] * (2 * n)]}
    operands = [x, where]
    given = op.onnx_input("output_shape")
    if given is not None:
        value = b.const(given)
        if value is not None:
            props["output_shape"] = [int(v) for v in np.asarray(value).reshape(-1)]
        else:  # checked at run time against the shape the model declares
            declared = shape_of(op.results[0].type)
            if declared is None or not all(isinstance(d, int) for d in declared):
                raise b.unsupported("output_shape is a run-time input and the result's shape "
                                    "is not declared")
            props["output_shape"] = list(declared)
            operands.append(b.cast(given, i64))
    pool = where.owner
    if isinstance(pool, MaxPoolIndicesOp) and where is pool.indices \
            and [pool.prop(k) for k in props if k != "output_shape"] \
            == [props[k] for k in props if k != "output_shape"] \
            and set(pool.prop("dilations")) == {1} and not pool.prop("storage_order") \
            and list(b.shape(pool.input)) == unpooled_shape(b.shape(x), kernel,
                                                            props["strides"], props["pads"]):
        props["windowed"] = True  # each index in its element's window: a kernel may gather
    return [b.op(MaxUnpoolOp, operands, props).results[0]]


@legalizes("AveragePool")
def average_pool(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = _x(op)
    return [b.value(PoolOp, [x], fn="avg", **_pool_params(b, op, x),
                    count_include_pad=bool(op.attr("count_include_pad", 0)))]


@legalizes("LpPool")
def lp_pool(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = _x(op)
    return [b.value(PoolOp, [x], fn="lp", **_pool_params(b, op, x),
                    p=float(op.attr("p", 2)))]


@legalizes("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = _x(op)
    shape = b.shape(x)
    if len(shape) < 2:
        raise b.unsupported(f"the input must have rank >= 2, not {len(shape)}")
    spatial = list(range(2, len(shape)))
    p = float(op.attr("p", 2)) if op.ONNX_TYPE == "GlobalLpPool" else None
    fn = {"GlobalAveragePool": "mean", "GlobalMaxPool": "max"}.get(op.ONNX_TYPE) or \
        {1.0: "l1", 2.0: "l2"}.get(p)
    if not spatial:
        if fn in ("mean", "max"):
            return [x]
        raise b.unsupported("GlobalLpPool needs spatial dims")
    if fn is not None:
        return [reduce(b, x, fn, spatial, True)]
    kernel = shape[2:]
    if not all(isinstance(d, int) for d in kernel):
        raise b.unsupported(f"GlobalLpPool with p={p} needs static spatial dims")
    n = len(kernel)
    if not math.isfinite(p) or p <= 0:
        raise b.unsupported(f"p={p} is not supported")
    return [b.value(PoolOp, [x], fn="lp", kernel=list(kernel), strides=[1] * n,
                    pads=[0] * (2 * n), dilations=[1] * n, ceil_mode=False, p=p)]


def _iota(b: NNBuilder, n: int, axis: int, rank: int) -> SSAValue:
    """0, 1, ..., n-1 (i64) along `axis` of a rank-`rank` tensor, 1 along the others."""
    dims = [1] * rank
    dims[axis] = n
    return b.constant(np.arange(n, dtype=np.int64).reshape(dims))


@legalizes("Hardmax")
def hardmax(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """1 where the first max along `axis` is, 0 elsewhere: (iota == argmax) in x's type; before
    opset 13 over the dims axis..end taken together (as Softmax)."""
    x = _x(op)
    rank = len(b.shape(x))
    new = b.opset >= 13
    axis = int(op.attr("axis")) if op.has_attr("axis") else (-1 if new else 1)
    axis = normalize_axis(axis, rank, op.ONNX_TYPE)
    flat = x if new or axis == rank - 1 else _flatten_2d(b, x, axis)
    at = axis if flat is x else 1
    n = b.shape(flat)[at]
    if not isinstance(n, int):
        raise b.unsupported(f"the hardmax axis has a symbolic size ({n})")
    index = b.value(ArgReduceOp, [flat], fn="max", axis=at, keepdims=True,
                    select_last_index=False)
    hit = b.binary("eq", _iota(b, n, at, len(b.shape(flat))), index)
    y = b.cast(hit, element_type_of(x))
    return [y if flat is x else _unflatten(b, y, x)]


@legalizes("LpNormalization")
def lp_normalization(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """x / ||x||_p along `axis` (p 1 or 2); a zero norm gives 0, as ONNX's reference."""
    x = _x(op)
    p = int(op.attr("p", 2))
    if p not in (1, 2):
        raise b.unsupported(f"p={p} (ONNX allows 1 or 2)")
    axis = normalize_axis(int(op.attr("axis", -1)), len(b.shape(x)), op.ONNX_TYPE)
    if p == 1:
        norm = reduce(b, b.unary("abs", x), "sum", [axis], keepdims=True)
    else:
        norm = b.unary("sqrt", reduce(b, b.binary("mul", x, x), "sum", [axis], keepdims=True))
    # a zero norm means x is 0 along the axis: dividing by 1 instead gives those zeros
    zero = b.binary("eq", norm, b.constant(0, like=norm))
    return [b.binary("div", x, b.value(SelectOp, [zero, b.constant(1, like=norm), norm]))]


@legalizes("TopK")
def topk(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """TopK (sorted=1; sorted=0 leaves the order unspecified, so sorted order serves it too);
    before opset 10 k is an attribute, after it an input: constant, or read at run time."""
    x = _x(op)
    axis = normalize_axis(int(op.attr("axis", -1)), len(b.shape(x)), op.ONNX_TYPE)
    flags = {"axis": axis, "largest": bool(op.attr("largest", 1))}
    if op.has_attr("k"):
        return list(b.op(TopKOp, [x], {**flags, "k": int(op.attr("k"))}, num_results=2).results)
    k_value = op.onnx_input("K")
    k = b.const(k_value)
    if k is not None:
        return list(b.op(TopKOp, [x], {**flags, "k": int(np.asarray(k).reshape(-1)[0])},
                         num_results=2).results)
    hints = [shape_of(op.results[i].type) for i in range(2)]
    shape = list(b.shape(x))
    if all(h is not None and len(h) == len(shape) and isinstance(h[axis], int) for h in hints):
        shape = list(hints[0])  # type: ignore[arg-type]
    else:  # k's value sizes the results: a data-dependent length bounded by the axis
        bound = b.at_maxima((shape[axis],))
        if bound is None:
            raise b.unsupported("K is a run-time parameter, the result shapes are not "
                                "declared and the axis has no bound")
        shape[axis] = b.data_symbol("topk", bound)
    new = b.op(TopKOp, [x, b.cast(k_value, element_type_from_onnx(7))], flags,
               result_types=[like(x, shape), like(x, shape, element_type=i64)])
    return list(new.results)
