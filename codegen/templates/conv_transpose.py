"""conv_transpose: N-d transposed convolution (groups, strides, pads,
dilations, output_padding, optional bias) as a direct gather: each output element sums
x[c, i] * w[c, m, tap] over the input positions i with i * stride + tap * dilation == o + pad."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type
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
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    x_shape, w_shape = list(params["in_shapes"][0]), list(params["in_shapes"][1])
    has_bias = len(params["in_shapes"]) > 2
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    if dtype not in ("float32", "float64"):
        raise UnsupportedError(f"CUDA conv_transpose: element type {dtype} is not supported")
    nd = len(x_shape) - 2
    if nd < 1:
        raise UnsupportedError(f"CUDA conv_transpose: input of rank {len(x_shape)}")
    strides, pads = list(params["strides"]), list(params["pads"])
    dilations, groups = list(params["dilations"]), int(params["groups"])
    out_pad = list(params.get("output_padding") or [0] * nd)
    if any(p < 0 for p in pads):
        # the numpy kernel crops its zero margin back off, disagreeing with the inferred shape
        raise UnsupportedError(f"CUDA conv_transpose: negative pads {pads} are not supported")
    channels, size = x_shape[1], x_shape[2:]
    mg, kernel = w_shape[1], w_shape[2:]
    cg = channels // groups
    cout = out_shape[1]
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape), prod(w_shape))
    t = c_type(dtype)
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "o", "        ", itype)
    body += [f"        const int g = (int)o1 / {mg}, m = (int)o1 % {mg};",
             f"        {t} acc = 0;",
             f"        for (int c = 0; c < {cg}; ++c) {{",
             f"            const {t}* x = in0 + ((size_t)o0 * {channels} + g * {cg} + c) * "
             f"{prod(size)};",
             f"            const {t}* w = in1 + ((size_t)(g * {cg} + c) * {mg} + m) * "
             f"{prod(kernel)};"]
    indent = "            "
    index_x, index_w = "0", "0"
    for d in range(nd):
        body += [f"{indent}for (int k{d} = 0; k{d} < {kernel[d]}; ++k{d}) {{",
                 f"{indent}    const int p{d} = (int)o{d + 2} + {pads[d]} - k{d} * {dilations[d]};",
                 f"{indent}    if (p{d} < 0 || p{d} % {strides[d]} != 0) continue;",
                 f"{indent}    const int i{d} = p{d} / {strides[d]};",
                 f"{indent}    if (i{d} >= {size[d]}) continue;"]
        index_x = f"({index_x}) * {size[d]} + i{d}" if d else f"i{d}"
        index_w = f"({index_w}) * {kernel[d]} + k{d}" if d else f"k{d}"
        indent += "    "
    body.append(f"{indent}acc += x[{index_x}] * w[{index_w}];")
    indent = close_loops(body, indent, nd)
    body.append("        }")
    if has_bias:
        body.append("        acc += in2[o1];")
    body += ["        out0[i] = acc;", "    }"]
    grid, block = grid_1d(n)
    text = source(f"conv_transpose {nd}-d x{x_shape} w{w_shape} -> {out_shape} "
                  f"strides={strides} pads={pads} dilations={dilations} "
                  f"output_padding={out_pad} groups={groups} bias={int(has_bias)} {dtype}",
                  ["tactic: direct gather, one thread per output element (grid-stride loop, "
                   "block 256):",
                   f"sum over {cg} channels of the group x {prod(kernel)} taps of the inputs "
                   "that land on it; output channel = group * M/groups + m",
                   f"{cout} output channels"],
                  signature(name, params["in_dtypes"], [dtype]), body)
    return KernelSpec(text, grid, block, 0)
