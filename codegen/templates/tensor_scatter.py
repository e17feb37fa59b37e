"""tensor_scatter: the KV-cache update, one thread per element of the present cache: an element
whose sequence position p lies in [w, w + L) of its batch sample's write index w (p - w taken
modulo the cache length M in circular mode) copies update element p - w, every other element
the past's. Elements are copied as stored (a half as its 2 bytes). A linear-mode write index
that puts updated positions past the cache's end writes those nowhere (the host kernel refuses
it)."""

from __future__ import annotations

from ember.codegen.symbolic import dims_text
from ember.codegen.templates import (
    KernelSpec,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
    strides_of,
)


def emit(name: str, params: dict) -> KernelSpec:
    past, update = list(params["in_shapes"][0]), list(params["in_shapes"][1])
    dtype = params["out_dtypes"][0]
    axis = int(params["axis"]) % len(past)
    circular = params["mode"] == "circular"
    written = len(params["in_shapes"]) > 2
    n = prod(past)
    itype = index_type(n)
    u_st = strides_of(update)
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", past, "c", "        ", itype)
    body.append(f"        const long long w = {'in2[c0]' if written else '0'};")
    body.append(f"        long long rel = (long long)c{axis} - w;")
    if circular:
        body.append(f"        rel %= {past[axis]};")
        body.append(f"        if (rel < 0) rel += {past[axis]};")
    body.append(f"        if (rel >= 0 && rel < {update[axis]}) {{")
    at = " + ".join(f"(size_t)({'rel' if d == axis else f'c{d}'}) * {u_st[d]}"
                    for d in range(len(update)))
    body.append(f"            out0[i] = in1[{at}];")
    body.append("        } else {")
    body.append("            out0[i] = in0[i];")
    body.append("        }")
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"tensor_scatter {params['mode']} axis {axis}: past {dims_text(past)}, "
                  f"update {dims_text(update)} "
                  f"{dtype}",
                  ["tactic: one thread per present element, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
