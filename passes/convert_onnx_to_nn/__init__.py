"""convert-onnx-to-nn: legalize every `onnx` op into `nn` ops with inferred shapes.

After this pass no `onnx` op remains. Nodes ember cannot legalize are reported together, in one
`UnsupportedError` that names each node and why; the module is then left unchanged in meaning.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from ember.dialects.nn.elementwise import WeightOp as NNWeightOp
from ember.dialects.onnx import OnnxOp, WeightOp
from ember.dialects.origin import set_node_outputs
from ember.dialects.weights import weights_of
from ember.errors import EmberError, UnsupportedError
from ember.passes.convert_onnx_to_nn import builder as _builder

# the legalizer families register themselves on import
from ember.passes.convert_onnx_to_nn import elementwise as _elementwise  # noqa: F401, E402
from ember.passes.convert_onnx_to_nn.registry import LEGALIZERS

for _family in ("linear", "reduction", "movement", "sampling", "recurrent", "quant",
                "qlinear", "indicator", "data_dependent"):
    try:
        __import__(f"ember.passes.convert_onnx_to_nn.{_family}")
    except ModuleNotFoundError as _e:  # a family not written yet
        if _e.name != f"ember.passes.convert_onnx_to_nn.{_family}":
            raise


def _describe(op: OnnxOp) -> str:
    return f"node '{op.node_name or '<unnamed>'}' ({op.ONNX_TYPE})"


class ConvertOnnxToNN(ModulePass):
    name = "convert-onnx-to-nn"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        onnx_ops = [op for op in module.walk() if isinstance(op, OnnxOp)]
        missing = list(dict.fromkeys(f"{_describe(op)}: no lowering to nn for {op.ONNX_TYPE}"
                                     for op in onnx_ops if op.ONNX_TYPE not in LEGALIZERS))
        if missing:
            raise UnsupportedError(
                f"{len(missing)} node(s) cannot be legalized:\n  - " + "\n  - ".join(missing))
        problems: list[str] = []
        for op in list(module.walk()):
            if isinstance(op, WeightOp):
                new = NNWeightOp.create(properties={"ref": op.ref},
                                        result_types=[op.result.type])
                Rewriter.replace_op(op, new)
            elif isinstance(op, OnnxOp):
                if any(isinstance(v.owner, OnnxOp) for v in op.operands):
                    continue  # an operand's producer failed: reported already
                try:
                    self._legalize(op, store)
                except EmberError as e:
                    problems.append(str(e) if str(e).startswith("node '") else
                                    f"{_describe(op)}: {e}")
                except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:
                    # a malformed node (attribute values, constant inputs) that numpy or a
                    # legalizer trips over: reported with the node, as its other problems are
                    problems.append(f"{_describe(op)}: malformed: {type(e).__name__}: {e}")
        if problems:
            raise UnsupportedError(
                f"{len(problems)} node(s) cannot be legalized:\n  - " + "\n  - ".join(problems))
        for fn in module.walk():
            if isinstance(fn, func.FuncOp):
                update_function_type(fn)

    @staticmethod
    def _legalize(op: OnnxOp, store) -> None:
        b = _builder.NNBuilder(op, store)
        before = op.prev_op
        results = list(LEGALIZERS[op.ONNX_TYPE](b, op))
        if len(results) < len(op.results):
            results += [None] * (len(op.results) - len(results))
        made = []  # the ops made for the node, which the builder inserted before it
        at = before.next_op if before is not None else op.parent_block().first_op
        while at is not None and at is not op:
            made.append(at)
            at = at.next_op
        _mark_node_outputs(op.node_name, made, results)
        for old, new in zip(op.results, results, strict=False):
            if old.uses and new is None:
                raise b.unsupported(f"output #{old.index} is used but cannot be computed")
            if new is not None:
                old.replace_all_uses_with(new)
        Rewriter.erase_op(op)


def _mark_node_outputs(node: str, made: list, results: list) -> None:
    """Where `node` became several ops, or one whose results are not its outputs in order,
    record on the ops that make its outputs which outputs they are (origin.NODE_OUTPUTS), so
    that per-layer output types reach the node's i-th output whichever op makes it and never
    an op computing part of it. Where no op made here makes an output (each is an input passed
    through, or a constant), the ops made are all marked as making none."""
    if not node or not made:
        return
    given = [(i, v) for i, v in enumerate(results) if v is not None]
    if len(made) == 1 and all(i < len(made[0].results) and made[0].results[i] is v
                              for i, v in given):
        return  # one op, result i is output i: nothing to record
    outputs: dict = {}
    for i, v in given:
        outputs.setdefault(v, i)  # a value returned as two outputs: the first
    producers = [m for m in made if any(r in outputs for r in m.results)]
    for m in producers or [m for m in made if m.results]:
        set_node_outputs(m, node, [outputs.get(r, -1) for r in m.results])


def update_function_type(fn: func.FuncOp) -> None:
    """Make the function's result types those of what it returns (after types were refined)."""
    ret = fn.body.block.last_op
    if isinstance(ret, func.ReturnOp):
        inputs = fn.function_type.inputs.data
        fn.function_type = FunctionType.from_lists(inputs, [v.type for v in ret.arguments])
