"""gather_nd: out[n, q, r] = data[n, indices[n, q, 0..k-1], r] over the batch dims n (the first
`batch_dims`), each index row q and the rest r of the slice it picks (negative indices count
from the end). One thread per output element, copying elements as stored (a half as its 2
bytes); an out-of-range index reads 0 (the host kernel refuses it)."""

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
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    data, indices = list(params["in_shapes"][0]), list(params["in_shapes"][1])
    dtype = params["out_dtypes"][0]
    b = int(params["batch_dims"])
    if not indices:
        raise UnsupportedError("CUDA gather_nd: rank-0 indices run on the host")
    k = indices[-1]
    if not isinstance(k, int) or k > len(data) - b:
        raise UnsupportedError(f"CUDA gather_nd: index rows of {k} into {data} run on the host")
    oob = zero(dtype) if is_half(dtype) else "in0[0] * 0"
    inner = data[b:]
    slice_size = prod(inner[k:])
    rows_per_batch = prod(indices[b:-1])
    n = prod(indices[:-1]) * slice_size
    itype = index_type(n, prod(data), prod(indices))
    strides = strides_of(inner)
    body = [grid_stride_loop(n, itype),
            f"        const {itype} r = i % {slice_size};",
            f"        const {itype} row = i / {slice_size};",
            f"        const {itype} batch = row / {rows_per_batch};",
            f"        size_t offset = (size_t)batch * {prod(inner)} + r;",
            "        bool inside = true;"]
    for d in range(k):
        body += [f"        long long i{d} = (long long)in1[(size_t)row * {k} + {d}];",
                 f"        if (i{d} < 0) i{d} += {inner[d]};",
                 f"        inside = inside && i{d} >= 0 && i{d} < {inner[d]};",
                 f"        offset += (size_t)i{d} * {strides[d]};"]
    body += [f"        out0[i] = inside ? in0[offset] : {oob};", "    }"]
    grid, block = grid_1d(n)
    text = source(f"gather_nd batch_dims {b}: data {data}, indices {indices} {dtype}",
                  ["tactic: one thread per output element, grid-stride loop, block 256;",
                   "an out-of-range index reads as 0"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
