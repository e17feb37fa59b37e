"""plan-memory: every activation gets its byte offset in one arena that activations share by
liveness.

After this pass each `kernel.launch` / `kernel.elementwise` carries `arena = array<i64: ...>`,
one offset per result, and each function `ember.arena_bytes` (the arena's size) and
`ember.activation_bytes` (what its activations would take unshared); the packer
(compiler/plan_builder.py) copies them into the plan. An activation lives from the step that
writes it to the last step that reads it (a `kernel.view` keeps its base alive; a function result
lives to the end). Offsets are assigned first-fit over the lifetimes, largest first, aligned, so
two activations share bytes only when their lifetimes do not overlap. Symbolic buffers are sized
at the profile's max (the module's `ember.symbols`): a symbolic dim is a monomial, so a
buffer is never bigger at a smaller shape and the arena planned at max serves every shape.
Rerunning the pass plans again from scratch.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, ModuleOp, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from ember.dialects.dtypes import numpy_dtype
from ember.dialects.kernel import CudaOp, ElementwiseOp, LaunchOp, ViewOp
from ember.dialects.nn.elementwise import ConstantOp, FillOp, WeightOp
from ember.dialects.origin import origin_of
from ember.dialects.symbol_ranges import SYMBOL_RANGES, symbol_maxima
from ember.dialects.tensor_types import element_type_of, format_of, shape_of
from ember.errors import PassError
from ember.runtime.formats import FORMATS, NC4HW4, physical_of
from ember.runtime.symbolic import dim_value, is_monomial_over

ALIGNMENT = 256
ARENA_BYTES = "ember.arena_bytes"            # function attribute: the arena's size
ACTIVATION_BYTES = "ember.activation_bytes"  # function attribute: the activations unshared


@dataclass(frozen=True)
class Interval:
    key: int        # the buffer this is for
    start: int      # first step index that writes it
    end: int        # last step index that reads it (inclusive)
    nbytes: int


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_arena(intervals: list[Interval]) -> tuple[dict[int, int], int]:
    """Offsets by key and the arena size: no two overlapping lifetimes share a byte."""
    offsets: dict[int, int] = {}
    # the placed buffers sorted by first and by last step, so the ones live with a new buffer
    # come from whichever side is shorter (a chain's lifetimes are short: linear, not n^2)
    by_start: list[tuple[int, int, int, int]] = []  # (start, end, offset, size)
    by_end: list[tuple[int, int, int, int]] = []    # (end, start, offset, size)
    total = 0
    for iv in sorted(intervals, key=lambda i: (-i.nbytes, i.start, i.key)):
        size = _align(max(iv.nbytes, 1))
        began = bisect.bisect_right(by_start, (iv.end, math.inf))      # start <= iv.end
        ended = bisect.bisect_left(by_end, (iv.start, -math.inf))      # end >= iv.start
        if began <= len(by_end) - ended:
            live = sorted((o, s) for _, e, o, s in by_start[:began] if e >= iv.start)
        else:
            live = sorted((o, s) for _, b, o, s in by_end[ended:] if b <= iv.end)
        offset = 0
        for o, s in live:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        offsets[iv.key] = offset
        bisect.insort(by_start, (iv.start, iv.end, offset, size))
        bisect.insort(by_end, (iv.end, iv.start, offset, size))
        total = max(total, offset + size)
    return offsets, total


def arena_conflicts(intervals: list[Interval], offsets: Mapping[int, int],
                    arena_bytes: int) -> list[str]:
    """What is wrong with an arena plan (empty: nothing): a buffer without an offset, one
    misaligned or past the arena's end, or two whose lifetimes overlap sharing bytes."""
    problems = []
    spans = []
    for iv in intervals:
        offset = offsets.get(iv.key)
        if offset is None:
            problems.append(f"buffer {iv.key} has no offset")
            continue
        if offset % ALIGNMENT or offset + iv.nbytes > arena_bytes:
            problems.append(f"buffer {iv.key} at [{offset}, {offset + iv.nbytes}) is misaligned "
                            f"or past the arena's {arena_bytes} bytes")
        spans.append((offset, offset + max(iv.nbytes, 1), iv))
    spans.sort(key=lambda s: s[0])
    # pairs live together, found from the lifetimes sorted by first step (one of the two
    # starts while the other lives), then kept where they share bytes: near-linear for a
    # chain, where comparing every pair of byte ranges was n^2
    by_start = sorted(range(len(spans)), key=lambda k: spans[k][2].start)
    starts = [spans[k][2].start for k in by_start]
    pairs = set()
    for i, (_, _, iv) in enumerate(spans):
        for k in by_start[bisect.bisect_left(starts, iv.start):
                          bisect.bisect_right(starts, iv.end)]:
            if k != i:
                pairs.add((min(i, k), max(i, k)))
    for i, j in sorted(pairs):
        lo, hi, iv = spans[i]
        lo2, hi2, other = spans[j]
        if lo2 < hi:
            problems.append(f"buffers {iv.key} (steps {iv.start}-{iv.end}) and {other.key} "
                            f"(steps {other.start}-{other.end}) are live together and share "
                            f"bytes [{max(lo, lo2)}, {min(hi, hi2)})")
    return problems


def buffer_bytes(value: SSAValue, maxima: Mapping[str, int], where: str) -> int:
    """Bytes of a value's buffer (its shape in its format's byte order) at the symbols' max."""
    logical = shape_of(value)
    if logical is None or any(isinstance(d, str) and ("?" in d or not is_monomial_over(
            d, maxima)) for d in logical):
        known = f"the module's symbols are {sorted(maxima)}" if maxima else (
            f"the module records no symbol maxima ({SYMBOL_RANGES}): give the model static "
            "input shapes or an optimization profile")
        raise PassError(f"plan-memory: cannot size {value.type} ({where}): every dim must be "
                        f"static or a product of symbols with a profile max; {known}")
    shape = list(logical)
    fmt = format_of(value)
    if len(logical) == 4 and fmt in FORMATS:
        if fmt == NC4HW4 and isinstance(logical[1], str):
            raise PassError(f"plan-memory: cannot size {value.type} ({where}): NC4HW4 needs a "
                            "static channel count")
        shape = list(physical_of(logical, fmt))
    return math.prod(dim_value(d, maxima) for d in shape) * numpy_dtype(
        element_type_of(value)).itemsize


def _where(op: Operation) -> str:
    origin = origin_of(op)
    template = op.template.data if isinstance(op, LaunchOp) else "elementwise"
    return f"{op.name} '{template}'" + (f" (ONNX {', '.join(origin)})" if origin else "")


def lifetimes(fn: func.FuncOp, maxima: Mapping[str, int]
              ) -> tuple[list[Operation], list[Interval]]:
    """The kernel ops of a function in step order, and one interval per result of theirs, in
    the same order (key: the result's position in that order)."""
    steps: list[Operation] = []
    results: dict[SSAValue, tuple[int, int, str]] = {}  # result -> (key, first step, where)
    last: dict[int, int] = {}
    root: dict[SSAValue, SSAValue] = {}  # a view -> the value whose bytes it sees
    for op in fn.body.block.ops:
        if isinstance(op, WeightOp | ConstantOp | FillOp | CudaOp):
            continue  # weights live in their own section; kernel.cuda only shows a kernel
        if isinstance(op, ViewOp):
            root[op.output] = root.get(op.input, op.input)
        elif isinstance(op, LaunchOp | ElementwiseOp):
            index = len(steps)
            for v in op.operands:
                if (read := results.get(root.get(v, v))) is not None:
                    last[read[0]] = index
            for r in op.results:
                results[r] = (len(results), index, _where(op))
            steps.append(op)
        elif isinstance(op, func.ReturnOp):
            for v in op.arguments:
                if (read := results.get(root.get(v, v))) is not None:
                    last[read[0]] = len(steps)
        else:
            raise PassError(f"plan-memory: cannot plan {op.name}: run convert-nn-to-kernel "
                            "first")
    intervals = [Interval(key, start, last.get(key, start), buffer_bytes(r, maxima, where))
                 for r, (key, start, where) in results.items()]
    return steps, intervals


class PlanMemory(ModulePass):
    name = "plan-memory"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        maxima = symbol_maxima(module)
        for fn in (op for op in module.ops if isinstance(op, func.FuncOp)):
            steps, intervals = lifetimes(fn, maxima)
            offsets, arena_bytes = plan_arena(intervals)
            key = 0
            for op in steps:
                n = len(op.results)
                op.properties["arena"] = DenseArrayBase.from_list(
                    i64, [offsets[k] for k in range(key, key + n)])
                key += n
            fn.attributes[ARENA_BYTES] = IntegerAttr(arena_bytes, i64)
            fn.attributes[ACTIVATION_BYTES] = IntegerAttr(sum(iv.nbytes for iv in intervals),
                                                          i64)
