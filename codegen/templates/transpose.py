"""transpose: out dim i is input dim perm[i]. A perm that swaps two adjacent groups of dims —
[B, R, S] -> [B, S, R], as the NCHW <-> NHWC reformats do — with R and S at least a tile long
goes through shared-memory tiles, so both the reads (along S) and the writes (along R) are
coalesced; a perm that keeps the last dim last moves rows in 16-byte (or narrower) vectors,
several elements a thread (BERT's INT8 attention output, [B, H, S, D] -> [B, S, H, D]); any
other perm (or a symbolic shape) takes one thread per output element reading the input
through permuted strides. (Tiles of 8 x 32 for an image's 8 padded channels were
slower than the per-element kernel on the H200, 0.056 vs 0.042 ms at [32, 8, 224, 224].)"""

from __future__ import annotations

from ember.codegen.scalar_c import storage_type
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import (
    VEC_HELPER,
    KernelSpec,
    decompose,
    grid_1d,
    index_type,
    item_bytes,
    prod,
    signature,
    source,
    strides_of,
    vector_width,
)
from ember.codegen.templates.expand import copy_kernel

TILE = 32  # rows and columns of a tile
THREADS = 256


def swapped_groups(perm: list[int]) -> tuple[int, int] | None:
    """(a, b) where perm = [0, .., a - 1, b, .., n - 1, a, .., b - 1] with a < b < n (the dims
    from a on, split at b, swap places), else None."""
    n = len(perm)
    for a in range(n):
        if perm[a] != a:
            break
    else:
        return None
    for b in range(a + 1, n):
        if perm == list(range(a)) + list(range(b, n)) + list(range(a, b)):
            return a, b
    return None


def emit(name: str, params: dict) -> KernelSpec:
    perm = [int(p) for p in params["perm"]]
    shape = list(params["in_shapes"][0])
    groups = swapped_groups(perm)
    if groups is not None and not any(is_sym(d) for d in shape):
        a, b = groups
        rows, cols = prod(shape[a:b]), prod(shape[b:])
        if min(rows, cols) >= TILE:
            return _tiled(name, params, prod(shape[:a]), rows, cols, perm)
    st = strides_of(shape)
    width = _row_width(params, perm)
    if width:
        return _rows(name, params, [st[p] for p in perm], perm, width)
    return copy_kernel(name, params, [st[p] for p in perm], f"transpose perm={perm}")


def _row_width(params: dict, perm: list[int]) -> int:
    """Elements a thread moves where the perm keeps the last dim last (whole rows move): the
    most whose bytes fit one 16-byte vector and divide the row; 0 where that is under 2, the
    perm moves the last dim, or a size is symbolic."""
    shape = list(params["in_shapes"][0])
    if not perm or perm[-1] != len(perm) - 1 or any(is_sym(d) for d in shape):
        return 0
    return vector_width([item_bytes(params["out_dtypes"][0])], [shape[-1]])


def _rows(name: str, params: dict, strides: list[int], perm: list[int], width: int
          ) -> KernelSpec:
    """out[c] = in[sum(c_k * strides[k])] for `width` neighbouring elements of a row at a time:
    one vector load and one vector store each (rows start at multiples of `width`)."""
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    n = prod(out_shape)
    itype = index_type(n)
    vec = f"ember_vec<{storage_type(dtype)}, {width}>"
    body = [f"    for ({itype} g = ({itype})blockIdx.x * blockDim.x + threadIdx.x; "
            f"g < {n // width}; g += ({itype})blockDim.x * gridDim.x) {{",
            f"        const {itype} i = {width} * g;"]
    body += decompose("i", out_shape, "c", "        ", itype)
    at = " + ".join(f"c{k} * ({itype}){s}" if s != 1 else f"c{k}"
                    for k, s in enumerate(strides) if s != 0) or "0"
    body += [f"        *({vec}*)(out0 + i) = *(const {vec}*)(in0 + {at});", "    }"]
    grid, block = grid_1d(n // width)
    text = source(f"transpose perm={perm}: {params['in_shapes'][0]} -> {out_shape} {dtype}",
                  [f"tactic: rows move whole: {width} neighbouring elements per thread (one "
                   "load, one store), grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body,
                  helpers=VEC_HELPER)
    return KernelSpec(text, grid, block, 0)


def _tiled(name: str, params: dict, batch: int, rows: int, cols: int,
           perm: list[int]) -> KernelSpec:
    """[batch, rows, cols] -> [batch, cols, rows]: a block per tile of rt x ct elements, read
    row by row (consecutive threads along cols) into shared memory, written column by column
    (consecutive threads along rows)."""
    dtype = params["out_dtypes"][0]
    t = storage_type(dtype)
    rt = ct = TILE
    grid = (-(-cols // ct), -(-rows // rt), batch)
    body = [f"    __shared__ {t} tile[{rt}][{ct + 1}];",
            f"    const int r0 = blockIdx.y * {rt}, c0 = blockIdx.x * {ct};",
            f"    const size_t base = (size_t)blockIdx.z * {rows * cols};",
            f"    for (int f = threadIdx.x; f < {rt * ct}; f += {THREADS}) {{",
            f"        const int r = f / {ct}, c = f % {ct};",
            f"        if (r0 + r < {rows} && c0 + c < {cols})",
            f"            tile[r][c] = in0[base + (size_t)(r0 + r) * {cols} + c0 + c];",
            "    }",
            "    __syncthreads();",
            f"    for (int f = threadIdx.x; f < {rt * ct}; f += {THREADS}) {{",
            f"        const int c = f / {rt}, r = f % {rt};",
            f"        if (r0 + r < {rows} && c0 + c < {cols})",
            f"            out0[base + (size_t)(c0 + c) * {rows} + r0 + r] = tile[r][c];",
            "    }"]
    text = source(f"transpose perm={perm}: {params['in_shapes'][0]} -> "
                  f"{list(params['out_shapes'][0])} {dtype}",
                  [f"tactic: [{batch}, {rows}, {cols}] -> [{batch}, {cols}, {rows}] through "
                   f"{rt}x{ct} shared-memory tiles, reads and writes coalesced"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body)
    if grid[1] > 65535 or grid[2] > 65535:
        st = strides_of(list(params["in_shapes"][0]))
        return copy_kernel(name, params, [st[p] for p in perm], f"transpose perm={perm}")
    return KernelSpec(text, grid, (THREADS, 1, 1), 0)
