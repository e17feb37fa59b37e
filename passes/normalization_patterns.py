"""The matchers of fuse-normalization: each reads a decomposed normalization backwards from the
op that ends it and returns what it computes (input, axis, epsilon, parameters) with the ops it
covers, or None. They only read the IR; `passes/fuse_normalization.py` rewrites it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.ir import Operation, SSAValue

from ember.dialects.dtypes import is_float
from ember.dialects.nn.elementwise import BinaryOp, UnaryOp
from ember.dialects.nn.movement import ReshapeOp
from ember.dialects.nn.reduction import GroupNormOp, LayerNormOp, ReduceOp
from ember.dialects.tensor_types import Dim, element_type_of, shape_of
from ember.dialects.weights import WeightStore
from ember.passes.convert_onnx_to_nn.builder import constant_value, traced_value
from ember.runtime.cpu_kernels.common import is_floating


@dataclass
class Chain:
    """What a matched chain computes from `input` over dims `axis`..end (softmax: one axis)."""

    input: SSAValue
    axis: int
    ops: list[Operation] = field(default_factory=list)  # the chain, erased once fused
    epsilon: float = 0.0
    rms: bool = False
    log: bool = False
    groups: int | None = None  # group norm
    scale: SSAValue | None = None
    bias: SSAValue | None = None

    @property
    def end(self) -> Operation:
        """The op whose result the fused op gives (the chain's first op until affine grows it)."""
        return self.ops[0]

    def closed(self) -> bool:
        """Every value the chain makes, but its end's, is read only inside the chain."""
        inside, end = set(self.ops), self.end
        return all(use.operation in inside for op in self.ops if op is not end
                   for r in op.results for use in r.uses)


def scalar(value: SSAValue, store: WeightStore) -> float | None:
    """The value of a one-element floating-point constant."""
    c = constant_value(value, store)
    if c is None or c.size != 1 or not is_floating(c.dtype):
        return None
    return float(c.reshape(-1)[0])


def binary(value: SSAValue, *fns: str) -> BinaryOp | None:
    op = value.owner
    return op if isinstance(op, BinaryOp) and op.fn.data in fns else None


def unary(value: SSAValue, fn: str) -> UnaryOp | None:
    op = value.owner
    return op if isinstance(op, UnaryOp) and op.fn.data == fn else None


def operand_pairs(op: BinaryOp) -> tuple[tuple[SSAValue, SSAValue], ...]:
    """(a, b) readings of a commutative op's operands."""
    return (op.lhs, op.rhs), (op.rhs, op.lhs)


def same_shape(a: SSAValue, b: SSAValue) -> bool:
    sa, sb = shape_of(a), shape_of(b)
    return sa is not None and sb is not None and list(sa) == list(sb)


def kept_reduce(value: SSAValue, fn: str, source: SSAValue | None = None) -> ReduceOp | None:
    """`value` = reduce `fn` of `source` (any, if None) with static axes, keepdims."""
    op = value.owner
    if not isinstance(op, ReduceOp) or op.fn.data != fn or op.dynamic_axes is not None \
            or not op.prop("keepdims") or not op.prop("axes") \
            or (source is not None and op.input is not source):
        return None
    return op


def trailing_axis(reduce: ReduceOp) -> int | None:
    """a, when the reduce runs over the dims a..end of its input."""
    axes, rank = reduce.prop("axes"), len(shape_of(reduce.input))
    return axes[0] if axes == list(range(axes[0], rank)) else None


# -- x / sqrt(mean(x², axes) + eps), centred (layer norm) or not (RMS norm) ---------------------

def _root(value: SSAValue, store: WeightStore, ops: list[Operation]) -> SSAValue | None:
    """v for sqrt(v) or v ** 0.5."""
    if (op := unary(value, "sqrt")) is not None:
        ops.append(op)
        return op.input
    op = binary(value, "pow")
    if op is not None and scalar(op.rhs, store) == 0.5 and same_shape(op.lhs, op.output):
        ops.append(op)
        return op.lhs
    return None


def _inverse_root(value: SSAValue, store: WeightStore, ops: list[Operation]) -> SSAValue | None:
    """v for 1 / sqrt(v), reciprocal(sqrt(v)) or v ** -0.5 (sqrt may be v ** 0.5)."""
    if (op := unary(value, "reciprocal")) is not None:
        ops.append(op)
        return _root(op.input, store, ops)
    op = binary(value, "div", "pow")
    if op is None or not same_shape(op.output, op.rhs if op.fn.data == "div" else op.lhs):
        return None
    if op.fn.data == "div" and scalar(op.lhs, store) == 1.0:
        ops.append(op)
        return _root(op.rhs, store, ops)
    if op.fn.data == "pow" and scalar(op.rhs, store) == -0.5:
        ops.append(op)
        return op.lhs
    return None


def _variance(value: SSAValue, num: SSAValue, store: WeightStore,
              ops: list[Operation]) -> tuple[ReduceOp, float] | None:
    """(the mean, eps) for mean(num², dims a..end, keepdims) [+ eps]; num² is num·num or
    num ** 2."""
    eps = 0.0
    add = binary(value, "add")
    if add is not None:
        for v, e in operand_pairs(add):
            eps_value = scalar(e, store)
            if eps_value is not None and same_shape(v, add.output) \
                    and kept_reduce(v, "mean") is not None:
                ops.append(add)
                value, eps = v, eps_value
                break
        else:
            return None
    mean = kept_reduce(value, "mean")
    if mean is None or trailing_axis(mean) is None:
        return None
    square = mean.input.owner
    if isinstance(square, BinaryOp) and square.fn.data == "mul" \
            and square.lhs is num and square.rhs is num:
        pass
    elif not (isinstance(square, BinaryOp) and square.fn.data == "pow" and square.lhs is num
              and scalar(square.rhs, store) == 2.0 and same_shape(num, square.output)):
        return None
    ops += [mean, square]
    return mean, eps


def normalized(op: BinaryOp, store: WeightStore) -> Chain | None:
    """`op` = num / root or num · inverse root, root = sqrt(mean(num², dims a..end) + eps);
    num = x - mean(x, the same dims) gives a layer norm of x, any other num an RMS norm of num."""
    if op.fn.data == "div":
        readings = [(op.lhs, op.rhs, _root)]
    elif op.fn.data == "mul":
        readings = [(num, r, _inverse_root) for num, r in operand_pairs(op)]
    else:
        return None
    for num, r, root in readings:
        ops: list[Operation] = [op]
        v = root(r, store, ops)
        if v is None or not same_shape(num, op.output) or not is_float(element_type_of(num)):
            continue
        found = _variance(v, num, store, ops)
        if found is None:
            continue
        variance, eps = found
        axis = trailing_axis(variance)
        sub = binary(num, "sub")
        mean = kept_reduce(sub.rhs, "mean", sub.lhs) if sub is not None else None
        if mean is not None and mean.prop("axes") == variance.prop("axes") \
                and same_shape(sub.lhs, num):
            return Chain(sub.lhs, axis, [*ops, sub, mean], eps)
        return Chain(num, axis, ops, eps, rms=True)
    return None


def _only_user(value: SSAValue) -> Operation | None:
    if value.uses.get_length() != 1:
        return None
    return next(iter(value.uses)).operation


def _broadcasts_inside(param: SSAValue, x_shape: list[Dim], axis: int) -> bool:
    """`param` broadcasts to x's dims axis..end (static, 1 or equal) and is 1 on the others."""
    p = shape_of(param)
    if p is None or len(p) > len(x_shape):
        return False
    padded = [1] * (len(x_shape) - len(p)) + list(p)
    return all(isinstance(d, int) and (d == 1 or (i >= axis and d == x_shape[i]))
               for i, d in enumerate(padded))


def _per_channel(param: SSAValue, x_shape: list[Dim], store: WeightStore) -> bool:
    """`param` broadcasts to x with one value per channel (dim 1): [C, 1, ...] or [1, C, ...],
    or one value (then a constant)."""
    p = shape_of(param)
    if p is None or len(p) > len(x_shape):
        return False
    padded = [1] * (len(x_shape) - len(p)) + list(p)
    channels = padded[1] if len(padded) > 1 else None
    if any(d != 1 for i, d in enumerate(padded) if i != 1) or not isinstance(channels, int):
        return False
    return channels == x_shape[1] or (channels == 1 and constant_value(param, store) is not None)


def affine(chain: Chain, store: WeightStore, per_channel: bool = False) -> bool:
    """Take the chain end's [· scale] [+ bias] consumers into `chain` (each joins only if its
    parameter broadcasts to the normalized dims; per_channel: one value per channel); True if
    any did."""
    x_shape = list(shape_of(chain.input))
    dtype = element_type_of(chain.input)

    def fits(p: SSAValue) -> bool:
        if element_type_of(p) != dtype:
            return False
        if per_channel:
            return _per_channel(p, x_shape, store)
        return _broadcasts_inside(p, x_shape, chain.axis)

    grew = False
    for fn, slot in (("mul", "scale"), ("add", "bias")):
        result = chain.end.results[0]
        user = _only_user(result)
        if not isinstance(user, BinaryOp) or user.fn.data != fn \
                or not same_shape(user.output, chain.input):
            continue
        for value, p in operand_pairs(user):
            if value is result and p is not value and fits(p):
                setattr(chain, slot, p)
                chain.ops.insert(0, user)
                grew = True
                break
    return grew


# -- group / instance norm: a unit layer norm of reshape(x, [N, G, -1]), reshaped back ----------

def _unit(op: LayerNormOp | GroupNormOp, store: WeightStore) -> bool:
    """Scale all ones, bias absent or all zeros (constants). Only a yes relies on the values
    (then a REFIT build bakes them into the plan: `constant_value`)."""
    scale = traced_value(op.scale, store)[0]
    bias = traced_value(op.bias, store)[0] if op.bias is not None else np.zeros(1)
    unit = scale is not None and bias is not None and bool(np.all(scale == 1)) \
        and bool(np.all(bias == 0))
    if unit:
        for v in (op.scale, op.bias):
            if v is not None:
                constant_value(v, store)
    return unit


def grouped(op: LayerNormOp | GroupNormOp, store: WeightStore) -> Chain | None:
    """A group norm of x: `op` normalizes reshape(x [N, C, ...], [N, G, C/G·...]) over its last
    dim (a layer norm, or PyTorch's instance norm of G channels) with unit parameters, reshaped
    back to x's shape, [· scale per channel] [+ bias per channel]. Or an instance norm: a unit
    layer norm over dims 2..end of x followed by a per-channel scale or bias."""
    if (isinstance(op, LayerNormOp) and op.prop("rms")) or not _unit(op, store):
        return None
    shape = shape_of(op.input)
    epsilon = op.prop("epsilon")
    if shape is None or len(shape) < 3:
        return None
    norms_last = op.prop("axis") == len(shape) - 1 if isinstance(op, LayerNormOp) \
        else op.prop("groups") == shape[1]
    split, back = op.input.owner, _only_user(op.output)
    if len(shape) == 3 and norms_last and isinstance(split, ReshapeOp) and split.shape is None \
            and isinstance(back, ReshapeOp) and back.shape is None \
            and same_shape(back.output, split.input):
        x = split.input
        xs = list(shape_of(x))
        if len(xs) >= 2 and xs[0] == shape[0] and isinstance(xs[1], int) \
                and isinstance(shape[1], int) and xs[1] % shape[1] == 0:
            chain = Chain(x, 1, [back, op, split], epsilon, groups=shape[1])
            affine(chain, store, per_channel=True)
            return chain
    if isinstance(op, LayerNormOp) and op.prop("axis") == 2 and isinstance(shape[1], int):
        chain = Chain(op.input, 1, [op], epsilon, groups=shape[1])
        if affine(chain, store, per_channel=True):
            return chain
    return None


# -- softmax: exp(t) / sum(exp(t)), t = x - max(x) or any t; log: t - log(sum(exp(t))) ---------

def _single_axis(reduce: ReduceOp | None) -> int | None:
    axes = reduce.prop("axes") if reduce is not None else None
    return axes[0] if axes is not None and len(axes) == 1 else None


def _shifted(t: SSAValue, axis: int, chain_ops: list[Operation]) -> SSAValue:
    """x for t = x - max(x, axis, keepdims) (the sub and max joining the chain), else t."""
    sub = binary(t, "sub")
    mx = kept_reduce(sub.rhs, "max", sub.lhs) if sub is not None else None
    if mx is None or _single_axis(mx) != axis or not same_shape(sub.lhs, t):
        return t
    chain_ops += [sub, mx]
    return sub.lhs


def _exp_sum(e: SSAValue, s: SSAValue) -> tuple[SSAValue, int, list[Operation]] | None:
    """(t, axis, ops) for e = exp(t), s = sum(e, axis, keepdims)."""
    exp = unary(e, "exp")
    total = kept_reduce(s, "sum", e)
    axis = _single_axis(total)
    if exp is None or axis is None or not is_float(element_type_of(e)):
        return None
    return exp.input, axis, [exp, total]


def softmax(op: BinaryOp) -> Chain | None:
    """`op` = e / s or e · reciprocal(s) with e = exp(t), s = sum(e, axis, keepdims)."""
    if op.fn.data == "div":
        readings = [(op.lhs, op.rhs, [])]
    elif op.fn.data == "mul":
        readings = [(e, r.input, [r]) for e, rv in operand_pairs(op)
                    if (r := unary(rv, "reciprocal")) is not None]
    else:
        return None
    for e, s, extra in readings:
        found = _exp_sum(e, s)
        if found is None or not same_shape(op.output, e):
            continue
        t, axis, ops = found
        ops = [op, *extra, *ops]
        return Chain(_shifted(t, axis, ops), axis, ops)
    return None


def log_softmax(op: BinaryOp) -> Chain | None:
    """`op` = t - log(s) with s = sum(exp(t), axis, keepdims)."""
    if op.fn.data != "sub" or (log := unary(op.rhs, "log")) is None \
            or not same_shape(op.output, op.lhs):
        return None
    t = op.lhs
    total = kept_reduce(log.input, "sum")
    found = _exp_sum(total.input, log.input) if total is not None else None
    if found is None or found[0] is not t:
        return None
    _, axis, ops = found
    ops = [op, log, *ops]
    return Chain(_shifted(t, axis, ops), axis, ops, log=True)
