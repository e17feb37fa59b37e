"""The Hopper tensor-core GEMM main loop: `wgmma.mma_async` (sm_90a) on FP16/BF16 operands, or
FP32 operands read as TF32, in 128-byte-swizzled shared memory, FP32 accumulation in registers;
or on INT8 operands (read as 16-bit pairs along K, as `gemm_mma`'s INT8 loop reads them), one
`m64n{BN}k32.s32.s8.s8` per 32 bytes of k, with exact int32 sums.

C[m, n] = sum_k A[m, k] * B[n, k] for one block tile of BM x BN, both operands K-major (their
consecutive k adjacent in memory, in 16-byte aligned chunks: `Operand.vec8` for the halves,
`vec4` for FP32). The block is BM / 64 warpgroups of 128 threads; warpgroup w owns rows
[64 w, 64 w + 64) and issues one `wgmma.m64n{BN}k16` (k8 for TF32) per 32 bytes of k. K is
walked 128 bytes (64 halves, 32 floats) at a time through `stages` shared-memory buffers filled
by every thread's `cp.async` copies (16 bytes each, zero-filled out of range) into the 128-byte
swizzle pattern the wgmma descriptors name: row r's 16-byte chunk c sits at chunk c ^ (r % 8)
of its 128-byte row, 8 rows to a 1024-byte atom. The copies are ordinary (generic-proxy)
writes, so each thread fences them to the async proxy before the barrier that lets the
warpgroups read them. For TF32 each thread first rounds its own landed chunks to nearest
(`cvt.rna.tf32`): the tensor cores alone would truncate each operand, a bias that grows with
depth (ResNet-50's softmax moved 1.1e-2 rel-L2 from FP32 with truncation).

With split-K (`WgmmaGemm.splits`: FP16/BF16/TF32, and INT8 matmuls) block z % splits walks its
slice of the k-tiles, stores its FP32 (INT8: int32) accumulators to the workspace, and the
tile's last block to arrive sums the slices in slice order before the epilogue
(`_split_k_reduce`): an INT8 drain then requantizes whole, exact sums as without the split.

Kernels using this loop compile only for sm_90a (`ARCH_SPECIFIC`); `gemm_mma` stays the
tactic for every other target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ember.codegen.nvrtc import ARCH_SPECIFIC_SM90A
from ember.codegen.symbolic import typical
from ember.codegen.templates import gemm_epilogue, gemm_mma
from ember.codegen.templates.gemm_epilogue import RowStore
from ember.codegen.templates.gemm_mma import async_helpers
from ember.codegen.templates.gemm_tiles import (
    SM_COUNT,
    SPLITS,
    Operand,
    buffers,
    slice_counts,
    split_k_partials,
)

ARCH_SPECIFIC = ARCH_SPECIFIC_SM90A  # the source line that makes NVRTC target sm_90a
ROW_BYTES = 128  # one swizzle row: the K extent of a stage
SHARED_PER_SM = 228 * 1024  # sm_90: shared memory per multiprocessor (1 KB of it per block)
# operand dtype -> (wgmma operand type, bytes of the unit the copies count K in: int8 in pairs)
WGMMA_TYPES = {"float16": ("f16", 2), "bfloat16": ("bf16", 2), "float32": ("tf32", 4),
               "int8": ("s8", 2), "float8_e4m3fn": ("e4m3", 2)}
INT8 = gemm_mma.INT8
E4M3 = gemm_mma.E4M3  # FP8: byte pairs like int8, float32 sums (QGMMA)


@dataclass(frozen=True)
class WgmmaTile:
    """A Hopper tactic: BM = 64 x warpgroups rows, BN columns per wgmma, pipeline depth."""

    bm: int
    bn: int
    stages: int

    def __post_init__(self) -> None:
        # N: what wgmma takes for every operand type (s8: 8, 16, 24, then multiples of 16);
        # the copies give each thread a whole number of B's 16-byte chunks
        if self.bm % 64 or not 8 <= self.bn <= 256 or self.bn % (8 if self.bn <= 24 else 16) \
                or (self.bn * 8) % (128 * (self.bm // 64)):
            raise ValueError(f"wgmma tile {self.bm}x{self.bn}: BM a multiple of 64, BN 8, 16, "
                             "24 or a multiple of 16 up to 256, and B's 16-byte chunks a whole "
                             "number per thread")

    @property
    def groups(self) -> int:
        return self.bm // 64

    @property
    def threads(self) -> int:
        return 128 * self.groups

    def shared_bytes(self, k_tiles: int | None = None) -> int:
        # stages of A and B tiles (with `k_tiles`, each block's for a static K: only those it
        # fills, `gemm_tiles.buffers`), plus 1 KB to align the first to a swizzle atom
        return buffers(self.stages, k_tiles) * (self.bm + self.bn) * ROW_BYTES + 1024

    @property
    def resident(self) -> int:
        """Blocks per multiprocessor the tile is compiled for (`__launch_bounds__`): two where
        their shared memory fits, so one block's prologue and epilogue overlap the other's
        main loop (short-K GEMMs: BERT's). Counted for every stage: a short K that fills fewer
        still gets the tile's registers."""
        return 2 if self.shared_bytes() <= SHARED_PER_SM // 2 - 1024 else 1

    def as_list(self) -> list[int]:
        return [self.bm, self.bn, self.stages]

    def __str__(self) -> str:
        return (f"{self.bm}x{self.bn} tile x 128 bytes of k, {self.groups} warpgroup(s) of "
                f"m64n{self.bn}, {self.stages} stages")


WGMMA_TILES: tuple[tuple[WgmmaTile, float], ...] = (
    (WgmmaTile(128, 256, 4), 1.0),
    (WgmmaTile(256, 128, 4), 1.0),
    # 192 columns: N = 3072 (BERT's FFN1) in 16 column tiles, so M = 1024 fills 128 of the
    # H200's 132 multiprocessors (128x256: 96)
    (WgmmaTile(128, 192, 4), 0.95),
    (WgmmaTile(128, 128, 6), 0.9),
    # two blocks per multiprocessor (3-4 stages each): for GEMMs with a short K
    (WgmmaTile(128, 128, 3), 0.9),
    (WgmmaTile(128, 64, 4), 0.7),
    (WgmmaTile(64, 128, 6), 0.7),
    # 64 columns: GEMMs with N = 64 (ResNet-50's first convs and layer1) waste none of them
    (WgmmaTile(256, 64, 5), 0.75),
    (WgmmaTile(128, 64, 8), 0.7),
    (WgmmaTile(64, 64, 8), 0.5),
    # N = 768 with M = 1024 (BERT's FFN2 and attention output) in 128 blocks
    (WgmmaTile(64, 96, 8), 0.6),
    # one warpgroup of m64n256: as many blocks as 128x128 where N = 256 (ResNet-50's layer3),
    # each wgmma twice the columns (layer3's INT8 3x3 conv, whole kernel over its wgmmas: ~165
    # cycles an m64n128k32 on an H100, ~236 an m64n256k32; the instructions alone run at the
    # dense rate, 64 and 128: tools/wgmma_rate.py)
    (WgmmaTile(64, 256, 4), 0.85),
)


@dataclass(frozen=True)
class WgmmaGemm:
    """A wgmma tactic: the tile and how many slices K is split into (FP16/BF16/TF32: FP32
    partial tiles in the workspace, summed in slice order by the tile's last block, as
    `gemm_mma`'s; INT8 drains take whole int32 sums and split no K)."""

    tile: WgmmaTile
    splits: int = 1

    def grid(self, m: int, n: int, batch: int) -> tuple[int, int, int]:
        return (-(-n // self.tile.bn), -(-m // self.tile.bm), batch * self.splits)

    def workspace_bytes(self, m: int, n: int, batch: int) -> tuple[int, int]:
        """(counter bytes, partial bytes) of zeroed scratch (`gemm_tiles.Gemm`'s); (0, 0)
        without split-K."""
        if self.splits == 1:
            return 0, 0
        gx, gy, _ = self.grid(m, n, batch)
        tiles = gx * gy * batch
        return tiles * 4, tiles * self.splits * self.tile.bm * self.tile.bn * 4

    def tactic(self) -> dict:
        return {"wgmma": self.tile.as_list(), **({"splits": self.splits} if self.splits > 1
                                                 else {})}

    def k_tiles(self, k: int | str, dtype: str) -> int | None:
        """The most k-tiles (128 bytes of K) a block walks (its slice's); None for a symbolic
        K."""
        if not isinstance(k, int):
            return None
        tiles = -(-k // (ROW_BYTES // WGMMA_TYPES[dtype][1]))
        return -(-tiles // self.splits)

    def __str__(self) -> str:
        return (f"wgmma (sm_90a), {self.tile}"
                + (f", split-K x{self.splits}" if self.splits > 1 else ""))


def usable(a: Operand, b: Operand, dtype: str) -> bool:
    """Both operands K-major in 16-byte chunks: what the swizzled copies need."""
    vec = (a.vec4 and b.vec4) if dtype == "float32" else (a.vec8 and b.vec8)
    return a.k_contiguous and b.k_contiguous and vec


def estimated_cost(tile: WgmmaTile, eff: float, m: int, n: int, k: int, batch: int,
                   sms: int = SM_COUNT) -> float:
    blocks = -(-m // tile.bm) * -(-n // tile.bn) * batch
    per_sm = -(-blocks // sms)
    return per_sm * tile.bm * tile.bn * -(-k // 64) * 64 / eff


def ranked(m: int, n: int, k: int, batch: int = 1, sms: int = SM_COUNT) -> list[WgmmaGemm]:
    m, n, k, batch = typical(m), typical(n), typical(k), typical(batch)
    scored = sorted((estimated_cost(t, e, m, n, k, batch, sms), i, WgmmaGemm(t))
                    for i, (t, e) in enumerate(WGMMA_TILES))
    return [g for _, _, g in scored]


# a GEMM whose K is at most this (a 1x1 conv over 64 or 128 channels; INT8's K counts pairs,
# so up to 256 channels) also times the best tile of which two blocks fit a multiprocessor (and
# its TMA twin): its time is the loads and the epilogue's stores, which one block per
# multiprocessor does in turn (ResNet-50's layer1 downsample: 1.8x its memory floor on 128x256)
SHORT_K = 128

# how much faster a wgmma tile's inner loop runs than an mma.sync tile of the same efficiency
# (4096^3 FP16 on the H200: 452 TFLOP/s for the best wgmma tile, 277 for the best mma.sync)
SPEEDUP_OVER_MMA = 1.6


def targets(arch: str | None) -> bool:
    """Whether a build for `arch` may use wgmma: sm_90 exactly (its PTX is not forward
    compatible, so other archs keep mma.sync)."""
    from ember.runtime.arch import parse_arch

    return arch is not None and parse_arch(arch) == (9, 0)


def merged_candidates(mma: list, m: int, n: int, k: int, batch: int, top: int = 4,
                      sms: int = SM_COUNT, tma: bool = False, split_k: bool = False
                      ) -> list[dict]:
    """The `top` tactics of the families by estimated cost (wgmma's scaled by
    `SPEEDUP_OVER_MMA` against `gemm_mma.estimated_cost`'s; with `tma`, the TMA-fed tiles of
    `gemm_tma` scaled by its `SPEEDUP_OVER_CP_ASYNC` where K spans `gemm_tma.PAYS_FROM_K_TILES`
    k-tiles), best first. The best wgmma tactic is always among them (one more, last, where the
    estimates rank mma.sync's above it), so the autotuner times both families: the estimates
    count only tensor-core work, where a short-K GEMM (an INT8 1x1 conv over 64 channels
    half-fills wgmma's 128-byte stage) is bound by its loads and epilogue; where K <= `SHORT_K`
    the best tile of which two blocks share a multiprocessor is there too. With `tma`, each
    cp.async wgmma tile among them also brings its TMA-fed twin (same BM x BN), and the best
    TMA tile is always there: where the epilogue, not the main loop, decides (an INT8 GEMM's
    requantizing GELU), the autotuner compares the two copy engines tile for tile; each
    one-warpgroup TMA tile among them brings its two-k-tiles-a-stage twin where K is deep
    (`gemm_tma.paired`). With
    `split_k`, the best split-K tile (`split_candidate`) comes last where it is estimated
    cheaper than every whole-K wgmma tile: timed, never the cost model's own choice."""
    m, n, k, batch = typical(m), typical(n), typical(k), typical(batch)
    scored = [(gemm_mma.estimated_cost(g, dict(gemm_mma.MMA_TILES)[g.tile], m, n, k, batch,
                                       sms),
               i, g.tactic()) for i, g in enumerate(mma)]
    hopper = [(estimated_cost(t, e, m, n, k, batch, sms) / SPEEDUP_OVER_MMA, len(mma) + i,
               WgmmaGemm(t).tactic()) for i, (t, e) in enumerate(WGMMA_TILES)]
    fed: list[tuple[float, int, dict]] = []
    if tma:
        from ember.codegen.templates import gemm_tma

        fed = [(estimated_cost(t, e, m, n, k, batch, sms) / SPEEDUP_OVER_MMA
                / gemm_tma.speedup(k), len(mma) + len(hopper) + i, gemm_tma.TmaGemm(t).tactic())
               for i, (t, e) in enumerate(gemm_tma.TMA_TILES)]
    best = [t for _, _, t in sorted([*scored, *hopper, *fed], key=lambda s: (s[0], s[1]))[:top]]
    if top and not any("wgmma" in t and "copy" not in t for t in best):
        best.append(min(hopper, key=lambda s: (s[0], s[1]))[2])
    if top and k <= SHORT_K:  # bound by loads and stores: two resident blocks overlap them
        pair = min((s for s, (t, _) in zip(hopper, WGMMA_TILES, strict=True) if t.resident == 2),
                   key=lambda s: (s[0], s[1]))[2]
        if pair not in best:
            best.append(pair)
    if top and fed:
        twins = {tuple(t["wgmma"][:2]): t for _, _, t in fed}
        for t in list(best):
            twin = twins.get(tuple(t["wgmma"][:2])) if "wgmma" in t else None
            if twin is not None and twin not in best:
                best.append(twin)
        if not any("copy" in t for t in best):
            best.append(min(fed, key=lambda s: (s[0], s[1]))[2])
        best += gemm_tma.paired(best, k)
    split = split_candidate(m, n, k, batch, sms) if top and split_k else None
    if split is not None and split[0] < min(c for c, _, _ in hopper) * SPEEDUP_OVER_MMA:
        best.append(split[1].tactic())
    return best


def tf32_candidates(fp32: list[dict], m: int, n: int, k: int, batch: int,
                    top: int = 4, sms: int = SM_COUNT) -> list[dict]:
    """An FP32 GEMM allowed TF32: the best wgmma tiles first, then the best FP32 register tile
    (with its split-K, which these wgmma candidates do not take: a small GEMM with a long K may
    still want it), for the autotuner to time; the cost model's choice is the first wgmma
    tile."""
    return [g.tactic() for g in ranked(m, n, k, batch, sms)[:top - 1]] + fp32[:1]


def tensor_core_gemm(params: dict, dtype: str, a: Operand, b: Operand, m: int, n: int, k: int,
                     batch: int, split_k: bool = True
                     ) -> tuple[gemm_mma.MmaGemm | WgmmaGemm, bool]:
    """The tensor-core tactic a matmul/conv step runs, and whether it is wgmma: the one its
    params name (a wgmma tactic needs both operands K-major in 16-byte chunks, and FP32 operands
    the step's TF32 marker), else the mma.sync cost model's choice (`split_k` False: the INT8
    kernels, which split no K)."""
    tactic = params.get("tactic") or {}
    if "wgmma" not in tactic:
        return gemm_mma.mma_for(params, m, n, k, batch, split_k=split_k), False
    if dtype == "float32" and not params.get("tf32"):
        raise ValueError("a wgmma tactic on FP32 operands computes in TF32, which this step is "
                         "not allowed (no tf32 marker from assign-precision)")
    if not usable(a, b, dtype):
        raise ValueError("tactic wgmma needs both operands K-major in 16-byte chunks")
    return wgmma_for(tactic), True


def wgmma_for(tactic: dict) -> WgmmaGemm:
    if not set(tactic) <= {"wgmma", "splits"}:  # e.g. a "copy" other than gemm_tma's
        raise ValueError(f"tactic {tactic} has keys a cp.async wgmma tactic does not take "
                         "({'wgmma': [bm, bn, stages]} with 'splits' where K is split; "
                         "TMA-fed: with 'copy': 'tma')")
    tile = WgmmaTile(*(int(v) for v in tactic["wgmma"]))
    if tile not in [t for t, _ in WGMMA_TILES]:
        raise ValueError(f"tactic tile {tile} is not one of the wgmma tiles")
    splits = int(tactic.get("splits", 2))  # present only where K is split
    if not 2 <= splits <= SPLITS[-1]:
        raise ValueError(f"tactic split-K x{splits}: 2 to {SPLITS[-1]} slices (a whole-K "
                         "tactic names no 'splits')")
    return WgmmaGemm(tile, splits if "splits" in tactic else 1)


# a wgmma GEMM whose whole tiles leave at least half the multiprocessors idle also times the
# best tile with K in slices that fill them (BERT's FFN2, 1024x768x3072: 32 tiles of 128x192
# in 4 slices; ResNet-50's layer4 3x3 convs), each slice keeping at least this many k-tiles
SPLIT_MIN_K_TILES = 8


def split_candidate(m: int, n: int, k: int, batch: int, sms: int = SM_COUNT
                    ) -> tuple[float, WgmmaGemm] | None:
    """The best split-K tactic (estimated cost, gemm) among the tiles whose whole tiles fill at
    most half of `sms`: the slice count that keeps every block in one wave, each slice's
    partial tile costed as one more k-tile; None where none fits."""
    k_tiles = -(-k // 64)
    best: tuple[float, int, WgmmaGemm] | None = None
    for i, (tile, eff) in enumerate(WGMMA_TILES):
        blocks = -(-m // tile.bm) * -(-n // tile.bn) * batch
        if 2 * blocks > sms:
            continue
        for splits in slice_counts(k_tiles)[1:]:  # slices that get k-tiles, fewest first
            per_slice = -(-k_tiles // splits)
            if per_slice < SPLIT_MIN_K_TILES or blocks * splits > sms:
                break
            cost = tile.bm * tile.bn * (per_slice + splits) * 64 / eff
            if best is None or (cost, i) < best[:2]:
                best = (cost, i, WgmmaGemm(tile, splits))
    return None if best is None else (best[0], best[2])


def base_descriptors() -> list[str]:
    """Lines making the descriptors of a consumer warpgroup's first A rows and of B in stage 0
    (`As`, `Bs`, `group` defined), once, before the main loop: the loop steps them by offsets
    instead of converting an address each wgmma (as CUTLASS steps its descriptors)."""
    return [f"    const unsigned long long a_desc = wgmma_desc(As + group * {64 * ROW_BYTES}), "
            "b_desc = wgmma_desc(Bs);"]


def stage_descriptors(stage: str, a_stage: int, b_stage: int) -> list[str]:
    """Lines defining `da`, `db`: `base_descriptors` stepped to stage `stage` (a C expression)
    of `a_stage`- and `b_stage`-byte buffers. A descriptor's low 14 bits hold the address in
    16-byte units, and shared memory ends below 2^18 bytes: offsets add without a carry."""
    return [f"    const unsigned long long da = a_desc + {stage} * {a_stage // 16}, "
            f"db = b_desc + {stage} * {b_stage // 16};"]


def batch_call(bn: int, da: str = "da", db: str = "db") -> str:
    """The wgmma of step `ks` (32 bytes of k: 2 descriptor units) of the k-tile whose
    descriptors are `da`, `db`."""
    return f"wgmma_{bn}(frag, {da} + ks * 2, {db} + ks * 2);"


def helpers(dtype: str, bn: int) -> str:
    """`async_helpers` plus the descriptor, fences and the wgmma instruction (m64n{bn}, 32 bytes
    of k) of `dtype` operands."""
    ptx, size = WGMMA_TYPES[dtype]
    integer, narrow = dtype == INT8, dtype in gemm_mma.BYTE_OPERANDS
    kk = 32 if narrow else 32 // size
    regs = bn // 2
    acc, reg, sums = ("int", "r", "s32") if integer else ("float", "f", "f32")
    outs = ", ".join(f"%{i}" for i in range(regs))
    binds = ", ".join(f'"+{reg}"(d[{i}])' for i in range(regs))
    # scale-a, scale-b (and for the halves transpose-a, transpose-b: both K-major); the integer
    # form has none, FP8 and TF32 no transposes (K-major only)
    imm = "" if integer else ", 1, 1, 0, 0" if size == 2 and not narrow else ", 1, 1"
    types = "s32.s8.s8" if integer else f"f32.{ptx}.{ptx}"
    return async_helpers() + f"""\
// shared-memory matrix descriptor: 128-byte swizzle, 1024-byte stride between 8-row atoms
__device__ __forceinline__ unsigned long long wgmma_desc(const void* p) {{
    unsigned long long a = smem_addr(p);
    return ((a & 0x3FFFF) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}}
__device__ __forceinline__ void wgmma_fence() {{ asm volatile("wgmma.fence.sync.aligned;"); }}
__device__ __forceinline__ void wgmma_commit() {{
    asm volatile("wgmma.commit_group.sync.aligned;");
}}
// pins an accumulator register in program order around the asynchronous wgmma
__device__ __forceinline__ void fence_operand({acc}& x) {{
    asm volatile("" : "+{reg}"(x) :: "memory");
}}
template <int N> __device__ __forceinline__ void wgmma_wait() {{
    asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory");
}}
__device__ __forceinline__ void tf32_round4(float4* p) {{  // to nearest, ties away
    float4 v = *p;
    unsigned r0, r1, r2, r3;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r0) : "f"(v.x));
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r1) : "f"(v.y));
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r2) : "f"(v.z));
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r3) : "f"(v.w));
    *p = make_float4(__uint_as_float(r0), __uint_as_float(r1), __uint_as_float(r2),
                     __uint_as_float(r3));
}}
__device__ __forceinline__ void async_proxy_fence() {{
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}}
// d (64 x {bn}, this thread's {regs} {sums}) += A (64 x {kk}, K-major) * B ({bn} x {kk}, K-major)
__device__ __forceinline__ void wgmma_{bn}({acc}* d, unsigned long long da,
                                         unsigned long long db) {{
    asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, 1, 0;\\n"
                 "wgmma.mma_async.sync.aligned.m64n{bn}k{kk}.{types} "
                 "{{{outs}}}, %{regs}, %{regs + 1}, p{imm};\\n}}"
                 : {binds}
                 : "l"(da), "l"(db));
}}
"""


def tap_order(k: int, taps: int, dtype: str) -> tuple[int, int] | None:
    """(taps, k-tiles per tap) where a conv's K (taps x channels, channels fastest) is walked
    channel block by channel block, all taps of one block of channels in turn: the k-tiles that
    re-read one pixel window's bytes then follow each other, closer in L2 (ResNet-50's 3x3
    convs over 128 and 256 channels: 3-4% faster on an H100); None where that order is the
    natural one (one k-tile per tap, one tap) or the channels do not fill whole k-tiles."""
    bk = ROW_BYTES // WGMMA_TYPES[dtype][1]
    if taps < 2 or not isinstance(k, int) or k % (taps * bk) or k // (taps * bk) < 2:
        return None
    return taps, k // (taps * bk)


def mainloop(gemm: WgmmaGemm, m: int, n: int, k: int, a: Operand, b: Operand, dtype: str,
             m0: str, n0: str, store: Callable[[str, str, str, str], list[str]] | RowStore,
             order: tuple[int, int] | None = None) -> list[str]:
    """The body of a wgmma GEMM kernel for rows [m0, m0 + BM) x columns [n0, n0 + BN) of C;
    `store(m, n, value, indent)` stores one in-range output (`value` a float expression; an int
    one for INT8), or a `RowStore` stages them through shared memory (`gemm_epilogue`; INT8's
    int32 sums only as int32, `gemm_epilogue.int8_row_store`). `order` (`tap_order`): k-tile
    kt reads the K range of tile (kt % taps) * per_tap + kt / taps."""
    narrow = dtype in gemm_mma.BYTE_OPERANDS
    if narrow and isinstance(store, RowStore) \
            and not store.takes_sums(gemm_mma.staged_sums(dtype)):
        raise ValueError("8-bit wgmma: a staged store must stage the whole sums "
                         "(gemm_mma.staged_sums)")
    tile, splits = gemm.tile, gemm.splits
    if splits > 1 and narrow and dtype != INT8:
        raise ValueError("E4M3 wgmma kernels split no K (only INT8's exact int32 sums meet "
                         "in the workspace)")
    bm, bn, stages, threads = tile.bm, tile.bn, tile.stages, tile.threads
    size = WGMMA_TYPES[dtype][1]
    bk, chunk = ROW_BYTES // size, 16 // size  # elements of k per stage and per 16 bytes
    # split-K: this block's slice of k-tiles starts at kt0 (k0 below counts from it)
    first = "kt0 + " if splits > 1 else ""
    a_stage, b_stage = bm * ROW_BYTES, bn * ROW_BYTES  # bytes
    lines = ["    extern __shared__ __align__(16) unsigned char smem_raw[];",
             "    // the first tile starts at a 1024-byte swizzle atom (an offset from smem_raw:",
             "    // accesses through it stay shared-memory instructions)",
             "    unsigned char* As = smem_raw + ((0u - (unsigned)__cvta_generic_to_shared("
             "smem_raw)) & 1023u);",
             f"    unsigned char* Bs = As + {buffers(stages, gemm.k_tiles(k, dtype)) * a_stage};",
             "    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;",
             "    const int group = warp >> 2;  // warpgroup",
             "    const int wr = (warp & 3) * 16;  // the warp's first row in its warpgroup",
             f"    const int m0 = {m0}, n0 = {n0};"]
    if splits > 1:
        if not isinstance(k, int):
            raise ValueError(f"tactic split-K x{splits} needs a static K")
        k_tiles = -(-k // bk)
        per_slice = -(-k_tiles // splits)
        if per_slice * (splits - 1) >= k_tiles:  # a slice would get no k-tile
            raise ValueError(f"tactic split-K x{splits} does not fit K = {k} ({k_tiles} "
                             f"k-tiles of {bk})")
        lines += [f"    const int kt0 = (int)(blockIdx.z % {splits}) * {per_slice};",
                  f"    const int k_tiles = max(0, min(({k} + {bk - 1}) / {bk}, kt0 + "
                  f"{per_slice}) - kt0);"]
    else:
        lines.append("    const int k_tiles = " + f"({k} + {bk - 1}) / {bk};")

    def start(tile_index: str) -> str:  # the first k of k-tile `tile_index`
        if order is None:
            return f"{tile_index} * {bk}"
        taps, per_tap = order
        return f"((({tile_index}) % {taps}) * {per_tap} + ({tile_index}) / {taps}) * {bk}"

    copies, rounds = [], []
    for name, op, rows, arr, stage in (("a", a, bm, "As", a_stage), ("b", b, bn, "Bs", b_stage)):
        for i in range(rows * 8 // threads):
            slot = f"{name}{i}"
            row = f"(tid >> 3) + {i * threads // 8}"
            lines += [f"    {s}" for s in op.setup(slot, f"{_origin(name)} + {row}")]
            pre, cond, at = op.load(slot, "kv")
            dst = (f"&{arr}[st * {stage} + ({row}) * {ROW_BYTES} + "
                   f"((((tid & 7) ^ (({row}) & 7))) << 4)]")
            rounds.append(f"        tf32_round4((float4*){dst.replace('st *', 'cur *')});")
            copies += ["        {", f"            const int kv = k0 + (tid & 7) * {chunk};",
                       *(f"            {p}" for p in pre),
                       f"            const bool v_ = {cond};",
                       f"            cp_async16({dst}, v_ ? (const void*)&{op.ptr}[{at}] : "
                       f"(const void*){op.ptr}, v_);",
                       "        }"]
    acc, zero = ("int", "0") if dtype == INT8 else ("float", "0.f")
    lines += [f"    {acc} frag[{bn // 2}];",
              "    #pragma unroll",
              f"    for (int i = 0; i < {bn // 2}; ++i) frag[i] = {zero};",
              *base_descriptors(),
              "    // copies run S - 2 tiles ahead, one wgmma batch stays in flight: the barrier",
              "    // after every thread waited for its wgmma of tile kt - 2 frees that stage",
              "    #pragma unroll",
              f"    for (int s = 0; s < {stages - 2}; ++s) {{",
              "        if (s < k_tiles) {",
              f"            const int st = s, k0 = {start(f'({first}s)' if first else 's')};",
              *("    " + c for c in copies),
              "        }",
              "        cp_async_commit();",
              "    }",
              "    for (int kt = 0; kt < k_tiles; ++kt) {",
              f"        cp_async_wait<{stages - 3}>();",
              *([f"        const int cur = kt % {stages};",
                 "        // TF32: this thread's chunks of tile kt rounded to nearest (the tensor",
                 "        // cores would truncate), before the fence that publishes them"]
                + rounds if dtype == "float32" else []),
              "        async_proxy_fence();  // this thread's copies, visible to wgmma",
              "        __syncthreads();",
              f"        if (kt + {stages - 2} < k_tiles) {{",
              f"            const int st = (kt + {stages - 2}) % {stages};",
              f"            const int k0 = {start(f'({first}kt + {stages - 2})')};",
              *("    " + c for c in copies),
              "        }",
              "        cp_async_commit();",
              *(f"    {line}" for line in stage_descriptors(f"(kt % {stages})", a_stage,
                                                       b_stage)),
              "        wgmma_fence();",
              "        #pragma unroll",
              "        for (int ks = 0; ks < 4; ++ks)  // 32 bytes of k each",
              f"            {batch_call(bn)}",
              "        wgmma_commit();",
              "        wgmma_wait<1>();",
              "    }",
              "    wgmma_wait<0>();",
              "    #pragma unroll",
              f"    for (int i = 0; i < {bn // 2}; ++i) fence_operand(frag[i]);",
              "    cp_async_wait<0>();",
              "    // accumulator i: row wr + lane / 4 (+ 8 for i % 4 >= 2), column "
              "(i / 4) * 8 + (lane % 4) * 2 + i % 2"]
    if splits > 1:
        lines += _split_k_reduce(gemm, gemm_mma.sums_type(dtype))
    if isinstance(store, RowStore):
        assert store.shared_bytes(bm, bn) <= tile.shared_bytes(), tile
        return lines + [
            *gemm_epilogue.declare(store, "As"),
            "    #pragma unroll",
            f"    for (int i = 0; i < {bn // 2}; i += 2)",
            *gemm_epilogue.stage_pair(
                store, "group * 64 + wr + (lane >> 2) + ((i >> 1) & 1) * 8",
                "(i >> 2) * 8 + (lane & 3) * 2", "frag[i]", "frag[i + 1]", "n0", n, bn,
                "        "),
            *gemm_epilogue.drain(store, bm, bn, threads, m, n, "m0", "n0")]
    lines += ["    #pragma unroll",
              f"    for (int i = 0; i < {bn // 2}; ++i) {{",
              "        const int m = m0 + group * 64 + wr + (lane >> 2) + ((i >> 1) & 1) * 8;",
              "        const int n = n0 + (i >> 2) * 8 + (lane & 3) * 2 + (i & 1);",
              f"        if (m >= {m} || n >= {n}) continue;"]
    lines += store("m", "n", "frag[i]", "        ")
    lines += ["    }"]
    return lines


def kernel_shared(gemm: gemm_mma.MmaGemm | WgmmaGemm, k: int | str, dtype: str,
                  store: object) -> int:
    """Dynamic shared memory of a kernel from a `tensor_core_gemm` tactic of either family (or
    `gemm_tma`'s) over K = `k` (in the loop's units: int8 pairs) and its `store`: mma.sync's
    `gemm_mma.kernel_shared`; a wgmma one's, the stage buffers its blocks fill, or the staged
    outputs where more (they reuse the buffers after the main loop), with the 1 KB that aligns
    them to a swizzle atom."""
    if isinstance(gemm, gemm_mma.MmaGemm):
        return gemm_mma.kernel_shared(gemm, k, store)
    staged = (store.shared_bytes(gemm.tile.bm, gemm.tile.bn) + 1024
              if isinstance(store, RowStore) else 0)
    return max(gemm.tile.shared_bytes(gemm.k_tiles(k, dtype)), staged)


def _split_k_reduce(gemm: WgmmaGemm, t: str) -> list[str]:
    """After the main loop of a split-K block: `gemm_tiles.split_k_partials` over frag (of C
    type `t`: float, or INT8's int)."""
    tile = gemm.tile
    return split_k_partials(gemm.splits, tile.bm * tile.bn, tile.threads, tile.bn // 2,
                            "frag", "i", t=t)


def _origin(name: str) -> str:
    return "m0" if name == "a" else "n0"
