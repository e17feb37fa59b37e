"""max_unpool of indices known to lie in their elements' windows (`windowed`: a max pool's of
this kernel, strides and pads over an input of the unpooled shape): one thread per output
element gathers from the pooled elements whose window covers it the last one (in flat order)
whose index is this element, else 0, which is what the sequential scatter of ONNX's reference
leaves there; a larger output_shape's other elements are 0. Other indices scatter on the
host."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type, is_half, storage_type
from ember.codegen.templates import (
    KernelSpec,
    close_loops,
    decompose,
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
    if not params.get("windowed"):
        raise UnsupportedError("max_unpool: indices not known to come from a matching max "
                               "pool are scattered on the host")
    x_shape, out_shape = list(params["in_shapes"][0]), list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    kernel, strides, pads = list(params["kernel"]), list(params["strides"]), list(params["pads"])
    nd = len(kernel)
    pooled = x_shape[2:]
    unpooled = [(pooled[d] - 1) * strides[d] - pads[d] - pads[nd + d] + kernel[d]
                for d in range(nd)]
    t = storage_type(dtype) if is_half(dtype) else c_type(dtype)
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape))
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "o", "        ", itype)
    body.append(f"        {t} value = {zero(dtype) if is_half(dtype) else f'({t})0'};")
    inside = " && ".join(f"o{d + 2} < {unpooled[d]}" for d in range(nd))
    body.append(f"        if ({inside}) {{")
    plane = f"((long long)o0 * {x_shape[1]} + o1)"
    flat = " + ".join(f"(long long)o{d + 2} * {prod(unpooled[d + 1:])}" for d in range(nd))
    body.append(f"            const long long me = {plane} * {prod(unpooled)} + {flat};")
    body.append(f"            const long long first = {plane} * {prod(pooled)};")
    indent = "            "
    for d in range(nd):  # the pooled q whose window [q*s - pad, q*s - pad + k) holds o
        body.append(f"{indent}const int a{d} = (int)o{d + 2} + {pads[d] - kernel[d] + 1};")
        body.append(f"{indent}const int lo{d} = a{d} <= 0 ? 0 : (a{d} + {strides[d] - 1}) / "
                    f"{strides[d]};")
        body.append(f"{indent}const int hi{d} = min({pooled[d]} - 1, ((int)o{d + 2} + "
                    f"{pads[d]}) / {strides[d]});")
        body.append(f"{indent}for (int q{d} = lo{d}; q{d} <= hi{d}; ++q{d}) {{")
        indent += "    "
    at = " + ".join(f"(long long)q{d} * {prod(pooled[d + 1:])}" for d in range(nd))
    body.append(f"{indent}const long long p = first + {at};")
    body.append(f"{indent}if (in1[p] == me) value = in0[p];")
    indent = close_loops(body, indent, nd)
    body.append("        }")
    body.append("        out0[i] = value;")
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"max_unpool {nd}-d {x_shape} -> {out_shape} kernel={kernel} "
                  f"strides={strides} pads={pads}",
                  ["tactic: one thread per output element gathering from the windows that "
                   "cover it, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"][:2], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
