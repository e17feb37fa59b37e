"""matmul: batched numpy matmul with broadcast batch dims and transpose_a/b, as a shared-memory
tiled GEMM (16x16 output tile per block, one output element per thread)."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type
from ember.codegen.templates import (
    KernelSpec,
    broadcast_strides,
    decompose,
    prod,
    signature,
    source,
)
from ember.codegen.templates.elementwise import (
    epilogue_dtypes,
    epilogue_lines,
    epilogue_summary,
    uses_mod,
)
from ember.errors import UnsupportedError

TILE = 16


def emit(name: str, params: dict) -> KernelSpec:
    a_shape, b_shape = (list(s) for s in params["in_shapes"][:2])
    dtype = params["out_dtypes"][0]
    if dtype not in ("float32", "float64"):
        raise UnsupportedError(f"CUDA matmul: element type {dtype} is not supported")
    ta, tb = bool(params.get("transpose_a", False)), bool(params.get("transpose_b", False))
    # 1-D operands are promoted: a [K] -> [1, K], b [K] -> [K, 1]
    if len(a_shape) == 1:
        a_shape, ta = [1, a_shape[0]], False
    if len(b_shape) == 1:
        b_shape, tb = [b_shape[0], 1], False
    m = a_shape[-1] if ta else a_shape[-2]
    k = a_shape[-2] if ta else a_shape[-1]
    n = b_shape[-2] if tb else b_shape[-1]
    a_rows, a_cols = a_shape[-2], a_shape[-1]
    b_rows, b_cols = b_shape[-2], b_shape[-1]
    # the output's batch dims are the broadcast of both operands' batch dims
    nb = max(len(a_shape), len(b_shape)) - 2
    batch = [max(x, y) for x, y in zip([1] * (nb - len(a_shape) + 2) + a_shape[:-2],
                                       [1] * (nb - len(b_shape) + 2) + b_shape[:-2], strict=True)]
    nbatch = prod(batch)
    a_mat, b_mat = a_rows * a_cols, b_rows * b_cols
    a_bs = [s * a_mat for s in broadcast_strides(a_shape[:-2], batch)] if batch else []
    b_bs = [s * b_mat for s in broadcast_strides(b_shape[:-2], batch)] if batch else []
    t = c_type(dtype)
    a_at = (f"in0[a_base + (size_t)(kk) * {a_cols} + row]" if ta
            else f"in0[a_base + (size_t)row * {a_cols} + (kk)]")
    b_at = (f"in1[b_base + (size_t)col * {b_cols} + (kk)]" if tb
            else f"in1[b_base + (size_t)(kk) * {b_cols} + col]")
    body = [f"    __shared__ {t} As[{TILE}][{TILE} + 1];",
            f"    __shared__ {t} Bs[{TILE}][{TILE} + 1];",
            "    const int tx = threadIdx.x, ty = threadIdx.y;",
            f"    const int row = blockIdx.y * {TILE} + ty;  // of C (M)",
            f"    const int col = blockIdx.x * {TILE} + tx;  // of C (N)",
            "    const int b = blockIdx.z;"]
    if batch:
        body += decompose("b", batch, "bc", "    ")
        a_off = " + ".join(f"(size_t)bc{i} * {s}" for i, s in enumerate(a_bs) if s) or "0"
        b_off = " + ".join(f"(size_t)bc{i} * {s}" for i, s in enumerate(b_bs) if s) or "0"
    else:
        a_off = b_off = "0"
    body += [f"    const size_t a_base = {a_off};",
             f"    const size_t b_base = {b_off};",
             f"    {t} acc = 0;",
             f"    for (int k0 = 0; k0 < {k}; k0 += {TILE}) {{",
             "        {",
             "            const int kk = k0 + tx;  // A tile: row ty of the block, column tx",
             f"            As[ty][tx] = (row < {m} && kk < {k}) ? {a_at} : ({t})0;",
             "        }",
             "        {",
             "            const int kk = k0 + ty;  // B tile: row ty, column tx of the block",
             f"            Bs[ty][tx] = (col < {n} && kk < {k}) ? {b_at} : ({t})0;",
             "        }",
             "        __syncthreads();",
             "        #pragma unroll",
             f"        for (int j = 0; j < {TILE}; ++j) acc += As[ty][j] * Bs[j][tx];",
             "        __syncthreads();",
             "    }",
             f"    if (row < {m} && col < {n}) {{",
             f"        const size_t oi = (size_t)b * {m * n} + (size_t)row * {n} + col;",
             *epilogue_lines(params, "acc", "oi", "        "),
             "        out0[oi] = acc;",
             "    }"]
    text = source(f"matmul [{nbatch} x ({m} x {k}) @ ({k} x {n})] transpose_a={int(ta)} "
                  f"transpose_b={int(tb)} {dtype}",
                  [f"tactic: shared-memory tiled GEMM, {TILE}x{TILE} tile per block, one output "
                   "per thread; batch on grid z", *epilogue_summary(params)],
                  signature(name, [*params["in_dtypes"][:2], *epilogue_dtypes(params)], [dtype]),
                  body, prelude=uses_mod(params))
    grid = (-(-n // TILE), -(-m // TILE), nbatch)
    if grid[1] > 65535 or grid[2] > 65535:
        raise UnsupportedError(f"CUDA matmul: grid {grid} is too large (M {m}, batch {nbatch})")
    return KernelSpec(text, grid, (TILE, TILE, 1), 0)
