"""fuse-normalization: normalizations and softmax written out op by op, as PyTorch exports them
before opset 17 (or as people write them by hand), become the one nn op that computes them.

Recognized (matchers in `normalization_patterns.py`), every reduce with static axes and keepdims:
  d = x - mean(x, a..end); d / sqrt(mean(d², a..end) [+ eps])    -> nn.layer_norm {axis = a}
      d² = d·d or d ** 2; / sqrt may be · reciprocal(sqrt), · 1 / sqrt or · (.) ** -0.5
  x / sqrt(mean(x², a..end) [+ eps]), the same spellings           -> nn.layer_norm {rms}
      then [· scale] [+ bias] whose parameters broadcast to dims a..end join it
  exp(t) / sum(exp(t), axis) (or · reciprocal(sum))                -> nn.softmax(t)
  t - log(sum(exp(t), axis))                                       -> nn.softmax {log}(t)
      where t = x - max(x, axis) the softmax is of x
  reshape(unit layer norm / instance norm of reshape(x, [N, G, -1])) back to x's shape,
  [· scale per channel] [+ bias per channel]                       -> nn.group_norm {groups = G}
  unit layer norm over dims 2..end, then a per-channel scale/bias  -> nn.group_norm (instance norm)
eps must be a one-element constant. Every value inside a chain must be read only by the chain;
anything else (other axes, a reduce over other dims than its partner, a run-time eps, a value
also read elsewhere) is left alone. After this pass each matched chain is one op and its ops are
gone; the fused op's origin lists every ONNX node of the chain.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
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

from ember.dialects.dtypes import numpy_dtype
from ember.dialects.nn.base import NNOp, build
from ember.dialects.nn.elementwise import BinaryOp
from ember.dialects.nn.movement import ReshapeOp
from ember.dialects.nn.reduction import GroupNormOp, LayerNormOp, SoftmaxOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, shape_of, tensor_type
from ember.dialects.weights import WeightStore, weights_of
from ember.errors import ShapeError
from ember.passes.convert_onnx_to_nn.builder import constant_value, make_constant
from ember.passes.normalization_patterns import (
    Chain,
    affine,
    grouped,
    log_softmax,
    normalized,
    softmax,
)


class _Fuse(RewritePattern):
    """Shared by the patterns: replace a closed chain by one new op (with its parameters)."""

    def __init__(self, store: WeightStore) -> None:
        self.store = store
        self.pending: list[Operation] = []  # parameter ops the new op reads, not yet inserted

    def _add(self, op: Operation) -> SSAValue:
        self.pending.append(op)
        return op.results[0]

    def param(self, value: SSAValue, shape: list[int]) -> SSAValue:
        """`value` as a tensor of `shape` (same elements, or a one-value constant broadcast)."""
        if list(shape_of(value)) == list(shape):
            return value
        if int(np.prod(shape_of(value))) != int(np.prod(shape)):
            c = constant_value(value, self.store)
            return self._add(make_constant(np.broadcast_to(c.reshape(-1), shape).copy(),
                                           self.store, "normalization.param"))
        return self._add(build(ReshapeOp, [value],
                               result_types=[tensor_type(shape, element_type_of(value))]))

    def filled(self, value: float, shape: list[int], like: SSAValue) -> SSAValue:
        array = np.full(shape, value, numpy_dtype(element_type_of(like)))
        return self._add(make_constant(array, self.store, "normalization.ones" if value
                                       else "normalization.zeros"))

    def replace(self, chain: Chain, make: Callable[[], NNOp], rewriter: PatternRewriter) -> None:
        """Put `make()` (an nn op reading `pending` parameter ops) in the chain's place, if the
        chain is closed and the op verifies; else change nothing."""
        if not chain.closed():
            return
        self.pending = []
        try:
            new = make()
            new.verify_()
        except (ShapeError, VerifyException):
            for op in self.pending:
                op.drop_all_references()
            return
        end = chain.end
        order = {o: i for i, o in enumerate(end.parent_block().ops)}
        ops = sorted(set(chain.ops), key=lambda o: order.get(o, -1))
        set_origin(new, [n for o in ops for n in origin_of(o)])
        for op in [*self.pending, new]:
            rewriter.insert(op, InsertPoint.before(end))
        rewriter.replace_all_uses_with(end.results[0], new.results[0])
        for o in reversed(ops):
            if all(r.uses.get_length() == 0 for r in o.results):
                rewriter.erase(o)


class FuseNormalizationChain(_Fuse):
    """A layer / RMS norm chain or a softmax chain, anchored on the op that ends it."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: BinaryOp, rewriter: PatternRewriter) -> None:
        chain = normalized(op, self.store)
        if chain is not None:
            affine(chain, self.store)
            self.replace(chain, lambda: self.layer_norm(chain), rewriter)
            return
        chain = softmax(op) or log_softmax(op)
        if chain is not None:
            self.replace(chain, lambda: build(
                SoftmaxOp, [chain.input], {"axis": chain.axis, "log": chain.log},
                result_types=[chain.end.results[0].type]), rewriter)

    def layer_norm(self, chain: Chain) -> NNOp:
        inner = len(shape_of(chain.input)) - chain.axis

        def fitted(p: SSAValue) -> SSAValue:  # leading 1s beyond the normalized dims dropped
            s = list(shape_of(p))
            return self.param(p, s[len(s) - inner:] if len(s) > inner else s)

        scale = fitted(chain.scale) if chain.scale is not None \
            else self.filled(1.0, [1], chain.input)
        operands = [chain.input, scale, *([fitted(chain.bias)] if chain.bias is not None else [])]
        return build(LayerNormOp, operands,
                     {"axis": chain.axis, "epsilon": chain.epsilon, "rms": chain.rms or None},
                     result_types=[chain.end.results[0].type])


class FuseGroupNorm(_Fuse):
    """A group / instance norm around a unit layer norm (or PyTorch's reshaped instance norm)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: LayerNormOp | GroupNormOp, rewriter: PatternRewriter) -> None:
        chain = grouped(op, self.store)
        if chain is not None:
            self.replace(chain, lambda: self.group_norm(chain), rewriter)

    def group_norm(self, chain: Chain) -> NNOp:
        channels = shape_of(chain.input)[1]
        scale, bias = (self.param(p, [channels]) if p is not None
                       else self.filled(fill, [channels], chain.input)
                       for p, fill in ((chain.scale, 1.0), (chain.bias, 0.0)))
        return build(GroupNormOp, [chain.input, scale, bias],
                     {"groups": chain.groups, "epsilon": chain.epsilon},
                     result_types=[chain.end.results[0].type])


class FuseNormalization(ModulePass):
    name = "fuse-normalization"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for pattern in (FuseNormalizationChain(store), FuseGroupNorm(store)):
            PatternRewriteWalker(GreedyRewritePatternApplier([pattern]),
                                 apply_recursively=False).rewrite_module(module)
