"""Tensor formats of typed IR values, for assign-layouts and the plan builder.

The formats themselves (NCHW, NHWC, NC4HW4) are defined once in `ember.runtime.formats`; this
module reads them off IR types. The logical dims in a type stay NCHW whatever the format;
`physical_shape` gives the buffer's shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import Attribute, SSAValue

from ember.dialects.tensor_types import format_of, static_shape
from ember.runtime.formats import (  # noqa: F401  (re-exported for the passes)
    ALIASES,
    FORMATS,
    LANES,
    NC4HW4,
    NCHW,
    NHWC,
    PERMS,
    blocks,
    physical_of,
)

# the order of a format's bytes over "atoms": N, C blocks of 4 (Cb), the lane in a block (Cl), H, W
_ATOMS = {NCHW: ("N", "Cb", "Cl", "H", "W"), NHWC: ("N", "H", "W", "Cb", "Cl"),
          NC4HW4: ("N", "Cb", "H", "W", "Cl")}


def physical_shape(t: Attribute | SSAValue) -> tuple[int, ...] | None:
    """The static shape in byte order: logical dims permuted (NHWC) or packed (NC4HW4) by the
    format."""
    shape = static_shape(t)
    fmt = format_of(t)
    if shape is None or len(shape) != 4 or fmt not in FORMATS:
        return shape
    return physical_of(shape, fmt)


def same_bytes(shape: Sequence[int], a: str, b: str) -> bool:
    """Whether a 4-D `shape` has the same bytes in formats a and b (dims of 1 do not count;
    a packed format differs from the others unless C % 4 == 0)."""
    if a == b:
        return True
    if NC4HW4 in (a, b) and shape[1] % LANES:
        return False
    n, c, h, w = shape
    if NC4HW4 in (a, b):
        sizes = {"N": n, "Cb": c // LANES, "Cl": LANES, "H": h, "W": w}
    else:  # the channel is one atom
        sizes = {"N": n, "Cb": c, "Cl": 1, "H": h, "W": w}
    return ([x for x in _ATOMS[a] if sizes[x] != 1] == [x for x in _ATOMS[b] if sizes[x] != 1])


def canonical_format(name: str) -> str | None:
    """A format's name, TensorRT's aliases accepted; None if unknown."""
    name = name.strip().upper()
    name = ALIASES.get(name, name)
    return name if name in FORMATS else None


__all__ = ["ALIASES", "FORMATS", "LANES", "NC4HW4", "NCHW", "NHWC", "PERMS", "blocks",
           "canonical_format", "physical_of", "physical_shape", "same_bytes"]
