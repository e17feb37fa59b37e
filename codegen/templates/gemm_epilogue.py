"""The staged epilogue of the tensor-core GEMM loops (`gemm_mma`, `gemm_wgmma`) for outputs
stored row by row: each thread's accumulator pairs go through shared memory, so the outputs leave
the block as 16-byte stores of neighbouring elements (eight halves or four floats).

An MMA fragment gives each thread two adjacent columns of a row, so storing straight from the
registers writes 4 bytes per row per thread, 8 rows per warp instruction: sectors a quarter used,
four times the memory traffic a 1x1 convolution's output needs (ResNet-50's layer1 ran at 4x its
memory floor). Here the block instead
1. adds each column's bias to its accumulators, rounds them to the output type (what the
   unstaged store rounds before the epilogue) and writes the pairs into a BM x (BN + one chunk)
   tile of the (then free) pipeline shared memory — the 16 bytes of row padding keep a warp's
   pair writes of halves on 32 different banks;
2. after a barrier, walks the tile in 16-byte chunks, one per thread at a time, consecutive
   threads along a row: applies the fused elementwise epilogue to the chunk's values (reading
   each extra input of the output's own shape and element size with one 16-byte load) and
   stores them with one 16-byte store.
The results are identical to the unstaged store's. It applies to FP16/BF16 and FP32 (TF32)
outputs where C[m, n] sits at `index(m, n)`, consecutive along n, with N and every row start a
multiple of a chunk (NHWC convs whose C_out per group is, row-major matmuls whose N is).

An INT8 GEMM whose epilogue requantizes to int8 (`int8_row_store`) stages its int32 sums as
they are (no bias: its bias is in the epilogue) and applies the whole epilogue in the drain, 16
outputs per chunk: one 16-byte store where the fragments stored 1 byte per thread (sectors an
eighth used), and an int8 residual read with one 16-byte load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ember.codegen.scalar_c import (
    c_type,
    compute_type,
    is_half,
    load_float,
    storage_type,
    store_from_float,
)
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import epilogue_split
from ember.codegen.templates.elementwise import epilogue_lines, epilogue_store
from ember.runtime.cpu_kernels.common import stored_dtype

VECTOR_BYTES = 16  # one store, one chunk
STAGED_INT8 = "int8 results staged in shared memory (16-byte stores)"  # the kernels' comment


def staged_comment(dtype: str, stored: str = "int8", store: RowStore | None = None) -> str:
    """The comment of a kernel whose `dtype` (8-bit operands') sums `byte_row_store` stages
    for results of type `stored` (`store`: the `RowStore` it made)."""
    if store is not None and store.head is not None:
        return (f"quantized to {store.staged} in registers, staged in shared memory "
                f"({stored} results, 16-byte stores)")
    if dtype == "int8":
        return STAGED_INT8 if stored in BYTE_TYPES else \
            f"int32 sums staged in shared memory ({stored} results, 16-byte stores)"
    return "FP8 sums staged in shared memory (16-byte stores)"


BYTE_TYPES = ("int8", "uint8")
# a chunk's span of a narrower extra input -> the word one load reads it as (8 bytes: the int8
# residual of a chunk of 8 halves)
NARROW_WORDS = {8: "uint2"}
# bytes of an element of the types a staged tile or its outputs hold
_SIZES = {"float16": 2, "bfloat16": 2, "float32": 4, "int32": 4, "int8": 1, "uint8": 1,
          "float8_e4m3fn": 1}


def _size(dtype: str) -> int:
    return _SIZES[dtype]


def chunk(dtype: str) -> int:
    """Elements of `dtype` in a 16-byte chunk (and of padding per staged row)."""
    return VECTOR_BYTES // _size(dtype)


@dataclass(frozen=True)
class RowStore:
    """How a GEMM's outputs reach memory row by row. `index(m, n)` is the flat output index of
    C[m, n] (a C expression, consecutive along n); `column(n)` the output's innermost
    coordinate of column n; `bias(n)` the float expression of column n's bias, or None;
    `params` the launch's (its `epilogue` and `out_shapes`); `staged` the type of the shared
    tile where it is not the output's (an INT8 GEMM's "int32" sums, see `byte_row_store`).
    `head`: where the epilogue splits at a quantize (`epilogue_split`), the params whose
    epilogue the fragments apply before staging (`staged` is then that quantize's 8-bit type
    and `params` the tail's, which the drain applies)."""

    params: dict
    dtype: str
    index: Callable[[str, str], str]
    column: Callable[[str], str]
    bias: Callable[[str], str] | None = None
    staged: str | None = None
    band: int | None = None  # rows staged at a time (`byte_row_store`'s bands); None: all
    head: dict | None = None

    def takes_sums(self, sums: str) -> bool:
        """Whether this store stages what an 8-bit GEMM with `sums` (`gemm_mma.staged_sums`)
        gives it: those whole sums, or the bytes its `head` computes from them."""
        return self.head is not None or self.staged == sums

    @property
    def tile_dtype(self) -> str:
        return self.staged or self.dtype

    def ld(self, bn: int) -> int:
        return bn + chunk(self.tile_dtype)

    def shared_bytes(self, bm: int, bn: int) -> int:
        return bm * self.ld(bn) * _size(self.tile_dtype)


def row_store(params: dict, dtype: str, n: int | str, row_starts: list[int],
              index: Callable[[str, str], str], column: Callable[[str], str],
              bias: Callable[[str], str] | None = None) -> RowStore | None:
    """A `RowStore` where one applies: a half or float32 output, N a static multiple of a
    16-byte chunk and each of `row_starts` (the constant offsets rows may start at: batch or
    group bases) too; else None (the loops store element by element)."""
    if not (is_half(dtype) or dtype == "float32") or is_sym(n) or int(n) % chunk(dtype):
        return None
    if any(is_sym(s) or int(s) % chunk(dtype) for s in row_starts):
        return None
    return RowStore(params, dtype, index, column, bias)


def byte_row_store(params: dict, n: int | str, row_starts: list[int],
                   index: Callable[[str, str], str], column: Callable[[str], str],
                   room: int, bm: int, bn: int, sums: str = "int32",
                   band: int | None = None) -> RowStore | None:
    """A `RowStore` for an 8-bit GEMM's whole sums (`sums`: INT8's "int32", E4M3's "float32")
    put through an epilogue (8-bit results, or a dequantized FP16/BF16/FP32 one: an INT8
    MobileNetV2's expand convs feed FP16 depthwise ones), where N and each of `row_starts` are
    static multiples of 16 and the staged BM x BN tile of sums fits in the main loop's `room`
    bytes of shared memory; else None (the sums are stored one by one). `band`: a loop that
    can stage its rows that many at a time (a warp row of an mma.sync tile) stages the fewest
    bands of a multiple of it that fit (an INT8 128x256 tile's 133 KB of sums, in the 92 KB of
    its pipeline, as two bands of 64 rows).

    INT8 sums whose epilogue quantizes them before it reads anything of the output's shape
    (`epilogue_split`: a QDQ conv's result, quantized before the residual is added) stage that
    quantized byte instead, the fragments applying the epilogue up to it (`stage_pair`) and the
    drain the rest: a quarter of the shared-memory traffic."""
    stored = stored_dtype(params)
    if not params.get("epilogue") or is_sym(n) or int(n) % chunk("int8") \
            or stored not in _SIZES or stored == "int32" \
            or any(is_sym(s) or int(s) % chunk("int8") for s in row_starts):
        return None
    parts = epilogue_split.split(params) if sums == "int32" else None
    if parts is not None:
        tail = parts.tail or {**params, "epilogue": None, "out_dtypes": [parts.dtype]}
        store = RowStore(tail, stored, index, column, staged=parts.dtype, head=parts.head)
    else:
        store = RowStore(params, stored, index, column, staged=sums)
    if store.shared_bytes(bm, bn) <= room:
        return store
    rows = bm // 2
    while band and rows >= band and rows % band == 0 and bm % rows == 0:
        if store.shared_bytes(rows, bn) <= room:
            return dataclasses.replace(store, band=rows)
        rows //= 2
    return None


def stage_pair(st: RowStore, row: str, col: str, v0: str, v1: str, n0: str, n: int | str,
               bn: int, indent: str, second: tuple[str, str] | None = None) -> list[str]:
    """Lines writing one thread's accumulator pair (tile row `row`, columns `col`, `col` + 1)
    into the staged tile `Cs`, bias added and rounded to the output type (staged sums, int32 or
    float32: as they are; bytes a `head` computed from them). `second`: the pair's sums of a
    second GEMM, the value of the head's `epilogue_split.second_sums` input."""
    if st.head is not None:
        return _stage_head_pair(st, row, col, v0, v1, n0, n, bn, indent, second)
    if second is not None:
        raise ValueError("a second GEMM's sums go to a split epilogue's head")
    if st.staged is not None:
        pair = "int2" if st.staged == "int32" else "float2"
        return [f"{indent}*({pair}*)&Cs[({row}) * {st.ld(bn)} + {col}] = "
                f"make_{pair}({v0}, {v1});"]
    lines = [f"{indent}{{", f"{indent}    float v0 = {v0}, v1 = {v1};"]
    if st.bias is not None:
        lines += [f"{indent}    if ({n0} + {col} < {n}) {{",
                  f"{indent}        v0 += {st.bias(f'{n0} + {col}')};",
                  f"{indent}        v1 += {st.bias(f'{n0} + {col} + 1')};",
                  f"{indent}    }}"]
    at = f"&Cs[({row}) * {st.ld(bn)} + {col}]"
    if is_half(st.dtype):  # the pair as one 32-bit word (two 16-bit stores otherwise)
        lo, hi = (f"{store_from_float(v, st.dtype)}.bits" for v in ("v0", "v1"))
        lines.append(f"{indent}    *(unsigned*){at} = (unsigned){lo} | ((unsigned){hi} << 16);")
    else:
        lines.append(f"{indent}    *(float2*){at} = make_float2(v0, v1);")
    return lines + [f"{indent}}}"]


def _stage_head_pair(st: RowStore, row: str, col: str, v0: str, v1: str, n0: str,
                     n: int | str, bn: int, indent: str,
                     second: tuple[str, str] | None = None) -> list[str]:
    """`stage_pair` for a split epilogue: `head_pair`, the two bytes written as one 16-bit
    word."""
    return [f"{indent}{{",
            *head_pair(st.head, st.column, str(st.staged), col, v0, v1, n0, n,
                       indent + "    ", second),
            f"{indent}    *(unsigned short*)&Cs[({row}) * {st.ld(bn)} + {col}] = "
            f"(unsigned short)((unsigned char)q0 | ((unsigned)(unsigned char)q1 << 8));",
            f"{indent}}}"]


def head_pair(params: dict, column: Callable[[str], str], dtype: str, col: str, v0: str,
              v1: str, n0: str, n: int | str, indent: str,
              second: tuple[str, str] | None = None) -> list[str]:
    """Lines declaring `q0`, `q1` (of `dtype`): `params`' epilogue (a split's head) on one
    thread's accumulator pair `v0`, `v1` at tile columns `col`, `col` + 1 (per-column inputs
    read at those columns of the output, `column(c)` their index, clamped into the matrix, with
    the reciprocals of those it divides by: the loop over a thread's rows reads the same
    columns, and NVRTC computes each once; a second GEMM's sums from `second`)."""
    epilogue = params["epilogue"]
    first = len(params["in_shapes"])
    out_shape = list(params["out_shapes"][0])
    used = epilogue_split.reads(params)
    lines = [f"{indent}const int hc = min({n0} + {col}, {int(n) - 2});"]
    loaded: list[dict[int, str]] = [{}, {}]
    reciprocals: list[dict[int, str]] = [{}, {}]
    divisors = _divisors(epilogue)
    sums = epilogue_split.second_sums(params)
    if (sums is None) != (second is None):
        raise ValueError("a second GEMM's sums: the epilogue reads them (shortcut sums) where "
                         "the main loop keeps them, and only there")
    for k, (shape, dt) in enumerate(zip(epilogue["in_shapes"], epilogue["in_dtypes"],
                                        strict=True)):
        if k not in used:
            loaded[0][k] = loaded[1][k] = "0"
        elif k == sums:
            loaded[0][k], loaded[1][k] = second
        elif epilogue_split.per_column(list(shape), out_shape) and out_shape[-1] != 1:
            at = f"in{first + k}[{column('hc')}]"
            if dt == "float32":
                lines.append(f"{indent}const float2 hv{k} = __ldg((const float2*)&{at});")
                loaded[0][k], loaded[1][k] = f"hv{k}.x", f"hv{k}.y"
                if 1 + k in divisors:  # (the same column's for every row: computed once)
                    lines.append(f"{indent}const float2 hr{k} = make_float2("
                                 f"__frcp_rn(hv{k}.x), __frcp_rn(hv{k}.y));")
                    reciprocals[0][1 + k], reciprocals[1][1 + k] = f"hr{k}.x", f"hr{k}.y"
            else:
                for h in (0, 1):
                    value = load_float(f"in{first + k}[{column(f'hc + {h}')}]", dt)
                    lines.append(f"{indent}const {compute_type(dt)} hv{k}_{h} = {value};")
                loaded[0][k], loaded[1][k] = f"hv{k}_0", f"hv{k}_1"
    t = c_type(dtype)
    for h, v in enumerate((v0, v1)):
        lines += [f"{indent}{t} q{h};", f"{indent}{{",
                  f"{indent}    const int acc = {v};",
                  *epilogue_lines(params, "acc", "0", f"{indent}    ", loaded=loaded[h],
                                  result=f"q{h}", reciprocals=reciprocals[h]),
                  f"{indent}}}"]
    return lines


def declare(st: RowStore, smem: str, barrier: bool = True) -> list[str]:
    """The staged tile over the pipeline's shared memory `smem` (a pointer expression), after a
    barrier (every warp is done reading the last stage); without `barrier`, for a tile staged
    apart from the pipeline's buffers."""
    t = storage_type(st.tile_dtype)
    return ["    __syncthreads();  // the pipeline's shared memory is free: stage the outputs"
            ] * barrier + [f"    {t}* Cs = ({t}*)({smem});"]


def drain(st: RowStore, bm: int, bn: int, threads: int, m: int | str, n: int | str,
          m0: str, n0: str, early: list[str] | None = None) -> list[str]:
    """After `stage_pair` wrote the whole tile: each thread takes 16-byte chunks of it, applies
    the epilogue and stores them. `early`: where the drain is one pass, the lines loading its
    extra inputs (a residual) go there instead (the caller places them before the main loop,
    with `m0` and `n0` known: a persistent kernel's loop over M tiles)."""
    if st.staged is not None:
        return _drain_sums(st, bm, bn, threads, m, n, m0, n0, early)
    loads, loaded, spans, prelude, rcps = _drain_inputs(st, bm, bn, threads, n, n0, False)
    return _chunks(st, bm, bn, threads, m, n, m0, n0, loads, early=early, body=[
        *spans,
        f"            pack16 h;  h.v = *(const uint4*)&Cs[r * {st.ld(bn)} + cc];",
        *_epilogue_loop(st.params, st.dtype, "h", loaded, "            ", rcps),
        f"            {store16('&out0[oi]', 'h.v')}"], prelude=prelude)


def chunk_epilogue(params: dict, dtype: str, values: str, column: str, indent: str
                   ) -> list[str]:
    """Lines applying a launch's epilogue in place to `values`, a `pack16` of stored `dtype`
    outputs at flat indices `oi`, `oi` + 1, ... whose innermost coordinate starts at `column`
    (none without an epilogue). Extra inputs of the output's shape and element size are read
    16 bytes at once; those broadcast along all but the innermost dim, by `column`; those no op
    reads, not at all."""
    if params.get("epilogue") is None:
        return []
    loads, loaded, spans = _chunk_inputs(params, dtype, column, indent)
    declared = [f"{indent}{declaration};" for declaration in loads]
    return [*declared, *loads.values(), *spans,
            *_epilogue_loop(params, dtype, values, loaded, indent)]


def _drain_inputs(st: RowStore, bm: int, bn: int, threads: int, n: int | str, n0: str,
                  across: bool) -> tuple[dict[str, str], dict[int, str], list[str], list[str],
                                         dict[int, str]]:
    """`_chunk_inputs` for a drain's chunks (their loads, loaded expressions and spans) and the
    lines that go before its loop: where every chunk a thread drains starts at the same column
    (`_chunks`' placement with `threads` a multiple of a row's chunks, or of its groups of 4
    across rows), the per-channel spans are read there once (at a column clamped into the
    matrix: a thread whose chunks all lie past N reads a real row's and stores none), not once
    a chunk, with the reciprocals of those the epilogue divides by (`_hoisted_reciprocals`:
    the last value, region value -> expression)."""
    size = chunk(st.dtype)
    per_row = bn // size
    if across:
        invariant = (threads // 32) % (per_row // 4) == 0
        first = f"((tid >> 5) % {per_row // 4} * 4 + ((tid & 31) >> 3)) * {size}"
    else:
        invariant = threads % per_row == 0
        first = f"tid % {per_row} * {size}"
    loads, loaded, spans = _chunk_inputs(st.params, st.dtype, st.column("n"), "            ",
                                         "[u]")
    if not invariant or is_sym(n) or not spans:  # (no spans: nothing to read once)
        return loads, loaded, spans, [], {}
    loads, loaded, spans = _chunk_inputs(st.params, st.dtype, st.column("hn"), "    ", "[u]")
    prelude = ["    // every chunk this thread drains starts at this column: its per-channel "
               "inputs, once",
               f"    const int hn = min({n0} + {first}, {int(n) - size});", *spans]
    lines, reciprocals = _hoisted_reciprocals(st.params, size, loaded)
    return loads, loaded, [], prelude + lines, reciprocals


def _hoisted_reciprocals(params: dict, size: int, loaded: dict[int, str]
                         ) -> tuple[list[str], dict[int, str]]:
    """Where a drain reads per-channel inputs once (`_drain_inputs`), the reciprocals of the
    float32 ones an epilogue divides by (a merged Q/K/V GEMM's per-column output scales),
    computed there once too: lines, and {region value of input k: its reciprocal at chunk
    element e}. Each division by such a column value otherwise calls `__frcp_rn` (with its
    slow-path branch) for every output."""
    epilogue = params["epilogue"]
    divisors = _divisors(epilogue)
    lines, out = [], {}
    for k, dt in enumerate(epilogue["in_dtypes"]):
        if 1 + k not in divisors or dt != "float32" or loaded.get(k) != f"pc{k}.e[e]":
            continue
        lines += [f"    float pr{k}[{size}];",
                  "    #pragma unroll",
                  f"    for (int e = 0; e < {size}; ++e) pr{k}[e] = __frcp_rn(pc{k}.e[e]);"]
        out[1 + k] = f"pr{k}[e]"
    return lines, out


def _divisors(epilogue: dict) -> set[int]:
    """The region values an epilogue divides by."""
    return {op["args"][1] for op in epilogue["ops"] if op["fn"] == "div"}


def _epilogue_loop(params: dict, dtype: str, values: str, loaded: dict[int, str],
                   indent: str, reciprocals: dict[int, str] | None = None) -> list[str]:
    if params.get("epilogue") is None:
        return []
    return [f"{indent}#pragma unroll",
            f"{indent}for (int e = 0; e < {chunk(dtype)}; ++e) {{",
            f"{indent}    float acc = {load_float(f'{values}.e[e]', dtype)};",
            *epilogue_lines(params, "acc", "oi + e", indent + "    ", loaded=loaded,
                            reciprocals=reciprocals),
            f"{indent}    {values}.e[e] = {store_from_float('acc', dtype)};",
            f"{indent}}}"]


def _chunk_inputs(params: dict, dtype: str, column: str, indent: str, slot: str = ""
                  ) -> tuple[dict[str, str], dict[int, str], list[str]]:
    """The epilogue's extra inputs a 16-byte chunk of outputs at `oi` (innermost coordinate
    from `column`, a multiple of the chunk) reads without index arithmetic: the 16-byte loads
    of those of the output's shape and element size (an int8 residual of an int8 output), and
    the 8-byte loads of those of its shape in narrower elements (an int8 residual of a half
    output), as {declaration of the variable ("pack16 r5"): line loading it into
    `variable{slot}`}; the expression of each of those
    and of the ones broadcast along all but the innermost dim at chunk element `e` (input k ->
    expression); and lines (at `indent`) that read the chunk's span of each broadcast one in
    16-byte loads where that span is whole 16-byte words (an INT8 conv's per-channel scales
    and bias: 4 loads of 16 bytes for 16 outputs, not 16 of 4). Those no op reads are "0"
    (a split epilogue's tail: its head read the column scales); the others `epilogue_lines`
    reads itself."""
    epilogue = params.get("epilogue")
    if epilogue is None:
        return {}, {}, []
    t = storage_type(dtype)
    out_shape = list(params["out_shapes"][0])
    first = len(params["in_shapes"])
    loads: dict[str, str] = {}
    loaded: dict[int, str] = {}
    spans: list[str] = []
    used = epilogue_split.reads(params)
    for k, (shape, dt) in enumerate(zip(epilogue["in_shapes"], epilogue["in_dtypes"],
                                        strict=True)):
        if k not in used:  # (a split epilogue's tail: the head read its column scales)
            loaded[k] = "0"
        elif list(shape) == out_shape and storage_type(dt) == t:
            loads[f"pack16 r{k}"] = (f"{indent}r{k}{slot}.v = __ldg((const uint4*)&"
                                     f"in{first + k}[oi]);")
            loaded[k] = load_float(f"r{k}{slot}.e[e]", dt)
        elif list(shape) == out_shape and chunk(dtype) * _SIZES.get(dt, 0) in NARROW_WORDS:
            # of the output's shape in narrower elements (an int8 residual of a half output):
            # the chunk's span in one 8-byte load, batched with the others
            word = NARROW_WORDS[chunk(dtype) * _SIZES[dt]]
            loads[f"union {{ {word} v; {storage_type(dt)} e[{chunk(dtype)}]; }} r{k}"] = (
                f"{indent}r{k}{slot}.v = __ldg((const {word}*)&in{first + k}[oi]);")
            loaded[k] = load_float(f"r{k}{slot}.e[e]", dt)
        elif epilogue_split.per_column(list(shape), out_shape):  # per channel / column
            words, rest = divmod(chunk(dtype) * _SIZES.get(dt, 0), VECTOR_BYTES)
            if rest or not words:
                loaded[k] = load_float(f"in{first + k}[{column} + e]", dt)
                continue
            spans += [f"{indent}union {{ uint4 v[{words}]; {storage_type(dt)} "
                      f"e[{chunk(dtype)}]; }} pc{k};",
                      f"{indent}#pragma unroll",
                      f"{indent}for (int w = 0; w < {words}; ++w) pc{k}.v[w] = "
                      f"__ldg((const uint4*)&in{first + k}[{column}] + w);"]
            loaded[k] = load_float(f"pc{k}.e[e]", dt)
    return loads, loaded, spans


# chunks a thread drains at once: its 16-byte loads of extra inputs for all of them are issued
# before the first one's epilogue, so they are in flight together (one at a time, the drain of a
# 1x1 conv with a residual waited for each load: ResNet-50's layer1 at half the copy bandwidth)
DRAIN_BATCH = 8


def _batch(total: int, threads: int) -> int:
    per_thread = -(-total // threads)
    return max(u for u in (1, 2, 4, DRAIN_BATCH) if u <= per_thread)


def _chunks(st: RowStore, bm: int, bn: int, threads: int, m: int | str, n: int | str,
            m0: str, n0: str, loads: dict[str, str], body: list[str],
            across_rows: bool = False, prelude: list[str] = (),
            early: list[str] | None = None) -> list[str]:
    """After a barrier, the loop over the staged tile's 16-byte output chunks, `_batch` chunks
    per thread at a time where there are `loads` (else one): first `loads` ({declaration of
    `variable`: line loading chunk `u`'s extra input into `variable[u]`}) for each of them,
    then `body` for each (tile row `r`, column `cc`, output `oi` in both). Consecutive threads
    take consecutive chunks along a row; `across_rows` (`_across_rows`): each 8 of a warp's
    lanes take one column of 8 rows, its 4 groups 4 neighbouring columns."""
    size = chunk(st.dtype)
    per_row = bn // size
    total = bm * per_row
    # without loads to overlap, a batch only copies the epilogue (an INT8 FFN1 with its GELU's
    # seven fake-quantizes: 7416 instructions at 4 chunks, 2600 at 1; 35 us against 26-28)
    batch = _batch(total, threads) if loads else 1
    if across_rows:
        groups = per_row // 4
        place = ["            const int q = c >> 5, l = c & 31;",
                 f"            const int r = q / {groups} * 8 + (l & 7), "
                 f"cc = (q % {groups} * 4 + (l >> 3)) * {size};"]
    else:
        place = [f"            const int r = c / {per_row}, cc = c % {per_row} * {size};"]
    head = [f"            const int c = c0 + u * {threads};",
            *([] if total % (threads * batch) == 0 else [f"            if (c >= {total}) break;"]),
            *place,
            f"            const int m = {m0} + r, n = {n0} + cc;",
            f"            if (m >= {m} || n >= {n}) continue;",
            f"            const size_t oi = {st.index('m', 'n')};"]
    # a prelude's names in a scope of their own (a banded drain runs once a band)
    lines = ["    __syncthreads();", *(["    {", *prelude] if prelude else []),
             f"    for (int c0 = tid; c0 < {total}; c0 += {threads * batch}) {{"]
    if loads and early is not None and not prelude and total <= threads * batch:
        early += [*(f"    {declaration}[{batch}];" for declaration in loads),
                  "    {  // the drain's extra inputs, early",
                  "        const int c0 = tid;",
                  "        #pragma unroll",
                  f"        for (int u = 0; u < {batch}; ++u) {{",
                  *head, *loads.values(),
                  "        }",
                  "    }"]
    elif loads:
        lines += [*(f"        {declaration}[{batch}];" for declaration in loads),
                  "        #pragma unroll",
                  f"        for (int u = 0; u < {batch}; ++u) {{",
                  *head, *loads.values(),
                  "        }"]
    return lines + ["        #pragma unroll",
                    f"        for (int u = 0; u < {batch}; ++u) {{",
                    *head, *body,
                    "        }",
                    "    }", *(["    }"] if prelude else [])]


def _drain_sums(st: RowStore, bm: int, bn: int, threads: int, m: int | str, n: int | str,
                m0: str, n0: str, early: list[str] | None = None) -> list[str]:
    """`drain` for staged 8-bit GEMM values: whole int32 (or E4M3's float32) sums, or the bytes
    a split epilogue's head computed (`RowStore.head`), a chunk's worth (16 for int8 results)
    through the epilogue (as `sums_store` puts each one through it) into one 16-byte store;
    the bytes stored as they are where the head's quantize was the result."""
    params, size, sums = st.params, chunk(st.dtype), c_type(str(st.staged))
    if _size(str(st.staged)) == 4:  # a chunk's sums: 64 bytes, read across rows
        across = _across_rows(bm, bn // size)
        read = [f"            const int4* s4 = (const int4*)&Cs[r * {st.ld(bn)} + cc];",
                f"            union {{ int4 v[{size // 4}]; {sums} e[{size}]; }} s_;",
                "            #pragma unroll",
                f"            for (int k = 0; k < {size // 4}; ++k) s_.v[k] = s4[k];"]
    else:  # a chunk's bytes: one 16-, 8- or 4-byte word
        across = False
        word = {16: "uint4", 8: "uint2", 4: "unsigned"}[size]
        at = f"*(const {word}*)&Cs[r * {st.ld(bn)} + cc]"
        if params.get("epilogue") is None:  # the staged bytes are the results
            return _chunks(st, bm, bn, threads, m, n, m0, n0, {}, [
                f"            {store16('&out0[oi]', at)}"])
        read = [f"            union {{ {word} v; {sums} e[{size}]; }} s_;",
                f"            s_.v = {at};"]
    ind = "                "
    loads, loaded, spans, prelude, rcps = _drain_inputs(st, bm, bn, threads, n, n0, across)
    return _chunks(st, bm, bn, threads, m, n, m0, n0, loads, [
        *spans,
        *read,
        "            pack16 h;",
        "            #pragma unroll",
        f"            for (int e = 0; e < {size}; ++e) {{",
        f"{ind}const {sums} acc = s_.e[e];",
        f"{ind}{compute_type(st.dtype)} res;",
        *epilogue_lines(params, "acc", "oi + e", ind, loaded=loaded, result="res",
                        reciprocals=rcps),
        f"{ind}h.e[e] = {epilogue_store(params, 'res')};",
        "            }",
        f"            {store16('&out0[oi]', 'h.v')}"], across_rows=across, prelude=prelude,
        early=early)


def _across_rows(bm: int, per_row: int) -> bool:
    """Whether a staged int32 tile is drained `across_rows`: a chunk's 16 sums are 64 bytes, so
    threads on consecutive chunks of a row read shared memory 64 bytes apart, and the 8 lanes a
    16-byte read serves at once fall on 2 of the 8 16-byte bank groups (4-way conflicts; the
    scalar reads NVRTC made of the wgmma kernels' `s_[e]`: 2- to 4-way, 16 a chunk). 8 lanes on
    one column of 8 rows read 16-byte words `ld` apart, on 8 different groups (`RowStore.ld`
    pads each row by 16 bytes), and a row's 4 chunks still leave as 64 contiguous bytes. Needs
    whole groups of 4 chunks a row and of 8 rows."""
    return per_row % 4 == 0 and bm % 8 == 0


def helpers(dtype: str) -> str:
    """The 16-byte view of a chunk of stored elements the drain uses, and its store."""
    return (f"union pack16 {{ uint4 v; {storage_type(dtype)} e[{chunk(dtype)}]; }};\n"
            + STORE16)


# NVVM splits `*(uint4*)p = u.v` of a union written element by element into stores of the
# element's size (4 x 32-bit STG for a chunk of halves: a quarter of each sector per store), so
# chunks leave through st.global.v4 itself. No "memory" clobber: a kernel never reads back what
# it stores this way, and later chunks' loads may move above the store.
STORE16 = """\
__device__ __forceinline__ void ember_store16(void* p, uint4 v) {
    asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};"
                 :: "l"(__cvta_generic_to_global(p)), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
}
"""


def store16(pointer: str, value: str) -> str:
    """The statement storing the uint4 `value` at `pointer` (16-byte aligned, global memory)
    with one 16-byte store (`STORE16`, in `helpers`). Only for outputs the kernel never reads
    back: the compiler does not order later loads after it."""
    return f"ember_store16({pointer}, {value});"


def sums_store(params: dict, index: Callable[[str, str], str],
               column: Callable[[str], str], sums: str = "int"
               ) -> Callable[[str, str, str, str], list[str]]:
    """An 8-bit GEMM's `store(row, col, value, indent)`: the whole sum (`sums`: INT8's int,
    E4M3's float) stored as it is, or put through the epilogue (which dequantizes it, and may
    requantize to 8 bits) into the stored dtype. `index(row, col)`: the output element's flat
    index; `column(col)`: its innermost coordinate, by which extra inputs broadcast along all
    other dims (per-channel scales, a bias) are read, with no division of the flat index."""
    stored = stored_dtype(params)
    epilogue = params.get("epilogue")
    out_shape = list(params["out_shapes"][0])
    first = len(params["in_shapes"])
    innermost = [] if epilogue is None else [
        (k, dt) for k, (shape, dt) in enumerate(zip(epilogue["in_shapes"],
                                                    epilogue["in_dtypes"], strict=True))
        if epilogue_split.per_column(list(shape), out_shape) and out_shape[-1] != 1]

    def store(row: str, col: str, value: str, indent: str) -> list[str]:
        lines = [f"{indent}const size_t oi = {index(row, col)};",
                 f"{indent}const {sums} acc = {value};"]
        if not epilogue:
            return lines + [f"{indent}out0[oi] = acc;"]
        loaded = {k: load_float(f"in{first + k}[{column(col)}]", dt) for k, dt in innermost}
        return lines + [f"{indent}{compute_type(stored)} res;",
                        *epilogue_lines(params, "acc", "oi", indent, loaded=loaded,
                                        result="res"),
                        f"{indent}out0[oi] = {epilogue_store(params, 'res')};"]

    return store
