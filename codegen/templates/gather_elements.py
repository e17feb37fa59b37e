"""gather_elements: out[..., j, ...] = data[..., indices[..., j, ...], ...] along `axis`
(negative indices count from the end); one thread per output element, copying elements as
stored (a half as its 2 bytes)."""

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
    strides_of,
)
from ember.codegen.templates.half import zero


def emit(name: str, params: dict) -> KernelSpec:
    data, indices = list(params["in_shapes"][0]), list(params["in_shapes"][1])
    dtype = params["out_dtypes"][0]
    oob = zero(dtype) if is_half(dtype) else "in0[0] * 0"
    axis = int(params["axis"]) % len(data)
    dim = data[axis]
    n = prod(indices)
    itype = index_type(n, prod(data))
    d_st = strides_of(data)
    body = [grid_stride_loop(n, itype), f"        {itype} rest = i;", "        size_t at = 0;"]
    for d in range(len(indices) - 1, -1, -1):
        coord = f"rest % {indices[d]}" if d else "rest"
        if d != axis:  # the gathered axis's coordinate comes from the index
            body.append(f"        at += (size_t)({coord}) * {d_st[d]};")
        if d:
            body.append(f"        rest /= {indices[d]};")
    body += ["        long long k = (long long)in1[i];",
             f"        if (k < 0) k += {dim};",
             f"        out0[i] = (k >= 0 && k < {dim}) ? in0[at + (size_t)k * {d_st[axis]}] : "
             f"{oob};",
             "    }"]
    grid, block = grid_1d(n)
    text = source(f"gather_elements axis {axis}: data {data}, indices {indices} {dtype}",
                  ["tactic: one thread per output element, grid-stride loop, block 256;",
                   "an out-of-range index (rejected by the compiler when constant) reads as 0"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
