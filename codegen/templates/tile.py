"""tile: the input repeated along each dim; one thread per output element reading
in[c % dim]."""

from __future__ import annotations

from ember.codegen.symbolic import is_sym
from ember.codegen.templates import KernelSpec, strides_of
from ember.codegen.templates.expand import copy_kernel


def emit(name: str, params: dict) -> KernelSpec:
    shape = [d if is_sym(d) else int(d) for d in params["in_shapes"][0]]
    return copy_kernel(name, params, strides_of(shape), f"tile repeats={params.get('repeats')}",
                       modulo=shape)
