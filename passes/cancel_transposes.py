"""cancel-transposes: data movement that only relabels dims is composed, absorbed or removed.

After this pass:
- no `nn.transpose` reads an `nn.transpose` (they compose into one) and none is the identity;
- no static `nn.reshape` reads an `nn.reshape` (the outer target is kept: one reshape);
- no reshape that is provably the identity: same type with no anonymous "?" dim, or one that
  the (non-zero) element count pins;
- no `nn.matmul` operand is a transpose that swaps only the last two dims: the matmul reads the
  transpose's input and flips that operand's `transpose_a` / `transpose_b` flag instead (the flag
  swaps the last two dims of a rank >= 2 operand, so this is exact; batch dims are untouched).
A transpose or reshape that other ops still read stays for them; `dce` removes the dead ones.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from ember.dialects.nn.base import build
from ember.dialects.nn.linear import MatMulOp
from ember.dialects.nn.movement import ReshapeOp, TransposeOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import UNKNOWN, shape_of


def _unknown_dims(value) -> int:
    shape = shape_of(value)
    return len(shape) if shape is None else sum(d == UNKNOWN for d in shape)


class ComposeTransposes(RewritePattern):
    """transpose(transpose(x, p), q) -> transpose(x, [p[i] for i in q]), gone if the identity."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: TransposeOp, rewriter: PatternRewriter) -> None:
        inner = op.input.owner
        if not isinstance(inner, TransposeOp):
            return
        p, q = list(inner.prop("perm")), list(op.prop("perm"))
        perm = [p[i] for i in q]
        if perm == sorted(perm) and inner.input.type == op.output.type:
            rewriter.replace(op, [], [inner.input])
            return
        new = build(TransposeOp, [inner.input], {"perm": perm}, result_types=[op.output.type])
        set_origin(new, origin_of(inner) + origin_of(op))
        rewriter.replace(op, new)


class RemoveIdentityTranspose(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: TransposeOp, rewriter: PatternRewriter) -> None:
        perm = list(op.prop("perm"))
        if perm == sorted(perm) and op.input.type == op.output.type:
            rewriter.replace(op, [], [op.input])


class MergeReshapes(RewritePattern):
    """reshape(reshape(x)) -> reshape(x) with the outer target, when the outer is static and its
    target has at most one unknown dim (the reshape kernel infers one, as numpy's -1)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ReshapeOp, rewriter: PatternRewriter) -> None:
        inner = op.input.owner
        if not isinstance(inner, ReshapeOp) or op.shape is not None \
                or _unknown_dims(op.output) > 1:
            return
        new = build(ReshapeOp, [inner.input], result_types=[op.output.type])
        set_origin(new, origin_of(inner) + origin_of(op))
        rewriter.replace(op, new)


class RemoveIdentityReshape(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ReshapeOp, rewriter: PatternRewriter) -> None:
        if op.shape is not None or op.input.type != op.output.type:
            return
        unknown = _unknown_dims(op.input)
        if unknown == 0 or (unknown == 1 and 0 not in shape_of(op.input)):
            rewriter.replace(op, [], [op.input])


def swaps_last_two(op: TransposeOp) -> bool:
    perm = list(op.prop("perm"))
    n = len(perm)
    return n >= 2 and perm == [*range(n - 2), n - 1, n - 2]


class TransposeIntoMatMul(RewritePattern):
    """matmul(transpose(a, swap last two), b) -> matmul(a, b, transpose_a = not transpose_a),
    and the same for b."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatMulOp, rewriter: PatternRewriter) -> None:
        operands = [op.lhs, op.rhs]
        flags = {"transpose_a": bool(op.prop("transpose_a", False)),
                 "transpose_b": bool(op.prop("transpose_b", False))}
        origins = origin_of(op)
        changed = False
        for i, flag in enumerate(("transpose_a", "transpose_b")):
            producer = operands[i].owner
            if isinstance(producer, TransposeOp) and swaps_last_two(producer):
                operands[i] = producer.input
                flags[flag] = not flags[flag]
                origins = origin_of(producer) + origins
                changed = True
        if not changed:
            return
        props = {k: v for k, v in op.properties.items() if k not in flags}
        props.update({k: True for k, v in flags.items() if v})
        new = build(MatMulOp, operands, props, result_types=[op.output.type])
        set_origin(new, origins)
        rewriter.replace(op, new)


class CancelTransposes(ModulePass):
    name = "cancel-transposes"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        patterns = [ComposeTransposes(), RemoveIdentityTranspose(), MergeReshapes(),
                    RemoveIdentityReshape(), TransposeIntoMatMul()]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(module)
