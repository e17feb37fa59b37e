"""assign-precision: which nn ops compute in FP16 / BF16, and which FP32 ones may use TF32.

The builder flags FP16 / BF16 (TensorRT's meaning: a layer *may* run in that precision) become
element types and `nn.cast` ops. Policy, op by op (in program order):

- Compute ops (conv, conv_transpose, matmul, einsum, attention, unary, binary, select, pool,
  softmax, layer/group/batch norm, reduce, lrn) compute in the low precision: their FP32 operands
  are converted and their FP32 results become low-precision tensors. Softmax, the normalizations,
  reductions (and attention's softmax) take and give low-precision tensors but accumulate in FP32
  (or wider) inside their kernels; the CPU kernels accumulate in float64 and round the result to
  the storage type.
- Data-movement ops (reshape, transpose, slice, concat, gather, gather_elements, expand, tile,
  pad, trilu, squeeze, unsqueeze, arg_reduce) compute nothing: they follow the precision of their
  data input (no cast is inserted around them; a concat of mixed inputs takes the low precision).
- Kept in FP32: resize (its coordinate math and interpolation weights), cumsum (a running sum
  in the storage type), quantize / dequantize (scales) and the arithmetic fold-qdq expands them
  into (marked `ember.qdq_math`), range, fill with a run-time shape, and any op this pass does
  not know. Integer and boolean tensors are never touched; an existing
  `nn.cast` keeps its target type (its input may become low precision).
- Constants (`nn.weight`, `nn.constant`, a static `nn.fill`) are converted at build time: an op
  that needs a weight in FP16 reads a new FP16 weight (`<name>.fp16` in the weight store), never
  a run-time cast of it. Only a weight whose data the module lacks (IR parsed from text) is cast.
- The function's inputs and outputs keep their declared types: casts at the edges, whose origin
  names the tensor they serve (`cast(input:x)`, `cast(output:y)`; no ONNX node made them).
- Per-layer precisions (`layer_precisions`, "NODE:fp32,NODE2:fp16", keyed by ONNX node name,
  i.e. an op's origin) pin an op to that precision, with casts around it; a fused op with several
  origins takes FP32 if any of them is pinned to FP32. Per-layer output types
  (`output_types`, "NODE:INDEX:fp16"; INDEX '*': each floating-point output, one named by its
  own index excepted) cast the node's output INDEX after the op that makes it: where the
  importer made several ops of a node (a Split's slices, a decomposed op) the ops making its
  outputs say which (`origin.NODE_OUTPUTS`), and the node's other ops are left alone; an
  unmarked node's op has its outputs as results, in order. Where a pin cannot be
  honoured (an op kept in FP32, or one without floating-point compute, pinned lower; an output
  index the op does not have), `constraints="obey"` is an error naming the node and "prefer" /
  "none" a warning (ember has no timing to overrule a hint with, so "none" follows the hints
  as "prefer" does). A name matching no op (folded away, or unknown) is a warning here; the
  builder refuses names that are not nodes of the model (and says so, `names_checked`: such a
  name is a node folded away at build time). Wildcard patterns are the builder's to expand;
  of the nodes one gave (`patterns`) none is reported itself, the pattern once where no op of
  any node it matches is left.
- Cast pairs cancel: `cast(cast(x: A -> B) -> C)` with A -> B exact (f16/bf16 -> f32 -> ...)
  becomes one `cast(x -> C)`, or `x` itself when C is A; f32 -> f16 -> f32 is kept (it rounds).
  Casts left are elementwise kernels that fuse-elementwise merges into their neighbours.
- TF32 (`tf32`): every conv, conv_transpose, matmul, einsum and attention that still computes
  in FP32 (pinned FP32 ones too, as in TensorRT) gets the unit property `tf32`; kernels read it
  as "may use TF32 tensor cores" (convert-nn-to-kernel puts it in the params). The CPU kernels
  compute exactly, which "may" allows.

The policy applied prints as the module's `ember.precision` (`ember inspect --explain` reports
it). With both FP16 and BF16 the low precision is FP16 (more mantissa; ember does not time both).
The policy lives in `precision_policy`, the conversion of values (casts, converted constants,
cast pairs) in `precision_casts`; this module walks the function and rewrites it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, UnitAttr
from xdsl.ir import Attribute, BlockArgument, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.attributes import to_attribute
from ember.dialects.nn.base import NNOp, build, like, set_result_types
from ember.dialects.nn.elementwise import CastOp, ConstantOp, FillOp, WeightOp
from ember.dialects.origin import edge_origin, node_outputs, origin_of, set_origin
from ember.dialects.tensor_types import element_type_of
from ember.dialects.weights import weights_of
from ember.errors import PassError
from ember.passes.convert_onnx_to_nn import update_function_type
from ember.passes.precision_casts import ValueConverter, cancel_casts
from ember.passes.precision_policy import (
    CONSTRAINTS,
    EVERY_OUTPUT,
    F32,
    PRECISIONS,
    TF32_OPS,
    PrecisionPolicy,
    _pinned_name,
    parse_layer_precisions,
    parse_output_types,
    parse_patterns,
    pattern_matches,
    precision_name,
)

# module attribute: the policy applied (low precision allowed, tf32, constraints, pins), which
# the packer records for `ember inspect --explain`
POLICY_ATTR = "ember.precision"


@dataclass(frozen=True)
class AssignPrecision(ModulePass):
    name = "assign-precision"

    fp16: bool = False
    """FP16 allowed: compute ops run in float16."""
    bf16: bool = False
    """BF16 allowed: compute ops run in bfloat16 (FP16 wins when both are allowed)."""
    tf32: bool = False
    """TF32 allowed: FP32 conv / matmul / einsum / attention get the `tf32` marker."""
    constraints: str = "none"
    """What a per-layer precision is: "obey" (an error where impossible), "prefer" or "none"
    (followed where possible, a warning elsewhere)."""
    layer_precisions: str = ""
    """Per-node precisions, "NODE:fp32,NODE2:fp16" (ONNX node names)."""
    output_types: str = ""
    """Per-node output types, "NODE:INDEX:fp16,..." (INDEX '*': each floating-point output)."""
    names_checked: bool = False
    """The names above are nodes of the model (the builder checks them): one matching no op was
    folded away at build time, and the warning says so."""
    patterns: str = ""
    """The wildcard patterns the builder expanded into the names above, "PATTERN=NODE|NODE,..."
    (each with the nodes whose entries it gave): those nodes get no warning of their own; a
    pattern warns, once, only where no op is left of any node it matches."""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        if self.constraints not in CONSTRAINTS:
            raise PassError(f"assign-precision: constraints must be one of "
                            f"{', '.join(CONSTRAINTS)}, not '{self.constraints}'")
        low = PRECISIONS["fp16"] if self.fp16 else PRECISIONS["bf16"] if self.bf16 else None
        pins = parse_layer_precisions(self.layer_precisions)
        outputs = parse_output_types(self.output_types)
        patterns = parse_patterns(self.patterns)
        raw = sorted({n for n in [*pins, *(n for n, _ in outputs)] if "*" in n})
        if raw:
            raise PassError(f"assign-precision: {', '.join(map(repr, raw))}: a wildcard "
                            "pattern, which the builder expands into the nodes it matches "
                            "(ember build, ember.compile); the pass takes node names")
        seen: set[str] = set()
        for fn in [op for op in module.walk() if isinstance(op, func.FuncOp)]:
            _Assigner(self, module, fn, low, pins, outputs, seen).run()
            cancel_casts(fn.body.block)
            update_function_type(fn)
        # why each layer computes in what it does, for `ember inspect --explain`
        module.attributes[POLICY_ATTR] = to_attribute(
            {"low": "fp16" if self.fp16 else "bf16" if self.bf16 else "", "tf32": self.tf32,
             "constraints": self.constraints, "pins": pins})
        _warn_unmatched(module, (set(pins) | {n for n, _ in outputs}) - seen, patterns,
                        self.names_checked)


class _Assigner:
    """One function's rewriting: each op's values in the precision the policy gives it."""

    def __init__(self, spec: AssignPrecision, module: ModuleOp, fn: func.FuncOp,
                 low: Attribute | None, pins: dict[str, str],
                 outputs: dict[tuple[str, int], str], seen: set[str]) -> None:
        self.spec, self.fn = spec, fn
        self.outputs, self.seen = outputs, seen
        # nodes whose output-making ops the importer marked (origin.NODE_OUTPUTS); the
        # (node, index) output types applied; an op of each node given one, for messages
        self.marked = {n for op in fn.walk() for n in node_outputs(op)}
        self.found: set[tuple[str, int]] = set()
        self.ops_of: dict[str, NNOp] = {}
        self.block = fn.body.block
        # the element type each value had before this pass: only FP32 ones change
        self.original: dict[SSAValue, Attribute] = {a: element_type_of(a) for a in self.block.args}
        for op in self.block.ops:
            for r in op.results:
                self.original[r] = element_type_of(r)
        self.policy = PrecisionPolicy(low, spec.constraints, pins, self.original, seen)
        self.converter = ValueConverter(weights_of(module))

    def run(self) -> None:
        for op in list(self.block.ops):
            if isinstance(op, func.ReturnOp):
                self._edge(op)
            elif isinstance(op, NNOp) and not isinstance(op, ConstantOp | WeightOp | CastOp):
                if not (isinstance(op, FillOp) and op.shape is None):
                    self._visit(op)
        self._missing_outputs()

    def _visit(self, op: NNOp) -> None:
        precision = self.policy.precision(op)
        if precision is not None:
            for i, v in enumerate(op.operands):
                if self.policy.is_f32(v) and element_type_of(v) != precision:
                    op.operands[i] = self._as(v, precision)
            want = [like(r, element_type=precision) if self.policy.is_f32(r) else r.type
                    for r in op.results]
            set_result_types(op, want)
            inferred = op.infer()
            if [element_type_of(t) for t in inferred] != [element_type_of(t) for t in want]:
                raise PassError(f"assign-precision: {op.name} does not compute in "
                                f"{precision_name(precision)} ({inferred})")
            if (self.spec.tf32 and op.name in TF32_OPS and precision == F32
                    and all(element_type_of(r) == F32 for r in op.results)
                    and all(element_type_of(v) == F32 for v in op.operands[:2])):
                # (not fold-qdq's FP8 convs and matmuls: E4M3 operands, float32 sums)
                op.properties["tf32"] = UnitAttr()
        self._output_types(op)

    def _output_types(self, op: NNOp) -> None:
        marks = node_outputs(op)
        for node in origin_of(op):
            wanted = [(index, prec) for (name, index), prec in self.outputs.items()
                      if name == node]
            if not wanted:
                continue
            self.seen.add(node)
            self.ops_of.setdefault(node, op)
            # the node's output index -> the result of `op` that is it
            if node in marks:
                results = {o: r for r, o in enumerate(marks[node]) if o >= 0}
            elif node in self.marked:
                results = {}  # computes part of the node, none of its outputs
            else:
                results = {r: r for r in range(len(op.results))}
            for index, prec in wanted:
                if index == EVERY_OUTPUT:
                    self._every_output(op, node, results, prec)
                elif index in results:
                    self.found.add((node, index))
                    self._output_type(op, node, index, results[index], prec)

    def _missing_outputs(self) -> None:
        """Refuse an exact output index that no op of its (matched) node makes."""
        for (node, index) in self.outputs:
            op = self.ops_of.get(node)
            if op is None or index == EVERY_OUTPUT or (node, index) in self.found:
                continue
            made = "" if node in self.marked else f" ({len(op.results)} result(s))"
            self.policy.refuse(op, node, f"has no output #{index} after import{made}")

    def _every_output(self, op: NNOp, node: str, results: dict[int, int], prec: str) -> None:
        """INDEX '*': each floating-point output (trtexec's one type for all of a layer's
        outputs); a node named by an exact INDEX for one of them keeps that one's type.
        `results`: the node's output index -> the result of `op` that is it."""
        want = PRECISIONS[prec]
        floats = [i for i, r in results.items()
                  if (node, i) not in self.outputs
                  and (self.policy.is_f32(op.results[r])
                       or element_type_of(op.results[r]) == want)]
        if results and not floats and not any((node, i) in self.outputs for i in results):
            self.policy.refuse(op, node, f"has no floating-point output to make {prec}")
        for i in floats:
            self._output_type(op, node, i, results[i], prec)

    def _output_type(self, op: NNOp, node: str, index: int, at: int, prec: str) -> None:
        """Cast result `at` of `op`, output `index` of ONNX node `node`, to `prec`, or
        refuse."""
        result, want = op.results[at], PRECISIONS[prec]
        if not self.policy.is_f32(result) and element_type_of(result) != want:
            self.policy.refuse(op, node, f"output #{index} is {element_type_of(result)}, not a "
                               f"floating-point tensor to make {prec}")
            return
        if element_type_of(result) == want:
            return
        cast = build(CastOp, [result], {"to": want})
        Rewriter.insert_op(cast, InsertPoint.after(op))
        result.replace_uses_with_if(cast.output, lambda use, c=cast: use.operation is not c)
        self.original[cast.output] = F32  # its users convert it as an FP32 value

    def _edge(self, ret: func.ReturnOp) -> None:
        """The function returns what it declared: cast changed outputs back."""
        declared = self.fn.function_type.outputs.data
        for i, (v, t) in enumerate(zip(ret.operands, declared, strict=True)):
            if element_type_of(v) != element_type_of(t):
                ret.operands[i] = self._as(v, element_type_of(t))
                _name_edge_cast(ret.operands[i], edge_origin("cast", self.fn, "output", i))

    def _as(self, value: SSAValue, element_type: Attribute) -> SSAValue:
        """`value` in `element_type` (see `ValueConverter`); a cast of a function input is named
        after it."""
        new = self.converter.convert(value, element_type)
        self.original[new] = element_type
        if isinstance(value, BlockArgument) and value.owner is self.block:
            _name_edge_cast(new, edge_origin("cast", self.fn, "input", value.index))
        return new


def _warn_unmatched(module: ModuleOp, missing: set[str], patterns: dict[str, list[str]],
                    checked: bool) -> None:
    """Warn about per-layer names matching no op: each name given in full (a node of the model
    folded away, where the builder `checked` the names are nodes), and each wildcard pattern
    matching no op at all; never a node a pattern named (a pattern skips what is not there)."""
    from_patterns = {n for nodes in patterns.values() for n in nodes}
    named = sorted(missing - from_patterns)
    if named:
        if checked:
            why = ("node(s) of the model folded away at build time (computed as constants or "
                   "removed as no-ops): no op is left to set a precision on")
        else:
            why = "matches no op (folded at build time, or not a node of the model)"
        warnings.warn(f"assign-precision: per-layer precision for {', '.join(named)}: {why}",
                      stacklevel=3)
    if not patterns:
        return
    present = {_pinned_name(n) for op in module.walk() for n in origin_of(op)}
    for pattern in patterns:
        if not any(pattern_matches(pattern, n) for n in present):
            warnings.warn(f"assign-precision: per-layer precision pattern '{pattern}' matches no "
                          "op (the nodes it matches were folded away at build time)",
                          stacklevel=3)


def _name_edge_cast(value: SSAValue, name: str) -> None:
    """Give the cast making `value` the origin `name`, unless it has one (an output's cast may
    be shared with a user inside the function, whose name it keeps)."""
    if isinstance(value.owner, CastOp) and not origin_of(value.owner):
        set_origin(value.owner, [name])


__all__ = ["AssignPrecision", "CONSTRAINTS", "PRECISIONS", "cancel_casts",
           "parse_layer_precisions", "parse_output_types", "precision_name"]
