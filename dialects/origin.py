"""Origins: which ONNX nodes an op came from, kept as MLIR locations (`loc("conv1")`, fused
locations for fused ops), so CSE and printing ignore them and `--print-debuginfo` shows them."""

from __future__ import annotations

from xdsl.dialects.builtin import FusedLoc, NameLoc, NoneAttr, StringAttr, UnknownLoc
from xdsl.ir import Operation


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
