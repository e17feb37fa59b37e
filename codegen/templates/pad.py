"""pad: constant / reflect / edge / wrap padding (negative pads crop); one thread per output
element mapping each coordinate back into the (cropped) input. Elements are copied as stored (a
half as its 2 bytes); a half's pad value is rounded to it, as the reference does."""

from __future__ import annotations

from ember.codegen.scalar_c import c_literal, c_type, is_half, store_from_float
from ember.codegen.symbolic import is_sym
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
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    shape = [d if is_sym(d) else int(d) for d in params["in_shapes"][0]]
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    mode = params["mode"]
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise UnsupportedError(f"CUDA pad: unknown mode '{mode}'")
    rank = len(shape)
    pads = [int(p) for p in params["pads"]]
    if is_half(dtype):
        value = store_from_float(c_literal(float(params.get("value", 0.0) or 0.0), dtype), dtype)
    else:
        t = c_type(dtype)
        value = c_literal(float(params.get("value", 0.0) or 0.0), dtype) \
            if dtype in ("float32", "float64", "bool") else f"({t}){int(params.get('value') or 0)}"
    st = strides_of(shape)
    n = prod(out_shape)
    itype = index_type(n, prod(shape))
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "c", "        ", itype)
    body.append(f"        {itype} src = 0;")
    body.append("        bool inside = true;")
    for d in range(rank):
        lo = max(-pads[d], 0)                      # cropped from the start
        length = shape[d] - lo - max(-pads[rank + d], 0)  # kept length
        begin = max(pads[d], 0)
        body.append(f"        {{  // dim {d}: kept input [{lo}, {lo + length}), {begin} before")
        body.append(f"            int j = (int)c{d} - {begin};")
        if mode == "constant":
            body.append(f"            if (j < 0 || j >= {length}) inside = false;")
        elif mode == "edge":
            body.append(f"            j = j < 0 ? 0 : (j >= {length} ? {length - 1} : j);")
        elif mode == "wrap":
            body.append(f"            j %= {length}; if (j < 0) j += {length};")
        else:  # reflect (no repeat of the edge)
            if length == 1:
                body.append("            j = 0;")
            elif is_sym(length):  # a kept length of 1 (period 0) is known only at run time
                period = 2 * (length - 1)
                body.append(f"            if ({length} == 1) j = 0;")
                body.append(f"            else {{ j %= {period}; if (j < 0) j += {period}; "
                            f"if (j >= {length}) j = {period} - j; }}")
            else:
                period = 2 * (length - 1)
                body.append(f"            j %= {period}; if (j < 0) j += {period};")
                body.append(f"            if (j >= {length}) j = {period} - j;")
        body.append(f"            src += ({itype})(j + {lo}) * {st[d]};")
        body.append("        }")
    body.append(f"        out0[i] = inside ? in0[src] : {value};")
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"pad {mode} pads={pads} {shape} -> {out_shape} {dtype}",
                  ["tactic: one thread per output element, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
