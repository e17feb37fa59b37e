"""col2im: one thread per image element summing the columns whose blocks cover it: for each tap
k of the block, the block b with b * stride - pad + k * dilation = p (along every dim), where
there is one. Sums in float (double for float64), rounded once on the store."""

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
from ember.codegen.templates.half import cast_to, is_float
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.col2im import blocks


def emit(name: str, params: dict) -> KernelSpec:
    x_shape, out_shape = list(params["in_shapes"][0]), list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    if not is_float(dtype):
        raise UnsupportedError(f"CUDA col2im: {dtype} sums run on the host")
    image, block = list(params["image_shape"]), list(params["block_shape"])
    strides, pads = list(params["strides"]), list(params["pads"])
    dilations = list(params["dilations"])
    nd = len(image)
    counts = blocks(image, block, strides, pads, dilations)
    taps = prod(block)
    acc = "double" if dtype == "float64" else "float"
    t = storage_type(dtype) if is_half(dtype) else c_type(dtype)
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape))
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "c", "        ", itype)
    body.append(f"        const {t}* cols = in0 + ((size_t)c0 * {x_shape[1]} + (size_t)c1 * "
                f"{taps}) * {x_shape[2]};")
    body.append(f"        {acc} sum = 0;")
    indent = "        "
    for d in range(nd):
        body.append(f"{indent}for (int k{d} = 0; k{d} < {block[d]}; ++k{d}) {{")
        indent += "    "
        body.append(f"{indent}const int e{d} = (int)c{d + 2} + {pads[d]} - k{d} * "
                    f"{dilations[d]};")
        body.append(f"{indent}if (e{d} < 0 || e{d} % {strides[d]} || e{d} / {strides[d]} >= "
                    f"{counts[d]}) continue;")
    tap = " + ".join(f"k{d} * {prod(block[d + 1:])}" for d in range(nd))
    at = " + ".join(f"(e{d} / {strides[d]}) * {prod(counts[d + 1:])}" for d in range(nd))
    element = f"cols[(size_t)({tap}) * {x_shape[2]} + {at}]"
    body.append(f"{indent}sum += {load_float(element, dtype)};")
    indent = close_loops(body, indent, nd)
    body.append(f"        out0[i] = {cast_to('sum', dtype)};")
    body.append("    }")
    grid, block_dims = grid_1d(n)
    text = source(f"col2im {x_shape} -> {out_shape} block={block} strides={strides} "
                  f"pads={pads} dilations={dilations}",
                  ["tactic: one thread per image element gathering its columns, grid-stride "
                   "loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body)
    return KernelSpec(text, grid, block_dims, 0)
