"""The staged epilogue of the tensor-core GEMM loops (`gemm_mma`, `gemm_wgmma`) for half outputs
stored row by row: each thread's accumulator pairs go through shared memory, so the outputs leave
the block as 16-byte stores of eight neighbouring elements.

An MMA fragment gives each thread two adjacent columns of a row, so storing straight from the
registers writes 4 bytes per row per thread, 8 rows per warp instruction: sectors a quarter used,
four times the memory traffic a 1x1 convolution's output needs (ResNet-50's layer1 ran at 4x its
memory floor). Here the block instead
1. adds each column's bias to its accumulators, rounds them to the output type (what the
   unstaged store rounds before the epilogue) and writes the pairs into a BM x (BN + 8) tile of
   the (then free) pipeline shared memory — 8 elements of row padding keep the pair writes of a
   warp on 32 different banks;
2. after a barrier, walks the tile in 16-byte chunks, one per thread at a time, consecutive
   threads along a row: applies the fused elementwise epilogue to the 8 values (reading each
   extra input of the output's own shape and a half type with one 16-byte load) and stores them
   with one 16-byte store.
The results are identical to the unstaged store's. It applies where C[m, n] sits at
`index(m, n)`, consecutive along n, with N and every row start a multiple of 8 elements (NHWC
convs with C_out % 8 == 0 per group, row-major matmuls with N % 8 == 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ember.codegen.scalar_c import is_half, load_float, storage_type, store_from_float
from ember.codegen.symbolic import is_sym
from ember.codegen.templates.elementwise import epilogue_lines

CHUNK = 8  # elements per 16-byte store
PAD = 8  # elements of padding per staged row


@dataclass(frozen=True)
class RowStore:
    """How a GEMM's outputs reach memory row by row. `index(m, n)` is the flat output index of
    C[m, n] (a C expression, consecutive along n); `bias(n)` the float expression of column n's
    bias, or None; `params` the launch's (its `epilogue` and `out_shapes`)."""

    params: dict
    dtype: str
    index: Callable[[str, str], str]
    bias: Callable[[str], str] | None = None

    def ld(self, bn: int) -> int:
        return bn + PAD

    def shared_elems(self, bm: int, bn: int) -> int:
        return bm * self.ld(bn)


def row_store(params: dict, dtype: str, n: int | str, row_starts: list[int],
              index: Callable[[str, str], str],
              bias: Callable[[str], str] | None = None) -> RowStore | None:
    """A `RowStore` where one applies: a half output, N a static multiple of 8 and each of
    `row_starts` (the constant offsets rows may start at: batch or group bases) a multiple of
    8; else None (the loops store element by element)."""
    if not is_half(dtype) or is_sym(n) or int(n) % CHUNK:
        return None
    if any(is_sym(s) or int(s) % CHUNK for s in row_starts):
        return None
    return RowStore(params, dtype, index, bias)


def stage_pair(st: RowStore, row: str, col: str, v0: str, v1: str, n0: str, n: int | str,
               bn: int, indent: str) -> list[str]:
    """Lines writing one thread's accumulator pair (tile row `row`, columns `col`, `col` + 1)
    into the staged tile `Cs`, bias added and rounded to the output type."""
    lines = [f"{indent}{{", f"{indent}    float v0 = {v0}, v1 = {v1};"]
    if st.bias is not None:
        lines += [f"{indent}    if ({n0} + {col} < {n}) {{",
                  f"{indent}        v0 += {st.bias(f'{n0} + {col}')};",
                  f"{indent}        v1 += {st.bias(f'{n0} + {col} + 1')};",
                  f"{indent}    }}"]
    t = storage_type(st.dtype)
    lines += [f"{indent}    {t}* c_ = &Cs[({row}) * {st.ld(bn)} + {col}];",
              f"{indent}    c_[0] = {store_from_float('v0', st.dtype)};",
              f"{indent}    c_[1] = {store_from_float('v1', st.dtype)};",
              f"{indent}}}"]
    return lines


def declare(st: RowStore, smem: str) -> list[str]:
    """The staged tile over the pipeline's shared memory `smem` (a pointer expression), after a
    barrier: every warp is done reading the last stage."""
    t = storage_type(st.dtype)
    return ["    __syncthreads();  // the pipeline's shared memory is free: stage the outputs",
            f"    {t}* Cs = ({t}*)({smem});"]


def drain(st: RowStore, bm: int, bn: int, threads: int, m: int | str, n: int | str,
          m0: str, n0: str) -> list[str]:
    """After `stage_pair` wrote the whole tile: each thread takes 16-byte chunks of it, applies
    the epilogue and stores them."""
    t = storage_type(st.dtype)
    per_row = bn // CHUNK
    params = st.params
    epilogue = params.get("epilogue")
    loaded: dict[int, str] = {}
    vec_loads: list[str] = []
    if epilogue is not None:
        out_shape = list(params["out_shapes"][0])
        first = len(params["in_shapes"])
        for k, (shape, dt) in enumerate(zip(epilogue["in_shapes"], epilogue["in_dtypes"],
                                            strict=True)):
            if list(shape) == out_shape and storage_type(dt) == t:
                vec_loads.append(f"        pack8 r{k};  r{k}.v = __ldg((const uint4*)&"
                                 f"in{first + k}[oi]);")
                loaded[k] = load_float(f"r{k}.e[e]", dt)
    lines = ["    __syncthreads();",
             f"    for (int c = tid; c < {bm * per_row}; c += {threads}) {{",
             f"        const int r = c / {per_row}, cc = c % {per_row} * {CHUNK};",
             f"        const int m = {m0} + r, n = {n0} + cc;",
             f"        if (m >= {m} || n >= {n}) continue;",
             f"        const size_t oi = {st.index('m', 'n')};",
             f"        pack8 h;  h.v = *(const uint4*)&Cs[r * {st.ld(bn)} + cc];"]
    if epilogue is not None:
        lines += vec_loads
        lines += ["        #pragma unroll",
                  f"        for (int e = 0; e < {CHUNK}; ++e) {{",
                  f"            float acc = {load_float('h.e[e]', st.dtype)};",
                  *epilogue_lines(params, "acc", "oi + e", "            ", loaded=loaded),
                  f"            h.e[e] = {store_from_float('acc', st.dtype)};",
                  "        }"]
    lines += ["        *(uint4*)&out0[oi] = h.v;", "    }"]
    return lines


def helpers(dtype: str) -> str:
    """The 16-byte view of eight stored elements the drain uses."""
    return f"union pack8 {{ uint4 v; {storage_type(dtype)} e[{CHUNK}]; }};\n"
