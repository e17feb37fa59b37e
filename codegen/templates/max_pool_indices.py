"""max_pool_indices: N-d max pooling (NCHW) that also writes each maximum's flat index in the
input (i64; over N, C and the spatial dims, row-major or, with storage_order 1, column-major
over the spatial dims). One thread per output element walks its window; the first maximum in
window order wins a tie (a NaN only where it comes first), as ONNX's reference. float16 /
bfloat16 compare as floats."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type, is_half, load_float, storage_type
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
from ember.codegen.templates.half import stored
from ember.codegen.templates.pool import _window_loops


def emit(name: str, params: dict) -> KernelSpec:
    x_shape, out_shape = params["in_shapes"][0], params["out_shapes"][0]
    dtype = params["out_dtypes"][0]
    kernel, strides = list(params["kernel"]), list(params["strides"])
    pads, dilations = list(params["pads"]), list(params["dilations"])
    nd = len(kernel)
    spatial = list(x_shape[2:])
    half = is_half(dtype)
    t = storage_type(dtype) if half else c_type(dtype)
    acc_t = "float" if half else t
    if params.get("storage_order"):  # column-major: the first spatial dim varies fastest
        weights = [prod(spatial[:d]) for d in range(nd)]
    else:
        weights = [prod(spatial[d + 1:]) for d in range(nd)]
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape))
    plane = prod(spatial)
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "c", "        ", itype)
    body.append(f"        const long long base = ((long long)c0 * {x_shape[1]} + c1) * {plane};")
    body.append("        const " + t + "* x = in0 + base;")
    body.append(f"        {acc_t} acc = 0;")
    body.append("        long long at = -1;")
    indent = _window_loops(body, "max", kernel, strides, pads, dilations, 2)
    inside = " && ".join(f"(unsigned)i{d} < {spatial[d]}u" for d in range(nd))
    row_major = " + ".join(f"i{d} * {prod(spatial[d + 1:])}" for d in range(nd))
    flat = " + ".join(f"(long long)i{d} * {weights[d]}" for d in range(nd))
    body.append(f"{indent}if ({inside}) {{")
    body.append(f"{indent}    const {acc_t} v = {load_float(f'x[{row_major}]', dtype)};")
    body.append(f"{indent}    if (at < 0 || v > acc) {{ acc = v; at = {flat}; }}")
    body.append(f"{indent}}}")
    indent = close_loops(body, indent, nd)
    body.append(f"        out0[i] = {stored('acc', dtype)};")
    body.append("        out1[i] = at < 0 ? -1 : base + at;")
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"max_pool_indices {nd}-d {list(x_shape)} -> {list(out_shape)} "
                  f"kernel={kernel} strides={strides} pads={pads} dilations={dilations} "
                  f"storage_order={int(bool(params.get('storage_order')))}",
                  ["tactic: one thread per output element walking its window, grid-stride "
                   "loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype, "int64"], halves=True),
                  body)
    return KernelSpec(text, grid, block, 0)
