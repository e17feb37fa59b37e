"""The tensor-core GEMM main loop (FP16/BF16 operands, FP32 accumulation) that matmul and conv
share: `mma.sync.m16n8k16` fed by `ldmatrix` from a multi-stage `cp.async` pipeline.

C[m, n] = sum_k A[m, k] * B[n, k] for one block tile of BM x BN outputs. The block's warps form
a WM x WN grid, each computing a (BM / WM) x (BN / WN) warp tile as 16 x 8 MMA fragments held in
registers. K is walked BK at a time through `stages` shared-memory buffers: while the tensor
cores multiply stage s, the copies of the next stages are in flight (`cp.async`, 16 bytes per
thread, zero-filled out of range). An operand is kept in shared memory in its own contiguous
order — k-major rows [mn][BK + 8] when its consecutive k are adjacent in memory, else
[BK][BMN + 8] — and `ldmatrix` (`.trans` for the second form) turns either into the fragments
`mma` wants; the 8-element row padding keeps `ldmatrix` free of bank conflicts. Operands whose
16-byte chunks cannot be proven aligned and wholly in or out of range (odd sizes, im2col with a
channel count not a multiple of 8) are loaded element by element instead (same pipeline,
synchronous loads).

Operands are `gemm_tiles.Operand`s with `vec8` meaning: eight consecutive elements along the
contiguous dim may be copied as one 16-byte chunk. The caller supplies the store of each output.
Split-K works as in `gemm_tiles`: slices meet in a zeroed workspace and the last block to arrive
sums them in slice order, so results do not depend on block timing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ember.codegen.symbolic import is_sym, typical
from ember.codegen.templates import gemm_epilogue
from ember.codegen.templates.gemm_epilogue import RowStore
from ember.codegen.templates.gemm_tiles import (
    SM_COUNT,
    Gemm,
    Operand,
    buffers,
    split_choices,
    split_k_partials,
)
from ember.errors import UnsupportedError

HALF_TYPES = ("float16", "bfloat16")
PTX_TYPE = {"float16": "f16", "bfloat16": "bf16"}
SHARED_OPT_IN = 227 * 1024  # dynamic shared memory a block may opt in to on sm_90


@dataclass(frozen=True)
class MmaTile:
    """One tensor-core tactic: block tile, warp grid, K step and pipeline depth."""

    bm: int
    bn: int
    bk: int
    wm: int
    wn: int
    stages: int

    @property
    def threads(self) -> int:
        return 32 * self.wm * self.wn

    @property
    def resident(self) -> int:  # blocks per multiprocessor it is compiled for
        return 1

    @property
    def mi(self) -> int:  # 16-row MMA fragments per warp
        return self.bm // self.wm // 16

    @property
    def ni(self) -> int:  # 8-column MMA fragments per warp
        return self.bn // self.wn // 8

    def shared_bytes(self, k_tiles: int | None = None) -> int:
        """Dynamic shared memory: every stage's A and B tiles (either layout: the padded
        k-major form is the larger one for BK <= BMN); with `k_tiles` (each block's, a static
        K) only the stages those fill (`gemm_tiles.buffers`)."""
        return (buffers(self.stages, k_tiles)
                * (self.stage_elems(self.bm) + self.stage_elems(self.bn)) * 2)

    def stage_elems(self, rows: int) -> int:
        return max(rows * (self.bk + 8), self.bk * (rows + 8))

    def as_list(self) -> list[int]:
        return [self.bm, self.bn, self.bk, self.wm, self.wn, self.stages]

    def __str__(self) -> str:
        return (f"{self.bm}x{self.bn}x{self.bk} tile, {self.wm}x{self.wn} warps of "
                f"{self.bm // self.wm}x{self.bn // self.wn}, {self.stages} stages")


# candidate tiles with the relative efficiency of their inner loop (bigger warp tiles reuse
# each fragment more; estimates until a sweep on the H200 measures them)
MMA_TILES: tuple[tuple[MmaTile, float], ...] = (
    (MmaTile(128, 256, 32, 2, 4, 3), 1.0),
    (MmaTile(128, 128, 32, 2, 2, 4), 0.95),
    (MmaTile(256, 128, 32, 4, 2, 3), 1.0),
    (MmaTile(128, 64, 32, 2, 2, 4), 0.8),
    (MmaTile(64, 128, 32, 2, 2, 4), 0.8),
    (MmaTile(64, 64, 32, 2, 2, 4), 0.6),
    (MmaTile(64, 32, 32, 2, 1, 4), 0.4),
    (MmaTile(32, 64, 32, 1, 2, 4), 0.4),
)
# the mma.sync tiles a short-K GEMM also times (`candidates`): fewer sums a thread, smaller
# staged outputs, so more blocks a multiprocessor
SHORT_K_TILES = (MmaTile(64, 64, 32, 2, 2, 4), MmaTile(64, 128, 32, 2, 2, 4))


@dataclass(frozen=True)
class MmaGemm(Gemm):
    """A tensor-core tactic: the tile and how many slices K is split into (`Gemm`'s split-K,
    with FP32 partial tiles whatever the element type)."""

    tile: MmaTile
    # a persistent grid (`mainloop`'s persistent form): this many blocks a multiprocessor on
    # grid y, each walking the M tiles blockIdx.y, + gridDim.y, ... with B resident; 0: one
    # block a tile
    persist: int = 0

    def workspace_bytes(self, m: int, n: int, batch: int) -> tuple[int, int]:  # type: ignore[override]
        return super().workspace_bytes(m, n, batch, 4)

    def grid(self, m: int, n: int, batch: int) -> tuple[int, int, int]:
        x, y, z = super().grid(m, n, batch)
        return (x, min(y, max(1, self.persist * SM_COUNT // (x * z))), z) if self.persist \
            else (x, y, z)

    def k_tiles(self, k: int | str) -> int | None:
        """The most k-tiles a block walks (its K slice's); None for a symbolic K."""
        return None if is_sym(k) else -(-self.k_slice(k) // self.tile.bk)

    def tactic(self) -> dict:
        """The tactic as a kernel op's `tactic` attribute / a plan step's params record it."""
        return {"mma": self.tile.as_list(), "splits": self.splits,
                **({"persist": self.persist} if self.persist else {})}

    def __str__(self) -> str:
        return (f"mma.sync m16n8k16, {self.tile}"
                + (f", split-K x{self.splits}" if self.splits > 1 else "")
                + (f", persistent ({self.persist} blocks a multiprocessor)" if self.persist
                   else ""))


def estimated_cost(gemm: MmaGemm, eff: float, m: int, n: int, k: int, batch: int,
                   sms: int = SM_COUNT) -> float:
    """Relative time: waves of blocks over the `sms` multiprocessors times a block's work over
    its efficiency; a block tile mostly outside the matrix still costs its whole work."""
    tile = gemm.tile
    blocks = -(-m // tile.bm) * -(-n // tile.bn) * batch * gemm.splits
    per_sm = -(-blocks // sms)
    work = gemm.k_slice(k) + (16 * gemm.splits if gemm.splits > 1 else 0)
    return per_sm * tile.bm * tile.bn * work / eff


def ranked(m: int, n: int, k: int, batch: int = 1, split_k: bool = True,
           sms: int = SM_COUNT) -> list[MmaGemm]:
    scored: list[tuple[float, int, MmaGemm]] = []
    for tile, eff in MMA_TILES:
        for gemm in split_choices(MmaGemm, tile, k, split_k):
            scored.append((estimated_cost(gemm, eff, m, n, k, batch, sms), len(scored), gemm))
    return [g for _, _, g in sorted(scored, key=lambda s: (s[0], s[1]))]


def mma_for(params: dict, m: int, n: int, k: int, batch: int,
            split_k: bool = True) -> MmaGemm:
    """The tactic a step's params name (`params["tactic"]` with an "mma" tile), else the cost
    model's choice (at the profile's opt shapes; no split-K along a symbolic K, nor where
    `split_k` is False: the INT8 kernels have none)."""
    split_k = split_k and not is_sym(k)
    static = not is_sym(m) and not is_sym(k)
    m, n, k, batch = typical(m), typical(n), typical(k), typical(batch)
    tactic = params.get("tactic")
    if not tactic or "mma" not in tactic:
        return ranked(m, n, k, batch, split_k)[0]
    if not set(tactic) <= {"mma", "splits", "persist"}:
        raise ValueError(f"tactic {tactic} has keys an mma.sync tactic does not take "
                         "({'mma': [bm, bn, bk, wm, wn, stages], 'splits': n} and, for a "
                         "persistent grid, 'persist': blocks a multiprocessor)")
    tile = MmaTile(*(int(v) for v in tactic["mma"]))
    if tile not in [t for t, _ in MMA_TILES]:
        raise ValueError(f"tactic tile {tile} is not one of the tensor-core tiles")
    splits = int(tactic.get("splits", 1))
    persist = int(tactic.get("persist", 0))
    if persist and not (static and persistent_fits(MmaGemm(tile, splits), m, k)):
        raise ValueError(f"tactic persist x{persist}: a persistent grid needs a static M and "
                         f"K of at most {PERSIST_K_TILES} k-tiles, no split-K")
    if splits > 1 and not split_k and not is_sym(k):
        raise UnsupportedError(f"tactic split-K x{splits}: the INT8 kernels split no K")
    if not 1 <= splits <= -(-k // tile.bk) or (splits > 1 and not split_k):
        raise ValueError(f"tactic split-K x{splits} does not fit K = {k}")
    if not 0 <= persist <= 8:
        raise ValueError(f"tactic persist x{persist}: 1 to 8 blocks a multiprocessor")
    return MmaGemm(tile, splits, persist)


# the most k-tiles a persistent block keeps resident (B once, A twice: this tile's and the
# next's)
PERSIST_K_TILES = 4


def persistent_fits(gemm: MmaGemm, m: int | str, k: int | str) -> bool:
    """Whether `gemm` may run a persistent grid: a static M and K, K of at most
    PERSIST_K_TILES k-tiles, whole."""
    return (gemm.splits == 1 and not is_sym(m) and not is_sym(k)
            and -(-int(k) // gemm.tile.bk) <= PERSIST_K_TILES)


def candidates(m: int, n: int, k: int, batch: int, top: int = 4,
               wgmma: bool = False, split_k: bool = True, sms: int = SM_COUNT,
               tma: bool = False) -> list[dict]:
    """The `top` tactics by estimated cost on `sms` multiprocessors, as `tactic` values, for
    select-tactics/autotune; with `wgmma` (an sm_90 build, both operands K-major in 16-byte
    chunks) Hopper's tiles compete too, with `tma` (the copy engine can read both operands,
    `gemm_tma`) also its TMA-fed ones; without `split_k`, none splits K."""
    from ember.codegen.templates import gemm_wgmma

    mma = ranked(typical(m), typical(n), typical(k), typical(batch),
                 split_k and not is_sym(k), sms)
    if wgmma:
        found = gemm_wgmma.merged_candidates(mma[:top], m, n, k, batch, top, sms, tma=tma,
                                             split_k=split_k and not is_sym(k))
    else:
        found = [g.tactic() for g in mma[:top]]
    if top and typical(k) <= gemm_wgmma.SHORT_K:
        # a short K leaves a block little but its loads and its epilogue (an INT8 1x1 conv
        # over 64 channels: one k-tile), which the cost model does not count: the small tiles,
        # with more blocks resident to overlap them, are timed too
        found += [t for t in (MmaGemm(tile).tactic() for tile in SHORT_K_TILES)
                  if t not in found]
    return found


def async_helpers() -> str:
    """Shared-memory address, `cp.async` and `ldmatrix` device functions (inline PTX: no CUDA
    headers needed)."""
    return """\
__device__ __forceinline__ unsigned smem_addr(const void* p) {
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
// 16 bytes global -> shared, bypassing L1; zero-filled when !valid
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                 :: "r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" :: "n"(N));
}
__device__ __forceinline__ void ldsm_x4(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
"""


INT8 = "int8"
E4M3 = "float8_e4m3fn"  # FP8 operands: read as byte pairs like int8, summed in float32
BYTE_OPERANDS = (INT8, E4M3)  # 8-bit operands: K-major, K counted in pairs, m16n8k32
# each one's (name in the kernels' comments, the instructions' type, a K pair's unit, the dtype
# of its sums)
BYTE_NAMES = {INT8: ("INT8", "s8", "int8", "int32"), E4M3: ("FP8", "e4m3", "e4m3", "float32")}


def byte_operands(params: dict) -> str | None:
    """The 8-bit operand type of a conv / matmul step on 8-bit tensor cores: "int8" (int8 input
    and weight summed into int32: fold-qdq's, ONNX ConvInteger / MatMulInteger without zero
    points) or E4M3 (summed into float32: fold-qdq's FP8 convs and matmuls); else None."""
    for dtype, (*_, sums) in BYTE_NAMES.items():
        if params["in_dtypes"][:2] == [dtype, dtype] and params["out_dtypes"][0] == sums:
            return dtype
    return None


def byte_candidates(dtype: str, hopper: bool, found: list[dict]) -> list[dict]:
    """`candidates` for 8-bit operands: on Hopper, E4M3's wgmma tactics (native FP8, QGMMA)
    ahead of its mma.sync ones (which Hopper runs as FP16 HMMA), so a build without timing
    takes one; INT8's as the cost model ranks them."""
    if dtype != E4M3 or not hopper:
        return found
    return sorted(found, key=lambda t: "wgmma" not in t)


def sums_type(dtype: str) -> str:
    """The C type of the accumulators of `dtype` operands: int (INT8's exact s32), else float."""
    return "int" if dtype == INT8 else "float"


def staged_sums(dtype: str) -> str:
    """The dtype a staged epilogue (`gemm_epilogue.byte_row_store`) keeps 8-bit operands' sums
    in: int32 for INT8, float32 for E4M3."""
    return BYTE_NAMES[dtype][3]


def mma_name(dtype: str) -> str:
    """The `helpers` function one MMA of `dtype` operands calls."""
    return f"mma_16832_{BYTE_NAMES[dtype][1]}" if dtype in BYTE_OPERANDS else "mma_16816"


def helpers(dtype: str) -> str:
    """`async_helpers` plus the MMA of `dtype` operands: m16n8k16 with f32 accumulators for
    FP16/BF16, m16n8k32 with s32 accumulators for INT8 and f32 ones for E4M3 (sm_89 and newer;
    Hopper runs it at FP16 rate: its native FP8 is wgmma's)."""
    if dtype == E4M3:
        return async_helpers() + """\
// c += a (16x32, row) * b (32x8, col), e4m3 operands, f32 accumulators
__device__ __forceinline__ void mma_16832_e4m3(float* c, const unsigned* a, unsigned b0,
                                               unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
"""
    if dtype == INT8:
        return async_helpers() + """\
// c += a (16x32, row) * b (32x8, col), s8 operands, s32 accumulators (exact)
__device__ __forceinline__ void mma_16832_s8(int* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
"""
    ptx = PTX_TYPE[dtype]
    return async_helpers() + f"""\
// c += a (16x16, row) * b (16x8, col), {ptx} operands, f32 accumulators
__device__ __forceinline__ void mma_16816(float* c, const unsigned* a, unsigned b0, unsigned b1) {{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.{ptx}.{ptx}.f32 "
                 "{{%0, %1, %2, %3}}, {{%4, %5, %6, %7}}, {{%8, %9}}, {{%0, %1, %2, %3}};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}}
"""


def _loads(op: Operand, rows: int, tile: MmaTile, name: str, origin: str
           ) -> tuple[list[str], list[tuple[str, str, str, int]], bool]:
    """How the block's threads copy one operand's BK-slice: (setup lines, per-copy
    (slot, k offset, mn offset, width), vectorized). Vectorized: one 16-byte chunk of 8
    elements along the contiguous dim per copy; else single elements, each thread keeping
    one mn (k-major operands loop over k, so a thread's reads are consecutive)."""
    threads, bk = tile.threads, tile.bk
    setup: list[str] = []
    copies: list[tuple[str, str, str, int]] = []
    if op.vec8 and op.k_contiguous and threads % (bk // 8) == 0 and \
            rows * bk // 8 % threads == 0:
        across = bk // 8
        lanes = threads // across
        for i in range(rows * bk // 8 // threads):
            slot = f"{name}{i}"
            row = f"tid / {across} + {i * lanes}"
            setup += [f"    {s}" for s in op.setup(slot, f"{origin} + {row}")]
            copies.append((slot, f"tid % {across} * 8", row, 8))
        return setup, copies, True
    if op.vec8 and not op.k_contiguous and threads % (rows // 8) == 0 and \
            rows * bk // 8 % threads == 0:
        across = rows // 8
        slot = f"{name}0"
        col = f"tid % {across} * 8"
        setup += [f"    {s}" for s in op.setup(slot, f"{origin} + {col}")]
        lanes = threads // across
        for i in range(rows * bk // 8 // threads):
            copies.append((slot, f"tid / {across} + {i * lanes}", col, 8))
        return setup, copies, True
    assert threads % rows == 0 or rows % threads == 0, (tile, rows)
    per_row = max(1, threads // rows)  # threads sharing one mn, interleaved along k
    for r in range(max(1, rows // threads)):
        slot = f"{name}{r}"
        mn = f"tid % {min(rows, threads)} + {r * threads}"
        setup += [f"    {s}" for s in op.setup(slot, f"{origin} + {mn}")]
        for j in range(bk // per_row):
            copies.append((slot, f"tid / {min(rows, threads)} + {j * per_row}", mn, 1))
    return setup, copies, False


def mainloop(gemm: MmaGemm, m: int, n: int, k: int, a: Operand, b: Operand, dtype: str,
             m0: str, n0: str, store: Callable[[str, str, str, str], list[str]] | RowStore,
             second: int | None = None,
             second_head: Callable[[str, str, str, str], list[str]] | None = None
             ) -> list[str]:
    """The body of a tensor-core GEMM kernel computing rows [m0, m0 + BM) x columns
    [n0, n0 + BN) of C. `store(m, n, value, indent)` gives the lines storing one in-range output
    (`value` is a float expression); a `RowStore` stages the outputs through shared memory
    instead (`gemm_epilogue`; the kernel then needs `gemm_epilogue.helpers`). The kernel
    declares `extern __shared__` memory of `kernel_shared(gemm, k, store)`; with split-K its last
    arguments are `counters` and `ws`.

    INT8 (`dtype` "int8") and E4M3: both operands K-major, read as 16-bit pairs of bytes
    along K (`k` and the operands count those pairs, so a BK of 32 pairs is 64 bytes), and each
    m16n8k16 fragment of pairs is an m16n8k32 byte fragment (the byte layouts agree); INT8's
    accumulators are int (s32, exact) and `value` an int expression, E4M3's float; a staged
    store must stage them as `staged_sums` (`gemm_epilogue.byte_row_store`). No split-K.

    `second` (a multiple of BK): K's first `second` elements are a second GEMM's (an INT8
    shortcut conv's, fuse-shortcut-convs), its sums kept apart in `frag2` for the staged
    store's epilogue (`gemm_epilogue.stage_pair`'s `second`); `frag` holds the rest's. With
    `second_head(col, v0, v1, indent)` (lines declaring bytes `q0`, `q1` from a pair of those
    sums at tile columns `col`, `col` + 1: their own quantize) the loop keeps those bytes
    instead, four to a register (`frag2q`: a quarter of the registers).

    A persistent tactic (`gemm.persist`: a short static K, M tiles on grid y as `m0` says, a
    staged store) walks the M tiles blockIdx.y, + gridDim.y, ... in one block (`_persistent`);
    `kernel_shared` counts its buffers."""
    tile, splits = gemm.tile, gemm.splits
    narrow = dtype in BYTE_OPERANDS
    if second is not None and (splits > 1 or second % tile.bk or not isinstance(store, RowStore)
                               or is_sym(k) or not 0 < second < int(k)):
        raise ValueError("a second GEMM's sums: a whole-K loop, its K a multiple of BK within "
                         "K, and a staged store")
    if narrow and (splits > 1
                   or isinstance(store, RowStore) and not store.takes_sums(staged_sums(dtype))
                   or not a.k_contiguous or not b.k_contiguous):
        raise ValueError("8-bit tensor cores need K-major operands, no split-K, and a staged "
                         "store of whole sums (gemm_epilogue.byte_row_store) where they stage")
    bm, bn, bk = tile.bm, tile.bn, tile.bk
    wtm, wtn = bm // tile.wm, bn // tile.wn
    mi_n, ni_n = tile.mi, tile.ni
    assert ni_n % 2 == 0 and bk % 16 == 0, tile
    a_setup, a_copies, a_vec = _loads(a, bm, tile, "a", "m0")
    b_setup, b_copies, b_vec = _loads(b, bn, tile, "b", "n0")
    a_kmaj, b_kmaj = a.k_contiguous, b.k_contiguous
    a_stage, b_stage = tile.stage_elems(bm), tile.stage_elems(bn)
    a_ld = bk + 8 if a_kmaj else bm + 8  # leading dim of a stage's tile
    b_ld = bk + 8 if b_kmaj else bn + 8
    if gemm.persist:
        if not persistent_fits(gemm, m, k) or m0 != f"blockIdx.y * {bm}" or \
                not isinstance(store, RowStore):
            raise ValueError("a persistent grid: a whole K of at most PERSIST_K_TILES k-tiles "
                             "in the stage buffers, M tiles on grid y, and a staged store")
        kt_n = gemm.k_tiles(k)
        a_bufs = 2 * kt_n  # this tile's A and the next one's
    else:
        kt_n, a_bufs = None, buffers(tile.stages, gemm.k_tiles(k))
    lines = ["    extern __shared__ __align__(16) unsigned short smem[];",
             "    unsigned short* As = smem;",
             f"    unsigned short* Bs = smem + {a_bufs * a_stage};",
             "    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;",
             f"    const int wm = warp / {tile.wn}, wn = warp % {tile.wn};"]
    if gemm.persist:
        lines += [f"    const int n0 = {n0};", *b_setup]
    else:
        lines += [f"    const int m0 = {m0}, n0 = {n0};", *a_setup, *b_setup]
    if splits > 1:
        lines += [f"    const int k_begin = (int)(blockIdx.z % {splits}) * {gemm.k_slice(k)};",
                  f"    const int k_end = min({k}, k_begin + {gemm.k_slice(k)});"]
    elif not gemm.persist:  # (the persistent form walks its static K's `kt_n` k-tiles)
        lines += ["    const int k_begin = 0;", f"    const int k_end = {k};"]
    zero = "0" if dtype == INT8 else "0.f"
    clear = ["    #pragma unroll",
             f"    for (int i = 0; i < {mi_n}; ++i)",
             "        #pragma unroll",
             f"        for (int j = 0; j < {ni_n}; ++j)",
             f"            frag[i][j][0] = frag[i][j][1] = frag[i][j][2] = frag[i][j][3] = {zero};"]
    if not gemm.persist:
        lines.append(f"    const int k_tiles = (k_end - k_begin + {bk - 1}) / {bk};")
    lines.append(f"    {sums_type(dtype)} frag[{mi_n}][{ni_n}][4];")
    if not gemm.persist:
        lines += clear
    if second is not None:
        lines.append(f"    unsigned frag2q[{mi_n}][{ni_n}];" if second_head else
                     f"    {sums_type(dtype)} frag2[{mi_n}][{ni_n}][4];")

    def copy(op: Operand, copies, vec: bool, arr: str, stage_elems: int, ld: int,
             kmaj: bool, indent: str) -> list[str]:
        out = []
        for slot, kk, mn, _ in copies:
            pre, cond, at = op.load(slot, "kv")
            dst = (f"{arr}[st * {stage_elems} + ({mn}) * {ld} + {kk}]" if kmaj
                   else f"{arr}[st * {stage_elems} + ({kk}) * {ld} + {mn}]")
            out += [f"{indent}{{", f"{indent}    const int kv = k0 + {kk};",
                    *(f"{indent}    {line}" for line in pre)]
            if vec:
                out += [f"{indent}    const bool v_ = {cond};",
                        f"{indent}    cp_async16(&{dst}, v_ ? (const void*)&{op.ptr}[{at}] : "
                        f"(const void*){op.ptr}, v_);"]
            else:
                out.append(f"{indent}    {dst} = ({cond}) ? "
                           f"((const unsigned short*){op.ptr})[{at}] : (unsigned short)0;")
            out.append(f"{indent}}}")
        return out

    load_a = copy(a, a_copies, a_vec, "As", a_stage, a_ld, a_kmaj, "        ")
    load_b = copy(b, b_copies, b_vec, "Bs", b_stage, b_ld, b_kmaj, "        ")
    # one k-tile's MMAs from the stage at `as`, `bs`
    steps = ["        #pragma unroll",
             f"        for (int kk = 0; kk < {bk}; kk += 16) {{",
             f"            unsigned af[{mi_n}][4], bf[{ni_n}][2];",
             "            #pragma unroll",
             f"            for (int i = 0; i < {mi_n}; ++i) {{",
             f"                const int r = wm * {wtm} + i * 16;"]
    if a_kmaj:  # lanes 0-15 rows at k, 16-31 rows at k + 8
        steps.append(f"                ldsm_x4(af[i], &as[(r + (lane & 15)) * {a_ld} + kk + "
                     "(lane >> 4) * 8]);")
    else:  # [k][m]: matrix j = lane / 8 covers k + (j / 2) * 8, m + (j % 2) * 8
        steps.append(f"                ldsm_x4_trans(af[i], &as[(kk + (lane >> 4) * 8 + "
                     f"(lane & 7)) * {a_ld} + r + ((lane >> 3) & 1) * 8]);")
    steps += ["            }",
              "            #pragma unroll",
              f"            for (int j = 0; j < {ni_n}; j += 2) {{",
              f"                const int c = wn * {wtn} + j * 8;",
              "                unsigned q[4];"]
    if b_kmaj:  # matrix j: n + (j / 2) * 8, k + (j % 2) * 8
        steps.append(f"                ldsm_x4(q, &bs[(c + (lane >> 4) * 8 + (lane & 7)) * "
                     f"{b_ld} + kk + ((lane >> 3) & 1) * 8]);")
    else:  # [k][n]: matrix j covers k + (j % 2) * 8, n + (j / 2) * 8
        steps.append(f"                ldsm_x4_trans(q, &bs[(kk + ((lane >> 3) & 1) * 8 + "
                     f"(lane & 7)) * {b_ld} + c + (lane >> 4) * 8]);")
    steps += ["                bf[j][0] = q[0]; bf[j][1] = q[1];",
              "                bf[j + 1][0] = q[2]; bf[j + 1][1] = q[3];",
              "            }",
              "            #pragma unroll",
              f"            for (int i = 0; i < {mi_n}; ++i)",
              "                #pragma unroll",
              f"                for (int j = 0; j < {ni_n}; ++j)",
              f"                    {mma_name(dtype)}(frag[i][j], "
              "af[i], bf[j][0], bf[j][1]);",
              "        }"]
    if second is not None:
        steps += [f"        if (kt == {second // tile.bk - 1}) {{  // the second GEMM's sums are "
                  "whole: keep them apart",
                  "            #pragma unroll",
                  f"            for (int i = 0; i < {mi_n}; ++i)",
                  "                #pragma unroll",
                  f"                for (int j = 0; j < {ni_n}; ++j) {{"]
        if second_head:  # their own quantize, a byte each, four to a register
            col = f"wn * {wtn} + j * 8 + (lane & 3) * 2"
            steps += ["                    frag2q[i][j] = 0u;",
                      "                    #pragma unroll",
                      "                    for (int h = 0; h < 2; ++h) {",
                      *second_head(col, "frag[i][j][2 * h]", "frag[i][j][2 * h + 1]",
                                   " " * 24),
                      "                        frag2q[i][j] |= ((unsigned)(unsigned char)q0 | "
                      "((unsigned)(unsigned char)q1 << 8)) << (16 * h);",
                      "                    }"]
        else:
            steps += ["                    #pragma unroll",
                      "                    for (int e = 0; e < 4; ++e) "
                      "frag2[i][j][e] = frag[i][j][e];"]
        steps += ["                    #pragma unroll",
                  f"                    for (int e = 0; e < 4; ++e) frag[i][j][e] = {zero};",
                  "                }",
                  "        }"]
    staged_second = None if second is None else (
        ("(signed char)(frag2q[i][j] >> (16 * h))",
         "(signed char)(frag2q[i][j] >> (16 * h + 8))") if second_head else
        ("frag2[i][j][2 * h]", "frag2[i][j][2 * h + 1]"))
    if gemm.persist:
        return lines + _persistent(gemm, m, n, store, kt_n, a_setup, load_a, load_b, clear,
                                   steps, a_stage, b_stage, staged_second)
    lines += ["    // prologue: the first stages' copies in flight",
              "    #pragma unroll",
              f"    for (int s = 0; s < {tile.stages - 1}; ++s) {{",
              "        if (s < k_tiles) {",
              f"            const int st = s, k0 = k_begin + s * {bk};",
              *("    " + x for x in load_a + load_b),
              "        }",
              "        cp_async_commit();",
              "    }",
              "    for (int kt = 0; kt < k_tiles; ++kt) {",
              f"        cp_async_wait<{tile.stages - 2}>();",
              "        __syncthreads();  // stage kt landed; stage kt - 1 is free",
              f"        if (kt + {tile.stages - 1} < k_tiles) {{",
              f"            const int st = (kt + {tile.stages - 1}) % {tile.stages};",
              f"            const int k0 = k_begin + (kt + {tile.stages - 1}) * {bk};",
              *("    " + x for x in load_a + load_b),
              "        }",
              "        cp_async_commit();",
              f"        const unsigned short* as = As + (kt % {tile.stages}) * {a_stage};",
              f"        const unsigned short* bs = Bs + (kt % {tile.stages}) * {b_stage};",
              *steps,
              "    }",
              "    cp_async_wait<0>();"]
    if splits > 1:
        lines += _split_k_reduce(gemm)
    if isinstance(store, RowStore):
        return lines + _staged_store(gemm, m, n, store, staged_second)
    # fragment (i, j) element e: row g (+ 8 for e >= 2), columns 2 t, 2 t + 1 (g = lane / 4)
    lines += ["    #pragma unroll",
              f"    for (int i = 0; i < {mi_n}; ++i)",
              "        #pragma unroll",
              f"        for (int j = 0; j < {ni_n}; ++j)",
              "            #pragma unroll",
              "            for (int e = 0; e < 4; ++e) {",
              f"                const int m = m0 + wm * {wtm} + i * 16 + (lane >> 2) + "
              "(e >> 1) * 8;",
              f"                const int n = n0 + wn * {wtn} + j * 8 + (lane & 3) * 2 + (e & 1);",
              f"                if (m >= {m} || n >= {n}) continue;"]
    lines += store("m", "n", "frag[i][j][e]", "                ")
    lines += ["            }"]
    return lines


def _persistent(gemm: MmaGemm, m: int, n: int, store: RowStore, kt_n: int,
                a_setup: list[str], load_a: list[str], load_b: list[str], clear: list[str],
                steps: list[str], a_stage: int, b_stage: int,
                second: tuple[str, str] | None) -> list[str]:
    """`mainloop`'s persistent form: B's whole K copied once; A's for the block's first M tile,
    then in each tile, before its MMAs and epilogue, the drain's extra inputs (a residual: in
    flight under the MMAs and the fragments' epilogue) and the next tile's A into the other
    half of the A buffers (landing under this tile's epilogue); the outputs staged apart from
    the buffers (`kernel_shared`)."""
    tile = gemm.tile
    m_tiles = -(-int(m) // tile.bm)

    def a_tiles(buf: str) -> list[str]:
        return [f"    for (int s = 0; s < {kt_n}; ++s) {{",
                f"        const int st = {buf} * {kt_n} + s, k0 = s * {tile.bk};",
                *load_a, "    }"]

    early: list[str] = []  # the drain's residual loads, at the top of each tile
    stores = _staged_store(gemm, m, n, store, second,
                           f"smem + {2 * kt_n * a_stage + kt_n * b_stage}", early)
    lines = ["    // B's whole K, once",
             "    #pragma unroll",
             f"    for (int s = 0; s < {kt_n}; ++s) {{",
             f"        const int st = s, k0 = s * {tile.bk};", *load_b, "    }",
             "    {  // the first M tile's A",
             f"    const int m0 = blockIdx.y * {tile.bm};",
             *a_setup, "    #pragma unroll", *a_tiles("0"), "    }",
             "    cp_async_commit();",
             f"    for (int mt = blockIdx.y, buf = 0; mt < {m_tiles}; "
             "mt += gridDim.y, buf ^= 1) {",
             f"    const int m0 = mt * {tile.bm};",
             *early,
             "    cp_async_wait<0>();",
             "    __syncthreads();  // this tile's A landed; the last tile's outputs are drained",
             f"    if (mt + gridDim.y < {m_tiles}) {{  // the next tile's A, under this one's "
             "epilogue",
             f"    const int m0 = (mt + gridDim.y) * {tile.bm};",
             *a_setup, "    #pragma unroll", *a_tiles("(buf ^ 1)"), "    }",
             "    cp_async_commit();",
             *clear,
             "    #pragma unroll",
             f"    for (int kt = 0; kt < {kt_n}; ++kt) {{",
             f"        const unsigned short* as = As + (buf * {kt_n} + kt) * {a_stage};",
             f"        const unsigned short* bs = Bs + kt * {b_stage};",
             *steps, "    }"]
    return lines + stores + ["    }"]


def kernel_shared(gemm: MmaGemm, k: int | str, store: object) -> int:
    """Dynamic shared memory of a `mainloop` kernel: the stage buffers its blocks fill, or the
    staged outputs' rows (a band of them where `store` stages by bands) where more: they reuse
    the buffers once the main loop is done."""
    tile = gemm.tile
    staged = (store.shared_bytes(store.band or tile.bm, tile.bn) if isinstance(store, RowStore)
              else 0)
    if gemm.persist:  # A's k-tiles twice, B's once, the staged outputs apart
        kt_n = gemm.k_tiles(k)
        return (2 * kt_n * tile.stage_elems(tile.bm) + kt_n * tile.stage_elems(tile.bn)) * 2 \
            + staged
    return max(tile.shared_bytes(gemm.k_tiles(k)), staged)


def _staged_store(gemm: MmaGemm, m: int, n: int, st: RowStore,
                  second: tuple[str, str] | None = None, apart: str | None = None,
                  early: list[str] | None = None) -> list[str]:
    """The outputs through shared memory (`gemm_epilogue`): fragment (i, j) pair h holds row
    g + 8 h, columns 2 t and 2 t + 1 of the warp's 16 x 8 piece (g = lane / 4, t = lane % 4);
    `second`: a second GEMM's values of pair h alike (`mainloop`'s `frag2` or `frag2q`). Staged
    over the stage buffers after a barrier, or at `apart` (a shared-memory pointer expression:
    the persistent form's own staging, free without one). `early`: `gemm_epilogue.drain`'s, for
    a tile staged whole."""
    tile = gemm.tile
    wtm, wtn = tile.bm // tile.wm, tile.bn // tile.wn
    band = st.band or tile.bm
    assert band % wtm == 0 and (apart or st.shared_bytes(band, tile.bn)
                                <= tile.shared_bytes()), tile
    lines = gemm_epilogue.declare(st, apart or "smem", barrier=apart is None)
    for first in range(0, tile.bm, band):  # a band of rows at a time: its warps stage them
        if first:
            lines.append("    __syncthreads();  // the last band is drained: stage the next")
        row = f"wm * {wtm} + i * 16 + (lane >> 2) + h * 8" + (f" - {first}" if first else "")
        pair = gemm_epilogue.stage_pair(
            st, row, f"wn * {wtn} + j * 8 + (lane & 3) * 2", "frag[i][j][2 * h]",
            "frag[i][j][2 * h + 1]", "n0", n, tile.bn, "                ", second=second)
        lines += ([f"    if (wm * {wtm} / {band} == {first // band}) {{  // rows {first}.."
                   f"{first + band - 1}"] if band < tile.bm else ["    {"]) + [
            "    #pragma unroll",
            f"    for (int i = 0; i < {tile.mi}; ++i)",
            "        #pragma unroll",
            f"        for (int j = 0; j < {tile.ni}; ++j)",
            "            #pragma unroll",
            "            for (int h = 0; h < 2; ++h)",
            *pair, "    }",
            *gemm_epilogue.drain(st, band, tile.bn, tile.threads, m, n,
                                 f"(m0 + {first})" if first else "m0", "n0",
                                 early if band == tile.bm else None)]
    return lines


def _split_k_reduce(gemm: MmaGemm) -> list[str]:
    """After the main loop of a split-K block: `gemm_tiles.split_k_partials` over frag."""
    tile = gemm.tile
    return split_k_partials(gemm.splits, tile.bm * tile.bn, tile.threads,
                            tile.mi * tile.ni * 4, "flat", "r",
                            ("    float* flat = &frag[0][0][0];",))

