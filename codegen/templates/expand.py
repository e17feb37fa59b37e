"""expand: numpy broadcast of the input to the output shape; one thread per output element
(grid-stride) reading through broadcast strides. `copy_kernel` is shared by the other
gather-by-strides templates (transpose, slice, tile). Elements are copied as stored (a half as
its 2 bytes), so every element type is copied the same way."""

from __future__ import annotations

from collections.abc import Sequence

from ember.codegen.scalar_c import storage_type
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import (
    KernelSpec,
    broadcast_strides,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)


def copy_kernel(name: str, params: dict, strides: Sequence[int], what: str, base: int = 0,
                modulo: Sequence[int] | None = None) -> KernelSpec:
    """out[c] = in[base + sum(c_k * strides[k])] (with `modulo`: c_k % modulo[k] first)."""
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    n = prod(out_shape)
    itype = index_type(n, prod(params["in_shapes"][0]))
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "c", "        ", itype)
    terms = [str(base)] if base else []
    for k, s in enumerate(strides):
        if s == 0:
            continue
        coord = f"c{k}" if modulo is None or modulo[k] == out_shape[k] else f"(c{k} % {modulo[k]})"
        terms.append(f"{coord} * ({itype}){s}" if s != 1 else coord)
    body.append(f"        out0[i] = in0[{' + '.join(terms) or '0'}];")
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"{what}: {params['in_shapes'][0]} -> {out_shape} {dtype}",
                  ["tactic: one thread per output element, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body)
    storage_type(dtype)
    return KernelSpec(text, grid, block, 0)


def emit(name: str, params: dict) -> KernelSpec:
    out_shape = list(params["out_shapes"][0])
    shape = list(params["in_shapes"][0])
    padded = [1] * (len(out_shape) - len(shape)) + shape
    modulo = None
    if any(is_sym(d) and d != o for d, o in zip(padded, out_shape, strict=True)):
        # a symbolic input dim not provably the output's is 1 (broadcast) or the output's
        # length at run time: c % dim reads coordinate 0 or c
        modulo = [d if is_sym(d) and d != o else o for d, o in zip(padded, out_shape,
                                                                     strict=True)]
    return copy_kernel(name, params, broadcast_strides(shape, out_shape), "expand",
                       modulo=modulo)
