"""fill: a tensor of one value whose (static here) shape came from a shape operand; one thread
per element writes the value (a half's value rounded to it)."""

from __future__ import annotations

from ember.codegen.scalar_c import c_literal, c_type, is_half, store_from_float
from ember.codegen.templates import (
    KernelSpec,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)


def emit(name: str, params: dict) -> KernelSpec:
    dtype = params["out_dtypes"][0]
    shape = list(params["out_shapes"][0])
    n = prod(shape)
    value = c_literal(params["value"], dtype)
    value = store_from_float(value, dtype) if is_half(dtype) else f"({c_type(dtype)}){value}"
    body = [grid_stride_loop(n, index_type(n)), f"        out0[i] = {value};", "    }"]
    grid, block = grid_1d(n)
    text = source(f"fill {shape} {dtype} with {params['value']}",
                  ["tactic: one thread per element, grid-stride loop, block 256; the shape "
                   "operand is not read (the shape is static)"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
