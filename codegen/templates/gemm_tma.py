"""The Hopper GEMM main loop with a producer warp: the bulk tensor copy engine (TMA) fills the
shared-memory stages, the warpgroups only multiply.

`gemm_wgmma`'s loop has every thread issue 16-byte `cp.async` copies between its wgmma batches
and meet the others at a barrier per k-tile. Here the block is BM / 64 consumer warpgroups plus
one producer warp. One thread of the producer walks K: for each 128-byte k-tile it waits until
the consumers freed the stage (`empty[s]`, an mbarrier each consumer warp arrives on), announces
the stage's bytes on `full[s]` and issues two `cp.async.bulk.tensor` copies (A's BM rows and B's
BN rows of the tile; the copy engine swizzles them into the 128-byte pattern the wgmma
descriptors name and fills what lies outside the tensors with zeros). The consumers wait on
`full[s]`, issue the tile's four wgmmas, keep one batch in flight, and free the stage of the
batch before. No barrier among all threads until the epilogue, whose staged outputs the
consumers drain.

The operands are read through tensor maps (`ember.runtime.tensor_maps`), one per operand,
taken as `__grid_constant__` arguments: both operands dense and K-major, each row a multiple of
16 bytes, a batched operand's matrices back to back (so a block's rows index the whole batch's
rows) or one matrix for every batch item. Static sizes only (the maps are encoded at the plan's
shapes). FP16/BF16 operands, or int8 read as 16-bit pairs along K (`gemm_wgmma`'s INT8 form).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ember.codegen.symbolic import is_sym, typical
from ember.codegen.templates import PDL_SYNC, gemm_epilogue, gemm_wgmma, prod
from ember.codegen.templates.gemm_epilogue import RowStore
from ember.codegen.templates.gemm_mma import BYTE_OPERANDS, staged_sums
from ember.codegen.templates.gemm_tiles import SM_COUNT, buffers
from ember.codegen.templates.gemm_wgmma import INT8, ROW_BYTES, WGMMA_TYPES
from ember.runtime.tensor_maps import Im2colMap, TensorMap

COPY = "tma"  # the tactic's `copy` value: {"wgmma": [bm, bn, stages], "copy": "tma"}
PRODUCER_THREADS = 32
SHARED_LIMIT = 227 * 1024  # sm_90: the most dynamic shared memory one block may have


@dataclass(frozen=True)
class TmaTile(gemm_wgmma.WgmmaTile):
    """A `gemm_wgmma.WgmmaTile` (BM = 64 x consumer warpgroups rows, BN columns per wgmma,
    wgmma's rules on both) fed by the copy engine: `stages` k-tiles in flight, one producer
    warp beside the consumer warpgroups; two blocks a multiprocessor where their shared memory
    fits (`WgmmaTile.resident`), so one block's epilogue overlaps the other's loads.
    `stage_tiles` = 2 (one consumer warpgroup only): each stage holds two k-tiles side by
    side, so the consumers wait, issue 8 wgmmas and free once per 256 bytes of k (session 34:
    one warpgroup's wait for a full stage cost ~150 cycles a k-tile on its critical path)."""

    stage_tiles: int = 1  # 128-byte k-tiles a stage holds

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage_tiles not in (1, 2) or self.stage_tiles == 2 and self.groups != 1:
            raise ValueError(f"TMA tile {self.bm}x{self.bn}x{self.stages}: a stage holds one "
                             "k-tile, or two for one consumer warpgroup")
        if self.stages < 2 or self.shared_bytes() > SHARED_LIMIT:
            raise ValueError(f"TMA tile {self.bm}x{self.bn}x{self.stages}: 2 or more stages "
                             f"within {SHARED_LIMIT} bytes of shared memory")

    @property
    def consumers(self) -> int:
        return 128 * self.groups

    @property
    def threads(self) -> int:
        return self.consumers + PRODUCER_THREADS

    def stage_bytes(self) -> int:
        return (self.bm + self.bn) * ROW_BYTES * self.stage_tiles

    def buffers(self, k_tiles: int | None) -> int:
        """The stages a block fills walking `k_tiles` k-tiles (`gemm_tiles.buffers`)."""
        return buffers(self.stages, None if k_tiles is None else -(-k_tiles // self.stage_tiles))

    def shared_bytes(self, k_tiles: int | None = None) -> int:
        # the stages (with `k_tiles`: those a static K fills), 1 KB to align the first to a
        # swizzle atom (the barriers are static)
        return self.buffers(k_tiles) * self.stage_bytes() + 1024

    def __str__(self) -> str:
        k = "two 128-byte k-tiles a stage" if self.stage_tiles == 2 else "128 bytes of k"
        return (f"{self.bm}x{self.bn} tile x {k}, {self.groups} warpgroup(s) of "
                f"m64n{self.bn} fed by a TMA producer warp, {self.stages} stages")


TMA_TILES: tuple[tuple[TmaTile, float], ...] = (
    (TmaTile(128, 256, 4), 1.0),
    (TmaTile(256, 128, 4), 1.0),
    (TmaTile(128, 192, 5), 0.95),
    (TmaTile(128, 128, 6), 0.9),
    (TmaTile(128, 64, 8), 0.7),
    # four consumer warpgroups over 64 columns: the twin of wgmma's 256x64 (ResNet-50's 3x3
    # convs over 64 channels, through the im2col map)
    (TmaTile(256, 64, 5), 0.75),
    (TmaTile(64, 128, 8), 0.7),
    (TmaTile(64, 96, 8), 0.6),
    (TmaTile(64, 64, 8), 0.5),
    (TmaTile(64, 256, 4), 0.85),  # gemm_wgmma's twin: one warpgroup of m64n256
    # two blocks a multiprocessor (the twins of wgmma's): short K, where a tile's loads and
    # epilogue, not its wgmmas, take the time (ResNet-50's layer1 convs; the shortcut convs of
    # fuse-shortcut-convs). Ranked below their deeper siblings by the cost model, timed where
    # their twins are candidates.
    (TmaTile(128, 128, 3), 0.85),
    (TmaTile(128, 64, 4), 0.65),
)


# the one-warpgroup tiles with two k-tiles a stage (the same k-tiles in flight): timed beside
# their one-k-tile twins where K spans PAIRS_FROM_K_TILES k-tiles or more (`paired`)
PAIRED_TILES: tuple[TmaTile, ...] = tuple(
    TmaTile(t.bm, t.bn, t.stages // 2, 2) for t, _ in TMA_TILES if t.groups == 1)
PAIRS_FROM_K_TILES = 8


@dataclass(frozen=True)
class TmaGemm(gemm_wgmma.WgmmaGemm):
    """`gemm_wgmma.WgmmaGemm`'s grid (no split-K, no scratch) over a `TmaTile`."""

    tile: TmaTile  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.splits != 1:  # the TMA main loop walks all of K
            raise ValueError("a TMA-fed wgmma tactic splits no K")

    def tactic(self) -> dict:
        paired = {"stage_tiles": 2} if self.tile.stage_tiles == 2 else {}
        return {"wgmma": self.tile.as_list(), "copy": COPY, **paired}


def ranked(m: int, n: int, k: int, batch: int = 1, sms: int = SM_COUNT) -> list[TmaGemm]:
    """The TMA tiles by `gemm_wgmma.estimated_cost`, best first."""
    m, n, k, batch = typical(m), typical(n), typical(k), typical(batch)
    scored = sorted((gemm_wgmma.estimated_cost(t, e, m, n, k, batch, sms), i, TmaGemm(t))
                    for i, (t, e) in enumerate(TMA_TILES))
    return [g for _, _, g in scored]


def is_tma(tactic: dict | None) -> bool:
    return bool(tactic) and tactic.get("copy") == COPY  # type: ignore[union-attr]


def tma_for(tactic: dict) -> TmaGemm:
    if not {"wgmma", "copy"} <= set(tactic) <= {"wgmma", "copy", "stage_tiles"} \
            or tactic["copy"] != COPY or tactic.get("stage_tiles", 2) != 2:
        raise ValueError(f"tactic {tactic} is not a TMA wgmma tactic")
    tile = TmaTile(*(int(v) for v in tactic["wgmma"]), tactic.get("stage_tiles", 1))
    if tile not in [t for t, _ in TMA_TILES] + list(PAIRED_TILES):
        raise ValueError(f"tactic tile {tile} is not one of the TMA tiles")
    return TmaGemm(tile)


def k_tiles(k: int) -> int:
    """The 128-byte k-tiles of a K of `k` 2-byte units."""
    return -(-k // (ROW_BYTES // 2))


def paired(tactics: list[dict], k: int) -> list[dict]:
    """The two-k-tiles-a-stage twin (`PAIRED_TILES`: half the stages) of each one-warpgroup
    TMA tactic among `tactics`, in their order, none already there, where K (2-byte units)
    spans `PAIRS_FROM_K_TILES` k-tiles or more: timed after the rest."""
    if is_sym(k) or k_tiles(k) < PAIRS_FROM_K_TILES:
        return []
    out: list[dict] = []
    for t in tactics:
        if not is_tma(t) or "stage_tiles" in t:
            continue
        bm, bn, stages = (int(v) for v in t["wgmma"])
        twin = TmaTile(bm, bn, stages // 2, 2) if bm == 64 else None
        if twin in PAIRED_TILES:
            tactic = TmaGemm(twin).tactic()
            if tactic not in tactics and tactic not in out:
                out.append(tactic)
    return out


@dataclass(frozen=True)
class TmaOperand:
    """One GEMM operand as the copy engine reads it: buffer `operand` of the step (0 for A,
    1 for B), `rows` rows of `row_elems` elements (of 2 bytes: halves or int8 pairs) `row_bytes`
    apart, a block's first row `first_row(b, mn0)` (batch item b, tile start mn0)."""

    operand: int
    rows: int
    row_elems: int
    row_bytes: int
    batch_rows: int  # rows between consecutive batch items' matrices; 0: one for all

    def first_row(self, b: str, mn0: str) -> str:
        return f"{b} * {self.batch_rows} + {mn0}" if self.batch_rows else mn0

    def tensor_map(self, box_rows: int) -> TensorMap:
        return TensorMap(self.operand, "u16", (self.row_elems, self.rows), self.row_bytes,
                         (ROW_BYTES // 2, box_rows))


def operand(index: int, mn: int, k: int, row_stride: int, batch_strides: list[int],
            batch: list[int]) -> TmaOperand | None:
    """The TMA view of a K-major operand (element (mn, k) at its batch item's base + mn *
    row_stride + k, in 2-byte elements; `batch_strides` the batch dims' element strides, 0
    where the operand broadcasts, over the broadcast `batch` dims), or None where the copy
    engine cannot read it as whole rows: symbolic sizes, rows not a multiple of 16 bytes
    apart, batch items neither all one matrix nor back to back in order, 2^31 rows or more
    (the kernel's row coordinates are ints)."""
    if any(is_sym(v) for v in (mn, k, row_stride, *batch, *batch_strides)):
        return None
    if row_stride % 8 or k > row_stride:
        return None
    if mn * max(prod(batch), 1) >= 2**31:  # the kernel's row coordinates are 32-bit ints
        return None
    if not any(batch_strides):
        rows, step = mn, 0
    else:
        expect, dense = mn * row_stride, True
        for s, d in zip(reversed(batch_strides), reversed(batch), strict=True):
            dense = dense and s == expect
            expect *= d
        if not dense:
            return None
        rows, step = mn * prod(batch), mn
    return TmaOperand(index, rows, k, row_stride * 2, step)


@dataclass(frozen=True)
class Im2colOperand:
    """A 2-d NHWC conv's activation as A, read by the copy engine through an `Im2colMap`:
    output pixel m is (n, p, q) over (N, P, Q), `out` = (P, Q); its window starts at input
    (p * stride_h - pad_h, q * stride_w - pad_w); K walks blocks of 64 channels, all `kernel`
    = (R, S) taps of one block in turn (`gemm_wgmma.tap_order`), so B's k-tile of tap t and
    block c sits at (t * C / 64 + c) * 64. Buffer `operand` of the step (0: the conv's input;
    3: a shortcut conv's second input), 2-byte elements, `channels` a multiple of 64."""

    dims: tuple[int, int, int, int]  # C, W, H, N of the input
    out: tuple[int, int]  # P, Q (N is dims[3])
    kernel: tuple[int, int]  # R, S
    strides: tuple[int, int]  # h, w
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    dilations: tuple[int, int]  # h, w
    operand: int = 0

    def tensor_map(self, box_rows: int) -> Im2colMap:
        c, w, h, _ = self.dims
        (r, s), (dh, dw) = self.kernel, self.dilations
        top, left, bottom, right = self.pads
        return Im2colMap(self.operand, self.dims, (c * 2, w * c * 2, h * w * c * 2), (-left, -top),
                         (right - (s - 1) * dw, bottom - (r - 1) * dh),
                         (self.strides[1], self.strides[0]), ROW_BYTES // 2, box_rows)

    def producer_setup(self, m0: str) -> list[str]:
        """The first pixel's map coordinates (its window's corner), once per block."""
        p, q = self.out
        return [f"const int q_ = {m0} % {q}, p_ = ({m0} / {q}) % {p}, img_ = {m0} / {q * p};",
                f"const int w_ = q_ * {self.strides[1]} - {self.pads[1]}, "
                f"h_ = p_ * {self.strides[0]} - {self.pads[0]};"]

    def copy(self, dst: str, kt: str, bar: str, tmap: str = "tmap_a"
             ) -> tuple[list[str], str, str]:
        """(lines, A's copy of k-tile `kt` through map `tmap`, B's k offset of that tile)."""
        taps = self.kernel[0] * self.kernel[1]
        per_tap = self.dims[0] // (ROW_BYTES // 2)
        s, (dh, dw) = self.kernel[1], self.dilations
        lines = [f"const int tap_ = {kt} % {taps}, cb_ = {kt} / {taps};"]
        load = (f"tma_load_im2col({dst}, &{tmap}, cb_ * {ROW_BYTES // 2}, w_, h_, img_, "
                f"(unsigned short)((tap_ % {s}) * {dw}), (unsigned short)((tap_ / {s}) * {dh}), "
                f"{bar});")
        return lines, load, f"(tap_ * {per_tap} + cb_) * {ROW_BYTES // 2}"


# the largest filter offset (kernel extent - 1, times the dilation) an im2col copy is given:
# the PTX operands are 16-bit, the 4-d map's corners 8-bit; kept within both
IM2COL_OFFSET_MAX = 127

# the im2col copy (`Im2colOperand`): a kernel that reads its A through one adds it to `helpers`
IM2COL_LOAD = """\
// `pixels` output pixels from the one whose window starts at (w, h) of image n on, each pixel's
// channels [c, c + 64) at filter offset (ow, oh) (zeros off the image), into shared memory at
// dst, completing on bar
__device__ __forceinline__ void tma_load_im2col(void* dst, const TmaDesc* map, int c, int w,
                                                int h, int n, unsigned short ow,
                                                unsigned short oh, unsigned long long* bar) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.im2col"
                 ".mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6], {%7, %8};"
                 :: "r"(smem_addr(dst)), "l"((unsigned long long)map), "r"(c), "r"(w), "r"(h),
                    "r"(n), "r"(smem_addr(bar)), "h"(ow), "h"(oh) : "memory");
}
"""


def twins(tactics: list[dict]) -> list[dict]:
    """The TMA tactic of the same BM x BN as each cp.async wgmma tactic among `tactics` (where
    `TMA_TILES` has one; of those, the one nearest its stages, the deeper on a tie: a 6-stage
    128x128 tile's twin is the 6-stage TMA tile, not the two-resident 3-stage one), in their
    order, none already there."""
    out: list[dict] = []
    for t in tactics:
        if "wgmma" not in t or is_tma(t):
            continue
        bm, bn, stages = (int(v) for v in t["wgmma"])
        same = [tile for tile, _ in TMA_TILES if (tile.bm, tile.bn) == (bm, bn)]
        if not same:
            continue
        twin = TmaGemm(min(same, key=lambda tile: (abs(tile.stages - stages), -tile.stages)))
        tactic = twin.tactic()
        if tactic not in tactics and tactic not in out:
            out.append(tactic)
    return out


# how much faster the TMA-fed loop runs than gemm_wgmma's cp.async loop on the same tile, where K
# spans at least PAYS_FROM_K_TILES k-tiles (H100, FP16, tools/gemm_probe.py's shapes: 4096^3 202
# us against 244 on 128x256; 1024x3072x768 11.8 against 14.5 on 128x192; 1024x768x768 7.1
# against 7.7 on 128x64). A 1x1 conv over 64 channels (one k-tile) gains nothing: ResNet-50's
# layer1 convs kept the cp.async loop when both were timed.
SPEEDUP_OVER_CP_ASYNC = 1.15
PAYS_FROM_K_TILES = 4


def speedup(k: int) -> float:
    """The TMA loop's estimated speed-up over the cp.async loop at depth `k` (2-byte units)."""
    return SPEEDUP_OVER_CP_ASYNC if k_tiles(k) >= PAYS_FROM_K_TILES else 0.95


def helpers(dtype: str, bn: int) -> str:
    """`gemm_wgmma.helpers` plus the mbarrier and bulk tensor copy functions."""
    return gemm_wgmma.helpers(dtype, bn) + """\
struct __align__(64) TmaDesc { unsigned long long w[16]; };  // a CUtensorMap, by value
__device__ __forceinline__ void mbar_init(unsigned long long* bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(smem_addr(bar)), "r"(count));
}
// a tensor map into the cache its copies read it from (an argument: no global memory)
__device__ __forceinline__ void prefetch_tensormap(const TmaDesc* map) {
    asm volatile("prefetch.tensormap [%0];" :: "l"((unsigned long long)map) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_expect_tx(unsigned long long* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;"
                 :: "r"(smem_addr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned long long* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned long long* bar, unsigned parity) {
    const unsigned a = smem_addr(bar);
    unsigned done = 0;
    while (!done)
        asm volatile("{\\n.reg .pred p;\\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\\n"
                     "selp.u32 %0, 1, 0, p;\\n}" : "=r"(done) : "r"(a), "r"(parity) : "memory");
}
// rows [row, row + box rows) x elements [col, col + box elements) of the map's tensor into
// shared memory at dst, completing on bar
__device__ __forceinline__ void tma_load(void* dst, const TmaDesc* map, int col, int row,
                                         unsigned long long* bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
                 " [%0], [%1, {%2, %3}], [%4];"
                 :: "r"(smem_addr(dst)), "l"((unsigned long long)map), "r"(col), "r"(row),
                    "r"(smem_addr(bar)) : "memory");
}
"""


def mainloop(gemm: TmaGemm, m: int, n: int, k: int, a: TmaOperand | Im2colOperand,
             b: TmaOperand, dtype: str, m0: str, n0: str,
             store: Callable[[str, str, str, str], list[str]] | RowStore,
             second: tuple[int, TmaOperand | Im2colOperand] | None = None) -> list[str]:
    """The body of a TMA-fed wgmma GEMM kernel for rows [m0, m0 + BM) x columns [n0, n0 + BN)
    of batch item `b` (a C variable the caller defined) of C; `k` counted in 2-byte elements;
    the kernel takes the maps as `tmap_a`, `tmap_b`. `store` as `gemm_wgmma.mainloop`'s. An
    `Im2colOperand` A (a conv's activation) comes through its im2col map, one copy per tap and
    block of channels. `second` = (k1, A2): A's columns from k1 (a multiple of 64) on are
    another operand's, read through map `tmap_a2` from its column 0 (a shortcut conv's second
    input: a plain `TmaOperand` A over the same rows, or a 1x1 im2col over strided pixels);
    B's k-tile kt stays at kt * 64."""
    narrow = dtype in BYTE_OPERANDS
    if narrow and isinstance(store, RowStore) and not store.takes_sums(staged_sums(dtype)):
        raise ValueError("8-bit wgmma: a staged store must stage the whole sums "
                         "(gemm_mma.staged_sums)")
    if second is not None and (isinstance(a, Im2colOperand) or second[0] % 64
                               or isinstance(second[1], Im2colOperand)
                               and second[1].kernel != (1, 1)):
        raise ValueError("a second A operand follows a plain A at a multiple of 64 columns, "
                         "and an im2col one has a 1x1 filter")
    tile = gemm.tile
    bm, bn, stages, warps = tile.bm, tile.bn, tile.stages, tile.consumers // 32
    bk = ROW_BYTES // 2  # 2-byte elements per k-tile
    if WGMMA_TYPES[dtype][1] != 2:
        raise ValueError(f"TMA wgmma takes 2-byte elements, not {dtype}")
    pair = tile.stage_tiles == 2  # a stage: k-tile 2 j at its start, 2 j + 1 after A's, B's
    a_half, b_half = bm * ROW_BYTES, bn * ROW_BYTES  # one k-tile's A, B in a stage
    a_stage, b_stage = a_half * tile.stage_tiles, b_half * tile.stage_tiles
    a_dst = f"As + s * {a_stage}" + (f" + h * {a_half}" if pair else "")
    b_dst = f"Bs + s * {b_stage}" + (f" + h * {b_half}" if pair else "")
    acc, zero = ("int", "0") if dtype == INT8 else ("float", "0.f")
    if isinstance(a, Im2colOperand):
        if narrow and dtype != INT8:
            raise ValueError(f"an im2col TMA operand takes FP16/BF16 channels or INT8 pairs, "
                             f"not {dtype}")
        a_setup = [f"            {line}" for line in a.producer_setup("m0")]
        pre, a_copy, b_k = a.copy(a_dst, "kt", "&full[s]")
        a_lines = [f"                {line}" for line in [*pre, a_copy]]
    else:
        a_setup = [f"            const int a_row = {a.first_row('b', 'm0')};"]
        a_lines = [f"                tma_load({a_dst}, &tmap_a, kt * {bk}, a_row, &full[s]);"]
        b_k = f"kt * {bk}"
    if second is not None:
        k1, a2 = second
        if isinstance(a2, Im2colOperand):
            a_setup += [f"            {line}" for line in a2.producer_setup("m0")]
            pre, copy2, _ = a2.copy(a_dst, "kt2", "&full[s]", "tmap_a2")
        else:
            a_setup.append(f"            const int a2_row = {a2.first_row('b', 'm0')};")
            pre, copy2 = [], f"tma_load({a_dst}, &tmap_a2, kt2 * {bk}, a2_row, &full[s]);"
        a_lines = [f"                if (kt < {k1 // bk}) {{",
                   *(f"    {line}" for line in a_lines),
                   "                } else {",
                   f"                    const int kt2 = kt - {k1 // bk};",
                   *(f"                    {line}" for line in [*pre, copy2]),
                   "                }"]
    lines = [
        "    extern __shared__ __align__(16) unsigned char smem_raw[];",
        f"    __shared__ __align__(8) unsigned long long full[{stages}], empty[{stages}];",
        "    // the first tile starts at a 1024-byte swizzle atom (an offset from smem_raw:",
        "    // accesses through it stay shared-memory instructions)",
        "    unsigned char* As = smem_raw + ((0u - (unsigned)__cvta_generic_to_shared(smem_raw)) & "
        "1023u);",
        f"    unsigned char* Bs = As + {tile.buffers(gemm.k_tiles(k, dtype)) * a_stage};",
        "    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;",
        "    const int group = warp >> 2;  // consumer warpgroup",
        "    const int wr = (warp & 3) * 16;  // the warp's first row in its warpgroup",
        f"    const int m0 = {m0}, n0 = {n0};",
        f"    const int k_tiles = ({k} + {bk - 1}) / {bk};",
        *(["    const int k_stages = (k_tiles + 1) / 2;  // two k-tiles a stage"] if pair else []),
        "    if (tid == 0) {",
        f"        for (int s = 0; s < {stages}; ++s) {{",
        "            mbar_init(&full[s], 1);",
        f"            mbar_init(&empty[s], {warps});",
        "        }",
        "        mbar_init_fence();",
        "    }",
        f"    if (warp == {warps} && lane == 0) {{  // the producer: its maps into the cache",
        *(f"        prefetch_tensormap(&{m});" for m in _maps(second is not None)),
        "    }",
        "    __syncthreads();",
        "    // what comes before touches no global memory: under programmatic launch it overlaps",
        "    // the kernel ahead, which this waits for here",
        f"    {PDL_SYNC}",
        f"    {acc} frag[{bn // 2}];",
        "    #pragma unroll",
        f"    for (int i = 0; i < {bn // 2}; ++i) frag[i] = {zero};",
        f"    if (warp == {warps}) {{",
        "        // the producer: one thread walks K, a stage ahead of the consumers' frees",
        "        if (lane == 0) {",
        *a_setup,
        f"            const int b_row = {b.first_row('b', 'n0')};",
        *(_paired_producer(tile, a_lines, b_dst, b_k) if pair else [
            "            for (int kt = 0; kt < k_tiles; ++kt) {",
            f"                const int s = kt % {stages};",
            f"                if (kt >= {stages}) mbar_wait(&empty[s], ((kt / {stages}) - 1) & 1);",
            f"                mbar_expect_tx(&full[s], {tile.stage_bytes()});",
            *a_lines,
            f"                tma_load({b_dst}, &tmap_b, {b_k}, b_row, &full[s]);",
            "            }"]),
        "        }",
        "    } else {",
        *(f"    {line}" for line in gemm_wgmma.base_descriptors()),
        *(_paired_consumer(tile, a_stage, b_stage) if pair else [
            "        for (int kt = 0; kt < k_tiles; ++kt) {",
            f"            const int s = kt % {stages};",
            f"            mbar_wait(&full[s], (kt / {stages}) & 1);",
            *(f"        {line}" for line in gemm_wgmma.stage_descriptors("s", a_stage, b_stage)),
            "            wgmma_fence();",
            "            #pragma unroll",
            "            for (int ks = 0; ks < 4; ++ks)  // 32 bytes of k each",
            f"                {gemm_wgmma.batch_call(bn)}",
            "            wgmma_commit();",
            "            wgmma_wait<1>();  // the batch before is done: its stage is free",
            f"            if (kt > 0 && lane == 0) mbar_arrive(&empty[(kt - 1) % {stages}]);",
            "        }"]),
        "        wgmma_wait<0>();",
        "        #pragma unroll",
        f"        for (int i = 0; i < {bn // 2}; ++i) fence_operand(frag[i]);",
        "    }",
        "    const bool consumer = warp < " + f"{warps};",
        "    // accumulator i: row wr + lane / 4 (+ 8 for i % 4 >= 2), column "
        "(i / 4) * 8 + (lane % 4) * 2 + i % 2"]
    if isinstance(store, RowStore):
        assert store.shared_bytes(bm, bn) <= tile.shared_bytes() - 1024, tile
        # the consumers drain the staged tile, the producer warp does not: with a multiple of
        # 128 threads every chunk a thread drains starts at one column, so its per-column
        # inputs (scales, bias) are read once, not once a chunk (each read an L2 round trip
        # the drain waits for: NOTES.md, session 34)
        drain = gemm_epilogue.drain(store, bm, bn, tile.consumers, m, n, "m0", "n0")
        assert drain[0] == "    __syncthreads();" and \
            not any("__syncthreads" in line for line in drain[1:]), drain
        return lines + [
            *gemm_epilogue.declare(store, "As"),
            "    if (consumer) {",
            "        #pragma unroll",
            f"        for (int i = 0; i < {bn // 2}; i += 2)",
            *gemm_epilogue.stage_pair(
                store, "group * 64 + wr + (lane >> 2) + ((i >> 1) & 1) * 8",
                "(i >> 2) * 8 + (lane & 3) * 2", "frag[i]", "frag[i + 1]", "n0", n, bn,
                "            "),
            "    }",
            drain[0],
            "    if (consumer) {",
            *drain[1:],
            "    }"]
    lines += ["    if (consumer) {",
              "    #pragma unroll",
              f"    for (int i = 0; i < {bn // 2}; ++i) {{",
              "        const int m = m0 + group * 64 + wr + (lane >> 2) + ((i >> 1) & 1) * 8;",
              "        const int n = n0 + (i >> 2) * 8 + (lane & 3) * 2 + (i & 1);",
              f"        if (m >= {m} || n >= {n}) continue;"]
    lines += store("m", "n", "frag[i]", "        ")
    lines += ["    }", "    }"]
    return lines


def _paired_producer(tile: TmaTile, a_lines: list[str], b_dst: str, b_k: str) -> list[str]:
    """The producer's loop over stages of two k-tiles (`TmaTile.stage_tiles`): a stage's
    bytes announced for the k-tiles K has (the last stage of an odd count holds one), each
    k-tile's A and B copied into its half (`h`)."""
    stages, one = tile.stages, tile.stage_bytes() // 2
    return [
        "            for (int j = 0; j < k_stages; ++j) {",
        f"                const int s = j % {stages};",
        f"                if (j >= {stages}) mbar_wait(&empty[s], ((j / {stages}) - 1) & 1);",
        f"                mbar_expect_tx(&full[s], (2 * j + 1 < k_tiles ? 2 : 1) * {one});",
        "                #pragma unroll",
        "                for (int h = 0; h < 2; ++h) {",
        "                    const int kt = 2 * j + h;",
        "                    if (kt >= k_tiles) break;",
        *(f"    {line}" for line in a_lines),
        f"                    tma_load({b_dst}, &tmap_b, {b_k}, b_row, &full[s]);",
        "                }",
        "            }"]


def _paired_consumer(tile: TmaTile, a_stage: int, b_stage: int) -> list[str]:
    """The consumers' loop over stages of two k-tiles: one wait, 8 wgmmas (4 where the last
    stage of an odd count holds one k-tile), one commit and one free a stage."""
    stages, bn = tile.stages, tile.bn
    return [
        "        for (int j = 0; j < k_stages; ++j) {",
        f"            const int s = j % {stages};",
        f"            mbar_wait(&full[s], (j / {stages}) & 1);",
        *(f"        {line}" for line in gemm_wgmma.stage_descriptors("s", a_stage, b_stage)),
        f"            const unsigned long long da2 = da + {a_stage // 32}, "
        f"db2 = db + {b_stage // 32};  // the stage's second k-tile",
        "            wgmma_fence();",
        "            #pragma unroll",
        "            for (int ks = 0; ks < 4; ++ks)  // 32 bytes of k each",
        f"                {gemm_wgmma.batch_call(bn)}",
        "            if (2 * j + 1 < k_tiles) {",
        "                #pragma unroll",
        "                for (int ks = 0; ks < 4; ++ks)",
        f"                    {gemm_wgmma.batch_call(bn, 'da2', 'db2')}",
        "            }",
        "            wgmma_commit();",
        "            wgmma_wait<1>();  // the batch before is done: its stage is free",
        f"            if (j > 0 && lane == 0) mbar_arrive(&empty[(j - 1) % {stages}]);",
        "        }"]


def _maps(second: bool) -> list[str]:
    return ["tmap_a", "tmap_b", *(["tmap_a2"] if second else [])]


def parameters(second: bool = False) -> list[str]:
    """The kernel's tensor-map arguments, in `mainloop`'s names (after the pointers); `second`:
    also A's second operand's map (`mainloop`'s `second`), last."""
    return [f"const __grid_constant__ TmaDesc {m}" for m in _maps(second)]
