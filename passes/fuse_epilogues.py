"""fuse-epilogues: an elementwise kernel that only post-processes a conv's or matmul's result
becomes that kernel's epilogue (one kernel, no round trip through memory).

After this pass no `kernel.launch "conv"` / `"matmul"` result whose only user is one
`kernel.elementwise` of the same result type remains: the elementwise op's scalar region moves
into the launch's `epilogue` region (block argument 0 is the launch's own value, the others its
other inputs), those inputs join the launch's operands at the end (read with broadcasting, as the
elementwise kernel read them), and the origins merge in program order. Launches that already have
an epilogue and elementwise ops with a tactic are left alone.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import Block, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from ember.dialects.kernel import ElementwiseOp, LaunchOp
from ember.dialects.origin import origin_of, set_origin
from ember.passes.fuse_elementwise import _origin_names

EPILOGUE_TEMPLATES = ("conv", "matmul")


def _fusible_launch(op: ElementwiseOp) -> LaunchOp | None:
    """The conv / matmul launch among `op`'s inputs whose only user is `op`, if any."""
    if op.tactic is not None:
        return None
    for value in op.inputs:
        launch = value.owner
        if (not isinstance(launch, LaunchOp) or launch.template.data not in EPILOGUE_TEMPLATES
                or launch.epilogue is not None or launch.tactic is not None
                or len(launch.outputs) != 1 or launch.parent_block() is not op.parent_block()):
            continue
        if any(use.operation is not op for use in launch.outputs[0].uses):
            continue
        if launch.outputs[0].type == op.output.type:
            return launch
    return None


def _epilogue_block(op: ElementwiseOp, acc: SSAValue, extra: list[SSAValue]) -> Block:
    """`op`'s region with `acc`'s element as argument 0 and one argument per `extra` input."""
    args = op.body.block.args
    arg_type = {v: a.type for v, a in zip(op.inputs, args, strict=True)}
    block = Block(arg_types=[arg_type[acc], *(arg_type[v] for v in extra)])
    new_arg = dict(zip([acc, *extra], block.args, strict=True))
    mapper: dict[SSAValue, SSAValue] = {
        a: new_arg[v] for v, a in zip(op.inputs, args, strict=True)}
    for s in op.body.block.ops:
        block.add_op(s.clone(mapper))
    return block


class FuseEpilogue(RewritePattern):
    """Move one elementwise consumer of a conv / matmul into the launch as its epilogue."""

    def __init__(self, order: dict[str, int]) -> None:
        self.order = order

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ElementwiseOp, rewriter: PatternRewriter) -> None:
        launch = _fusible_launch(op)
        if launch is None:
            return
        acc = launch.outputs[0]
        extra = list(dict.fromkeys(v for v in op.inputs if v is not acc))
        block = _epilogue_block(op, acc, extra)
        names = list(dict.fromkeys([*_origin_names(launch), *_origin_names(op)]))
        names.sort(key=lambda n: self.order.get(n, len(self.order)))
        props = dict(launch.properties)
        if names:
            props["origin"] = ArrayAttr([StringAttr(n) for n in names])
        fused = LaunchOp.create(operands=[*launch.inputs, *extra],
                                result_types=[op.output.type], properties=props,
                                regions=[Region(block)])
        set_origin(fused, names)
        if not names:
            fused.location = launch.location
        rewriter.replace(op, fused)
        rewriter.erase(launch)


def _program_order(module: ModuleOp) -> dict[str, int]:
    order: dict[str, int] = {}
    for op in module.walk():
        kernel = isinstance(op, ElementwiseOp | LaunchOp)
        for name in _origin_names(op) if kernel else origin_of(op):  # type: ignore[arg-type]
            order.setdefault(name, len(order))
    return order


class FuseEpilogues(ModulePass):
    name = "fuse-epilogues"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        pattern = FuseEpilogue(_program_order(module))
        PatternRewriteWalker(GreedyRewritePatternApplier([pattern]),
                             apply_recursively=True).rewrite_module(module)
