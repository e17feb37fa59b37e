"""fuse-elementwise: chains of `kernel.elementwise` become one kernel (one read, one write).

After this pass no `kernel.elementwise` result whose every use is one other `kernel.elementwise`
of the same output shape remains: the producer's scalar ops are inlined into the consumer's region
in place of the block argument it fed, its inputs join the consumer's (identical SSA inputs share
one block argument), and the fused kernel's origin (property and location) is the union of both in
program order. Values used by anything else (a second kernel, `func.return`, a launch) and
producers whose result would need broadcasting stay materialized. Ops with a tactic are left alone.
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

from ember.dialects.kernel import ElementwiseOp, YieldOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import plan_dims


def _origin_names(op: ElementwiseOp) -> list[str]:
    """The ONNX nodes behind `op`: its location, else its `origin` property."""
    names = origin_of(op)
    if not names and op.origin is not None:
        names = [a.data for a in op.origin.data if isinstance(a, StringAttr)]
    return names


def _fusible_producer(consumer: ElementwiseOp) -> ElementwiseOp | None:
    """The first input of `consumer` made by an elementwise kernel that can be inlined into it."""
    for value in consumer.inputs:
        producer = value.owner
        if not isinstance(producer, ElementwiseOp) or producer.tactic is not None:
            continue
        if producer.parent_block() is not consumer.parent_block():
            continue
        if any(use.operation is not consumer for use in producer.output.uses):
            continue
        shape = plan_dims(producer.output)  # static, or the same symbolic dims
        if shape is not None and shape == plan_dims(consumer.output):
            return producer
    return None


def _inputs_after_fusion(producer: ElementwiseOp, consumer: ElementwiseOp) -> list[SSAValue]:
    """The consumer's inputs with the producer's inputs in place of its result, each value once."""
    values: list[SSAValue] = []
    for v in consumer.inputs:
        values.extend(producer.inputs if v is producer.output else [v])
    return list(dict.fromkeys(values))


def _fused_block(producer: ElementwiseOp, consumer: ElementwiseOp,
                 inputs: list[SSAValue]) -> Block:
    arg_type: dict[SSAValue, object] = {}
    for op in (consumer, producer):
        for v, arg in zip(op.inputs, op.body.block.args, strict=True):
            arg_type.setdefault(v, arg.type)
    block = Block(arg_types=[arg_type[v] for v in inputs])
    new_arg = dict(zip(inputs, block.args, strict=True))

    mapper: dict[SSAValue, SSAValue] = {
        a: new_arg[v] for v, a in zip(producer.inputs, producer.body.block.args, strict=True)}
    produced: SSAValue | None = None
    for s in producer.body.block.ops:
        if isinstance(s, YieldOp):
            produced = mapper[s.value]
        else:
            block.add_op(s.clone(mapper))
    assert produced is not None  # the verifier guarantees the yield

    mapper = {a: produced if v is producer.output else new_arg[v]
              for v, a in zip(consumer.inputs, consumer.body.block.args, strict=True)}
    for s in consumer.body.block.ops:
        block.add_op(s.clone(mapper))
    return block


class FuseElementwiseProducer(RewritePattern):
    """Inline one single-use elementwise producer into its elementwise consumer."""

    def __init__(self, order: dict[str, int]) -> None:
        self.order = order

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ElementwiseOp, rewriter: PatternRewriter) -> None:
        if op.tactic is not None:
            return
        producer = _fusible_producer(op)
        if producer is None:
            return
        inputs = _inputs_after_fusion(producer, op)
        block = _fused_block(producer, op, inputs)
        names = list(dict.fromkeys([*_origin_names(producer), *_origin_names(op)]))
        names.sort(key=lambda n: self.order.get(n, len(self.order)))
        props = {"origin": ArrayAttr([StringAttr(n) for n in names])} if names else {}
        fused = ElementwiseOp.create(operands=inputs, result_types=[op.output.type],
                                     regions=[Region(block)], properties=props)
        set_origin(fused, names)
        if not names:
            fused.location = op.location
        rewriter.replace(op, fused)
        rewriter.erase(producer)


def _program_order(module: ModuleOp) -> dict[str, int]:
    order: dict[str, int] = {}
    for op in module.walk():
        for name in _origin_names(op) if isinstance(op, ElementwiseOp) else origin_of(op):
            order.setdefault(name, len(order))
    return order


class FuseElementwise(ModulePass):
    name = "fuse-elementwise"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        pattern = FuseElementwiseProducer(_program_order(module))
        PatternRewriteWalker(GreedyRewritePatternApplier([pattern]),
                             apply_recursively=True).rewrite_module(module)

