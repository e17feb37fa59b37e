"""gather: data indexed along `axis` by an index tensor (negative indices count from the end);
one thread per output element, copying elements as stored (a half as its 2 bytes)."""

from __future__ import annotations

from ember.codegen.scalar_c import is_half
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


def emit(name: str, params: dict) -> KernelSpec:
    data, indices = list(params["in_shapes"][0]), list(params["in_shapes"][1])
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    oob = zero(dtype) if is_half(dtype) else "in0[0] * 0"
    axis = int(params["axis"]) % len(data)
    dim, inner = data[axis], prod(data[axis + 1:])
    n_idx = prod(indices)
    n = prod(out_shape)
    itype = index_type(n, prod(data))
    body = [grid_stride_loop(n, itype),
            f"        const {itype} outer = i / {n_idx * inner};",
            f"        const {itype} j = (i / {inner}) % {n_idx};",
            f"        const {itype} r = i % {inner};",
            "        long long k = (long long)in1[j];",
            f"        if (k < 0) k += {dim};",
            f"        out0[i] = (k >= 0 && k < {dim}) ? in0[(outer * {dim} + k) * {inner} + r] : "
            f"{oob};"]
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"gather axis {axis}: data {data}, indices {indices} -> {out_shape} {dtype}",
                  ["tactic: one thread per output element, grid-stride loop, block 256;",
                   "an out-of-range index (rejected by the compiler when constant) reads as 0"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
