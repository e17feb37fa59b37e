"""fuse-attention: the scaled-dot-product attention chain, as PyTorch exports it, becomes one
`nn.attention` that reads Q, K and V straight from the projections and writes [B, S, H·D].

Recognized, anchored on a last-axis `nn.softmax` of [B, H, Sq, Sk] scores:
  scores = matmul(Q', K')                Q' = [scalar mul] transpose(reshape(q, [B, S, H, D]))
                                         K' = [scalar mul] transposes of reshape(k) giving
                                              [B, H, D, Sk] (or [B, H, Sk, D] with transpose_b)
  [scalar mul / div of the scores]       (the older export: Div by sqrt(D))
  [add of a mask | select(cond, scores, scalar)]
  p = softmax(..., last axis)            [select(isnan(p), 0, p)]  (sdpa's all-masked guard)
  out = transpose(matmul(p, V'), [0, 2, 1, 3])  [reshape to [B, Sq, H·D]]
where q, k, v are [B, S, H·D] or column slices of one packed [B, S, W] tensor
(merge-parallel-matmuls). Every value inside the chain must have no other user; anything else is
left alone. After this pass each matched chain is one `nn.attention` (scale: the product of the
scalar factors; masked_value: select's scalar) and its ops are gone. A fully masked row gives zeros
(the guard's result; without the guard the chain gives NaN there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, i1
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint
from xdsl.utils.exceptions import VerifyException

from ember.dialects.nn.attention import AttentionOp
from ember.dialects.nn.base import build, like
from ember.dialects.nn.elementwise import BinaryOp, SelectOp, UnaryOp
from ember.dialects.nn.linear import MatMulOp
from ember.dialects.nn.movement import ReshapeOp, SliceOp, TransposeOp
from ember.dialects.nn.reduction import SoftmaxOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import UNKNOWN, element_type_of, shape_of
from ember.dialects.weights import WeightStore, weights_of
from ember.errors import ShapeError
from ember.passes.convert_onnx_to_nn.builder import constant_value
from ember.runtime.cpu_kernels.common import is_floating

Q_PERM, K_PERM, KT_PERM = [0, 2, 1, 3], [0, 2, 1, 3], [0, 2, 3, 1]


@dataclass
class _Match:
    scale: float = 1.0
    ops: list[Operation] = field(default_factory=list)  # the chain, erased once fused


def _only_user(value: SSAValue) -> Operation | None:
    if value.uses.get_length() != 1:
        return None
    return next(iter(value.uses)).operation


def _scalar(value: SSAValue, store: WeightStore) -> float | None:
    c = constant_value(value, store)
    if c is None or c.size != 1 or c.ndim > 4 or not is_floating(c.dtype):
        return None
    return float(c.reshape(-1)[0])


def _scaled(value: SSAValue, store: WeightStore, match: _Match) -> SSAValue:
    """`value` without a scalar mul / div that only feeds the chain (its factor into match)."""
    op = value.owner
    if not isinstance(op, BinaryOp) or op.fn.data not in ("mul", "div") \
            or value.uses.get_length() != 1:
        return value
    for x, c in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
        s = _scalar(c, store)
        if s is None or s == 0 or (op.fn.data == "div" and c is op.lhs) \
                or shape_of(x) != shape_of(op.output):
            continue
        match.scale *= 1 / s if op.fn.data == "div" else s
        match.ops.append(op)
        return x
    return value


@dataclass
class _Source:
    """Where the heads come from: columns offset .. offset + H·D of a [B, S, W] tensor."""

    value: SSAValue
    offset: int
    heads: int
    dim: int


def _heads(value: SSAValue, perm: list[int], store: WeightStore, match: _Match,
           scaled: bool = True) -> _Source | None:
    """The source of a [B, H, ., .] operand that is reshape(x, [B, S, H, D]) permuted by `perm`
    (one or more transposes, at most one scalar factor among them)."""
    acc = list(range(4))
    owned: list[Operation] = []
    while isinstance(value.owner, TransposeOp | BinaryOp):
        op = value.owner
        if value.uses.get_length() != 1:
            return None
        if isinstance(op, BinaryOp):
            if not scaled:
                return None
            inner = _scaled(value, store, match)
            if inner is value:
                return None
            value, scaled = inner, False
            continue
        p = op.prop("perm")
        if len(p) != 4:
            return None
        acc = [p[i] for i in acc]
        owned.append(op)
        value = op.input
    reshape = value.owner
    if not isinstance(reshape, ReshapeOp) or reshape.shape is not None or acc != perm \
            or value.uses.get_length() != 1:
        return None
    x, out = reshape.input, shape_of(reshape.output)
    xs = shape_of(x)
    # batch and sequence may be symbolic (the same on both sides), heads and head dim not
    if xs is None or len(xs) != 3 or len(out) != 4 or not all(isinstance(d, int)
                                                              for d in (*out[2:], xs[2])) \
            or list(xs[:2]) != list(out[:2]) or UNKNOWN in xs[:2] \
            or xs[2] != out[2] * out[3]:
        return None
    match.ops += [*owned, reshape]
    offset = 0
    piece = x.owner
    if isinstance(piece, SliceOp) and not piece.dynamic():
        packed = shape_of(piece.input)
        starts, ends, steps = piece.prop("starts"), piece.prop("ends"), piece.prop("steps")
        if len(packed) == 3 and steps == [1, 1, 1] and starts[:2] == [0, 0] \
                and isinstance(packed[2], int) and list(packed[:2]) == list(xs[:2]) \
                and 0 <= starts[2] and ends[2] - starts[2] == xs[2]:
            match.ops.append(piece)
            x, offset = piece.input, starts[2]
    return _Source(x, offset, out[2], out[3])


def _scores(value: SSAValue, store: WeightStore, match: _Match) -> tuple | None:
    """(q, k) sources of [scalar ·] matmul(Q', K')."""
    value = _scaled(value, store, match)
    mm = value.owner
    if not isinstance(mm, MatMulOp) or mm.prop("transpose_a") or value.uses.get_length() != 1:
        return None
    match.ops.append(mm)
    q = _heads(mm.lhs, Q_PERM, store, match)
    k = _heads(mm.rhs, K_PERM if mm.prop("transpose_b") else KT_PERM, store, match)
    return None if q is None or k is None else (q, k)


def _masks(value: SSAValue, store: WeightStore) -> list[tuple]:
    """Readings of the softmax input as (scores, mask, masked_value, mask op):
    add(scores, mask) either way round, select(cond, scores, scalar), or no mask."""
    op = value.owner
    if value.uses.get_length() != 1:
        return []
    if isinstance(op, BinaryOp) and op.fn.data == "add":
        return [(scores, mask, None, op) for scores, mask in ((op.lhs, op.rhs), (op.rhs, op.lhs))
                if shape_of(scores) == shape_of(op.output) and len(shape_of(mask)) <= 4
                and element_type_of(mask) == element_type_of(scores)]
    if isinstance(op, SelectOp):
        masked = _scalar(op.false_value, store)
        if masked is None or element_type_of(op.condition) != i1 \
                or len(shape_of(op.condition)) > 4 \
                or shape_of(op.true_value) != shape_of(op.output):
            return []
        return [(op.true_value, op.condition, masked, op)]
    return [(value, None, None, None)]


def _scores_and_mask(value: SSAValue, store: WeightStore, match: _Match) -> tuple | None:
    """(match, (q, k), mask, masked_value) for the first reading of the softmax input whose
    scores are a Q·Kᵀ chain."""
    for scores, mask, masked_value, mask_op in _masks(value, store):
        trial = _Match(match.scale, [*match.ops, *([mask_op] if mask_op else [])])
        qk = _scores(scores, store, trial)
        if qk is not None:
            return trial, qk, mask, masked_value
    return None


def _guarded(p: SSAValue, store: WeightStore, match: _Match) -> SSAValue | None:
    """select(isnan(p), 0, p) if that guard is there, else p; None if p has other users."""
    users = [u.operation for u in p.uses]
    if len(users) == 1:
        return p
    isnan = next((u for u in users if isinstance(u, UnaryOp)), None)
    select = next((u for u in users if isinstance(u, SelectOp)), None)
    if len(users) != 2 or isnan is None or select is None or isnan.fn.data != "isnan" \
            or _only_user(isnan.output) is not select or select.condition is not isnan.output \
            or select.false_value is not p or _scalar(select.true_value, store) != 0.0:
        return None
    match.ops += [isnan, select]
    return select.output


class FuseAttentionChain(RewritePattern):
    """One attention chain, anchored on its softmax, into `nn.attention`."""

    def __init__(self, store: WeightStore) -> None:
        self.store = store

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SoftmaxOp, rewriter: PatternRewriter) -> None:
        shape = shape_of(op.input)
        if shape is None or len(shape) != 4 or op.prop("axis") != 3 or op.prop("log"):
            return
        match = _Match(ops=[op])
        probs = _guarded(op.output, self.store, match)
        pv = _only_user(probs) if probs is not None else None
        if not isinstance(pv, MatMulOp) or pv.lhs is not probs or pv.rhs is probs \
                or pv.prop("transpose_a") or pv.prop("transpose_b"):
            return
        match.ops.append(pv)
        back = _only_user(pv.output)
        if not isinstance(back, TransposeOp) or back.prop("perm") != Q_PERM:
            return
        match.ops.append(back)
        merged = _only_user(back.output)
        final = merged if isinstance(merged, ReshapeOp) and merged.shape is None else None
        v = _heads(pv.rhs, Q_PERM, self.store, match, scaled=False)
        if v is None:
            return
        found = _scores_and_mask(op.input, self.store, match)
        if found is None:
            return
        match, (q, k), mask, masked_value = found
        if len({(s.heads, s.dim) for s in (q, k, v)}) != 1:
            return
        b, h, sq, d = shape_of(pv.output)
        if final is not None and list(shape_of(final.output)) != [b, sq, h * d]:
            final = None
        props = {"num_heads": q.heads, "head_dim": q.dim, "scale": match.scale,
                 "q_offset": q.offset or None, "k_offset": k.offset or None,
                 "v_offset": v.offset or None, "masked_value": masked_value}
        operands = [q.value, k.value, v.value, *([mask] if mask is not None else [])]
        try:
            attention = build(AttentionOp, operands, props)
            attention.verify_()
        except (ShapeError, VerifyException):  # e.g. a mask that would grow the scores
            return
        if final is not None:
            match.ops.append(final)
        order = {o: i for i, o in enumerate(op.parent_block().ops)}
        chain = sorted(set(match.ops), key=lambda o: order.get(o, -1))
        set_origin(attention, [n for o in chain if not isinstance(o, SliceOp)
                               for n in origin_of(o)])
        end = final or back
        rewriter.insert(attention, InsertPoint.before(end))
        result = attention.output
        if final is None:  # keep the [B, Sq, H, D] view the chain gave
            view = build(ReshapeOp, [result], result_types=[like(back.output)])
            rewriter.insert(view, InsertPoint.before(end))
            result = view.output
        rewriter.replace_all_uses_with(end.results[0], result)
        for o in reversed(chain):
            if all(r.uses.get_length() == 0 for r in o.results):
                rewriter.erase(o)


class FuseAttention(ModulePass):
    name = "fuse-attention"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        pattern = FuseAttentionChain(weights_of(module))
        PatternRewriteWalker(GreedyRewritePatternApplier([pattern]),
                             apply_recursively=False).rewrite_module(module)
