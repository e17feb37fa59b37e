"""conv: N-d convolution (groups, strides, pads, dilations, optional bias) as an implicit GEMM:
per group, C[M = out channels, N = batch x output positions] = W[M, K = in channels x taps] @
im2col(x)[K, N], with the im2col tile gathered straight from the input into shared memory."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type
from ember.codegen.templates import KernelSpec, decompose, prod, signature, source
from ember.codegen.templates.elementwise import (
    epilogue_dtypes,
    epilogue_lines,
    epilogue_summary,
    uses_mod,
)
from ember.errors import UnsupportedError

TILE = 16


def emit(name: str, params: dict) -> KernelSpec:
    x_shape, w_shape = params["in_shapes"][0], params["in_shapes"][1]
    has_bias = len(params["in_shapes"]) > 2
    out_shape = params["out_shapes"][0]
    dtype = params["out_dtypes"][0]
    if dtype not in ("float32", "float64"):
        raise UnsupportedError(f"CUDA conv: element type {dtype} is not supported")
    nd = len(x_shape) - 2
    strides, pads = list(params["strides"]), list(params["pads"])
    dilations, groups = list(params["dilations"]), int(params["groups"])
    batch, channels, spatial = x_shape[0], x_shape[1], list(x_shape[2:])
    cout, kernel = w_shape[0], list(w_shape[2:])
    out_spatial = list(out_shape[2:])
    cg, mg = channels // groups, cout // groups
    k_total = cg * prod(kernel)
    n_total = batch * prod(out_spatial)
    t = c_type(dtype)
    body = [f"    __shared__ {t} Ws[{TILE}][{TILE} + 1];",
            f"    __shared__ {t} Xs[{TILE}][{TILE} + 1];",
            "    const int tx = threadIdx.x, ty = threadIdx.y;",
            "    const int g = blockIdx.z;  // group",
            f"    const int m = blockIdx.y * {TILE} + ty;  // output channel within the group",
            f"    const int col = blockIdx.x * {TILE} + tx;  // batch x output position",
            f"    const int col_ok = col < {n_total};"]
    body += decompose("(col_ok ? col : 0)", [batch, *out_spatial], "o", "    ")
    for d in range(nd):
        body.append(f"    const int start{d} = o{d + 1} * {strides[d]} - {pads[d]};")
    body += [f"    const {t}* x = in0 + ((size_t)o0 * {channels} + (size_t)g * {cg}) * "
             f"{prod(spatial)};",
             f"    const {t}* w = in1 + (size_t)g * {mg * k_total};",
             f"    {t} acc = 0;",
             f"    for (int k0 = 0; k0 < {k_total}; k0 += {TILE}) {{",
             "        {",
             "            const int kk = k0 + tx;",
             f"            Ws[ty][tx] = (m < {mg} && kk < {k_total})",
             f"                ? w[(size_t)m * {k_total} + kk] : ({t})0;",
             "        }",
             "        {",
             "            const int kk = k0 + ty;",
             f"            {t} v = 0;",
             f"            if (col_ok && kk < {k_total}) {{"]
    body += decompose("kk", [cg, *kernel], "r", "                ")
    conds, index = [], "r0"
    for d in range(nd):
        body.append(f"                const int i{d} = start{d} + r{d + 1} * {dilations[d]};")
        conds.append(f"(unsigned)i{d} < {spatial[d]}u")
        index = f"({index}) * {spatial[d]} + i{d}"
    cond = " && ".join(conds) or "true"
    body += [f"                if ({cond}) v = x[{index}];",
             "            }",
             "            Xs[ty][tx] = v;",
             "        }",
             "        __syncthreads();",
             "        #pragma unroll",
             f"        for (int j = 0; j < {TILE}; ++j) acc += Ws[ty][j] * Xs[j][tx];",
             "        __syncthreads();",
             "    }",
             f"    if (m < {mg} && col_ok) {{",
             f"        const int oc = g * {mg} + m;"]
    if has_bias:
        body.append("        acc += in2[oc];")
    pos = " + ".join([f"o{d + 1} * {prod(out_spatial[d + 1:])}" for d in range(nd)]) or "0"
    body.append(f"        const size_t oi = ((size_t)o0 * {cout} + oc) * {prod(out_spatial)}"
                f" + {pos};")
    body += epilogue_lines(params, "acc", "oi", "        ")
    body += ["        out0[oi] = acc;", "    }"]
    text = source(f"conv {nd}-d x{list(x_shape)} w{list(w_shape)} -> {list(out_shape)} "
                  f"strides={strides} pads={pads} dilations={dilations} groups={groups} "
                  f"bias={int(has_bias)} {dtype}",
                  [f"tactic: implicit GEMM, {TILE}x{TILE} output tile per block (out channels x "
                   "positions), im2col gathered into shared memory; group on grid z",
                   f"GEMM per group: M={mg} N={n_total} K={k_total}", *epilogue_summary(params)],
                  signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)], [dtype]), body,
                  prelude=uses_mod(params))
    grid = (-(-n_total // TILE), -(-mg // TILE), groups)
    if grid[1] > 65535 or grid[2] > 65535:
        raise UnsupportedError(f"CUDA conv: grid {grid} is too large")
    return KernelSpec(text, grid, (TILE, TILE, 1), 0)
