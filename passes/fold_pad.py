"""fold-pad: an explicit constant `nn.pad` of spatial dims disappears into the pads of the convs
and pools that read it.

A static constant-mode `nn.pad` that pads only the spatial dims (2, ...) by non-negative amounts
and whose every user reads it as the input of an `nn.conv` or `nn.pool` that can express it is
removed: each user reads the pad's input with the pad's amounts added to its own pads. A user can
express it when the fill is what its own padding means, exactly:
- `nn.conv`: fill 0;
- avg `nn.pool`: fill 0, not ceil mode, and `count_include_pad` (or no pads of its own, so the
  folded pool can count pads: the explicit zeros were counted as input before);
- lp `nn.pool`: fill 0, not ceil mode (pads add |0|^p = 0 either way);
- max `nn.pool`: fill -inf on a float tensor, not ceil mode.
Ceil mode is excluded because which trailing windows it keeps depends on where the input ends.
Anything else — other modes, other fills, pads on N/C, negative pads (crops), run-time pads, a
pad with some other user — is left alone. Origins merge (the pad's node joins each user's).
"""

from __future__ import annotations

import math

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from ember.dialects.dtypes import is_float
from ember.dialects.nn.base import build
from ember.dialects.nn.linear import ConvOp
from ember.dialects.nn.movement import PadOp
from ember.dialects.nn.reduction import PoolOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, format_of, shape_of

# formats whose dims are (N, C, *spatial); others (NHWC after assign-layouts) are left alone
_CHANNELS_FIRST = ("", "NCHW")


def spatial_pads(pad: PadOp) -> list[int] | None:
    """The pad's [begin..., end...] over the spatial dims (2, ...) if it is a static, constant,
    non-negative pad of those dims only; else None."""
    shape = shape_of(pad.input)
    if pad.dynamic() or pad.pads is None or pad.prop("mode") != "constant" or shape is None \
            or len(shape) < 3 or format_of(pad.input) not in _CHANNELS_FIRST:
        return None
    pads = [int(p) for p in pad.prop("pads")]
    rank = len(shape)
    if len(pads) != 2 * rank or any(p < 0 for p in pads) \
            or any(pads[i] or pads[rank + i] for i in (0, 1)):
        return None
    return pads[2:rank] + pads[rank + 2:]


def _folds_into(user: Operation, index: int, value: float, floating: bool) -> bool:
    """Whether `user` reading the padded tensor as operand `index` can take the pad as its own."""
    if index != 0 or format_of(user.operands[0]) not in _CHANNELS_FIRST:
        return False
    if isinstance(user, ConvOp):
        return value == 0.0
    if not isinstance(user, PoolOp) or user.prop("ceil_mode"):
        return False
    fn = user.fn.data
    if fn == "max":
        return floating and value == -math.inf
    if fn == "lp":
        return value == 0.0
    if fn == "avg":
        return value == 0.0 and (bool(user.prop("count_include_pad"))
                                 or not any(user.prop("pads")))
    return False


class FoldPadIntoConsumers(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: PadOp, rewriter: PatternRewriter) -> None:
        extra = spatial_pads(op)
        if extra is None or not op.output.uses:
            return
        value = float(op.prop("value", 0.0))
        floating = is_float(element_type_of(op.input))
        if not all(_folds_into(u.operation, u.index, value, floating)
                   and len(u.operation.prop("pads")) == len(extra) for u in op.output.uses):
            return
        for user in dict.fromkeys(u.operation for u in op.output.uses):
            props = dict(user.properties)
            props["pads"] = [a + b for a, b in zip(user.prop("pads"), extra, strict=True)]
            if isinstance(user, PoolOp) and user.fn.data == "avg":
                props["count_include_pad"] = True
            new = build(type(user), [op.input, *user.operands[1:]], props,
                        result_types=[r.type for r in user.results])
            set_origin(new, origin_of(user) + origin_of(op))
            rewriter.replace(user, new)
        rewriter.erase(op)


class FoldPad(ModulePass):
    name = "fold-pad"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        PatternRewriteWalker(GreedyRewritePatternApplier([FoldPadIntoConsumers()])
                             ).rewrite_module(module)
