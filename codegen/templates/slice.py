"""slice: per-dim start and step (already clamped by the compiler); one thread per output element
reading in[start + c * step]."""

from __future__ import annotations

from ember.codegen.templates import KernelSpec, strides_of
from ember.codegen.templates.expand import copy_kernel


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    starts = [int(s) for s in params["starts"]]
    steps = [int(s) for s in params.get("steps") or [1] * len(shape)]
    st = strides_of(shape)
    base = sum(s * t for s, t in zip(starts, st, strict=True))
    return copy_kernel(name, params, [s * t for s, t in zip(steps, st, strict=True)],
                       f"slice starts={starts} steps={steps}", base=base)
