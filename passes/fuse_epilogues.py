"""fuse-epilogues: an elementwise kernel that only post-processes a conv's, matmul's, layer
norm's or softmax's result becomes that kernel's epilogue (one kernel, no round trip through
memory).

After this pass no `kernel.launch "conv"` / `"matmul"` / `"layer_norm"` / `"softmax"` result
whose only user is one `kernel.elementwise` of the same shape and format remains: the
elementwise op's scalar region moves into the launch's `epilogue` region (block argument 0 is
the launch's own value, the others its other inputs), those inputs join the launch's operands
at the end (read with broadcasting, as the elementwise kernel read them), and the origins merge
in program order. The elementwise result may have another float type (f16 / bf16 / f32) than
the launch's: a region ending in a cast (assign-precision's casts around an FP32-pinned layer
or at the network's edges) makes the launch store the cast type directly; its params keep the
type it computes in (`out_dtypes`).
An int8 conv / matmul (int32 sums, fold-qdq's) takes the region that dequantizes them to a
float the same way, and one that quantizes the result back to int8 for the next layer. A layer
norm takes an epilogue too (its kernels store each element through it): in a QDQ transformer,
the quantize of its output for the next int8 GEMM, so it stores int8; so does a softmax (a QDQ
attention's fake-quantize of the probabilities), and a float matmul (a QDQ attention's P x V,
quantized for the output projection).
A region reading nothing but a `kernel.view` of the launch (conv -> flatten -> cast) fuses too:
the view moves after the launch. Launches that already have an epilogue and elementwise ops with a
tactic or strided reads (`views`, fuse-strided-reads') are left alone.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    Float8E4M3FNType,
    Float16Type,
    Float32Type,
    IntegerType,
    ModuleOp,
    StringAttr,
    f32,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from ember.dialects.kernel import ElementwiseOp, LaunchOp, ViewOp
from ember.dialects.kernel_templates import TEMPLATES
from ember.dialects.origin import kernel_origin, program_order, set_origin
from ember.dialects.tensor_types import element_type_of, same_type_with

EPILOGUE_TEMPLATES = tuple(name for name, d in TEMPLATES.items() if d.epilogue)
# the types an epilogue may store instead of the launch's own: the templates compute each of
# them in a float and store it with `store_from_float`
STORED_TYPES = (Float16Type, BFloat16Type, Float32Type)


def _only_user(value: SSAValue, op: Operation) -> bool:
    return all(use.operation is op for use in value.uses)


# templates whose kernels store each element through `epilogue_store`, so any scalar type: a
# layer norm's output quantized to int8 for the next GEMM, a softmax's probabilities for an
# int8 attention GEMM, a float matmul's (a QDQ attention's P x V, quantized for the output
# projection)
STORES_ANY = ("layer_norm", "softmax", "matmul")


def _stores(own: Attribute, wanted: Attribute, template: str, fp8_sums: bool = False) -> bool:
    """Whether a launch of `template` whose result is of type `own` can store `wanted` instead:
    the same type, or the same shape and format in another of the STORED_TYPES (8-bit integers
    too from int32 sums and from STORES_ANY's templates; E4M3 too from the float32 sums of E4M3
    operands, `fp8_sums`)."""
    if own == wanted:
        return True
    own_e, want_e = element_type_of(own), element_type_of(wanted)
    if same_type_with(own, element_type=want_e) != wanted:
        return False
    int8 = isinstance(want_e, IntegerType) and want_e.width.data == 8
    if fp8_sums and own_e == f32:
        # an FP8 conv / matmul's float32 sums, dequantized by the epilogue (and maybe
        # requantized to E4M3 for the next layer)
        return isinstance(want_e, STORED_TYPES) or int8 or isinstance(want_e, Float8E4M3FNType)
    if own_e == IntegerType(32):
        # an int8 conv / matmul's int32 sums, dequantized to a float by the epilogue (and maybe
        # requantized to 8 bits for the next layer)
        return isinstance(want_e, STORED_TYPES) or int8
    return isinstance(own_e, STORED_TYPES) and (
        isinstance(want_e, STORED_TYPES) or int8 and template in STORES_ANY)


def _fusible_launch(op: ElementwiseOp) -> tuple[LaunchOp, ViewOp | None] | None:
    """The conv / matmul / norm / softmax launch among `op`'s inputs whose only user is `op` (or a
    view whose only user is `op`, where `op` reads nothing else), if any; with that view."""
    if op.tactic is not None or op.views is not None:  # its own reads: not an epilogue's
        return None
    for value in op.inputs:
        launch, view = value.owner, None
        if isinstance(launch, ViewOp) and len(op.inputs) == 1 and _only_user(value, op):
            view, launch = launch, launch.input.owner
        if (not isinstance(launch, LaunchOp) or launch.template.data not in EPILOGUE_TEMPLATES
                or launch.epilogue is not None or launch.tactic is not None
                or len(launch.outputs) != 1 or launch.parent_block() is not op.parent_block()):
            continue
        if not _only_user(launch.outputs[0], view or op):
            continue
        template = launch.template.data
        fp8 = template in ("conv", "matmul") and len(launch.inputs) >= 2 and all(
            isinstance(element_type_of(v), Float8E4M3FNType) for v in launch.inputs[:2])
        if view is None and _stores(launch.outputs[0].type, op.output.type, template, fp8):
            return launch, None
        if view is not None and _stores(view.output.type, op.output.type, template, fp8):
            return launch, view
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
    """Move one elementwise consumer of a conv / matmul / layer norm / softmax into the launch
    as its epilogue."""

    def __init__(self, order: dict[str, int]) -> None:
        self.order = order

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ElementwiseOp, rewriter: PatternRewriter) -> None:
        found = _fusible_launch(op)
        if found is None:
            return
        launch, view = found
        acc = view.output if view is not None else launch.outputs[0]
        extra = list(dict.fromkeys(v for v in op.inputs if v is not acc))
        block = _epilogue_block(op, acc, extra)
        names = list(dict.fromkeys([*kernel_origin(launch), *kernel_origin(op)]))
        names.sort(key=lambda n: self.order.get(n, len(self.order)))
        props = dict(launch.properties)
        if names:
            props["origin"] = ArrayAttr([StringAttr(n) for n in names])
        stored = same_type_with(launch.outputs[0].type,
                                element_type=element_type_of(op.output))
        # the launch's attributes stay (choose-formats' format and costs: `ember inspect
        # --explain` reports them)
        fused = LaunchOp.create(operands=[*launch.inputs, *extra], result_types=[stored],
                                properties=props, attributes=dict(launch.attributes),
                                regions=[Region(block)])
        set_origin(fused, names)
        if not names:
            fused.location = launch.location
        if view is None:
            rewriter.replace(op, fused)
        else:  # the view of the launch's (cast) result, after it
            moved = ViewOp.create(operands=[fused.outputs[0]], result_types=[op.output.type])
            moved.location = view.location
            rewriter.replace(op, [fused, moved], [moved.output])
            rewriter.erase(view)
        rewriter.erase(launch)


class FuseEpilogues(ModulePass):
    name = "fuse-epilogues"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        pattern = FuseEpilogue(program_order(module))
        PatternRewriteWalker(GreedyRewritePatternApplier([pattern]),
                             apply_recursively=True).rewrite_module(module)
