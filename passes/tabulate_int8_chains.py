"""tabulate-int8-chains: a chain of scalar ops that depends on one 8-bit integer and constants
only becomes a lookup into a table of its 256 results.

A QDQ model quantizes every activation, so once fold-qdq and fuse-epilogues have run, a GELU
after a matmul (onnxruntime's quantizer puts Q/DQ around each of Div, Erf, Add, Mul, Mul) is
one epilogue region whose tail, from the first quantize's int8 code q on, computes
dequantize, divide, erf, add, multiply and four more exact quantizes of q and of scalars:
~100 instructions an element that can only give 256 different results. This pass evaluates
such a tail for every value of q with the CPU executor's own scalar functions (numpy, in the
region's types) and puts one `kernel.scalar "lookup"` of the table in its place: the results
are bit for bit what the CPU executor computed before, and the kernels read one entry.

In each scalar region (a `kernel.elementwise` body or a launch's epilogue), for each value s
of an 8-bit integer type (a block argument or an op's result), the values that depend on s
and on constants only (block arguments reading a one-value constant of the build, not a
weight a REFIT build may change) are s's chain; each of them used outside the chain (or
yielded) whose chain holds at least `MIN_OPS` ops is replaced by `lookup(s)`, where its type
is int8, uint8, float16, bfloat16 or float32. Ops left without users are erased. GPU builds
run it after cancel-requantize (which leaves cheaper exact forms a table would not beat).
"""

from __future__ import annotations

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import DenseArrayBase, IntegerType, ModuleOp, StringAttr, i64
from xdsl.ir import Block, BlockArgument, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.attributes import attribute_value
from ember.dialects.dtypes import numpy_dtype
from ember.dialects.kernel import ScalarOp, YieldOp
from ember.dialects.weights import weights_of
from ember.errors import EmberError
from ember.passes.cancel_requantize import region_constant, scalar_regions
from ember.runtime.cpu_kernels.elementwise import lookup as _lookup
from ember.runtime.cpu_kernels.elementwise import scalar_fn

MIN_OPS = 4  # a dequantize (cast, mul) and one more op are cheaper than a table read
RESULTS = ("int8", "uint8", "float16", "bfloat16", "float32")


def _is_code(value: SSAValue) -> bool:
    t = value.type
    return isinstance(t, IntegerType) and t.width.data == 8


def _constants(block: Block, operands: list, store) -> dict[SSAValue, np.ndarray]:
    """The block arguments reading one-value constants: each as a 0-d array of its type."""
    out = {}
    for arg in block.args:
        array = region_constant(operands[arg.index], store)
        if array is not None and np.asarray(array).size == 1:
            out[arg] = np.asarray(array).reshape(()).astype(numpy_dtype(arg.type))
    return out


def _evaluate(op: ScalarOp, args: list[np.ndarray]) -> np.ndarray:
    dtype = numpy_dtype(op.result.type)
    if op.fn.data == "lookup":
        return _lookup(args[0], [int(v) for v in op.table.get_values()], dtype)
    alpha, beta = (attribute_value(a) if a is not None else None for a in (op.alpha, op.beta))
    with np.errstate(all="ignore"):
        return np.asarray(scalar_fn(op.fn.data, args, dtype, alpha, beta))


def _chain(block: Block, source: SSAValue, constants: dict) -> tuple[dict, list[ScalarOp]]:
    """(value -> its 256 results over source's codes, the chain's ops in order): the values
    computed from `source` and constants only."""
    info = np.iinfo(numpy_dtype(source.type))
    codes = np.arange(info.min, info.max + 1).astype(numpy_dtype(source.type))
    values: dict[SSAValue, np.ndarray] = {source: codes}
    ops = []
    for op in block.ops:
        if not isinstance(op, ScalarOp) or not any(a in values for a in op.args) \
                or not all(a in values or a in constants for a in op.args):
            continue
        args = [values[a] if a in values else constants[a] for a in op.args]
        values[op.result] = np.broadcast_to(_evaluate(op, args), codes.shape)
        ops.append(op)
    return values, ops


def _table(results: np.ndarray) -> list[int]:
    """The table's entries: integers as themselves, floats as their bit patterns."""
    if results.dtype.kind in "iu":
        return [int(v) for v in results]
    return [int(v) for v in np.ascontiguousarray(results).view(f"uint{8 * results.itemsize}")]


def _tabulate(block: Block, operands: list, store) -> None:
    constants = _constants(block, operands, store)
    sources = [a for a in block.args if _is_code(a)] + [
        op.result for op in block.ops if isinstance(op, ScalarOp) and _is_code(op.result)]
    for source in sources:
        if not isinstance(source, BlockArgument) and source.owner.parent is not block:
            continue  # erased with an earlier chain
        try:
            values, ops = _chain(block, source, constants)
        except (ValueError, TypeError, ArithmeticError, EmberError):
            continue  # a function the evaluator does not take: the kernel computes it
        inside = {op.result for op in ops}
        # each value's ops behind it, counted before any of them becomes a table read
        behind = {op.result: len(_ancestors(op.result, source)) for op in ops}
        for op in ops:
            result = op.result
            if not _used_outside(result, inside) \
                    or numpy_dtype(result.type).name not in RESULTS \
                    or behind[result] < MIN_OPS:
                continue
            table = ScalarOp.create(
                operands=[source], result_types=[result.type],
                properties={"fn": StringAttr("lookup"),
                            "table": DenseArrayBase.from_list(i64, _table(values[result]))})
            Rewriter.insert_op(table, InsertPoint.before(op))
            result.replace_all_uses_with(table.result)
        _erase_unused(block)


def _used_outside(result: SSAValue, inside: set[SSAValue]) -> bool:
    """Whether an op outside the chain (or the region's yield) reads `result`."""
    return any(isinstance(use.operation, YieldOp) or not isinstance(use.operation, ScalarOp)
               or use.operation.result not in inside for use in result.uses)


def _ancestors(value: SSAValue, source: SSAValue) -> set[SSAValue]:
    """The op results between `source` and `value` (value included) that `value` reads."""
    seen: set[SSAValue] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if v in seen or v is source or not isinstance(v.owner, ScalarOp):
            continue
        seen.add(v)
        stack.extend(v.owner.args)
    return seen


def _erase_unused(block: Block) -> None:
    changed = True
    while changed:
        changed = False
        for op in reversed(list(block.ops)):
            if isinstance(op, ScalarOp) and not op.result.uses:
                Rewriter.erase_op(op)
                changed = True


class TabulateInt8Chains(ModulePass):
    name = "tabulate-int8-chains"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for block, operands in scalar_regions(module):
            _tabulate(block, operands, store)
