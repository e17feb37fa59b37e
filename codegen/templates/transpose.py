"""transpose: out dim i is input dim perm[i]; one thread per output element reading the input
through permuted strides."""

from __future__ import annotations

from ember.codegen.templates import KernelSpec, strides_of
from ember.codegen.templates.expand import copy_kernel


def emit(name: str, params: dict) -> KernelSpec:
    perm = [int(p) for p in params["perm"]]
    st = strides_of(params["in_shapes"][0])
    return copy_kernel(name, params, [st[p] for p in perm], f"transpose perm={perm}")
