"""Where a kernel's time goes: one plan step's CUDA kernel and text variants of it, on the GPU.

The step (by name) of a plan, at batch `--batch` (`at_batch`), each of its candidate tactics (or the
`--tactics` given, JSON separated by ";"), and for each the kernel as emitted ("base") and its
`--variants`, compiled with NVRTC, run on the same seeded operands, compared with the base
kernel and timed with CUDA events (the best of 3 x `--repeats` back-to-back launches).

Variants (for staged 8-bit GEMM kernels, the form `gemm_epilogue` writes; one that does not
apply to a kernel is an error naming it):
  pre       the drain's loads of extra inputs (a residual) issued at the kernel's start
  cpre      those loads as cp.async copies into shared memory at the kernel's start (no
            registers held), the drain reading them there
  notail    the drain's epilogue replaced by a byte XOR of staged value and residual
  nohead    the fragments' epilogue (a split's head) replaced by a cast of the sum
  bare      notail and nohead: the main loop, staging and copies alone
  magic     the head's int32 sums to float by an integer add and a float subtract (exact for
            |sum| < 2^22, as a short K's are) instead of a conversion instruction
  lbN       __launch_bounds__ asking N blocks a multiprocessor (fewer registers)
  persistN  each block loops over the M tiles, grid y = N (a persistent grid, no overlap)
  tiledA    (a TMA kernel reading A through an im2col map, BM = BN) A's copies made plain
            tiled copies of B's rows instead: wrong sums, the time without the im2col copies
  nomma     (a TMA kernel) the consumers' wgmmas dropped: the loads, barriers and epilogue
  noload    (a TMA kernel) the producer's copies dropped (it arrives on each stage instead):
            the wgmmas on whatever the buffers hold, barriers and epilogue
  descs     (a wgmma kernel) each wgmma's descriptors converted from its address, as before
            session 33, not stepped from bases made once
  clocks    (a TMA kernel) the kernel as emitted, its thread 0 reading the SM's clock at its
            start, when the first stage is full, after its warpgroup's loop, after every
            consumer's loop and at its end (after a barrier), and the global timer at start and
            end: each phase's cycles a block (median and slowest), the clock rate, the blocks'
            start spread and the kernel's span; it takes one more argument (the record)
  prefetch  (a TMA kernel of before session 35, which did not) its producer thread
            prefetching the tensor maps (`prefetch.tensormap`) before the barriers are made
  nowaitfull  (a TMA kernel) its consumers not waiting for a stage's copies (with noload: the
            loop and the consumers' frees alone)
  nosync    (a TMA kernel) nowaitfull, no frees and no producer loop: the wgmmas and their
            waits alone (wrong sums)
  relaxed   (a TMA kernel) the consumers free stages by relaxed arrives (their wgmmas' reads
            are done at `wgmma_wait`), not release ones (PTX ISA 8.6: NVRTC 12.8 or later)
  depth2    (a TMA kernel, 3 stages or more) two batches of wgmmas left in flight, each
            stage freed two k-tiles later
  warpwait  (a TMA kernel) one lane of each consumer warp waits for a stage's copies, the
            others meet it at __syncwarp (session 34: the consumers' wait cost ~150 cycles a
            k-tile with the stage already full)
  prewait   (a TMA kernel) each consumer tests the next stage's barrier (`mbarrier.test_wait`,
            not blocking) between committing a batch and waiting for the one before, and
            waits at the loop's top only where it was not yet full (CUTLASS's consumer_try_wait)
  A+B       variants applied in turn (e.g. noload+clocks)
  yN        the kernel as emitted on its first N M tiles only (grid y = N): where a one-wave
            grid's blocks contend for L2, fewer of them finish sooner; where each block is
            bound on its own, they take as long
  copy      not the kernel: a grid-stride copy touching the same bytes (every input read
            once, the output written once, 16 bytes a thread at a time): the floor

    python tools/kernel_ab.py PLAN|MANIFEST.json STEP|--residual-convs [--batch 32]
        [--tactics '{"mma": [64, 128, 32, 2, 2, 4], "splits": 1}']
        [--variants notail,nohead,bare,lb6,copy] [--repeats 100] [--seed 0]

Session 29 (H100, layer1's INT8 conv3 + residual at batch 32, mma 64x128): base 37.2 us,
notail 31.5, nohead 32.8, bare 30.3, pre 38.9, lb6 35.2: the structure, not the epilogue's
arithmetic or the occupancy, keeps it from the floor. Session 30: copy 22.15 us (the floor),
magic 37.2 (no gain), persist264 41.8-49.3. With several tactics, a variant that does not
apply to one tactic's kernel is listed as not timed. Needs a GPU.

Session 31 (H100, INT8 at batch 32): cpre lost on every residual conv (layer3's conv3 18.0 ->
18.4 us, layer4's 10.6 -> 11.0). Layer3's 3x3 conv on the im2col TMA loop (128x128x6): base
14.0 us, y1 (one block alone) 13.7, tiledA 14.1, nomma 9.9, noload 13.6: each block is bound
on its own (about 165 cycles of kernel a m64n128k32), not by L2, the im2col copies or the loads.
Session 33 (H100): the instructions alone run at the dense rate (tools/wgmma_rate.py), so what
bounds the block is the loop and epilogue around them. descs (the per-address descriptors of
before) against the stepped ones, us, 300 launches: layer3 3x3 128x128x6 13.94 / 12.98, 64x256x4
12.44 / 12.21; layer4 3x3 64x128x8 14.31 / 13.43; BERT-base's INT8 Q/K/V GEMM at batch 8
128x128x3 11.34 / 10.17, 64x64x8 12.70 / 12.82.
Session 34 (H100, clocks): a block's fill 1500-2200 cycles, epilogue 1800-7500; layer4's 3x3
(one warpgroup of m64n128) 429 cycles a k-tile without loads, 283 with nowaitfull, 264 with
nosync (ideal 256); relaxed and depth2 changed nothing: the consumers' wait on a full stage is
the cost (benchmarks/RESULTS.md, session 34).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import re
import sys

import numpy as np

VARIANTS = ("pre", "cpre", "notail", "nohead", "bare", "magic", "tiledA", "nomma", "noload",
            "descs", "clocks", "prefetch", "nowaitfull", "nosync", "relaxed",
            "depth2", "warpwait", "prewait")
# what `clocks` records a block, in its order: global timer at start and end (ns), then the SM
# clock (cycles since the block's start) at each phase's end, and the multiprocessor
CLOCK_FIELDS = ("start_ns", "end_ns", "first_full", "loop", "all_loops", "end", "sm")
CLOCK_PHASES = (("fill", "first_full", None), ("main loop", "loop", "first_full"),
                ("other warpgroups", "all_loops", "loop"), ("epilogue", "end", "all_loops"))
COPY_GRID = (132 * 8, 1, 1)  # blocks of 256 threads: 8 per multiprocessor of an H100/H200


class VariantError(ValueError):
    """A variant that does not apply to a kernel's text."""


def _drain_loads(src: str, name: str) -> tuple[list[str], int, int, int]:
    """(the kernel's lines, the first and last line of its drain's extra-input loads — the
    `pack16` declaration, then the load loop —, the drain's chunk count), for variant `name`:
    a drain of one pass (every chunk a thread drains in that batch)."""
    lines = src.split("\n")
    at = [k for k, line in enumerate(lines) if re.match(r"\s+pack16 r\d+\[\d+\];", line)]
    if not at or "for (int c0 = tid;" not in lines[at[0] - 1]:
        raise VariantError(f"{name}: no drain loading extra inputs in batches")
    i = at[0]
    total, step = (int(v) for v in re.search(r"c0 < (\d+); c0 \+= (\d+)", lines[i - 1]).groups())
    if total > step:
        raise VariantError(f"{name}: the drain takes more than one pass")
    j, depth = i + 1, 0
    while True:  # the load loop: '#pragma unroll', 'for (...) {' ... '}'
        depth += lines[j].count("{") - lines[j].count("}")
        if depth == 0 and "}" in lines[j]:
            break
        j += 1
    return lines, i, j, total


def pre(src: str) -> str:
    """The drain's first batch of extra-input loads hoisted to just after `m0`, `n0` (a drain
    of one pass: every chunk a thread drains is in that batch)."""
    lines, i, j, _ = _drain_loads(src, "pre")
    block = lines[i:j + 1]
    del lines[i:j + 1]
    start = next(k for k, line in enumerate(lines) if re.match(r"\s+const int m0 = ", line))
    lines[start + 1:start + 1] = ["    " + block[0].strip(), "    {", "    const int c0 = tid;",
                                  *block[1:], "    }"]
    return "\n".join(lines)


def cpre(src: str) -> str:
    """The drain's extra inputs (16-byte loads of a residual) copied into shared memory by
    `cp.async` at the kernel's start, with the first k-tiles' operands (no registers held),
    and the drain reading them there (a drain of one pass)."""
    lines, i, j, total = _drain_loads(src, "cpre")
    load = re.compile(r"(\s+)(r\d+)\[u\]\.v = __ldg\(\(const uint4\*\)&(in\d+)\[oi\]\);")
    names = [m.group(2) for m in map(load.fullmatch, lines[i + 1:j + 1]) if m]
    if not names or any(re.search(r"__ldg|\[oi\]", line) and not load.fullmatch(line)
                        for line in lines[i + 1:j + 1]):
        raise VariantError("cpre: the drain's loads are not 16-byte loads of whole chunks")
    copies = [load.sub(lambda m: f"{m.group(1)}cp_async16(&Rs_{m.group(2)}[c * 16], "
                       f"&{m.group(3)}[oi], true);", line) for line in lines[i + 1:j + 1]]
    for k in range(i + 1, j + 1):
        lines[k] = load.sub(lambda m: f"{m.group(1)}{m.group(2)}[u].v = "
                            f"*(const uint4*)&Rs_{m.group(2)}[c * 16];", lines[k])
    if "void cp_async16(" not in src or "void cp_async_wait(" not in src and \
            "cp_async_wait()" not in src:
        raise VariantError("cpre: the kernel has no cp.async helpers (a TMA-fed loop)")
    # every thread's copies landed before the drain's barrier (a loop that waited on them
    # already: a no-op)
    lines[i - 2:i - 2] = ["    cp_async_wait<0>();"]
    start = next(k for k, line in enumerate(lines) if re.match(r"\s+const int m0 = ", line))
    lines[start + 1:start + 1] = [
        *(f"    __shared__ __align__(16) unsigned char Rs_{name}[{total * 16}];"
          for name in names),
        "    {", "    const int c0 = tid;", *copies, "    }", "    cp_async_commit();"]
    return "\n".join(lines)


def notail(src: str) -> str:
    out, n = re.subn(r"(signed char res;\n)(.*?)(\n\s+h\.e\[e\] = res;)",
                     lambda m: m.group(1) + "                res = acc ^ r3[u].e[e];"
                     + m.group(3), src, flags=re.S)
    if n != 1:
        raise VariantError("notail: no drain applying an epilogue to staged bytes with a "
                           "residual (r3)")
    return out


def nohead(src: str) -> str:
    out, n = re.subn(r"(const int acc = [^\n]*\n)(.*?)(\n\s+q(\d) = \(signed char\)e\d+;)",
                     lambda m: m.group(1) + f"                        q{m.group(4)} = "
                     "(signed char)acc;", src, flags=re.S)
    if n < 2:
        raise VariantError("nohead: no split epilogue's head in the fragments")
    return out


def bare(src: str) -> str:
    return notail(nohead(src))


def magic(src: str) -> str:
    """The head's int32 sum to float through the 1.5 * 2^23 constant (an integer add and a
    float subtract, exact for |sum| < 2^22) instead of a conversion instruction (I2F)."""
    out, n = re.subn(r"const int (e\d+) = acc;(.*?)= \(float\)\(\1\);",
                     lambda m: f"const int {m.group(1)} = acc;{m.group(2)}= __fsub_rn("
                     f"__int_as_float(0x4B400000 + {m.group(1)}), 12582912.0f);", src,
                     flags=re.S)
    if n < 2:
        raise VariantError("magic: no head converting its int32 sum to float")
    return out


def tiledA(src: str) -> str:  # noqa: N802 (the variant's name)
    out, n = re.subn(r"tma_load_im2col\((As \+ s \* (\d+)), &tmap_a, [^;]*\);\n(\s*)"
                     r"tma_load\(Bs \+ s \* (\d+), &tmap_b, ([^;]*)\);",
                     lambda m: f"tma_load({m.group(1)}, &tmap_b, {m.group(5)});\n{m.group(3)}"
                     f"tma_load(Bs + s * {m.group(4)}, &tmap_b, {m.group(5)});"
                     if m.group(2) == m.group(4) else m.group(0), src)
    if n != 1 or "tma_load_im2col(As" in out:
        raise VariantError("tiledA: no im2col copy of A beside a B copy of as many bytes")
    return out


def nomma(src: str) -> str:
    out, n = re.subn(r"\n\s*#pragma unroll\n\s*for \(int ks = 0; ks < 4; \+\+ks\)[^\n]*\n"
                     r"\s*wgmma_\d+\(frag, da \+ ks \* 2, [^;]*\);", "", src)
    if n != 1 or "mbar_wait(&full[s]" not in out:
        raise VariantError("nomma: no TMA consumer loop of wgmmas")
    return out


def descs(src: str) -> str:
    """Each wgmma's descriptors converted from its generic address (`wgmma_desc(as + ks * 32)`,
    ember's loops before session 33) instead of stepped from the bases made before the loop."""
    stages = re.search(r"const unsigned long long da = a_desc \+ (.+?) \* (\d+), "
                       r"db = b_desc \+ \1 \* (\d+);", src)
    if stages is None or "wgmma_desc(As + group * 8192)" not in src:
        raise VariantError("descs: no wgmma loop stepping base descriptors")
    stage, a_units, b_units = stages.groups()
    out, n = re.subn(r"(wgmma_\d+\(frag, )da \+ ks \* 2, db \+ ks \* 2\);",
                     lambda m: f"{m.group(1)}wgmma_desc(As + ({stage}) * {int(a_units) * 16} + "
                     f"group * 8192 + ks * 32), wgmma_desc(Bs + ({stage}) * "
                     f"{int(b_units) * 16} + ks * 32));", src)
    if n != 1:
        raise VariantError("descs: no batch of wgmmas on stepped descriptors")
    return out


def clocks(src: str) -> str:
    """The kernel with thread 0's phase clocks written to one more argument, `ember_clocks_`
    (`CLOCK_FIELDS`, 8 words a block, at its linear block index). Where the epilogue stages no
    outputs, a barrier after the loops (one the kernel has not) marks every consumer's end."""
    head = re.search(r"(extern \"C\" __global__ void (?:__launch_bounds__\([^)]*\) )?\w+\([^)]*)"
                     r"\) \{\n"
                     r"(\s*ember_pdl_sync\(\);\n)?", src)
    wait = re.search(r"for \(int (\w+) = 0; \w+ < k_(?:tiles|stages); \+\+\w+\) \{\n"
                     r"\s*const int s = \w+ % \d+;\n(\s*)mbar_wait\(&full\[s\], [^;]*\);\n", src)
    fence = re.search(r"\n(\s*)for \(int i = 0; i < \d+; \+\+i\) "
                      r"fence_operand\(frag\[i\]\);\n", src)
    staged = re.search(r"\n    __syncthreads\(\);  // the pipeline's shared memory is free[^\n]*\n",
                       src)
    after = staged or re.search(r"\n    const bool consumer = warp < \d+;\n", src)
    if head is None or wait is None or fence is None or after is None \
            or re.search(r"\breturn\b", src[head.end():]):
        raise VariantError("clocks: no TMA consumer loop in a kernel with one exit")
    timer = 'asm volatile("mov.u64 %0, %globaltimer;" : "=l"(ck_gt_[{0}]));'
    record = [
        "    __syncthreads();",
        "    if (tid == 0) {",
        "        ck_[4] = clock64();",
        f"        {timer.format(1)}",
        '        unsigned sm_; asm volatile("mov.u32 %0, %smid;" : "=r"(sm_));',
        "        long long* o_ = ember_clocks_ + 8 * (blockIdx.x + gridDim.x * (blockIdx.y "
        "+ gridDim.y * blockIdx.z));",
        "        o_[0] = (long long)ck_gt_[0]; o_[1] = (long long)ck_gt_[1];",
        "        for (int i = 1; i < 5; ++i) o_[i + 1] = ck_[i] - ck_[0];",
        "        o_[6] = sm_; o_[7] = 0;",
        "    }"]
    marks = [
        (head.end(), "    long long ck_[5]; unsigned long long ck_gt_[2];\n"
         f"    ck_[0] = clock64();\n    {timer.format(0)}\n"),
        (wait.end(), f"{wait.group(2)}if ({wait.group(1)} == 0 && tid == 0) "
                     "ck_[1] = clock64();\n"),
        (fence.end(), f"{fence.group(1)}if (tid == 0) ck_[2] = clock64();\n"),
        (after.end(), ("" if staged else "    __syncthreads();\n")
         + "    if (tid == 0) ck_[3] = clock64();\n"),
        (src.rindex("\n}\n") + 1, "\n".join(record) + "\n")]
    for at, text in sorted(marks, reverse=True):
        src = src[:at] + text + src[at:]
    return src.replace(head.group(1) + ")", head.group(1) + ", long long* __restrict__ "
                       "ember_clocks_)", 1)


def k_tiles(src: str) -> int:
    """The k-tiles of a TMA kernel's loop (its `k_tiles` line)."""
    found = re.search(r"const int k_tiles = \((\d+) \+ (\d+)\) / (\d+);", src)
    return -(-int(found.group(1)) // int(found.group(3))) if found else 1


def clock_report(words: np.ndarray, tiles: int) -> list[str]:
    """The lines `clocks` prints from its record (`CLOCK_FIELDS` x blocks)."""
    rec = {f: words[:, i].astype(np.float64) for i, f in enumerate(CLOCK_FIELDS)}
    ns = rec["end_ns"] - rec["start_ns"]
    ghz = float(np.median(rec["end"][ns > 0] / ns[ns > 0])) if (ns > 0).any() else float("nan")
    lines = []
    for label, stop, start in CLOCK_PHASES:
        cycles = rec[stop] - (rec[start] if start else 0.0)
        extra = f", {np.median(cycles) / tiles:.0f} a k-tile" if label == "main loop" else ""
        lines.append(f"#   {label:17s} median {np.median(cycles):8.0f} cycles, slowest "
                     f"{cycles.max():8.0f}{extra}")
    span = (rec["end_ns"].max() - rec["start_ns"].min()) / 1e3
    spread = (rec["start_ns"].max() - rec["start_ns"].min()) / 1e3
    lines.append(f"#   block median {np.median(rec['end']):.0f} cycles at {ghz:.3f} GHz "
                 f"({np.median(ns) / 1e3:.2f} us); {len(ns)} blocks on "
                 f"{len(np.unique(rec['sm']))} SMs start within {spread:.2f} us; first start "
                 f"to last end {span:.2f} us")
    return lines


def prefetch(src: str) -> str:
    maps = re.findall(r"const __grid_constant__ TmaDesc (\w+)", src)
    at = re.search(r"\n    const int k_tiles = [^\n]*\n", src)
    producer = re.search(r"if \(warp == (\d+)\) \{\n\s*// the producer", src)
    if not maps or at is None or producer is None:
        raise VariantError("prefetch: no TMA producer reading tensor maps")
    if "prefetch_tensormap(" in src:
        raise VariantError("prefetch: the kernel prefetches its maps already (session 35)")
    lines = "".join(f'        asm volatile("prefetch.tensormap [%0];" :: "l"(&{m}) : "memory");\n'
                    for m in maps)
    return (src[:at.end()] + f"    if (warp == {producer.group(1)} && lane == 0) {{\n{lines}"
            "    }\n" + src[at.end():])


def nowaitfull(src: str) -> str:
    out, n = re.subn(r"\n\s*mbar_wait\(&full\[s\], [^;]*\);(?=\n)", "", src)
    if n != 1:
        raise VariantError("nowaitfull: no consumer waiting on a full stage")
    return out


def warpwait(src: str) -> str:
    out, n = re.subn(r"\n(\s*)(mbar_wait\(&full\[s\], [^;]*\);)(?=\n)",
                     lambda m: f"\n{m.group(1)}if (lane == 0) {m.group(2)}\n"
                     f"{m.group(1)}__syncwarp();", src)
    if n != 1:
        raise VariantError("warpwait: no consumer waiting on a full stage")
    return out


MBAR_TEST = """\
__device__ __forceinline__ bool mbar_test(unsigned long long* bar, unsigned parity) {
    unsigned done;
    asm volatile("{\\n.reg .pred p;\\n"
                 "mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\\n"
                 "selp.u32 %0, 1, 0, p;\\n}" : "=r"(done) : "r"(smem_addr(bar)), "r"(parity)
                 : "memory");
    return done != 0;
}
"""


def prewait(src: str) -> str:
    loop = re.search(r"\n(\s*)for \(int kt = 0; kt < k_tiles; \+\+kt\) \{\n"
                     r"\s*const int s = kt % (\d+);\n(\s*)mbar_wait\(&full\[s\], ", src)
    commit = re.search(r"\n(\s*)wgmma_commit\(\);\n(?=\s*wgmma_wait<\d>\(\);)", src)
    head = src.find('extern "C" __global__')
    if loop is None or commit is None or head < 0 or loop.start() < head:
        raise VariantError("prewait: no TMA consumer loop waiting on full stages")
    stages, ind = loop.group(2), commit.group(1)
    probe = (f"{ind}if (kt + 1 < k_tiles) ready_ = mbar_test(&full[(kt + 1) % {stages}], "
             f"((kt + 1) / {stages}) & 1);\n")
    out = src[:commit.end()] + probe + src[commit.end():]
    wait_at = loop.end() - len("mbar_wait(&full[s], ")
    out = (out[:loop.start()] + f"\n{loop.group(1)}bool ready_ = mbar_test(&full[0], 0);"
           + out[loop.start():wait_at] + "if (!ready_) " + out[wait_at:])
    return out[:head] + MBAR_TEST + out[head:]


def nosync(src: str) -> str:
    try:
        out = nowaitfull(src)
    except VariantError:
        raise VariantError("nosync: no consumer waiting on a full stage") from None
    out, n = re.subn(r"\n\s*if \(kt > 0 && lane == 0\) mbar_arrive\(&empty\[[^;]*\);(?=\n)", "",
                     out)
    out, m = re.subn(r"(// the producer[^\n]*\n(?:.*\n){0,12}?\s*for \(int kt = 0; kt < )k_tiles;",
                     r"\g<1>0;", out)
    if n != 1 or m != 1:
        raise VariantError("nosync: no consumer freeing stages and producer loop")
    return out


def depth2(src: str) -> str:
    out, n = re.subn(r"wgmma_wait<1>\(\);(.*)\n(\s*)if \(kt > 0 && lane == 0\) (mbar_arrive\w*)"
                     r"\(&empty\[\(kt - 1\) % (\d+)\]\);",
                     lambda m: f"wgmma_wait<2>();{m.group(1)}\n{m.group(2)}if (kt > 1 && "
                     f"lane == 0) {m.group(3)}(&empty[(kt - 2) % {m.group(4)}]);"
                     if int(m.group(4)) >= 3 else m.group(0), src)
    if n != 1 or "wgmma_wait<2>" not in out:
        raise VariantError("depth2: no TMA consumer loop of 3 stages or more")
    return out


RELAXED_ARRIVE = """\
__device__ __forceinline__ void mbar_arrive_relaxed(unsigned long long* bar) {
    asm volatile("mbarrier.arrive.relaxed.cta.shared::cta.b64 _, [%0];" :: "r"(smem_addr(bar))
                 : "memory");
}
"""


def relaxed(src: str) -> str:
    out, n = re.subn(r"(if \(kt > 0 && lane == 0\) )mbar_arrive\(&empty",
                     r"\1mbar_arrive_relaxed(&empty", src)
    head = out.find('extern "C" __global__')
    if n != 1 or head < 0:
        raise VariantError("relaxed: no consumer freeing stages")
    return out[:head] + RELAXED_ARRIVE + out[head:]


def noload(src: str) -> str:
    out, n = re.subn(r"mbar_expect_tx\(&full\[s\], \d+\);", "mbar_arrive(&full[s]);", src)
    out, m = re.subn(r"\n\s*tma_load(_im2col)?\([^;]*&full\[s\]\);", "", out)
    if n != 1 or not m:
        raise VariantError("noload: no TMA producer loop")
    return out


def launch_bounds(src: str, blocks: int) -> str:
    out, n = re.subn(r"__launch_bounds__\((\d+), \d+\)",
                     lambda m: f"__launch_bounds__({m.group(1)}, {blocks})", src)
    if n != 1:
        raise VariantError("lbN: no __launch_bounds__")
    return out


def persistent(src: str, tiles: int) -> str:
    """Each block loops over the M tiles `blockIdx.y`, `+ gridDim.y`, ... below `tiles`."""
    out, n = re.subn(r"    const int m0 = blockIdx\.y \* (\d+), n0 = blockIdx\.x \* (\d+);",
                     lambda m: f"    for (int mt = blockIdx.y; mt < {tiles}; mt += gridDim.y) "
                     f"{{\n    const int m0 = mt * {m.group(1)}, n0 = blockIdx.x * "
                     f"{m.group(2)};", src)
    if n != 1:
        raise VariantError("persistN: no M tile on grid y (`m0 = blockIdx.y * BM`)")
    end = out.rindex("}")
    return out[:end] + "    __syncthreads();\n    }\n}\n"


def copy_kernel(name: str, sizes: list[int], out_size: int) -> str:
    """A kernel `name` with the pointer parameters of a step (`sizes`: each input's bytes, then
    the output of `out_size`) that reads every input once and writes the output once, 16 bytes
    at a time (an input's tail of under 16 bytes is not read): XOR of what it read, so the
    loads are not dropped."""
    params = [f"const uint4* __restrict__ p{i}" for i in range(len(sizes))]
    chunks = [s // 16 for s in sizes]
    reads = "\n".join(f"        if (i < {c}) {{ uint4 t = p{i}[i]; v.x ^= t.x; v.y ^= t.y; "
                      f"v.z ^= t.z; v.w ^= t.w; }}" for i, c in enumerate(chunks))
    last = max([*chunks, out_size // 16])
    return f"""extern "C" __global__ void {name}({", ".join(params)}, uint4* __restrict__ out) {{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < {last};
         i += (long long)gridDim.x * blockDim.x) {{
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
{reads}
        if (i < {out_size // 16}) out[i] = v;
    }}
}}
"""


def known(name: str) -> bool:
    """Whether `name` is a variant this tool makes (or variants joined by '+')."""
    return all(part in ("base", "copy", *VARIANTS)
               or re.fullmatch(r"(lb|persist|y)\d+", part) is not None
               for part in name.split("+"))


def variant(name: str, spec, kname: str = "", sizes: list[int] | None = None,
            out_size: int = 0):
    """(source, spec) of variant `name` of an emitted kernel `spec` (`kname`, its name, and
    `sizes`, `out_size`, the step's buffers' bytes: for "copy"); "A+B": A, then B on its
    result."""
    if "+" in name:
        parts = name.split("+")
        if "copy" in parts or "base" in parts:
            raise VariantError(f"{name}: copy and base are not combined with other variants")
        source = spec.source
        for part in parts:
            source, spec = variant(part, dataclasses.replace(spec, source=source), kname)
        return source, spec
    if name == "copy":
        if spec.tensor_maps or spec.counter_bytes or spec.workspace_bytes or spec.size_args:
            raise VariantError("copy: the kernel takes more than its pointers")
        return copy_kernel(kname, sizes or [], out_size), dataclasses.replace(
            spec, grid=COPY_GRID, block=(256, 1, 1), shared_bytes=0)
    if name == "base":
        return spec.source, spec
    if name in VARIANTS:
        return globals()[name](spec.source), spec
    if re.fullmatch(r"lb\d+", name):
        return launch_bounds(spec.source, int(name[2:])), spec
    if re.fullmatch(r"persist\d+", name):
        blocks = int(name[7:])
        grid = (spec.grid[0], blocks, spec.grid[2])
        return persistent(spec.source, spec.grid[1]), dataclasses.replace(spec, grid=grid)
    if re.fullmatch(r"y\d+", name):
        if not 1 <= int(name[1:]) <= spec.grid[1]:
            raise VariantError(f"{name}: the kernel has {spec.grid[1]} M tiles (grid y)")
        return spec.source, dataclasses.replace(
            spec, grid=(spec.grid[0], int(name[1:]), spec.grid[2]))
    raise VariantError(f"variant {name!r}: one of base, {', '.join(VARIANTS)}, lbN, persistN, "
                       "yN, copy")


def residual_convs(steps: list[dict]) -> list[str]:
    """The first conv step of each output shape whose epilogue reads an input of that shape (a
    residual), not one computing a shortcut conv's sums: a ResNet's conv3 + residual of each
    stage."""
    found: dict[tuple, str] = {}
    for step in steps:
        params = step["params"]
        out = tuple(params["out_shapes"][0])
        extras = (params.get("epilogue") or {}).get("in_shapes") or []
        if step.get("template") == "conv" and not params.get("shortcut") \
                and any(tuple(shape) == out for shape in extras):
            found.setdefault(out, step["name"])
    return list(found.values())


def at_batch(step: dict, batch: int, plan_batch: int = 1) -> dict:
    """The step at batch `batch` (the plan's being `plan_batch`): its leading dim set to
    `batch` where the step keeps a batch dim (rank 3 and up), scaled by `batch / plan_batch`
    where it is 2-D (a matmul over batch x sequence rows); so are its first input's, and those
    of each epilogue input of the output's rank and leading dim that is not per-column (a
    residual, a shortcut conv's input)."""
    step = copy.deepcopy(step)
    params = step["params"]
    out = params["out_shapes"][0]
    old, rank = out[0], len(out)
    new = batch if rank > 2 else old * batch // plan_batch
    if rank == 2 and (old * batch) % plan_batch:
        raise ValueError(f"{step['name']}: {old} rows at batch {plan_batch} make no whole rows "
                         f"at batch {batch}")
    params["in_shapes"][0][0] = out[0] = new
    for shape in (params.get("epilogue") or {}).get("in_shapes", []):
        if len(shape) == rank and shape[0] == old and any(d != 1 for d in shape[:-1]):
            shape[0] = new
    return step


def operands(params: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """Seeded operands for a step: integers for integer inputs, small positive floats (scales)
    for per-column float inputs, floats near 0.5 for one-element ones."""
    epilogue = params.get("epilogue") or {"in_shapes": [], "in_dtypes": []}
    out = []
    for shape, dtype in [*zip(params["in_shapes"], params["in_dtypes"], strict=True),
                         *zip(epilogue["in_shapes"], epilogue["in_dtypes"], strict=True)]:
        if np.dtype(dtype).kind in "iu":
            info = np.iinfo(dtype)
            out.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1,
                                    shape).astype(dtype))
        elif int(np.prod(shape)) == 1:
            out.append(np.full(shape, 0.5 + 0.3 * rng.random(), dtype))
        else:
            out.append((rng.random(shape) * 2e-3 + 5e-4).astype(dtype))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan")
    parser.add_argument("step", nargs="?")
    parser.add_argument("--residual-convs", action="store_true",
                        help="print the first residual conv step of each output size (comma "
                        "separated) and stop: no GPU needed")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--tactics", help="JSON tactics separated by ';' (default: the step's "
                        "candidates)")
    parser.add_argument("--variants", default="", help="comma list (see the module's help)")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = ["base", *(v for v in args.variants.split(",") if v and v != "base")]
    unknown = [v for v in names if not known(v)]
    if unknown:
        raise SystemExit(f"kernel_ab: unknown variant(s) {', '.join(unknown)} (one of base, "
                         f"{', '.join(VARIANTS)}, lbN, persistN, yN, copy)")

    from ember.codegen.emit_cuda import emit_step
    from ember.codegen.nvrtc import compile_many
    from ember.codegen.templates import conv, matmul
    from ember.compiler.builder import detect_arch
    from ember.errors import CudaError, EmberError
    from ember.runtime import cuda
    from ember.runtime.cuda import cuda_available
    from ember.runtime.plan import read_plan
    from ember.runtime.tensor_maps import arguments

    try:
        if args.plan.endswith(".json"):  # a manifest: the plan's steps without its weights
            with open(args.plan) as f:
                manifest = json.load(f)
        else:
            manifest = read_plan(args.plan).manifest
        steps = {s["name"]: s for s in manifest["steps"]}
    except (EmberError, OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"kernel_ab: {e}") from None
    if args.residual_convs:
        print(",".join(residual_convs(manifest["steps"])))
        return 0
    if args.step is None:
        raise SystemExit("kernel_ab: a STEP to time (or --residual-convs)")
    if args.step not in steps:
        raise SystemExit(f"kernel_ab: no step {args.step!r} in {args.plan} (its steps: "
                         f"{', '.join(steps)})")
    if not cuda_available():
        raise SystemExit("kernel_ab: needs a GPU")
    arch = detect_arch()
    if args.batch is None:
        step = steps[args.step]
    else:
        plan_batch = ((manifest.get("inputs") or [{}])[0].get("shape") or [1])[0]
        try:
            step = at_batch(steps[args.step], args.batch,
                            plan_batch if isinstance(plan_batch, int) and plan_batch > 0 else 1)
        except ValueError as e:
            raise SystemExit(f"kernel_ab: --batch: {e}") from None
    template = {"conv": conv, "matmul": matmul}.get(step["template"])
    if args.tactics:
        try:
            tactics = [json.loads(t) for t in args.tactics.split(";")]
        except ValueError as e:
            raise SystemExit(f"kernel_ab: --tactics: {e}") from None
    elif template is not None:
        tactics = template.tactics(step["params"], arch)
    else:
        tactics = [step["params"].get("tactic")]
    rng = np.random.default_rng(args.seed)
    inputs = operands(step["params"], rng)
    out_shape = step["params"]["out_shapes"][0]
    out_dtype = np.dtype((step["params"].get("epilogue") or {}).get("out_dtype")
                         or step["params"]["out_dtypes"][0])
    out_size = int(np.prod(out_shape)) * out_dtype.itemsize
    jobs, skipped = [], []
    for tactic in tactics:
        params = {**step["params"], "tactic": tactic} if tactic else step["params"]
        kname, spec = emit_step({**step, "params": params})
        for name in names:
            try:
                source, vspec = variant(name, spec, kname, [a.nbytes for a in inputs],
                                        out_size)
            except VariantError as e:  # (with several tactics, one's kernel may lack the part)
                if len(tactics) == 1:
                    raise SystemExit(f"kernel_ab: {e} ({kname}, tactic {tactic})") from None
                skipped.append(f"# {json.dumps(tactic)} {name}: not timed ({e})")
                continue
            jobs.append((tactic, name, kname, vspec, source, params))
    compiled = compile_many([(kname, source) for _, _, kname, _, source, _ in jobs], arch)
    buffers = [cuda.DeviceBuffer(a.nbytes) for a in inputs]
    buffers.append(cuda.DeviceBuffer(out_size))
    for buffer, a in zip(buffers, inputs, strict=False):
        buffer.upload(np.ascontiguousarray(a))
    pointers = [b.ptr for b in buffers]
    stream = cuda.Stream()
    base = None
    print(f"# {args.step} ({step['template']}) of {args.plan}, out {out_shape} {out_dtype}, "
          f"on {arch}")
    for line in skipped:
        print(line)
    for (tactic, name, kname, spec, source, _), kernel in zip(jobs, compiled, strict=True):
        module = cuda.Module.load(kernel.cubin, kernel.ptx, name=kname)
        function = module.function(kname)
        if spec.shared_bytes > 48 * 1024:
            function.set_max_dynamic_shared(spec.shared_bytes)
        blocks = spec.grid[0] * spec.grid[1] * spec.grid[2]
        record = cuda.DeviceBuffer(blocks * 8 * 8) if "clocks" in name.split("+") else None
        packed = cuda.pack_args([("ptr", p) for p in pointers]
                                + arguments(spec.tensor_maps, pointers, kname)
                                + ([("ptr", record.ptr)] if record else []))

        def launch(function=function, spec=spec, packed=packed) -> None:
            cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, stream, packed)

        try:
            launch()
            stream.synchronize()
        except CudaError as e:  # (e.g. a variant's launch the kernel's resources refuse)
            print(f"{json.dumps(tactic):45s} {name:10s} not timed: {e}", flush=True)
            module.unload()
            continue
        got = buffers[-1].download(np.empty(out_shape, out_dtype))
        if name == "base":
            base, check = got, "base"
        else:
            check = "same" if np.array_equal(got, base) else "differs"
        for _ in range(5):
            launch()
        times = []
        for _ in range(3):
            start, end = cuda.Event(), cuda.Event()
            start.record(stream)
            for _ in range(args.repeats):
                launch()
            end.record(stream)
            times.append(start.elapsed_ms(end) * 1e3 / args.repeats)
        print(f"{json.dumps(tactic):45s} {name:10s} {min(times):8.2f} us  registers "
              f"{function.num_regs:3d}  {check}", flush=True)
        if record is not None:  # the last launch's record
            words = record.download(np.empty((blocks, 8), np.int64))
            for line in clock_report(words[:, :len(CLOCK_FIELDS)], k_tiles(source)):
                print(line, flush=True)
        module.unload()
    return 0


if __name__ == "__main__":
    sys.exit(main())
