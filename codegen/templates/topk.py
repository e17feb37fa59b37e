"""topk: the k largest (or smallest) values along `axis` and their int64 indices, in order:
equal values by the lower index, a NaN above every number (first for largest, last for
smallest), as the numpy kernel. One block of 256 threads per line (a grid-stride loop over the
lines); k rounds, each a block-wide argmin, in the order, over the values after the previous
round's winner (its threads stride over the line, then a tree in dynamic shared memory).
float16 / bfloat16 compare as floats; values are stored back exactly."""

from __future__ import annotations

from ember.codegen.scalar_c import compute_type, load_float, storage_type
from ember.codegen.symbolic import dims_text
from ember.codegen.templates import (
    KernelSpec,
    grid_blocks,
    prod,
    signature,
    source,
)
from ember.codegen.templates.half import stored
from ember.errors import UnsupportedError

THREADS = 256


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    dtype = params["in_dtypes"][0]
    if dtype == "bool":
        raise UnsupportedError("CUDA topk: bool input runs on the host")
    if not shape:
        raise UnsupportedError("CUDA topk: a rank-0 input runs on the host")
    axis = int(params["axis"]) % len(shape)
    k = int(params["k"])
    dim, inner = shape[axis], prod(shape[axis + 1:])
    lines = prod(shape) // dim if dim else 0
    t, st = compute_type(dtype), storage_type(dtype)
    largest = bool(params["largest"])
    # a before b in the order: NaNs first (largest) or last (smallest), then by value, then
    # by index
    nan_first = "na" if largest else "nb"
    cmp = ">" if largest else "<"
    helpers = (f"static __device__ __forceinline__ bool before({t} a, long long ia, {t} b, "
               "long long ib) {\n"
               "    const bool na = a != a, nb = b != b;\n"
               f"    if (na != nb) return {nan_first};\n"
               f"    if (!na && a != b) return a {cmp} b;\n"
               "    return ia < ib;\n"
               "}")
    body = [
        "    extern __shared__ __align__(16) unsigned char smem[];",
        "    long long* si = (long long*)smem;",
        f"    {t}* sv = ({t}*)(smem + {THREADS} * sizeof(long long));",
        "    const int tid = threadIdx.x;",
        f"    for (long long row = blockIdx.x; row < {lines}; row += gridDim.x) {{",
        f"        const {st}* line = in0 + (row / {inner}) * {dim * inner} + row % {inner};",
        f"        const size_t out = (row / {inner}) * {k * inner} + row % {inner};",
        f"        {t} pv = 0;",
        "        long long pi = -1;",
        f"        for (int r = 0; r < {k}; ++r) {{",
        f"            {t} bv = 0;",
        "            long long bi = -1;",
        f"            for (long long j = tid; j < {dim}; j += {THREADS}) {{",
        f"                const {t} v = {load_float(f'line[(size_t)j * {inner}]', dtype)};",
        "                if (pi >= 0 && !before(pv, pi, v, j)) continue;  // taken already",
        "                if (bi < 0 || before(v, j, bv, bi)) { bv = v; bi = j; }",
        "            }",
        "            sv[tid] = bv;",
        "            si[tid] = bi;",
        "            __syncthreads();",
        f"            for (int s = {THREADS // 2}; s > 0; s >>= 1) {{",
        "                if (tid < s && si[tid + s] >= 0 && (si[tid] < 0 || "
        "before(sv[tid + s], si[tid + s], sv[tid], si[tid]))) {",
        "                    sv[tid] = sv[tid + s];",
        "                    si[tid] = si[tid + s];",
        "                }",
        "                __syncthreads();",
        "            }",
        "            pv = sv[0];",
        "            pi = si[0];",
        "            if (tid == 0) {",
        f"                out0[out + (size_t)r * {inner}] = {stored('pv', dtype)};",
        f"                out1[out + (size_t)r * {inner}] = pi;",
        "            }",
        "            __syncthreads();  // every thread has read the winner",
        "        }",
        "    }",
    ]
    shared = THREADS * (8 + (8 if t in ("double", "long long", "unsigned long long") else 4))
    text = source(f"topk {'largest' if largest else 'smallest'} k={k} axis {axis} of "
                  f"{dims_text(shape)} "
                  f"{dtype}",
                  [f"tactic: one block of {THREADS} threads per line, k block-wide argmin "
                   "rounds (shared-memory tree), grid-stride loop over the lines"],
                  signature(name, [dtype], [dtype, "int64"], halves=True), body,
                  helpers=helpers)
    return KernelSpec(text, (grid_blocks(lines), 1, 1), (THREADS, 1, 1), shared)
