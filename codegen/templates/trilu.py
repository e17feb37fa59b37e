"""trilu: the upper (j - i >= k) or lower (j - i <= k) triangle of the last two dims, the rest
zero. One thread per element, copying elements as stored (a half as its 2 bytes)."""

from __future__ import annotations

from ember.codegen.templates import (
    KernelSpec,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)
from ember.codegen.templates.half import zero
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    dtype = params["out_dtypes"][0]
    if len(params["in_shapes"]) > 1:
        raise UnsupportedError("CUDA trilu: a run-time k is not supported")
    if len(shape) < 2:
        raise UnsupportedError(f"CUDA trilu: rank {len(shape)} input")
    upper, k = bool(params.get("upper")), int(params.get("k") or 0)
    rows, cols = shape[-2], shape[-1]
    n = prod(shape)
    itype = index_type(n)
    keep = f"col - row >= {k}" if upper else f"col - row <= {k}"
    body = [grid_stride_loop(n, itype),
            f"        const long long col = i % {cols};",
            f"        const long long row = (i / {cols}) % {rows};",
            f"        out0[i] = ({keep}) ? in0[i] : {zero(dtype)};",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"trilu {'upper' if upper else 'lower'} k={k} of {shape} {dtype}",
                  ["tactic: one thread per element, grid-stride loop, block 256"],
                  signature(name, [dtype], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
