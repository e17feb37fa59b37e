"""Origins: which ONNX nodes an op came from, kept as MLIR locations (`loc("conv1")`, fused
locations for fused ops), so CSE and printing ignore them and `--print-debuginfo` shows them.
An op that no node made but that serves a network input or output is named after that tensor
(`edge_origin`: `cast(input:x)`)."""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    FusedLoc,
    ModuleOp,
    NameLoc,
    NoneAttr,
    StringAttr,
    UnknownLoc,
    i64,
)
from xdsl.ir import Operation

# an op's discardable attribute saying which of its origin nodes' ONNX outputs its results are:
# {node: array<i64: output index of result 0, of result 1, ...>} (-1: a result that is no output
# of that node). The importer puts it where a node became several ops (a Split: one slice per
# output; a decomposed op: its last op) on the ops that make the node's outputs; an op of a node
# without it computes part of the node. A node none of whose ops has it became one op whose
# result i is output i. Per-layer output types (assign-precision) read it.
NODE_OUTPUTS = "ember.node_outputs"

# the separator of a node expanded from an ONNX function op: `<op node>::<body op>_<i>`
# (compiler/onnx_functions.py); per-layer settings on the function op's node apply to its body
FUNCTION_BODY = "::"


def set_origin(op: Operation, names: list[str]) -> None:
    names = [n for n in dict.fromkeys(names) if n]
    if not names:
        return
    locs = [NameLoc(StringAttr(n), UnknownLoc()) for n in names]
    op.location = locs[0] if len(locs) == 1 else FusedLoc(locs, NoneAttr())


def origin_of(op: Operation) -> list[str]:
    loc = op.location
    if isinstance(loc, NameLoc):
        return [loc.desc.data]
    if isinstance(loc, FusedLoc):
        return [n for child in loc.locations.data if isinstance(child, NameLoc)
                for n in [child.desc.data]]
    return []


def kernel_origin(op: Operation) -> list[str]:
    """The ONNX nodes behind a kernel op: its location, else its `origin` property (the one
    `kernel.launch` and `kernel.elementwise` carry; none for a `kernel.view`)."""
    names = origin_of(op)
    origin = op.properties.get("origin")
    if not names and isinstance(origin, ArrayAttr):
        names = [a.data for a in origin.data if isinstance(a, StringAttr)]
    return names


def program_order(module: ModuleOp) -> dict[str, int]:
    """Each origin name's place in the order the module's ops first name it (what fusing passes
    sort a fused op's origins by)."""
    order: dict[str, int] = {}
    for op in module.walk():
        for name in kernel_origin(op):
            order.setdefault(name, len(order))
    return order


def node_outputs(op: Operation) -> dict[str, list[int]]:
    """`op`'s NODE_OUTPUTS: {node: the node's output index of each result (-1: none)}."""
    attr = op.attributes.get(NODE_OUTPUTS)
    if not isinstance(attr, DictionaryAttr):
        return {}
    return {name: [int(i) for i in value.get_values()]  # type: ignore[attr-defined]
            for name, value in attr.data.items()}


def set_node_outputs(op: Operation, node: str, indices: list[int]) -> None:
    """Record that `op`'s result r is output `indices[r]` of ONNX node `node` (-1: none)."""
    entries = {**{n: DenseArrayBase.from_list(i64, v) for n, v in node_outputs(op).items()},
               node: DenseArrayBase.from_list(i64, indices)}
    op.attributes[NODE_OUTPUTS] = DictionaryAttr(entries)


def edge_origin(what: str, fn: func.FuncOp, side: str, index: int) -> str:
    """The origin of a `what` op (e.g. "cast") made for `fn`'s input or output (`side`) #index
    rather than by any ONNX node: `cast(input:x)`, with the tensor's ONNX name (the `ember.name`
    argument / result attribute the importer writes), else its position (`cast(output:#0)`)."""
    attrs = fn.arg_attrs if side == "input" else fn.res_attrs
    entries = attrs.data if attrs is not None else ()
    entry = entries[index] if index < len(entries) else None
    name = entry.data.get("ember.name") if isinstance(entry, DictionaryAttr) else None
    return f"{what}({side}:{name.data if isinstance(name, StringAttr) else f'#{index}'})"
