"""choose-formats: each kernel that touches a 4-D activation gets the format it will run in,
chosen for the least total kernel + reformat time over the graph (TensorRT's builder).

Candidates: conv in NCHW or NHWC (and NC4HW4 where `packed` and it computes exactly in it),
kernels that read their params in physical terms (pool, concat, elementwise, ...) in any of
them, every other kernel in NCHW; the network's inputs and outputs in `io_formats`. Each
candidate is costed by `source`: "model" (`codegen.format_costs.ModelCosts`, no GPU) or
"measured" (conv and pool kernels and the reformats timed on the GPU of `arch`), and
`format_choice.solve` picks the assignment. After this pass every such kernel op carries
`format = "NHWC"` (what assign-layouts applies), layout-sensitive ones (costs that differ) also
`format_costs = {NCHW = 41.2, NHWC = 11.7}` (microseconds), and the function a summary:
`formats = {source, kernels_us, reformats, reformats_us, args}` (reformats_us: the reformats'
time and that of the elementwise kernels they keep from fusing into their producers). The IR
is otherwise unchanged: run assign-layouts next.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    f64,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass

from ember.dialects.attributes import attribute_value
from ember.dialects.kernel import ElementwiseOp, LaunchOp
from ember.dialects.nn.elementwise import ConstantOp, FillOp, WeightOp
from ember.dialects.origin import origin_of
from ember.dialects.tensor_types import static_shape
from ember.errors import PassError
from ember.passes import assign_layouts, space_to_depth_stem
from ember.passes.assign_layouts import depthwise, is_reformat, packable, preferred_format
from ember.passes.fold_channel_pad import channel_pad
from ember.passes.format_choice import (
    FORMAT_ATTR,
    FORMAT_COSTS_ATTR,
    SUMMARY_ATTR,
    FormatGraph,
    solve,
)
from ember.passes.fuse_epilogues import EPILOGUE_TEMPLATES
from ember.passes.layout_formats import FORMATS, NC4HW4, NCHW, NHWC, canonical_format, same_bytes

SOURCES = ("model", "measured")
# what a kernel in a format other than the policy's (assign-layouts') costs more, so that ties
# keep today's choice (seconds: far below any real difference)
PREFERENCE = 1e-12
# kernels that take an elementwise epilogue (fuse-epilogues)
EPILOGUE_HOSTS = EPILOGUE_TEMPLATES
_DATA = (WeightOp, ConstantOp, FillOp)


def _rank4(v: SSAValue) -> bool:
    return _rank4_type(v.type)


@functools.lru_cache(maxsize=4096)
def _rank4_type(t: Attribute) -> bool:  # (types are immutable; reading a shape is slow)
    shape = static_shape(t)
    return shape is not None and len(shape) == 4


def _is_kernel(op: Operation) -> bool:
    return isinstance(op, ElementwiseOp) or isinstance(op, LaunchOp) and not is_reformat(op)


def _activation_use(op: Operation, index: int) -> bool:
    """Whether operand `index` of `op` is read as an activation (a conv's weight is not)."""
    return not (isinstance(op, LaunchOp) and op.template.data == "conv" and index == 1)


def candidates(op: ElementwiseOp | LaunchOp, packed: bool) -> list[str]:
    """The formats a kernel may run in, NCHW first. Conv: NHWC where it is ungrouped or
    depthwise (the forms the CUDA templates are checked in), NC4HW4 where it computes exactly
    in it; an INT8 conv the INT8 tensor cores take only in NHWC (its CUDA kernel reads 16
    channels at a time: in NCHW it would run on the host)."""
    flex = [NCHW, NHWC] + ([NC4HW4] if packed and packable(op) else [])
    if isinstance(op, ElementwiseOp):
        return flex
    p = attribute_value(op.params)
    if op.template.data == "conv":
        if p.get("layout") in FORMATS:
            return [p["layout"]]
        if p.get("in_dtypes", [])[:2] == ["int8", "int8"] and preferred_format(
                op, conv_nhwc=True, half_conv_nhwc=True) == NHWC:
            return [NHWC]
        shapes = [static_shape(v) for v in (*op.inputs[:2], op.results[0])]
        if not all(s is not None and len(s) == 4 for s in shapes) or p.get("dynamic"):
            return [NCHW]
        if int(p.get("groups", 1)) != 1 and not depthwise(op):
            return [f for f in flex if f != NHWC]
        return flex
    if _image_pad(op):
        return [NCHW]
    pref = preferred_format(op, conv_nhwc=True)
    return flex if pref is None else [pref]


def _image_pad(op: LaunchOp) -> bool:
    """Whether `op` zero-pads the channels of a tensor with no more than space-to-depth-stem
    rewrites (an image's, for a tensor-core conv: pad-conv-channels, fold-qdq). It runs in NCHW:
    fold-channel-pad merges it with the reformat after it into one kernel (and space-to-depth-stem
    reads a stem conv's image as blocks through that reformat), which needs the pad next to the
    reformat; in NHWC the reformat may land before an elementwise kernel ahead of it (the image's
    quantize) and nothing folds (ResNet-50 INT8's stem: a transpose, a pad and a 7x7 conv instead of
    one reformat and a 4x4 one, +0.1 ms at batch 32 on an H100, NOTES.md session 34)."""
    if channel_pad(op) is None:
        return False
    channels = attribute_value(op.params)["in_shapes"][0][1]
    return isinstance(channels, int) and channels <= space_to_depth_stem.MAX_CHANNELS


@dataclass(frozen=True)
class ChooseFormats(ModulePass):
    name = "choose-formats"

    source: str = "model"
    """Where the costs come from: "model" (the cost model, no GPU) or "measured" (conv and pool
    kernels and reformats timed on the GPU of `arch`)."""
    arch: str = ""
    """The build's target ("sm_90": FP16/BF16 and TF32 convs in NHWC may take wgmma tactics)."""
    io_formats: str = NCHW
    """Formats the network's 4-D inputs and outputs may take (as assign-layouts')."""
    packed: bool = False
    """Whether kernels may run in NC4HW4 (as assign-layouts')."""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        # the costs read the templates' tactic cost models and time kernels: codegen's
        from ember.codegen.format_costs import MeasuredCosts, ModelCosts

        if self.source not in SOURCES:
            raise PassError(f"choose-formats: source must be one of {', '.join(SOURCES)}, not "
                            f"{self.source!r}")
        io = [NCHW]
        for f in self.io_formats.split(","):
            name = canonical_format(f) if f.strip() else None
            if f.strip() and name is None:
                raise PassError(f"choose-formats: unknown I/O format {f.strip()!r}")
            if name and name not in io:
                io.append(name)
        costs = MeasuredCosts(self.arch) if self.source == "measured" \
            else ModelCosts(self.arch or None)
        for fn in [op for op in module.walk() if isinstance(op, func.FuncOp)]:
            _Chooser(fn, costs, io, self.packed).run()


class _Chooser:
    def __init__(self, fn: func.FuncOp, costs, io: list[str], packed: bool) -> None:
        self.fn, self.block, self.costs, self.io, self.packed = fn, fn.body.block, costs, io, packed
        self.graph = FormatGraph()
        self.node_of: dict[Operation | SSAValue, int] = {}
        self.kernels: list[Operation] = []
        self.costs_of: dict[Operation, dict[str, float]] = {}

    def _preferred(self, op: Operation) -> str | None:
        """assign-layouts' policy for GPU builds (None: any format)."""
        return preferred_format(op, conv_nhwc=assign_layouts.CUDA_CONV_NHWC, packed=self.packed,
                                half_conv_nhwc=True)

    def _add(self, key: Operation | SSAValue, name: str, formats: list[str]) -> int:
        self.node_of[key] = self.graph.add_node(name, dict.fromkeys(formats, 0.0))
        return self.node_of[key]

    def run(self) -> None:
        graph = self.graph
        for arg in self.block.args:
            if _rank4(arg):
                self._add(arg, f"input #{arg.index}", self.io)
        sinks: dict[tuple[SSAValue, int], int] = {}
        for op in self.block.ops:
            if isinstance(op, _DATA):
                continue
            reads = [v for i, v in enumerate(op.operands)
                     if _rank4(v) and not isinstance(v.owner, _DATA) and _activation_use(op, i)]
            if _is_kernel(op) and (reads or any(_rank4(r) for r in op.results)):
                self._add(op, _label(op), candidates(op, self.packed))
                self.kernels.append(op)
            elif isinstance(op, func.ReturnOp):
                for i, v in enumerate(op.operands):  # each output in any I/O format
                    if _rank4(v) and not isinstance(v.owner, _DATA):
                        sinks[(v, i)] = graph.add_node(f"output #{i}", dict.fromkeys(self.io, 0.))
            elif reads or any(_rank4(r) for r in op.results):
                self._add(op, op.name, [NCHW])  # views and the rest read and write NCHW
        requests = [(op, f) for op in self.kernels for f in graph.nodes[self.node_of[op]].costs]
        for (op, f), cost in zip(requests, self.costs.kernels(requests), strict=True):
            self.costs_of.setdefault(op, {})[f] = cost
            # where formats cost the same, the policy's choice (today's) wins
            preferred = self._preferred(op)
            graph.nodes[self.node_of[op]].costs[f] = cost + (
                PREFERENCE if preferred is not None and f != preferred else 0.0)
        self._values(sinks)
        assignment = solve(graph)
        self._record(assignment)

    def _values(self, sinks: dict[tuple[SSAValue, int], int]) -> None:
        """One graph value per 4-D activation with its consumers, reformat costs asked in one
        batch (a measured source times them together)."""
        found: list[tuple[SSAValue, int, list[int]]] = []
        for key, producer in list(self.node_of.items()):
            outs = [key] if isinstance(key, SSAValue) else list(key.results)
            for v in outs:
                if not _rank4(v):
                    continue
                consumers = []
                for use in v.uses:
                    user = use.operation
                    if isinstance(user, func.ReturnOp):
                        consumers.append(sinks[(v, use.index)])
                    elif user in self.node_of and _activation_use(user, use.index):
                        consumers.append(self.node_of[user])
                if consumers:
                    found.append((v, producer, consumers))
        pairs = {}
        for v, producer, consumers in found:
            shape = static_shape(v)
            formats = set(self.graph.nodes[producer].costs)
            for c in consumers:
                formats |= set(self.graph.nodes[c].costs)
            for src in formats:
                for dst in formats:
                    if src != dst and not same_bytes(shape, src, dst):
                        pairs[(v, src, dst)] = 0.0
        keys = list(pairs)
        for key, cost in zip(keys, self.costs.reformats(keys), strict=True):
            pairs[key] = cost
        for v, _, _ in found:
            if (v, NCHW, NHWC) in pairs and isinstance(v.owner, LaunchOp) \
                    and channel_pad(v.owner) is not None and len(list(v.uses)) == 1:
                # fold-channel-pad makes an NCHW channel pad and this reformat one reformat:
                # the pad kernel's time is saved
                pairs[(v, NCHW, NHWC)] = max(pairs[(v, NCHW, NHWC)]
                                             - self.costs_of[v.owner][NCHW], 0.0)
        for v, producer, consumers in found:
            extra = self._unfused(v, consumers)

            def cost(s: str, d: str, v: SSAValue = v, extra: float = extra) -> float:
                c = pairs.get((v, s, d))
                return 0.0 if c is None else c + extra

            self.graph.add_value(_value_name(v), producer, consumers, cost)

    def _unfused(self, v: SSAValue, consumers: list[int]) -> float:
        """What a reformat of `v` costs besides its bytes: an elementwise kernel that is its
        only reader fuses into its producer (a conv's or matmul's epilogue, or the elementwise
        kernel before it: fuse-epilogues, fuse-elementwise) only in the producer's format;
        with a reformat between them it is a kernel of its own (a launch, its reads, writes)."""
        owner = v.owner
        uses = list(v.uses)
        if len(consumers) != 1 or len(uses) != 1 \
                or not isinstance(use := uses[0].operation, ElementwiseOp):
            return 0.0
        if not (isinstance(owner, ElementwiseOp)
                or isinstance(owner, LaunchOp) and owner.template.data in EPILOGUE_HOSTS):
            return 0.0
        return self.costs.launch_seconds + min(self.graph.nodes[self.node_of[use]].costs.values())

    def _record(self, assignment: list[str]) -> None:
        graph = self.graph
        for op in self.kernels:
            n = self.node_of[op]
            op.attributes[FORMAT_ATTR] = StringAttr(assignment[n])
            costs = self.costs_of[op]
            if len(set(costs.values())) > 1:
                op.attributes[FORMAT_COSTS_ATTR] = DictionaryAttr(
                    {f: FloatAttr(_us(c), f64) for f, c in costs.items()})
        kernels = sum(self.costs_of[op][assignment[self.node_of[op]]] for op in self.kernels)
        reformats = graph.reformats(assignment)
        moved = sum(graph.value_cost(v, assignment) for v in range(len(graph.values)))
        self.fn.attributes[SUMMARY_ATTR] = DictionaryAttr({
            "source": StringAttr(self.costs.source),
            "kernels_us": FloatAttr(_us(kernels), f64),
            "reformats": IntegerAttr(len(reformats), i64),
            "reformats_us": FloatAttr(_us(moved), f64),
            "args": ArrayAttr([StringAttr(assignment[self.node_of[a]] if a in self.node_of
                                          else "") for a in self.block.args])})


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 3)


def _label(op: Operation) -> str:
    names = origin_of(op)
    kind = op.template.data if isinstance(op, LaunchOp) else "elementwise"
    return f"{kind} ({', '.join(names)})" if names else kind


def _value_name(v: SSAValue) -> str:
    return v.name_hint or (f"{_label(v.owner)} #{v.index}" if isinstance(v.owner, Operation)
                           else f"input #{v.index}")


def format_report(module: ModuleOp) -> str:
    """What choose-formats decided, for `ember build --verbose`: per function the cost source,
    the kernels by format, the reformats and the estimated (or measured) times, then each
    layout-sensitive kernel's format and its cost in each candidate; "" where it did not run."""
    lines = []
    for fn in [op for op in module.walk() if isinstance(op, func.FuncOp)]:
        summary = fn.attributes.get(SUMMARY_ATTR)
        if not isinstance(summary, DictionaryAttr):
            continue
        s = attribute_value(summary)
        chosen = Counter(op.attributes[FORMAT_ATTR].data for op in fn.body.block.ops
                         if isinstance(op.attributes.get(FORMAT_ATTR), StringAttr))
        by_format = ", ".join(f"{f} {n}" for f, n in sorted(chosen.items()))
        lines.append(f"formats ({'measured' if s['source'] == 'measured' else 'cost model'}): "
                     f"{by_format or 'no 4-D kernels'}; {s['reformats']} reformat(s), "
                     f"{s['reformats_us']:.1f} us; kernels {s['kernels_us']:.1f} us")
        for op in fn.body.block.ops:
            costs = op.attributes.get(FORMAT_COSTS_ATTR)
            if isinstance(costs, DictionaryAttr):
                fmt = op.attributes[FORMAT_ATTR].data
                others = ", ".join(f"{f} {c:.1f}" for f, c in attribute_value(costs).items()
                                   if f != fmt)
                lines.append(f"  {_label(op):40} {fmt:6} {attribute_value(costs)[fmt]:9.1f} us"
                             f"  ({others})")
    return "".join(line + "\n" for line in lines)


__all__ = ["ChooseFormats", "candidates", "format_report"]
