"""Run a tensor-core kernel's CUDA C on the CPU (g++), for tests on machines without a GPU: one OS
thread per CUDA thread, `__syncthreads` and the warp collectives (`__shfl_xor_sync`, `ldmatrix`
x4 with and without .trans, `mma.sync.m16n8k16` with FP32 accumulation, `m16n8k32` s8 with
s32 accumulation) emulated per the PTX
ISA's fragment layouts, `cp.async` copies deferred to the `cp.async.wait_group` that covers them
(the latest the hardware may do them) and shared memory filled with NaNs: exactly the kernel's
`shared_bytes`, followed by a guard whose bytes are checked after every block (a kernel that
writes past what it allocates fails the run). The kernel's inline-PTX
helpers are dropped and replaced by these; the emulation of the layouts is itself checked on
`gemm_mma`'s GPU-verified GEMM (tests/codegen/test_attention_mma.py)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ember.codegen.scalar_c import HALF_PRELUDE
from ember.codegen.templates import KernelSpec

HEADER = r"""
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
using std::max;
using std::min;
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(a, b)
#define __restrict__
#define __align__(n) alignas(n)
#define __shared__ static  // one block runs at a time: its threads share it (not refilled
                           // with NaNs per block as g_smem is: a block sees the last one's)
struct Dim3 { unsigned x, y, z; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(4) char4 { signed char x, y, z, w; };
struct alignas(4) uchar4 { unsigned char x, y, z, w; };
static inline char4 make_char4(signed char x, signed char y, signed char z, signed char w) {
    return {x, y, z, w};
}
static inline uchar4 make_uchar4(unsigned char x, unsigned char y, unsigned char z,
                                 unsigned char w) {
    return {x, y, z, w};
}
static inline int2 make_int2(int x, int y) { return {x, y}; }
static inline float2 make_float2(float x, float y) { return {x, y}; }
thread_local Dim3 threadIdx, blockIdx;
static Dim3 blockDim, gridDim;
static std::barrier<>* g_block_bar;
static std::barrier<>* g_warp_bar[32];
// the kernel's dynamic shared memory: its last g_smem_bytes (EMU_SHARED_BYTES) before a guard
#ifndef EMU_SHARED_BYTES
#define EMU_SHARED_BYTES (256 * 1024)
#endif
static const int g_smem_bytes = EMU_SHARED_BYTES;
static const int g_guard_bytes = 64 * 1024;
alignas(16) static unsigned char g_arena[256 * 1024 + 64 * 1024];
static unsigned char* const g_smem = g_arena + ((256 * 1024 - g_smem_bytes) & ~15);
static unsigned char* const g_guard = g_smem + g_smem_bytes;
static inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
static inline void ember_pdl_sync() {}  // a kernel runs alone here: nothing to wait for
static inline int my_lane() { return threadIdx.x & 31; }
static inline int my_warp() { return threadIdx.x >> 5; }
static inline void warp_sync() { g_warp_bar[my_warp()]->arrive_and_wait(); }
template <typename T> static inline T __ldg(const T* p) { return *p; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
    return {x, y, z, w};
}
static inline unsigned __vmaxs4(unsigned a, unsigned b) {  // four signed bytes' maxima
    unsigned r = 0;
    for (int i = 0; i < 32; i += 8) {
        const signed char x = (signed char)(a >> i), y = (signed char)(b >> i);
        r |= (unsigned)(unsigned char)(x > y ? x : y) << i;
    }
    return r;
}
static inline unsigned __vmaxu4(unsigned a, unsigned b) {  // four unsigned bytes' maxima
    unsigned r = 0;
    for (int i = 0; i < 32; i += 8) {
        const unsigned x = (a >> i) & 0xffu, y = (b >> i) & 0xffu;
        r |= (x > y ? x : y) << i;
    }
    return r;
}
static inline void ember_store16(void* p, uint4 v) {  // st.global.v4
    if ((uintptr_t)p % 16) {
        fprintf(stderr, "st.global.v4: a 16-byte store not 16-byte aligned\n");
        abort();
    }
    memcpy(p, &v, 16);
}
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __frcp_rn(float a) { return 1.0f / a; }
static inline int __float2int_rn(float a) { return (int)nearbyintf(a); }  // to nearest even

// half storage, conversions rounding to nearest even (as cvt.rn)
struct alignas(2) ember_half { unsigned short bits; };
struct alignas(2) ember_bf16 { unsigned short bits; };
struct alignas(4) ember_half2 { ember_half x, y; };
struct alignas(4) ember_bf162 { ember_bf16 x, y; };
static inline float ember_load(ember_half h) {
    const unsigned s = (h.bits & 0x8000u) << 16, e = (h.bits >> 10) & 0x1fu, m = h.bits & 0x3ffu;
    if (e == 0) return (s ? -1.f : 1.f) * ldexpf((float)m, -24);
    if (e == 31) return __uint_as_float(s | 0x7f800000u | (m << 13));
    return __uint_as_float(s | ((e + 112) << 23) | (m << 13));
}
static inline float ember_load(ember_bf16 h) { return __uint_as_float((unsigned)h.bits << 16); }
static inline ember_half ember_to_half(float f) {
    const unsigned x = __float_as_uint(f), sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    ember_half h;
    if (a > 0x7f800000u) { h.bits = (unsigned short)(sign | 0x7e00u); return h; }
    if (a >= 0x477ff000u) { h.bits = (unsigned short)(sign | 0x7c00u); return h; }
    if (a < 0x38800000u) {  // a half subnormal: exact scaling, then round to nearest even
        h.bits = (unsigned short)(sign | (unsigned)lrintf(__uint_as_float(a) * 16777216.f));
        return h;
    }
    unsigned r = (((a >> 23) - 112) << 10) | ((a & 0x7fffffu) >> 13);
    const unsigned rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) ++r;
    h.bits = (unsigned short)(sign | r);
    return h;
}
static inline ember_bf16 ember_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    ember_bf16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) { h.bits = (unsigned short)((u >> 16) | 0x40u); return h; }
    u += 0x7fffu + ((u >> 16) & 1u);
    h.bits = (unsigned short)(u >> 16);
    return h;
}
static inline float ember_round_half(float f) { return ember_load(ember_to_half(f)); }
static inline float ember_round_bf16(float f) { return ember_load(ember_to_bf16(f)); }
#ifdef EMU_BF16
static inline float op_float(unsigned short b) { return ember_load(ember_bf16{b}); }
static inline unsigned short op_bits(float f) { return ember_to_bf16(f).bits; }
#else
static inline float op_float(unsigned short b) { return ember_load(ember_half{b}); }
static inline unsigned short op_bits(float f) { return ember_to_half(f).bits; }
#endif
static inline unsigned pack2(float lo, float hi) {
    return op_bits(lo) | ((unsigned)op_bits(hi) << 16);
}

// cp.async: a thread's committed groups, copied when a wait leaves fewer pending
struct Copy { void* dst; const void* src; bool valid; };
thread_local std::vector<std::vector<Copy>> t_groups;
thread_local std::vector<Copy> t_open;
static inline void cp_async16(void* dst, const void* src, bool valid) {
    if ((uintptr_t)dst % 16 || (valid && (uintptr_t)src % 16)) {
        fprintf(stderr, "cp.async: a 16-byte copy not 16-byte aligned\n");
        abort();
    }
    t_open.push_back({dst, src, valid});
}
static inline void cp_async_commit() { t_groups.push_back(t_open); t_open.clear(); }
template <int N> static inline void cp_async_wait() {
    while ((int)t_groups.size() > N) {
        for (const Copy& c : t_groups.front()) {
            if (c.valid) memcpy(c.dst, c.src, 16); else memset(c.dst, 0, 16);
        }
        t_groups.erase(t_groups.begin());
    }
}

// warp collectives: every lane posts, the warp meets, every lane reads, the warp meets again
static const void* x_ptr[32][32];
static unsigned x_reg[32][32][6];
static float x_f[32][32];
static inline float __shfl_xor_sync(unsigned, float v, int o) {
    const int w = my_warp(), l = my_lane();
    x_f[w][l] = v;
    warp_sync();
    const float r = x_f[w][l ^ o];
    warp_sync();
    return r;
}
static inline void post_rows(const void* p) {
    if ((uintptr_t)p % 16) { fprintf(stderr, "ldmatrix: row not 16-byte aligned\n"); abort(); }
    x_ptr[my_warp()][my_lane()] = p;
    warp_sync();
}
// matrix i's rows come from lanes 8 i .. 8 i + 7; lane l holds row l / 4, columns 2 (l % 4) + 0, 1
static inline void ldsm_x4(unsigned* r, const void* p) {
    const int w = my_warp(), l = my_lane();
    post_rows(p);
    for (int i = 0; i < 4; ++i) {
        const unsigned short* row = (const unsigned short*)x_ptr[w][8 * i + l / 4];
        r[i] = row[2 * (l % 4)] | ((unsigned)row[2 * (l % 4) + 1] << 16);
    }
    warp_sync();
}
// .trans: lane l holds column l / 4 of rows 2 (l % 4) + 0, 1
static inline void ldsm_x4_trans(unsigned* r, const void* p) {
    const int w = my_warp(), l = my_lane();
    post_rows(p);
    for (int i = 0; i < 4; ++i) {
        const unsigned short* r0 = (const unsigned short*)x_ptr[w][8 * i + 2 * (l % 4)];
        const unsigned short* r1 = (const unsigned short*)x_ptr[w][8 * i + 2 * (l % 4) + 1];
        r[i] = r0[l / 4] | ((unsigned)r1[l / 4] << 16);
    }
    warp_sync();
}
static inline float half_of(unsigned reg, int hi) {
    return op_float((unsigned short)(hi ? reg >> 16 : reg & 0xffffu));
}
// m16n8k16, lane = 4 g + t: A a0 (row g, k 2t, 2t + 1), a1 (row g + 8), a2 (k + 8), a3 (both);
// B b0 (k 2t, 2t + 1, column g), b1 (k + 8); C c0 c1 (row g, columns 2t, 2t + 1), c2 c3 (g + 8)
static inline void mma_16816(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    const int w = my_warp(), l = my_lane();
    for (int i = 0; i < 4; ++i) x_reg[w][l][i] = a[i];
    x_reg[w][l][4] = b0;
    x_reg[w][l][5] = b1;
    warp_sync();
    float out[4];
    const int g = l / 4, t = l % 4;
    for (int e = 0; e < 4; ++e) {
        const int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
        float acc = c[e];
        for (int k = 0; k < 16; ++k) {
            const unsigned ra = x_reg[w][4 * (row % 8) + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)];
            const unsigned rb = x_reg[w][4 * col + (k % 8) / 2][4 + (k >= 8)];
            acc += half_of(ra, k % 2) * half_of(rb, k % 2);
        }
        out[e] = acc;
    }
    warp_sync();
    for (int e = 0; e < 4; ++e) c[e] = out[e];
}

// m16n8k32 s8 (row.col), lane = 4 g + t: A a0 (row g, k 4t..4t + 3, one byte each), a1 (row
// g + 8), a2 (k + 16), a3 (both); B b0 (k 4t..4t + 3, column g), b1 (k + 16); C as m16n8k16
static inline int s8_of(unsigned reg, int byte) { return (signed char)(reg >> (8 * byte)); }
// the same fragment layout over E4M3 bytes (float accumulators)
static inline float e4m3_of(unsigned reg, int byte) {
    const unsigned b = (reg >> (8 * byte)) & 0xffu, e = (b >> 3) & 15u, m = b & 7u;
    const float mag = (b & 0x7fu) == 0x7fu ? NAN : e ? ldexpf(1.0f + m / 8.0f, (int)e - 7)
                                                    : ldexpf((float)m, -9);
    return (b & 0x80u) ? -mag : mag;
}
template <typename T, typename F>
static inline void mma_16832(T* c, const unsigned* a, unsigned b0, unsigned b1, F value_of) {
    const int w = my_warp(), l = my_lane();
    for (int i = 0; i < 4; ++i) x_reg[w][l][i] = a[i];
    x_reg[w][l][4] = b0;
    x_reg[w][l][5] = b1;
    warp_sync();
    T out[4];
    const int g = l / 4, t = l % 4;
    for (int e = 0; e < 4; ++e) {
        const int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
        T acc = c[e];
        for (int k = 0; k < 32; ++k) {
            const unsigned ra = x_reg[w][4 * (row % 8) + (k % 16) / 4][(row >= 8) + 2 * (k >= 16)];
            const unsigned rb = x_reg[w][4 * col + (k % 16) / 4][4 + (k >= 16)];
            acc += value_of(ra, k % 4) * value_of(rb, k % 4);
        }
        out[e] = acc;
    }
    warp_sync();
    for (int e = 0; e < 4; ++e) c[e] = out[e];
}
static inline void mma_16832_s8(int* c, const unsigned* a, unsigned b0, unsigned b1) {
    mma_16832(c, a, b0, b1, s8_of);
}
static inline void mma_16832_e4m3(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    mma_16832(c, a, b0, b1, e4m3_of);
}

template <typename F>
static void emu_launch(Dim3 grid, Dim3 block, F kernel) {
    gridDim = grid;
    blockDim = block;
    const int n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
    for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::barrier<> bb(n);
        g_block_bar = &bb;
        std::vector<std::barrier<>*> warps;
        for (int w = 0; w < (n + 31) / 32; ++w) {
            warps.push_back(new std::barrier<>(32));
            g_warp_bar[w] = warps.back();
        }
        memset(g_smem, 0xff, g_smem_bytes);  // NaN halves: what no copy wrote
        memset(g_guard, 0xa5, g_guard_bytes);
        std::vector<std::thread> threads;
        for (int t = 0; t < n; ++t)
            threads.emplace_back([=] {
                threadIdx = {(unsigned)t, 0, 0};
                blockIdx = {bx, by, bz};
                kernel();
            });
        for (std::thread& t : threads) t.join();
        for (std::barrier<>* b : warps) delete b;
        for (int i = 0; i < g_guard_bytes; ++i)
            if (g_guard[i] != 0xa5) {
                fprintf(stderr, "shared memory written past the kernel's %d bytes (byte %d)\n",
                        g_smem_bytes, g_smem_bytes + i);
                exit(3);
            }
    }
}
"""


def available() -> bool:
    return shutil.which("g++") is not None


def _without_ptx_helpers(source: str) -> str:
    """The kernel text without the half prelude and the top-level functions holding inline
    PTX (this module's HEADER defines their emulations); shared memory from the emulator."""
    text = source.replace(HALF_PRELUDE, "")
    kept: list[str] = []
    block: list[str] = []
    depth = 0
    for line in text.split("\n"):
        if block or re.match(r"(template\b|__device__)", line):
            block.append(line)
            depth += line.count("{") - line.count("}")
            if depth == 0 and "{" in "".join(block):
                if "asm" not in "\n".join(block):
                    kept += block
                block = []
            continue
        kept.append(line)
    text = "\n".join(kept)
    text = re.sub(r"extern __shared__ (?:__align__\(\d+\) )?([\w ]+?) (\w+)\[\];",
                  r"\1* \2 = (\1*)g_smem;", text)
    # static shared arrays: `__shared__` is `static` (HEADER), which goes after an alignment
    text = re.sub(r"__shared__ __align__\((\d+)\)", r"alignas(\1) static", text)
    assert "asm" not in text, "inline PTX the emulator does not know"
    return text


def run(spec: KernelSpec, name: str, inputs: list[np.ndarray], out_shape: list[int],
        out_dtype: np.dtype, workdir: Path) -> np.ndarray:
    """Launch kernel `name` of `spec` (pointer arguments: the inputs, then one result) on the
    emulated GPU; the result starts as NaNs (0xff bytes)."""
    return run_outputs(spec, name, inputs, [out_shape], [out_dtype], workdir)[0]


def run_outputs(spec: KernelSpec, name: str, inputs: list[np.ndarray],
                out_shapes: list, out_dtypes: list, workdir: Path) -> list[np.ndarray]:
    """`run` for a kernel of several results (pointer arguments: the inputs, then the results,
    each starting as NaNs)."""
    source = _without_ptx_helpers(spec.source)
    sig = re.search(r"void (?:__launch_bounds__\(\d+, \d+\) )?" + name + r"\((.*?)\) \{",
                    source)
    assert sig, "no kernel signature"
    types = [arg.rsplit("*", 1)[0].replace("__restrict__", "").strip()
             for arg in sig.group(1).split(",")]
    n_out = len(out_shapes)
    assert len(types) == len(inputs) + n_out, types
    out_bytes = [int(np.prod(shape)) * np.dtype(dt).itemsize
                 for shape, dt in zip(out_shapes, out_dtypes, strict=True)]
    main = ["int main(int argc, char** argv) {",
            "    std::vector<std::vector<unsigned char>> bufs;",
            f"    for (int i = 1; i <= {len(inputs)}; ++i) {{",
            "        FILE* f = fopen(argv[i], \"rb\");",
            "        std::vector<unsigned char> b;",
            "        for (int c; (c = fgetc(f)) != EOF;) b.push_back((unsigned char)c);",
            "        fclose(f);",
            "        bufs.push_back(b);",
            "    }"]
    main += [f"    std::vector<unsigned char> out{k}({n}, 0xff);" for k, n in enumerate(out_bytes)]
    args = [f"({t}*)bufs[{i}].data()" for i, t in enumerate(types[: len(inputs)])]
    args += [f"({t}*)out{k}.data()" for k, t in enumerate(types[len(inputs):])]
    (gx, gy, gz), (bx, by, bz) = spec.grid, spec.block
    main += [f"    emu_launch({{{gx}, {gy}, {gz}}}, {{{bx}, {by}, {bz}}}, [&] {{ "
             f"{name}({', '.join(args)}); }});"]
    for k, n in enumerate(out_bytes):
        main += [f"    {{ FILE* f = fopen(argv[{len(inputs) + 1 + k}], \"wb\");",
                 f"      fwrite(out{k}.data(), 1, {n}, f); fclose(f); }}"]
    main += ["    return 0;", "}"]
    program = "\n".join([HEADER, source, *main])
    flags = ["-DEMU_BF16"] if ".bf16.bf16.f32" in spec.source else []
    if "extern __shared__" in spec.source:
        assert 0 < spec.shared_bytes <= 256 * 1024, spec.shared_bytes
        flags.append(f"-DEMU_SHARED_BYTES={spec.shared_bytes}")
    key = hashlib.sha256((program + " ".join(flags)).encode()).hexdigest()[:16]
    exe = workdir / f"emu_{key}"
    if not exe.exists():
        (workdir / f"emu_{key}.cpp").write_text(program)
        # (no fused multiply-adds: the tests' numpy references round each float op, and g++
        # contracts a * b + c where the host has an FMA instruction, aarch64's by default)
        subprocess.run(["g++", "-std=c++20", "-O1", "-ffp-contract=off", "-pthread", "-w", *flags,
                        str(workdir / f"emu_{key}.cpp"), "-o", str(exe)], check=True)
    paths = []
    for i, a in enumerate(inputs):
        paths.append(workdir / f"in{i}.bin")
        np.ascontiguousarray(a).tofile(paths[-1])
    outs = [workdir / f"out{k}.bin" for k in range(n_out)]
    subprocess.run([str(exe), *map(str, paths), *map(str, outs)], check=True, timeout=600)
    return [np.fromfile(path, dtype=dt).reshape(shape)
            for path, shape, dt in zip(outs, out_shapes, out_dtypes, strict=True)]
