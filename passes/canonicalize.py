"""canonicalize: local simplifications of nn ops, to a fixed point.

After this pass: no reshape, expand or cast to the type it already has; no reshape of a reshape;
no transpose of a transpose (they compose, and vanish if the identity); no single-operand concat;
no slice that takes everything. xDSL's own canonicalization runs for the other dialects.
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
)
from xdsl.transforms.canonicalize import CanonicalizePass

from ember.dialects.nn.base import NNOp, build
from ember.dialects.tensor_types import UNKNOWN, shape_of, static_shape


class RemoveNoOp(RewritePattern):
    """Reshape/expand/cast/concat/slice/transpose that give back their input unchanged."""

    def match_and_rewrite(self, op, rewriter: PatternRewriter) -> None:
        if not isinstance(op, NNOp) or len(op.results) != 1 or not op.operands:
            return
        x, y = op.operands[0], op.results[0]
        if x.type != y.type:
            return
        name = op.name
        if name in ("nn.reshape", "nn.expand") and len(op.operands) == 1:
            # equal types are equal shapes only where no dim is an anonymous unknown ("?"):
            # tensor<?x?xf32> -> tensor<?x?xf32> may reshape [2, 6] into [3, 4]
            shape = shape_of(x)
            if shape is not None and UNKNOWN not in shape:
                rewriter.replace(op, [], [x])
        elif name == "nn.cast" or (name == "nn.concat" and len(op.operands) == 1):
            rewriter.replace(op, [], [x])
        elif name == "nn.transpose" and list(op.prop("perm")) == sorted(op.prop("perm")):
            rewriter.replace(op, [], [x])
        elif name == "nn.slice" and len(op.operands) == 1 and static_shape(x) is not None \
                and all(s == 1 for s in op.prop("steps", [1])):
            rewriter.replace(op, [], [x])


class MergeReshapes(RewritePattern):
    """reshape(reshape(x)) -> reshape(x): the target is the outer one's."""

    def match_and_rewrite(self, op, rewriter: PatternRewriter) -> None:
        if op.name != "nn.reshape" or len(op.operands) != 1:
            return
        inner = op.operands[0].owner
        if getattr(inner, "name", None) != "nn.reshape" or len(inner.operands) != 1:
            return
        # a run-time reshape target with two or more anonymous unknown dims cannot stand alone
        shape = shape_of(op.results[0])
        if shape is None or list(shape).count(UNKNOWN) > 1:
            return
        new = build(type(op), [inner.operands[0]], result_types=[op.results[0].type])
        rewriter.replace(op, new)


class ComposeTransposes(RewritePattern):
    """transpose(transpose(x, p), q) -> transpose(x, p∘q)."""

    def match_and_rewrite(self, op, rewriter: PatternRewriter) -> None:
        if op.name != "nn.transpose":
            return
        inner = op.operands[0].owner
        if getattr(inner, "name", None) != "nn.transpose":
            return
        p, q = list(inner.prop("perm")), list(op.prop("perm"))
        new = build(type(op), [inner.operands[0]], {"perm": [p[i] for i in q]})
        rewriter.replace(op, new)


class Canonicalize(ModulePass):
    name = "canonicalize"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        patterns = GreedyRewritePatternApplier([RemoveNoOp(), MergeReshapes(), ComposeTransposes()])
        PatternRewriteWalker(patterns).rewrite_module(module)
        CanonicalizePass().apply(ctx, module)



