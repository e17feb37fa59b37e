"""fuse-elementwise: chains of `kernel.elementwise` become one kernel (one read, one write).

After this pass no `kernel.elementwise` result whose every use is one other `kernel.elementwise`
of the same output shape remains: the producer's scalar ops are inlined into the consumer's region
in place of the block argument it fed, its inputs join the consumer's (identical SSA inputs share
one block argument), and the fused kernel's origin (property and location) is the union of both in
program order. Values used by anything else (a second kernel, `func.return`, a launch) and
producers whose result would need broadcasting stay materialized. Ops with a tactic or with
strided reads (`views`, from fuse-strided-reads) are left alone.

Where chains from two convs / matmuls meet (a residual add), the kernel they fuse into can become
the epilogue of one of them (fuse-epilogues), the host: the first input's. The other chain would
then run inside the host's epilogue, reading its conv's raw result. So that chain is cut at its
narrowest value, where narrower than its conv's result (an int8 model's quantize of the shortcut's
int32 sums): the part before the cut becomes that conv's own epilogue and stores the narrow value,
which the host's epilogue reads (1 byte an element instead of 4).
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.ir import Block, BlockArgument, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from ember.dialects.dtypes import numpy_dtype
from ember.dialects.kernel import ElementwiseOp, LaunchOp, YieldOp
from ember.dialects.origin import kernel_origin, origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, plan_dims

GEMM_TEMPLATES = ("conv", "matmul")  # the launches fuse-epilogues gives an epilogue


def _bytes(value: SSAValue) -> int:
    return numpy_dtype(element_type_of(value)).itemsize


def _cut_points(module: ModuleOp) -> set[ElementwiseOp]:
    """The elementwise ops whose result stays a kernel's output (see the module docstring): on
    each chain into a meeting point other than its first input's, the narrowest result (the
    last of that width) if narrower than the chain's conv / matmul result."""
    roots: dict[ElementwiseOp, frozenset[LaunchOp]] = {}
    cut: set[ElementwiseOp] = set()

    def roots_of(value: SSAValue) -> frozenset[LaunchOp]:
        owner = value.owner
        if isinstance(owner, LaunchOp) and owner.template.data in GEMM_TEMPLATES:
            return frozenset([owner])
        return roots.get(owner, frozenset()) if isinstance(owner, ElementwiseOp) else frozenset()

    for op in module.walk():
        if not isinstance(op, ElementwiseOp):
            continue
        sets = [(v, roots_of(v)) for v in op.inputs]
        roots[op] = frozenset().union(*(r for _, r in sets))
        fed = [(v, r) for v, r in sets if r]
        if len({r for _, r in fed}) < 2:
            continue
        host = fed[0][1]
        for value, r in fed[1:]:
            if r & host or len(r) != 1:
                continue
            narrowest = _narrowest_on_chain(value, op)
            if narrowest is not None:
                cut.add(narrowest)
    return cut


def _narrowest_on_chain(value: SSAValue, consumer: ElementwiseOp) -> ElementwiseOp | None:
    """Walking back from `value` (read by `consumer`) through single-use elementwise kernels to
    the conv / matmul they post-process: the kernel of the narrowest result, where narrower than
    the conv's; else None."""
    best: tuple[int, ElementwiseOp] | None = None
    while isinstance(value.owner, ElementwiseOp):
        op = value.owner
        if any(use.operation is not consumer for use in value.uses):
            return None
        if best is None or _bytes(value) < best[0]:
            best = (_bytes(value), op)
        fed = [v for v in op.inputs if isinstance(v.owner, ElementwiseOp | LaunchOp)]
        if len(fed) != 1:
            return None
        value, consumer = fed[0], op
    if best is None or not isinstance(value.owner, LaunchOp) or best[0] >= _bytes(value):
        return None
    return best[1]


def _fusible_producer(consumer: ElementwiseOp, cut: set[ElementwiseOp]) -> ElementwiseOp | None:
    """The first input of `consumer` made by an elementwise kernel that can be inlined into it."""
    for value in consumer.inputs:
        producer = value.owner
        if not isinstance(producer, ElementwiseOp) or producer.tactic is not None \
                or producer.views is not None or producer in cut:
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
    """The fused region's block: the producer's scalar ops, then copies of the consumer's, with
    one argument per value of `inputs`. The producer's own block is taken over (its arguments
    re-bound, its yield dropped), so a fusion costs the consumer's size: a chain of n kernels
    fuses in O(n), where copying the growing producer each time was O(n^2)."""
    arg_type: dict[SSAValue, object] = {}
    for op in (consumer, producer):
        for v, arg in zip(op.inputs, op.body.block.args, strict=True):
            arg_type.setdefault(v, arg.type)
    block = producer.body.block
    old_args = list(block.args)
    # keep the producer's argument of a value where it stays in order and keeps its type
    first: dict[SSAValue, BlockArgument] = {}
    for v, arg in zip(producer.inputs, old_args, strict=True):
        first.setdefault(v, arg)
    kept: dict[SSAValue, BlockArgument] = {}
    last = -1
    for v in inputs:
        arg = first.get(v)
        if arg is not None and arg.index > last and arg.type == arg_type[v]:
            kept[v] = arg
            last = arg.index
    new_arg: dict[SSAValue, BlockArgument] = {}
    following: BlockArgument | None = None
    for v in reversed(inputs):  # a new argument goes right before the next value's
        arg = kept.get(v)
        if arg is None:
            arg = block.insert_arg(arg_type[v],
                                   len(block.args) if following is None else following.index)
        new_arg[v] = following = arg
    for v, arg in zip(producer.inputs, old_args, strict=True):
        if new_arg[v] is not arg:
            arg.replace_all_uses_with(new_arg[v])
            block.erase_arg(arg)

    terminator = block.last_op
    assert isinstance(terminator, YieldOp)  # the verifier guarantees the yield
    produced = terminator.value
    block.erase_op(terminator)
    producer.body.detach_block(block)

    mapper: dict[SSAValue, SSAValue] = {
        a: produced if v is producer.output else new_arg[v]
        for v, a in zip(consumer.inputs, consumer.body.block.args, strict=True)}
    for s in consumer.body.block.ops:
        block.add_op(s.clone(mapper))
    return block


class FuseElementwiseProducer(RewritePattern):
    """Inline one single-use elementwise producer into its elementwise consumer. The fused
    kernels' origins are gathered in `names` and written once, by `write_origins`: rewriting
    them at every fusion made a chain quadratic."""

    def __init__(self, order: dict[str, int], cut: set[ElementwiseOp]) -> None:
        self.order = order
        self.cut = cut  # producers kept as they are (their kernel inherits it when it fuses)
        self.names: dict[ElementwiseOp, set[str]] = {}

    def _take_names(self, op: ElementwiseOp) -> set[str]:
        names = self.names.pop(op, None)
        return set(kernel_origin(op)) if names is None else names

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ElementwiseOp, rewriter: PatternRewriter) -> None:
        if op.tactic is not None or op.views is not None:  # strided reads: fuse-strided-reads
            return
        producer = _fusible_producer(op, self.cut)
        if producer is None:
            return
        inputs = _inputs_after_fusion(producer, op)
        block = _fused_block(producer, op, inputs)
        fused = ElementwiseOp.create(operands=inputs, result_types=[op.output.type],
                                     regions=[Region(block)])
        fused.location = op.location
        names = self._take_names(producer)
        names.update(self._take_names(op))
        self.names[fused] = names
        if op in self.cut:
            self.cut.add(fused)
        rewriter.replace(op, fused)
        rewriter.erase(producer)

    def write_origins(self) -> None:
        """Each fused kernel's origin (property and location): its nodes in program order."""
        for fused, names in self.names.items():
            if fused.parent is None or not names:
                continue  # erased; or no node made it: it keeps its last consumer's location
            ordered = sorted(names, key=lambda n: self.order.get(n, len(self.order)))
            fused.properties["origin"] = ArrayAttr([StringAttr(n) for n in ordered])
            set_origin(fused, ordered)
        self.names.clear()


def _program_order(module: ModuleOp) -> dict[str, int]:
    order: dict[str, int] = {}
    for op in module.walk():
        for name in kernel_origin(op) if isinstance(op, ElementwiseOp) else origin_of(op):
            order.setdefault(name, len(order))
    return order


class FuseElementwise(ModulePass):
    name = "fuse-elementwise"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        pattern = FuseElementwiseProducer(_program_order(module), _cut_points(module))
        PatternRewriteWalker(GreedyRewritePatternApplier([pattern]),
                             apply_recursively=True).rewrite_module(module)
        pattern.write_origins()

