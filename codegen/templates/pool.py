"""pool: N-d max / avg / lp pooling, one thread per output element walking its window.
avg divides by the count of input positions in the window, or with count_include_pad of input
and pad positions (not those a ceil-mode window adds past the end pad). `layout: NHWC` (2-d):
input [N, H, W, C] and output [N, P, Q, C], a warp's threads reading neighbouring channels."""

from __future__ import annotations

from ember.codegen.scalar_c import c_literal, c_type
from ember.codegen.templates import (
    KernelSpec,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    fn = params["fn"]
    x_shape, out_shape = params["in_shapes"][0], params["out_shapes"][0]
    dtype = params["out_dtypes"][0]
    if fn not in ("max", "avg", "lp"):
        raise UnsupportedError(f"CUDA pool: unknown function '{fn}'")
    if fn != "max" and dtype not in ("float32", "float64"):
        raise UnsupportedError(f"CUDA pool: {fn} pooling of {dtype} is not supported")
    kernel, strides = list(params["kernel"]), list(params["strides"])
    pads, dilations = list(params["pads"]), list(params["dilations"])
    include_pad = bool(params.get("count_include_pad", False))
    p = float(params.get("p", 2.0) or 2.0)
    nd = len(kernel)
    nhwc = params.get("layout") == "NHWC"
    if nhwc and len(x_shape) != 4:
        raise UnsupportedError(f"CUDA pool: layout NHWC needs a 4-D input, got {list(x_shape)}")
    # NCHW: out index c0 c1 | c2.. spatial; NHWC: c0 | c1.. spatial | c(nd+1) the channel
    spatial = list(x_shape[1:3] if nhwc else x_shape[2:])
    channels = x_shape[3] if nhwc else 1
    first = 1 if nhwc else 2
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape))
    t = c_type(dtype)
    acc_t = t if fn == "max" else ("double" if dtype == "float64" else "float")
    if fn == "max":
        init = (c_literal(float("-inf"), dtype) if dtype in ("float32", "float64")
                else f"({t})({'0' if dtype == 'bool' else _int_min(dtype)})")
    else:
        init = "0"
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "c", "        ", itype)
    if nhwc:
        body.append(f"        const {t}* x = in0 + (size_t)c0 * {prod(spatial) * channels} + c3;")
    else:
        body.append(f"        const {t}* x = in0 + ((size_t)c0 * {x_shape[1]} + c1) * "
                    f"{prod(spatial)};")
    body.append(f"        {acc_t} acc = {init};")
    if fn == "avg":
        body.append("        int count = 0;")
    indent = "        "
    for d in range(nd):
        body.append(f"{indent}for (int k{d} = 0; k{d} < {kernel[d]}; ++k{d}) {{")
        indent += "    "
        body.append(f"{indent}const int i{d} = c{d + first} * {strides[d]} - {pads[d]} + "
                    f"k{d} * {dilations[d]};")
    inside = " && ".join(f"(unsigned)i{d} < {spatial[d]}u" for d in range(nd)) or "true"
    index = " + ".join(f"i{d} * {prod(spatial[d + 1:]) * channels}" for d in range(nd)) or "0"
    if fn == "avg" and include_pad:
        padded = " && ".join(f"i{d} >= -{pads[d]} && i{d} < {spatial[d] + pads[nd + d]}"
                             for d in range(nd))
        body.append(f"{indent}if ({padded}) ++count;")
    body.append(f"{indent}if ({inside}) {{")
    body.append(f"{indent}    const {acc_t} v = x[{index}];")
    if fn == "max":
        body.append(f"{indent}    if (v > acc || v != v) acc = v;")
    elif fn == "avg":
        body.append(f"{indent}    acc += v;")
        if not include_pad:
            body.append(f"{indent}    ++count;")
    else:
        pw = "powf" if acc_t == "float" else "pow"
        ab = "fabsf" if acc_t == "float" else "fabs"
        body.append(f"{indent}    acc += {pw}({ab}(v), ({acc_t}){p!r});")
    body.append(f"{indent}}}")
    for _ in range(nd):
        indent = indent[:-4]
        body.append(f"{indent}}}")
    if fn == "avg":
        body.append(f"        out0[i] = ({t})(acc / ({acc_t})count);")
    elif fn == "lp":
        pw = "powf" if acc_t == "float" else "pow"
        body.append(f"        out0[i] = ({t}){pw}(acc, ({acc_t}){1.0 / p!r});")
    else:
        body.append("        out0[i] = acc;")
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"pool {fn} {nd}-d{' NHWC' if nhwc else ''} {list(x_shape)} -> "
                  f"{list(out_shape)} kernel={kernel} "
                  f"strides={strides} pads={pads} dilations={dilations}"
                  + (f" count_include_pad={int(include_pad)}" if fn == "avg" else "")
                  + (f" p={p}" if fn == "lp" else ""),
                  ["tactic: one thread per output element walking its window, grid-stride "
                   "loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype]), body)
    return KernelSpec(text, grid, block, 0)


def _int_min(dtype: str) -> str:
    import numpy as np

    v = int(np.iinfo(np.dtype(dtype)).min)
    return "(-9223372036854775807LL - 1)" if dtype == "int64" else str(v)
