"""How fast a multiprocessor runs ember's wgmma instructions with nothing else in the way: one
block a multiprocessor, W consumer warpgroups each issuing `gemm_wgmma`'s batch of four
m64nNk(32 bytes) wgmmas a 128-byte k-tile from shared memory (the descriptors and instruction
text of `gemm_wgmma.helpers`, stage buffers walked as the main loop walks them), committing
each batch and waiting until at most DEPTH are in flight; no loads, no epilogue. Each warpgroup
times its loop with clock64, so the figures are SM cycles, whatever the clock: cycles a k-tile,
multiply-adds a cycle per multiprocessor and their % of the tensor cores' dense rate (Hopper:
2048 FP16/BF16 and 4096 INT8/E4M3 multiply-adds a cycle per multiprocessor).

    python tools/wgmma_rate.py [--dtypes int8,float16] [--columns 64,128,256]
        [--warpgroups 1,2] [--depths 0,1] [--a-from shared,registers]
        [--desc computed,precomputed] [--k-tiles 512] [--blocks 132]

`--a-from registers` times the same instruction with A from four registers a thread (wgmma's
RS form, as CUTLASS's register-sourced mainloops issue it): if it runs faster than the
shared-memory form, the operands' shared-memory reads are what limits the rate.

Session 31 found ember's INT8 3x3 convs bound by their wgmmas (`kernel_ab.py --variants
noload`: ~165 cycles an m64n128k32, 40% of the rate): this separates the instruction's own rate
from the loop's. Needs an sm_90 GPU.

Session 33 (H100, depth 1, A from shared memory): INT8 and FP16 alike, N 128 and 256 run at
99.8-100% of the dense rate from one warpgroup, descriptors converted each time or stepped;
m64n64 with descriptors converted each time 68.7% (1 warpgroup), 81.9% (2), 95.1% (4), stepped
99.7-101%. The instruction is not what holds the convs at 40%.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

PEAK = {"float16": 2048, "bfloat16": 2048, "int8": 4096, "float8_e4m3fn": 4096}
STAGES = 4


def rs_helper(dtype: str, bn: int) -> str:
    """`wgmma_rs_{bn}(d, a, db)`: the wgmma of `gemm_wgmma.helpers` with A from four registers a
    thread (64 x 32 bytes of A over the warpgroup's 128 threads) instead of shared memory."""
    from ember.codegen.templates import gemm_wgmma

    ptx = gemm_wgmma.WGMMA_TYPES[dtype][0]
    integer, narrow = dtype == "int8", ptx in ("s8", "e4m3")
    kk = 32 if narrow else 16
    regs = bn // 2
    acc, reg = ("int", "r") if integer else ("float", "f")
    outs = ", ".join(f"%{i}" for i in range(regs))
    binds = ", ".join(f'"+{reg}"(d[{i}])' for i in range(regs))
    # integer: no scales; FP8: scale-a, scale-b; halves: and transpose-b (A in registers is
    # never transposed)
    imm = "" if integer else ", 1, 1" if narrow else ", 1, 1, 0"
    types = "s32.s8.s8" if integer else f"f32.{ptx}.{ptx}"
    a = ", ".join(f"%{regs + i}" for i in range(4))
    return f"""\
__device__ __forceinline__ void wgmma_rs_{bn}({acc}* d, const unsigned* a,
                                            unsigned long long db) {{
    asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, 1, 0;\\n"
                 "wgmma.mma_async.sync.aligned.m64n{bn}k{kk}.{types} "
                 "{{{outs}}}, {{{a}}}, %{regs + 4}, p{imm};\\n}}"
                 : {binds}
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));
}}
"""


def kernel_source(name: str, dtype: str, bn: int, groups: int, depth: int, k_tiles: int,
                  a_registers: bool = False, precomputed: bool = False) -> str:
    """A kernel `name(unsigned long long* cycles, int* sink)`: `groups` warpgroups, each
    `k_tiles` k-tiles of four wgmma m64n{bn} over STAGES stage buffers (`a_registers`: A from
    registers, only B from the buffers), its cycles in cycles[block * groups + group].
    `precomputed`: each descriptor is a base made once before the loop plus the stage's and the
    step's offsets (as CUTLASS steps them), not `wgmma_desc` of a generic pointer each time."""
    from ember.codegen.templates import gemm_wgmma

    if not 0 <= depth <= 7:
        raise ValueError(f"depth {depth}: wgmma.wait_group takes 0 to 7")
    if not 8 <= bn <= 256 or bn % (8 if bn <= 24 else 16) or not 1 <= groups <= 4:
        raise ValueError(f"wgmma m64n{bn} x {groups} warpgroup(s): N 8, 16, 24 or a multiple "
                         "of 16 up to 256, 1 to 4 warpgroups")
    if not fits(bn, groups):
        raise ValueError(f"wgmma m64n{bn} x {groups} warpgroups: {bn // 2} accumulator "
                         f"registers a thread, and {128 * groups} threads get at most "
                         f"{65536 // (128 * groups)} each")
    row = gemm_wgmma.ROW_BYTES
    a_stage, b_stage = 64 * groups * row, bn * row
    acc, zero = ("int", "0") if dtype == "int8" else ("float", "0.f")
    if precomputed:  # ember's own lines (gemm_wgmma): bases made once, stepped in the loop
        da, db = "da + ks * 2", "db + ks * 2"
    else:
        da, db = "wgmma_desc(as + ks * 32)", "wgmma_desc(bs + ks * 32)"
    if a_registers:
        call = f"wgmma_rs_{bn}(frag, a_frag[ks], {db});"
    else:
        call = f"wgmma_{bn}(frag, {da}, {db});"
    a_frag = ("    unsigned a_frag[4][4];\n    #pragma unroll\n    for (int i = 0; i < 16; ++i) "
              "a_frag[i / 4][i % 4] = threadIdx.x * 0u;\n") if a_registers else ""
    if precomputed:
        bases = "\n".join(gemm_wgmma.base_descriptors()) + "\n"
        a_line = "".join(f"    {line}\n" for line in gemm_wgmma.stage_descriptors(
            f"(kt % {STAGES})", a_stage, b_stage))
        b_line = ""
    else:
        bases = ""
        a_line = "" if a_registers else (f"        const unsigned char* as = As + (kt % {STAGES})"
                                         f" * {a_stage} + group * {64 * row};\n")
        b_line = f"        const unsigned char* bs = Bs + (kt % {STAGES}) * {b_stage};\n"
    helpers = gemm_wgmma.helpers(dtype, bn) + (rs_helper(dtype, bn) if a_registers else "")
    return gemm_wgmma.ARCH_SPECIFIC + "\n" + helpers + f"""
extern "C" __global__ void __launch_bounds__({128 * groups}, 1)
{name}(unsigned long long* __restrict__ cycles, int* __restrict__ sink) {{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char* As = smem_raw + ((0u - (unsigned)__cvta_generic_to_shared(smem_raw)) & 1023u);
    unsigned char* Bs = As + {STAGES * a_stage};
    for (int i = threadIdx.x; i < {STAGES * (a_stage + b_stage) // 16}; i += blockDim.x)
        ((uint4*)As)[i] = make_uint4(0u, 0u, 0u, 0u);
    __syncthreads();
    const int group = threadIdx.x >> 7;
    {acc} frag[{bn // 2}];
    #pragma unroll
    for (int i = 0; i < {bn // 2}; ++i) frag[i] = {zero};
{a_frag}{bases}    const long long t0 = clock64();
    for (int kt = 0; kt < {k_tiles}; ++kt) {{
{a_line}{b_line}        wgmma_fence();
        #pragma unroll
        for (int ks = 0; ks < 4; ++ks)
            {call}
        wgmma_commit();
        wgmma_wait<{depth}>();
    }}
    wgmma_wait<0>();
    #pragma unroll
    for (int i = 0; i < {bn // 2}; ++i) fence_operand(frag[i]);
    const long long t1 = clock64();
    if ((threadIdx.x & 127) == 0) cycles[blockIdx.x * {groups} + group] = t1 - t0;
    {acc} s = {zero};
    #pragma unroll
    for (int i = 0; i < {bn // 2}; ++i) s += frag[i];
    if (s == ({acc})12345) sink[0] = 1;  // (the sums stay live)
}}
"""


def fits(bn: int, groups: int) -> bool:
    """Whether `groups` warpgroups of m64n{bn} accumulators (bn / 2 registers a thread, plus
    ~30 for the rest) fit a multiprocessor's 64K registers (at most 255 a thread)."""
    return bn // 2 + 30 <= min(255, 65536 // (128 * groups))


def shared_bytes(groups: int, bn: int) -> int:
    return STAGES * (64 * groups + bn) * 128 + 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="int8,float16")
    parser.add_argument("--columns", default="64,128,192,256", help="wgmma N, comma list")
    parser.add_argument("--warpgroups", default="1,2", help="consumer warpgroups a block")
    parser.add_argument("--depths", default="1", help="wgmma batches left in flight")
    parser.add_argument("--a-from", default="shared", help="shared, registers or both")
    parser.add_argument("--desc", default="computed",
                        help="computed (wgmma_desc of each address: ember's loops before "
                        "session 33), precomputed (a base plus offsets, as they are now) or both")
    parser.add_argument("--k-tiles", type=int, default=512)
    parser.add_argument("--blocks", type=int, default=132, help="one a multiprocessor")
    args = parser.parse_args(argv)
    try:
        dtypes = args.dtypes.split(",")
        unknown = [d for d in dtypes if d not in PEAK]
        if unknown:
            raise ValueError(f"--dtypes: {', '.join(unknown)} (one of {', '.join(PEAK)})")
        if args.k_tiles < 1 or args.blocks < 1:
            raise ValueError("--k-tiles and --blocks: 1 or more")
        sources_of_a = args.a_from.split(",")
        if not set(sources_of_a) <= {"shared", "registers"}:
            raise ValueError(f"--a-from: {args.a_from} (shared, registers or both)")
        descs = args.desc.split(",")
        if not set(descs) <= {"computed", "precomputed"}:
            raise ValueError(f"--desc: {args.desc} (computed, precomputed or both)")
        cases = [(d, int(n), int(w), int(depth), a, desc) for d in dtypes
                 for n in args.columns.split(",") for w in args.warpgroups.split(",")
                 for depth in args.depths.split(",") for a in sources_of_a for desc in descs]
        unfit = sorted({(n, w) for _, n, w, *_ in cases if not fits(n, w)})
        cases = [c for c in cases if fits(c[1], c[2])]
        if not cases:
            raise ValueError("no case fits the registers (m64nN x warpgroups)")
        sources = [(f"rate_{i}", kernel_source(f"rate_{i}", d, n, w, depth, args.k_tiles,
                                               a == "registers", desc == "precomputed"))
                   for i, (d, n, w, depth, a, desc) in enumerate(cases)]
    except ValueError as e:
        raise SystemExit(f"wgmma_rate: {e}") from None

    from ember.codegen.nvrtc import compile_many
    from ember.runtime import cuda
    from ember.runtime.cuda import cuda_available

    if not cuda_available():
        raise SystemExit("wgmma_rate: needs a GPU")
    compiled = compile_many(sources, "sm_90")
    print(f"# {args.blocks} blocks, {args.k_tiles} k-tiles each (4 wgmmas a warpgroup), "
          "cycles by clock64")
    for n, w in unfit:
        print(f"# not run: m64n{n} x {w} warpgroups ({n // 2} accumulator registers a thread "
              "do not fit)")
    print(f"{'dtype':14s} {'wgmma':10s} {'A':9s} {'desc':11s} {'groups':>6s} {'depth':>5s} "
          f"{'cyc/k-tile':>10s} "
          f"{'SM cyc/wgmma':>12s} {'MAC/cyc/SM':>10s} {'% peak':>7s}")
    for (dtype, bn, groups, depth, a, desc), (name, _), kernel in zip(cases, sources, compiled,
                                                                 strict=True):
        module = cuda.Module.load(kernel.cubin, kernel.ptx, name=name)
        function = module.function(name)
        # at least 120 KB: one block a multiprocessor, whatever the stages take
        shared = max(shared_bytes(groups, bn), 120 * 1024)
        if shared > 48 * 1024:
            function.set_max_dynamic_shared(shared)
        out = cuda.DeviceBuffer(args.blocks * groups * 8)
        sink = cuda.DeviceBuffer(4)
        packed = cuda.pack_args([("ptr", out.ptr), ("ptr", sink.ptr)])
        for _ in range(2):  # the second run is the one read
            cuda.launch(function, (args.blocks, 1, 1), (128 * groups, 1, 1), shared, None,
                        packed)
        cycles = out.download(np.empty(args.blocks * groups, np.uint64)).astype(np.float64)
        module.unload()
        per_tile = float(np.median(cycles)) / args.k_tiles
        k = 128 if dtype in ("int8", "float8_e4m3fn") else 64  # elements a 128-byte k-tile
        macs = groups * 64 * bn * k / per_tile
        kk = 32 if k == 128 else 16
        print(f"{dtype:14s} m64n{bn}k{kk:<4d} {a:9s} {desc:11s} {groups:6d} {depth:5d} "
              f"{per_tile:10.1f} "
              f"{per_tile / (4 * groups):12.1f} {macs:10.0f} {100 * macs / PEAK[dtype]:6.1f}%",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
