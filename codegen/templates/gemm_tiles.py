"""The register-tiled GEMM main loop that matmul and conv share.

C[m, n] = sum_k A[m, k] * B[k, n] for one block tile of BM x BN outputs: 256 threads, each
computing TM x TN outputs in registers; K walked BK at a time through two shared-memory buffers
(the next tile's global loads are in flight while the current one is multiplied, one barrier per
step). A is kept k-major in shared memory (As[k][m]) so that each thread reads its TM rows as
float4s; a thread's rows (and columns) are split into groups of 4 spread across the tile, which
keeps a warp's shared-memory reads free of bank conflicts. Every output's sum runs over k in
order, so equal inputs give bit-equal outputs wherever they sit.

Templates describe their operands with `Operand`s: how a thread finds element (mn, k) of A
(mn = m) or B (mn = n). An operand whose consecutive k are adjacent in memory is loaded with
threads spread along k, otherwise along mn, so that a warp's global loads stay coalesced either
way. The template supplies the store (`store(m, n, value)` lines) for the outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ember.codegen.scalar_c import c_type
from ember.codegen.symbolic import is_sym, typical


@dataclass(frozen=True)
class Tile:
    """One block tile shape (a tactic of the GEMM main loop)."""

    bm: int
    bn: int
    bk: int
    tm: int
    tn: int

    @property
    def threads(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)

    def shared_bytes(self, itemsize: int) -> int:
        """Static shared memory of the main loop: two buffers of A's and B's padded tiles."""
        return 2 * self.bk * ((self.bm + 4) + (self.bn + 4)) * itemsize

    def __str__(self) -> str:
        return f"{self.bm}x{self.bn}x{self.bk} tile, {self.tm}x{self.tn} per thread"


# candidate tiles: (tile, efficiency of its inner loop relative to the best, registers per
# thread as NVRTC allocates them for sm_90). Efficiencies are measured rates on a 4096^3 GEMM
# on an H100 (`benchmarks/bench_kernels.py --sweep`, NOTES.md; the two smallest are estimates):
# bigger tiles reuse more of each load, smaller ones fill more multiprocessors.
TILES: tuple[tuple[Tile, float, int], ...] = (
    (Tile(128, 128, 16, 8, 8), 1.0, 128),
    (Tile(64, 64, 16, 8, 4), 0.95, 96),
    (Tile(128, 64, 16, 8, 4), 0.88, 96),
    (Tile(64, 128, 16, 4, 8), 0.85, 96),
    (Tile(64, 64, 16, 4, 4), 0.73, 80),
    (Tile(32, 64, 8, 2, 4), 0.45, 72),
    (Tile(64, 32, 8, 4, 2), 0.45, 72),
    # small GEMMs (batch 1) are latency-bound: more, smaller blocks finish sooner
    (Tile(32, 32, 16, 2, 2), 0.3, 48),
    (Tile(16, 16, 16, 1, 1), 0.15, 40),
)
# more tiles a tactic sweep tries (benchmarks/bench_kernels.py --sweep)
SWEEP_TILES: tuple[Tile, ...] = (
    Tile(128, 128, 8, 8, 8), Tile(128, 64, 8, 8, 4), Tile(64, 128, 8, 4, 8),
    Tile(64, 64, 8, 4, 4), Tile(64, 64, 8, 4, 8), Tile(64, 128, 8, 8, 8), Tile(128, 64, 8, 8, 8),
)
SHARED_LIMIT = 48 * 1024  # static shared memory a block may declare
# multiprocessors the cost model fills (H100 SXM, H200); select-tactics{sms} gives another
# count, the choice only needs the order of magnitude
SM_COUNT = 132
REGISTERS_PER_SM = 65536


@dataclass(frozen=True)
class Gemm:
    """A GEMM tactic: the block tile and how many slices K is split into (split-K: each slice's
    block writes its partial tile to a workspace; the last to finish sums the slices in order
    and stores, so results do not depend on which block finishes first)."""

    tile: Tile
    splits: int = 1

    def k_slice(self, k: int) -> int:
        """Length of each slice of K (a multiple of the tile's BK)."""
        chunks = -(-k // self.tile.bk)
        return -(-chunks // self.splits) * self.tile.bk

    def grid(self, m: int, n: int, batch: int) -> tuple[int, int, int]:
        return (-(-n // self.tile.bn), -(-m // self.tile.bm), batch * self.splits)

    def workspace_bytes(self, m: int, n: int, batch: int, itemsize: int) -> tuple[int, int]:
        """(counter bytes, partial bytes) of zeroed scratch a launch needs: one arrival counter
        per output tile (each step its own: a kernel leaves them zeroed for the next run) and
        every slice's partial tile (steps may share: they run in stream order). (0, 0) without
        split-K."""
        if self.splits == 1:
            return 0, 0
        gx, gy, _ = self.grid(m, n, batch)
        tiles = gx * gy * batch
        return tiles * 4, tiles * self.splits * self.tile.bm * self.tile.bn * itemsize

    def __str__(self) -> str:
        return str(self.tile) + (f", split-K x{self.splits}" if self.splits > 1 else "")


SPLITS = (1, 2, 3, 4, 6, 8, 12, 16)


def estimated_cost(gemm: Gemm, eff: float, regs: int, m: int, n: int, k: int,
                   batch: int, sms: int = SM_COUNT) -> float:
    """Relative time of a GEMM tactic on `sms` multiprocessors: the busiest one's blocks times
    a block's work (its K slice, plus reading every slice back when split) over the tile's
    efficiency, slowed where too few warps are resident to hide latency."""
    tile = gemm.tile
    blocks = -(-m // tile.bm) * -(-n // tile.bn) * batch * gemm.splits
    per_sm = -(-blocks // sms)
    resident = min(per_sm, REGISTERS_PER_SM // (tile.threads * regs), 2048 // tile.threads)
    warps = resident * tile.threads // 32
    utilization = min(1.0, warps / 16) ** 0.5
    work = gemm.k_slice(k) + (8 * gemm.splits if gemm.splits > 1 else 0)
    return per_sm * tile.bm * tile.bn * work / (eff * utilization)


def ranked(m: int, n: int, k: int, batch: int = 1, split_k: bool = True,
           itemsize: int = 4, sms: int = SM_COUNT) -> list[Gemm]:
    """Every candidate tactic, least `estimated_cost` first (stable on ties). Tiles whose
    shared memory does not fit (float64's big tiles) are left out; split-K only where each
    slice keeps at least two BK steps."""
    scored: list[tuple[float, int, Gemm]] = []
    for tile, eff, regs in TILES:
        if tile.shared_bytes(itemsize) > SHARED_LIMIT:
            continue
        for gemm in split_choices(Gemm, tile, k, split_k):
            scored.append((estimated_cost(gemm, eff, regs, m, n, k, batch, sms), len(scored),
                           gemm))
    return [g for _, _, g in sorted(scored)]


def buffers(stages: int, k_tiles: int | None) -> int:
    """The stage buffers a pipelined main loop fills: k-tile kt lands in buffer kt % stages,
    so blocks that each walk fewer k-tiles than the tile has stages (a static K: a 1x1 conv over
    64 channels walks one) fill only the first `k_tiles`, and the kernel need not allocate the
    rest (more blocks fit a multiprocessor). None (a symbolic K): every stage."""
    return stages if k_tiles is None else max(1, min(stages, k_tiles))


def split_choices(kind: type, tile, k: int, split_k: bool = True) -> list:
    """The distinct split-K tactics (`kind(tile, splits)`: a `Gemm` or a tensor-core one) of one
    tile for K: `slice_counts` of K in whole BK steps; no split when `split_k` is off."""
    return [kind(tile, splits) for splits in slice_counts(-(-k // tile.bk), split_k)]


def slice_counts(chunks: int, split_k: bool = True) -> list[int]:
    """The distinct slice counts of `chunks` K steps (BK steps, or wgmma's k-tiles) cut into
    SPLITS slices, fewest first: the slices actually used once each takes ceil(chunks / splits)
    steps (30 steps in 12 slices of 3 use 10), 1 first; a count of SPLITS only where its slices
    keep at least two steps each on average; just 1 when `split_k` is off."""
    out = [1]
    for splits in SPLITS[1:] if split_k else ():
        if chunks < 2 * splits:
            break
        used = -(-chunks // -(-chunks // splits))
        if used not in out:
            out.append(used)
    return out


def choose(m: int, n: int, k: int, batch: int = 1, split_k: bool = True,
           itemsize: int = 4, sms: int = SM_COUNT) -> Gemm:
    """The tactic with the least `estimated_cost`."""
    return ranked(m, n, k, batch, split_k, itemsize, sms)[0]


def tactic_params(gemm: Gemm) -> dict:
    """A tactic as a plan step's `params["tactic"]` records it."""
    t = gemm.tile
    return {"tile": [t.bm, t.bn, t.bk, t.tm, t.tn], "splits": gemm.splits}


def _itemsize(params: dict) -> int:
    return 8 if params["out_dtypes"][0] == "float64" else 4


def parse_tile(text: str) -> Tile:
    """A tile as select-tactics{tile} spells it: "BM,BN,BK,TM,TN" (the order of a `tactic`'s
    `tile`), one of TILES or SWEEP_TILES."""
    try:
        tile = Tile(*(int(v) for v in text.split(",")))
    except (TypeError, ValueError):
        raise ValueError(f"tile '{text}' is not BM,BN,BK,TM,TN (five integers)") from None
    if tile not in [t for t, _, _ in TILES] + list(SWEEP_TILES):
        known = " ".join(",".join(str(v) for v in (t.bm, t.bn, t.bk, t.tm, t.tn))
                         for t in [t for t, _, _ in TILES] + list(SWEEP_TILES))
        raise ValueError(f"tile '{text}' is not one of the GEMM tiles ({known})")
    return tile


def tile_fits(tile: Tile, params: dict) -> None:
    """Refuse a tile whose shared memory does not fit a step's element type."""
    if tile.shared_bytes(_itemsize(params)) > SHARED_LIMIT:
        raise ValueError(f"tactic tile {tile} needs more than {SHARED_LIMIT} bytes of shared "
                         f"memory for {params['out_dtypes'][0]}")


def gemm_for(params: dict, m: int, n: int, k: int, batch: int) -> Gemm:
    """The tactic a step's params name (`params["tactic"]`: select-tactics' choice, the
    autotuner's, or a tile a sweep forced), else the cost model's choice. A named tactic must
    be one of the tiles (TILES or SWEEP_TILES) and fit."""
    # symbolic sizes: chosen for the profile's opt shapes; no split-K along a symbolic K
    split_k = not is_sym(k)
    m, n, k, batch = typical(m), typical(n), typical(k), typical(batch)
    tactic = params.get("tactic")
    if not tactic:
        return choose(m, n, k, batch, split_k=split_k, itemsize=_itemsize(params))
    tile = parse_tile(",".join(str(int(v)) for v in tactic["tile"]))
    tile_fits(tile, params)
    splits = int(tactic.get("splits", 1))
    if not 1 <= splits <= -(-k // tile.bk) or (splits > 1 and not split_k):
        raise ValueError(f"tactic split-K x{splits} does not fit K = {k}")
    return Gemm(tile, splits)


def candidates(m: int, n: int, k: int, batch: int, params: dict, top: int = 4,
               sms: int = SM_COUNT) -> list[dict]:
    """The `top` tactics by estimated cost on `sms` multiprocessors, as params["tactic"]
    values, for select-tactics and the autotuner."""
    return [tactic_params(g) for g in ranked(m, n, k, batch, itemsize=_itemsize(params),
                                             sms=sms)[:top]]


def choose_tile(m: int, n: int, batch: int = 1) -> Tile:
    """The tile `choose` picks without split-K."""
    return choose(m, n, 1024, batch, split_k=False).tile


@dataclass(frozen=True)
class Operand:
    """How a thread reads element (mn, k) of one GEMM operand.

    `setup(slot, mn)` gives the lines run once per thread for each of its fixed mn indices
    (`slot` names that index's variables); `load(slot, k)` gives (lines, condition, address)
    for element (mn of `slot`, k): the lines run first (k is a C variable), then the element is
    `ptr[address]` when the condition holds, else 0.
    `k_contiguous`: consecutive k are adjacent in memory (threads are then spread along k)."""

    ptr: str
    k_contiguous: bool
    setup: Callable[[str, str], list[str]]
    load: Callable[[str, str], tuple[list[str], str, str]]
    # four consecutive elements along the contiguous dim may be read as one float4: the caller
    # vouches that the address of every fourth one is 16-byte aligned and that a group of four
    # is either wholly in range or wholly out (the contiguous extent is a multiple of 4)
    vec4: bool = False
    # the same for eight 2-byte elements (one 16-byte chunk: the tensor-core main loop)
    vec8: bool = False


def dense(ptr: str, rows: int, k_total: int, stride_mn: int, stride_k: int,
          base: str = "0", vec4: bool = False, vec8: bool = False) -> Operand:
    """A matrix whose (mn, k) element sits at base + mn * stride_mn + k * stride_k; `vec4`,
    `vec8`: see `Operand` (the caller checks alignment of base and strides)."""

    def setup(slot: str, mn: str) -> list[str]:
        return [f"const bool ok{slot} = ({mn}) < {rows};",
                f"const size_t at{slot} = {base} + (size_t)({mn}) * {stride_mn};"]

    def load(slot: str, k: str) -> tuple[list[str], str, str]:
        scaled = f"(size_t){k}" + (f" * {stride_k}" if stride_k != 1 else "")
        return [], f"ok{slot} && {k} < {k_total}", f"at{slot} + {scaled}"

    contiguous = stride_k == 1 or stride_mn == 1
    extent = k_total if stride_k == 1 else rows
    return Operand(ptr, stride_k == 1, setup, load,
                   vec4 and contiguous and extent % 4 == 0,
                   vec8 and contiguous and extent % 8 == 0)


def split_k_arrival(splits: int) -> list[str]:
    """Lines after a split-K block stored its partial tile (`tile_id`, `counters`): the last of
    the tile's `splits` blocks to arrive goes on to sum the slices, the others return."""
    return ["    __threadfence();",
            "    __syncthreads();",
            "    __shared__ bool last_block;",
            f"    if (tid == 0) last_block = atomicAdd(&counters[tile_id], 1u) == {splits - 1};",
            "    __syncthreads();",
            "    if (!last_block) return;",
            "    __threadfence();"]


def split_k_partials(splits: int, size: int, threads: int, count: int, values: str,
                     index: str, setup: tuple[str, ...] = (), t: str = "float") -> list[str]:
    """Lines after the main loop of a tensor-core split-K block whose `count` accumulators of
    C type `t` (FP32; INT8's exact int32) per thread are `values[index]` (after the `setup`
    lines; `size` = BM x BN): store this slice's partial tile; the last block of the tile to
    arrive sums all slices in slice order back into them, the others return."""
    return [
        "    // split-K: partial tiles meet in the workspace; the last block sums them in order",
        f"    const int tile_id = (blockIdx.z / {splits} * gridDim.y + blockIdx.y) * gridDim.x"
        " + blockIdx.x;",
        f"    {t}* part = ({t}*)ws + (size_t)tile_id * {splits * size};",
        *setup,
        "    #pragma unroll",
        f"    for (int {index} = 0; {index} < {count}; ++{index})",
        f"        part[(size_t)(blockIdx.z % {splits}) * {size} + {index} * {threads} + tid] = "
        f"{values}[{index}];",
        *split_k_arrival(splits),
        "    #pragma unroll",
        f"    for (int {index} = 0; {index} < {count}; ++{index}) {{",
        f"        {t} v = 0;",
        f"        for (int s = 0; s < {splits}; ++s)",
        f"            v += __ldcg(&part[(size_t)s * {size} + {index} * {threads} + tid]);",
        f"        {values}[{index}] = v;",
        "    }",
        "    if (tid == 0) counters[tile_id] = 0;  // ready for the next run",
    ]


def _split_k_reduce(gemm: Gemm, t: str) -> list[str]:
    """Lines after the main loop of a split-K block: store this slice's partial tile; the last
    block of the tile to arrive sums all slices in slice order into c_acc and goes on to the
    store, the others return."""
    tile, splits = gemm.tile, gemm.splits
    size, threads = tile.bm * tile.bn, tile.threads
    return [
        "    // split-K: partial tiles meet in the workspace; the last block sums them in order",
        f"    const int tile_id = (blockIdx.z / {splits} * gridDim.y + blockIdx.y) * gridDim.x"
        " + blockIdx.x;",
        f"    {t}* part = ({t}*)ws + (size_t)tile_id * {splits * size};",
        "    #pragma unroll",
        f"    for (int i = 0; i < {tile.tm}; ++i)",
        "        #pragma unroll",
        f"        for (int j = 0; j < {tile.tn}; ++j)",
        f"            part[(size_t)(blockIdx.z % {splits}) * {size} + (i * {tile.tn} + j) * "
        f"{threads} + tid] = c_acc[i][j];",
        *split_k_arrival(splits),
        "    #pragma unroll",
        f"    for (int i = 0; i < {tile.tm}; ++i)",
        "        #pragma unroll",
        f"        for (int j = 0; j < {tile.tn}; ++j) {{",
        f"            {t} v = 0;",
        f"            for (int s = 0; s < {splits}; ++s)",
        f"                v += __ldcg(&part[(size_t)s * {size} + (i * {tile.tn} + j) * {threads}"
        " + tid]);",
        "            c_acc[i][j] = v;",
        "        }",
        "    if (tid == 0) counters[tile_id] = 0;  // ready for the next run",
    ]


def _rows(tile_rows: int, per_thread: int, thread: str, i: int | str) -> str:
    """Tile row of a thread's `i`th register row (groups of 4 spread over the tile); `i` is a
    number or a C expression."""
    if per_thread <= 4:
        return f"{thread} * {per_thread} + {i}"
    groups = per_thread // 4
    if isinstance(i, int):
        return f"{i // 4 * (tile_rows // groups)} + {thread} * 4 + {i % 4}"
    return f"({i}) / 4 * {tile_rows // groups} + {thread} * 4 + ({i}) % 4"


def mainloop(gemm: Gemm | Tile, m: int, n: int, k: int, a: Operand, b: Operand, dtype: str,
             m0: str, n0: str, store: Callable[[str, str, str, str], list[str]],
             col_setup: Callable[[str, str], list[str]] = lambda n, indent: []) -> list[str]:
    """The body of a GEMM kernel computing rows [m0, m0 + BM) x columns [n0, n0 + BN) of
    C (M = m, N = n, K = k). `store(m, n, value, indent)` gives the lines storing one in-range
    output (m, n: C's row and column variables); `col_setup(n, indent)` lines run once per
    output column before its rows are stored.

    With split-K the grid's z is (batch x splits) — the caller reads its batch or group as
    `blockIdx.z / splits` — and the kernel takes a last argument `ws`, the zeroed workspace of
    `Gemm.workspace_bytes`: arguments `counters` and `ws`."""
    if isinstance(gemm, Tile):
        gemm = Gemm(gemm)
    tile, splits = gemm.tile, gemm.splits
    t = c_type(dtype)
    bm, bn, bk, tm, tn = tile.bm, tile.bn, tile.bk, tile.tm, tile.tn
    threads = tile.threads
    vec_frag = dtype == "float32" and tm % 4 == 0 and tn % 4 == 0  # float4 shared reads
    la, lb = bm * bk // threads, bn * bk // threads
    assert la * threads == bm * bk and lb * threads == bn * bk, tile
    assert threads % bk == 0 and threads % bm == 0 and threads % bn == 0, tile
    lines = [f"    __shared__ __align__(16) {t} As[2][{bk}][{bm} + 4];",
             f"    __shared__ __align__(16) {t} Bs[2][{bk}][{bn} + 4];",
             "    const int tid = threadIdx.x;",
             f"    const int tx = tid % {bn // tn}, ty = tid / {bn // tn};",
             f"    const int m0 = {m0}, n0 = {n0};"]

    # which (mn, k) each thread loads: spread along k when k is contiguous, else along mn;
    # four at a time (one float4) where the operand allows it
    def vectorized(op: Operand, rows: int) -> bool:
        return (op.vec4 and dtype == "float32" and rows * bk % (threads * 4) == 0
                and threads % (bk // 4 if op.k_contiguous else rows // 4) == 0)

    def plan(op: Operand, rows: int, name: str) -> tuple[list[str], list, bool]:
        vec = vectorized(op, rows)
        step = 4 if vec else 1
        count = rows * bk // (threads * step)
        first = "m0" if name == "a" else "n0"
        setup, loads = [], []
        if op.k_contiguous:
            across = bk // step  # threads along k
            lanes = threads // across  # rows covered per pass
            for i in range(count):
                slot = f"{name}{i}"
                row = f"tid / {across} + {i * lanes}"
                setup += [f"    {s}" for s in op.setup(slot, f"{first} + {row}")]
                loads.append((slot, f"tid % {across} * {step}", row))
        else:
            across = rows // step  # threads along mn
            slot = f"{name}0"
            col = f"tid % {across} * {step}"
            setup += [f"    {s}" for s in op.setup(slot, f"{first} + {col}")]
            lanes = threads // across
            for i in range(count):
                loads.append((slot, f"tid / {across} + {i * lanes}", col))
        return setup, loads, vec

    a_setup, a_loads, a_vec = plan(a, bm, "a")
    b_setup, b_loads, b_vec = plan(b, bn, "b")
    lines += a_setup + b_setup
    ra_t, rb_t = ("float4" if a_vec else t), ("float4" if b_vec else t)
    lines += [f"    {ra_t} ra[{len(a_loads)}];", f"    {rb_t} rb[{len(b_loads)}];",
              f"    {t} c_acc[{tm}][{tn}];",
              "    #pragma unroll",
              f"    for (int i = 0; i < {tm}; ++i)",
              "        #pragma unroll",
              f"        for (int j = 0; j < {tn}; ++j) c_acc[i][j] = 0;"]

    def fetch(k0: str, indent: str) -> list[str]:
        out = []
        for reg, op, loads, vec in (("ra", a, a_loads, a_vec), ("rb", b, b_loads, b_vec)):
            for i, (slot, kk, _) in enumerate(loads):
                pre, cond, at = op.load(slot, "kv")
                value = (f"*(const float4*)&{op.ptr}[{at}]" if vec else f"{op.ptr}[{at}]")
                zero = "make_float4(0.f, 0.f, 0.f, 0.f)" if vec else f"({t})0"
                out += [f"{indent}{{", f"{indent}    const int kv = {k0} + {kk};",
                        *(f"{indent}    {line}" for line in pre),
                        f"{indent}    {reg}[{i}] = ({cond}) ? {value} : {zero};",
                        f"{indent}}}"]
        return out

    def stash(buf: str, indent: str) -> list[str]:
        out = []
        for reg, arr, op, loads, vec in (("ra", "As", a, a_loads, a_vec),
                                         ("rb", "Bs", b, b_loads, b_vec)):
            for i, (_, kk, mn) in enumerate(loads):
                if not vec:
                    out.append(f"{indent}{arr}[{buf}][{kk}][{mn}] = {reg}[{i}];")
                elif op.k_contiguous:  # four k of one row: four rows of the k-major tile
                    out += [f"{indent}{arr}[{buf}][{kk} + {j}][{mn}] = {reg}[{i}].{c};"
                            for j, c in enumerate("xyzw")]
                else:  # four mn of one k: one float4 store
                    out.append(f"{indent}*(float4*)&{arr}[{buf}][{kk}][{mn}] = {reg}[{i}];")
        return out

    a_rows = [_rows(bm, tm, "ty", i) for i in range(tm)]  # as C expressions
    b_cols = [_rows(bn, tn, "tx", j) for j in range(tn)]
    if splits > 1:
        lines += [f"    const int k_begin = (int)(blockIdx.z % {splits}) * {gemm.k_slice(k)};",
                  f"    const int k_end = min({k}, k_begin + {gemm.k_slice(k)});"]
    else:
        lines += ["    const int k_begin = 0;", f"    const int k_end = {k};"]
    lines += fetch("k_begin", "    ") + stash("0", "    ")
    lines += ["    __syncthreads();",
              f"    for (int k0 = k_begin, cur = 0; k0 < k_end; k0 += {bk}, cur ^= 1) {{",
              f"        const bool more = k0 + {bk} < k_end;",
              "        if (more) {"]
    lines += fetch(f"k0 + {bk}", "            ")
    lines += ["        }",
              "        #pragma unroll",
              f"        for (int kk = 0; kk < {bk}; ++kk) {{",
              f"            {t} fa[{tm}], fb[{tn}];"]
    if vec_frag:
        for g in range(tm // 4):
            lines.append(f"            *(float4*)&fa[{4 * g}] = "
                         f"*(const float4*)&As[cur][kk][{a_rows[4 * g]}];")
        for g in range(tn // 4):
            lines.append(f"            *(float4*)&fb[{4 * g}] = "
                         f"*(const float4*)&Bs[cur][kk][{b_cols[4 * g]}];")
    else:
        lines += [f"            fa[{i}] = As[cur][kk][{r}];" for i, r in enumerate(a_rows)]
        lines += [f"            fb[{j}] = Bs[cur][kk][{c}];" for j, c in enumerate(b_cols)]
    lines += ["            #pragma unroll",
              f"            for (int i = 0; i < {tm}; ++i)",
              "                #pragma unroll",
              f"                for (int j = 0; j < {tn}; ++j) c_acc[i][j] += fa[i] * fb[j];",
              "        }",
              "        if (more) {"]
    lines += stash("cur ^ 1", "            ")
    lines += ["        }",
              "        __syncthreads();",
              "    }"]
    if splits > 1:
        lines += _split_k_reduce(gemm, t)
    # outputs: column by column (a column's own setup once), rows inside
    lines += ["    #pragma unroll",
              f"    for (int j = 0; j < {tn}; ++j) {{",
              f"        const int n = n0 + {_rows(bn, tn, 'tx', 'j')};",
              f"        if (n >= {n}) continue;"]
    lines += col_setup("n", "        ")
    lines += ["        #pragma unroll",
              f"        for (int i = 0; i < {tm}; ++i) {{",
              f"            const int m = m0 + {_rows(bm, tm, 'ty', 'i')};",
              f"            if (m >= {m}) continue;"]
    lines += store("m", "n", "c_acc[i][j]", "            ")
    lines += ["        }", "    }"]
    return lines
