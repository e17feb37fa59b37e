"""Which precision an nn op computes in under assign-precision: the op classes (compute,
data movement, precision-agnostic, TF32-capable), the per-layer specs ("NODE:fp32",
"NODE:INDEX:fp16") and `PrecisionPolicy`, which resolves each op's precision from the flags and
the per-layer pins, refusing (OBEY) or warning about the pins it cannot honour."""

from __future__ import annotations

import warnings

from xdsl.dialects.builtin import BFloat16Type, Float16Type, Float32Type
from xdsl.ir import Attribute, Operation, SSAValue

from ember.dialects.nn.base import NNOp
from ember.dialects.origin import FUNCTION_BODY, origin_of
from ember.dialects.tensor_types import element_type_of
from ember.errors import PassError

F32 = Float32Type()
PRECISIONS: dict[str, Attribute] = {"fp32": F32, "fp16": Float16Type(), "bf16": BFloat16Type()}
CONSTRAINTS = ("none", "prefer", "obey")

COMPUTE = {"nn.conv", "nn.conv_transpose", "nn.matmul", "nn.einsum", "nn.attention", "nn.unary",
           "nn.binary", "nn.select", "nn.pool", "nn.softmax", "nn.layer_norm", "nn.group_norm",
           "nn.batch_norm", "nn.reduce", "nn.lrn"}
MOVEMENT = {"nn.reshape", "nn.transpose", "nn.slice", "nn.concat", "nn.gather",
            "nn.gather_elements", "nn.expand", "nn.tile", "nn.pad", "nn.trilu", "nn.squeeze",
            "nn.unsqueeze", "nn.arg_reduce"}
AGNOSTIC = {"nn.shape_of"}  # reads only its input's shape
# the unit attribute fold-qdq puts on the arithmetic a quantize / dequantize is expanded into:
# it computes in FP32 as the quantize kernels do (a scale of 1e-7, or x / scale, is out of
# FP16's range)
QDQ_MATH = "ember.qdq_math"
TF32_OPS = {"nn.conv", "nn.conv_transpose", "nn.matmul", "nn.einsum", "nn.attention"}


def precision_name(element_type: Attribute) -> str:
    return {Float16Type(): "fp16", BFloat16Type(): "bf16", F32: "fp32"}.get(element_type,
                                                                          str(element_type))


def parse_layer_precisions(spec: str, what: str = "layer_precisions") -> dict[str, str]:
    """"NODE:fp32,NODE2:fp16" -> {node: precision}; the node name may hold ':'."""
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        node, sep, prec = item.rpartition(":")
        prec = prec.strip().lower()
        if not sep or not node or prec not in PRECISIONS:
            raise PassError(f"{what}: '{item}' is not NODE:PRECISION with PRECISION one of "
                            f"{', '.join(PRECISIONS)}")
        out[node] = prec
    return out


EVERY_OUTPUT = -1  # an output type's index meaning each floating-point output (INDEX '*')


def parse_output_types(spec: str) -> dict[tuple[str, int], str]:
    """"NODE:INDEX:fp16,..." -> {(node, index): precision}; INDEX '*' is `EVERY_OUTPUT`."""
    out: dict[tuple[str, int], str] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        head, sep, prec = item.rpartition(":")
        node, sep2, index = head.rpartition(":")
        prec = prec.strip().lower()
        if not (sep and sep2 and node and (index.isdigit() or index == "*")) \
                or prec not in PRECISIONS:
            raise PassError(f"output_types: '{item}' is not NODE:INDEX:PRECISION with INDEX a "
                            f"number or '*' and PRECISION one of {', '.join(PRECISIONS)}")
        out[(node, EVERY_OUTPUT if index == "*" else int(index))] = prec
    return out


def pattern_matches(pattern: str, name: str) -> bool:
    """trtexec's one-wildcard match: '*' stands for any run of characters (none too)."""
    head, _, tail = pattern.partition("*")
    return len(name) >= len(head) + len(tail) and name.startswith(head) \
        and name.endswith(tail)


def format_patterns(nodes: dict[str, list[str]]) -> str:
    """{pattern: [node, ...]} -> "PATTERN=NODE|NODE,..." (assign-precision's `patterns`); a node
    whose name holds ',', '|' or '=' is left out (it is then reported as a name of its own)."""
    def ok(name: str) -> bool:
        return not any(c in name for c in ",|=")

    return ",".join(f"{p}={'|'.join(n for n in names if ok(n))}"
                    for p, names in nodes.items() if ok(p))


def parse_patterns(spec: str) -> dict[str, list[str]]:
    """"PATTERN=NODE|NODE,..." -> {pattern: [node, ...]}."""
    out: dict[str, list[str]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        pattern, sep, names = item.partition("=")
        if not sep or "*" not in pattern:
            raise PassError(f"patterns: '{item}' is not PATTERN=NODE|NODE... with PATTERN "
                            "holding a '*'")
        out[pattern] = [n for n in names.split("|") if n]
    return out


class PrecisionPolicy:
    """Resolves ops' precisions in one function. `original` maps each value to the element type
    it had before the pass (only FP32 values change; the rewriting adds the values it makes);
    `seen` collects the pinned node names that matched an op."""

    def __init__(self, low: Attribute | None, constraints: str, pins: dict[str, str],
                 original: dict[SSAValue, Attribute], seen: set[str]) -> None:
        self.low, self.constraints = low, constraints
        self.pins, self.original, self.seen = pins, original, seen

    def is_f32(self, value: SSAValue) -> bool:
        return isinstance(self.original.get(value, element_type_of(value)), Float32Type)

    def _pin(self, op: NNOp) -> tuple[str, str] | None:
        """(node, precision) pinned for `op` (FP32 first among several origins)."""
        pinned = [(n, self.pins[n]) for n in map(_pinned_name, origin_of(op))
                  if n in self.pins]
        self.seen.update(n for n, _ in pinned)
        if not pinned:
            return None
        return next((p for p in pinned if p[1] == "fp32"), pinned[0])

    def refuse(self, op: NNOp, node: str, why: str) -> None:
        message = f"assign-precision: node '{node}' ({op.name}): {why}"
        if self.constraints == "obey":
            raise PassError(message + " (OBEY_PRECISION_CONSTRAINTS)")
        warnings.warn(message + "; it keeps the precision ember assigns", stacklevel=2)

    def precision(self, op: NNOp) -> Attribute | None:
        """The element type `op`'s FP32 values take; None: leave the op as it is."""
        floats = [v for v in (*op.operands, *op.results) if self.is_f32(v)]
        pin = self._pin(op)
        if op.name in AGNOSTIC:
            if pin is not None and pin[1] != "fp32":
                self.refuse(op, pin[0], "computes nothing in floating point")
            return None
        if QDQ_MATH in op.attributes:
            if pin is not None and pin[1] != "fp32" and floats:
                self.refuse(op, pin[0], f"cannot run in {pin[1]}: quantize / dequantize "
                                        "arithmetic stays in FP32")
            return F32 if floats else None
        if pin is None and floats and _between_qdq(op):
            return F32
        if op.name in COMPUTE or self.low is not None and _plugin_runs_in(op, self.low):
            default = self.low or F32
        elif op.name in MOVEMENT:
            data = [element_type_of(v) for v in op.operands if self.is_f32(v)]
            default = (self.low or F32) if len(set(data)) > 1 else (data[0] if data else F32)
        else:
            default = F32
        if pin is None:
            return default if floats else None
        node, name = pin
        want = PRECISIONS[name]
        if not floats:
            if want != F32:
                self.refuse(op, node, f"has no FP32 tensor to run in {name}")
            return None
        if op.name not in COMPUTE and op.name not in MOVEMENT and want != F32 and \
                not _plugin_runs_in(op, want):
            self.refuse(op, node, f"cannot run in {name}: ember keeps {op.name} in FP32")
            return default
        return want


def _between_qdq(op: NNOp) -> bool:
    """An elementwise op between dequantizes and quantizes: it belongs to a connected group of
    elementwise ops (the erf GELU's div, erf, add and mul between an int8 GEMM's dequantize and
    the next quantize) whose operands from outside the group are dequantized values or
    constants, at least one dequantized, and whose results leave the group only into
    quantizes. The group stays in FP32, as the quantize arithmetic around it does: the kernel
    it fuses into computes it in registers, where FP16 would only round values the quantize
    then rounds again (and cost two conversions each)."""
    if op.name not in _ELEMENTWISE:
        return False
    group, todo, dequantized, quantized = {op}, [op], False, False
    while todo:
        member = todo.pop()
        neighbours = []
        for value in member.operands:
            producer = value.owner
            if not isinstance(producer, Operation):
                return False  # a function argument: a float activation
            if QDQ_MATH in producer.attributes:
                dequantized = True
            elif producer.operands:
                neighbours.append(producer)
        for use in member.results[0].uses:
            if QDQ_MATH in use.operation.attributes:
                quantized = True
            else:
                neighbours.append(use.operation)
        for other in neighbours:
            if other.name not in _ELEMENTWISE:
                return False
            if other not in group:
                group.add(other)
                todo.append(other)
    return dequantized and quantized


_ELEMENTWISE = ("nn.unary", "nn.binary")


def _plugin_runs_in(op: NNOp, element_type: Attribute) -> bool:
    """A plugin runs in a lower precision only where it declares it supports it."""
    return op.name == "nn.plugin" and op.runs_in(element_type)  # type: ignore[attr-defined]


__all__ = ["AGNOSTIC", "COMPUTE", "CONSTRAINTS", "EVERY_OUTPUT", "F32", "MOVEMENT", "PRECISIONS",
           "PrecisionPolicy", "QDQ_MATH", "TF32_OPS", "format_patterns", "parse_layer_precisions",
           "parse_output_types", "parse_patterns", "pattern_matches", "precision_name"]


def _pinned_name(node: str) -> str:
    """The ONNX node a per-layer precision names for an op of node `node`: the function op it
    was expanded from (`<node>::<op>_<i>`, compiler/onnx_functions.py), else the node."""
    return node.split(FUNCTION_BODY, 1)[0] if FUNCTION_BODY in node else node
