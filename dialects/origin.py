"""Origins: which ONNX nodes an op came from, kept as MLIR locations (`loc("conv1")`, fused
locations for fused ops), so CSE and printing ignore them and `--print-debuginfo` shows them.
An op that no node made but that serves a network input or output is named after that tensor
(`edge_origin`: `cast(input:x)`)."""

from __future__ import annotations

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DictionaryAttr,
    FusedLoc,
    NameLoc,
    NoneAttr,
    StringAttr,
    UnknownLoc,
)
from xdsl.ir import Operation

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


def edge_origin(what: str, fn: func.FuncOp, side: str, index: int) -> str:
    """The origin of a `what` op (e.g. "cast") made for `fn`'s input or output (`side`) #index
    rather than by any ONNX node: `cast(input:x)`, with the tensor's ONNX name (the `ember.name`
    argument / result attribute the importer writes), else its position (`cast(output:#0)`)."""
    attrs = fn.arg_attrs if side == "input" else fn.res_attrs
    entries = attrs.data if attrs is not None else ()
    entry = entries[index] if index < len(entries) else None
    name = entry.data.get("ember.name") if isinstance(entry, DictionaryAttr) else None
    return f"{what}({side}:{name.data if isinstance(name, StringAttr) else f'#{index}'})"
