"""Run a tensor-core kernel's CUDA C on the CPU (g++), for tests on machines without a GPU: one OS
thread per CUDA thread, `__syncthreads` and the warp collectives (`__shfl_xor_sync`, `ldmatrix`
x4 with and without .trans, `mma.sync.m16n8k16` with FP32 accumulation, `m16n8k32` s8 with
s32 accumulation) emulated per the PTX
ISA's fragment layouts, `cp.async` copies deferred to the `cp.async.wait_group` that covers them
(the latest the hardware may do them) and shared memory filled with NaNs: exactly the kernel's
`shared_bytes`, followed by a guard whose bytes are checked after every block (a kernel that
writes past what it allocates fails the run). The kernel's inline-PTX
helpers are dropped and replaced by these; the emulation of the layouts is itself checked on
`gemm_mma`'s GPU-verified GEMM (tests/codegen/test_attention_mma.py).

Hopper's forms too (the part after "Hopper" in HEADER): mbarriers (arrivals, transaction
bytes, phases; a wait that no phase completes within `DEADLOCK_SECONDS` is a deadlock and fails
the run), the bulk tensor copy engine (`cp.async.bulk.tensor` tiled and im2col copies into the
128-byte swizzle pattern by shared-memory address bits, out-of-range elements as zeros,
completing their bytes on the barrier) over tensor maps the harness builds from the spec's
`tensor_maps`, and `wgmma.mma_async` from 128-byte-swizzled shared-memory descriptors (each
thread's accumulators by the PTX ISA's m64nN layout), deferred to the `wgmma.wait_group` that
covers it (the latest the hardware may read its operands), after which the warpgroup meets (the
wait is warpgroup-wide). The copies land when a thread tests their barrier (the latest the
engine may: a reader that does not wait reads none) or, with `COPIES_AT_ISSUE`, when issued,
each wgmma wait slowed (a stage freed before its wgmmas are done is overwritten first). Checked
on the GPU-verified TMA and wgmma kernels (tests/codegen/test_hopper_emulated.py)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ember.codegen.scalar_c import HALF_PRELUDE
from ember.codegen.templates import KernelSpec

HEADER = r"""
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
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
// what the program sets (after this header, precompiled once: `_header`): the kernel's dynamic
// shared memory (the arena's last g_smem_bytes before a guard), whether its 16-bit operands are
// bfloat16, how long an mbarrier wait may take, whether bulk copies land when issued
extern const int g_smem_bytes;
extern const bool g_bf16;
extern const int g_deadlock_seconds;
extern const bool g_copies_at_issue;
static const int g_guard_bytes = 64 * 1024;
alignas(1024) static unsigned char g_arena[256 * 1024 + 64 * 1024];
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
static inline float op_float(unsigned short b) {
    return g_bf16 ? ember_load(ember_bf16{b}) : ember_load(ember_half{b});
}
static inline unsigned short op_bits(float f) {
    return g_bf16 ? ember_to_bf16(f).bits : ember_to_half(f).bits;
}
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

// ---- Hopper: mbarriers, the bulk tensor copy engine, wgmma --------------------------------------
#define __grid_constant__
// a shared-memory address: the byte offset from the arena (1024-byte aligned, as the hardware's
// shared window is), so the kernels' alignment of a stage to a swizzle atom is what it is there
static inline unsigned emu_shared(const void* p) {
    return (unsigned)((const unsigned char*)p - g_arena);
}
static inline size_t __cvta_generic_to_shared(const void* p) { return emu_shared(p); }
static inline unsigned smem_addr(const void* p) { return emu_shared(p); }
static inline void async_proxy_fence() {}
static inline void prefetch_tensormap(const void*) {}
static inline void mbar_init_fence() {}
static inline void tf32_round4(float4* p) {  // cvt.rna.tf32.f32: to nearest, ties away
    float* v = &p->x;
    for (int i = 0; i < 4; ++i) {
        unsigned u = __float_as_uint(v[i]);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
        v[i] = __uint_as_float(u);
    }
}

// mbarriers, by address: arrivals pending of the count, transaction bytes, phases completed
struct EmuBar { int count, pending; long long tx; unsigned phase; };
static std::mutex g_bar_mu;
static std::condition_variable g_bar_cv;
static std::map<const void*, EmuBar> g_bars;
static EmuBar& emu_bar(const void* p) {  // (g_bar_mu held)
    auto it = g_bars.find(p);
    if (it == g_bars.end()) { fprintf(stderr, "mbarrier used before its init\n"); abort(); }
    return it->second;
}
static void emu_bar_settle(EmuBar& b) {  // (g_bar_mu held) the phase completes
    if (b.pending == 0 && b.tx == 0) {
        ++b.phase;
        b.pending = b.count;
        g_bar_cv.notify_all();
    }
}
static inline void mbar_init(unsigned long long* bar, unsigned count) {
    std::lock_guard<std::mutex> l(g_bar_mu);
    g_bars[bar] = EmuBar{(int)count, (int)count, 0, 0};
}
static void emu_arrive(const void* bar, long long bytes) {
    std::lock_guard<std::mutex> l(g_bar_mu);
    EmuBar& b = emu_bar(bar);
    if (b.pending <= 0) { fprintf(stderr, "mbarrier: an arrival past its count\n"); abort(); }
    b.tx += bytes;
    --b.pending;
    emu_bar_settle(b);
}
static inline void mbar_arrive(unsigned long long* bar) { emu_arrive(bar, 0); }
static inline void mbar_expect_tx(unsigned long long* bar, unsigned bytes) {
    emu_arrive(bar, bytes);
}
// the bulk copies completing on each barrier, not yet done: the copy engine does them when a
// thread tests the barrier (the latest it may, so a reader that does not wait reads no copy)
static std::map<const void*, std::vector<std::function<long long()>>> g_copies;
static void emu_copy_later(const void* bar, std::function<long long()> copy) {
    std::lock_guard<std::mutex> l(g_bar_mu);
    if (g_copies_at_issue) {  // (COPIES_AT_ISSUE) the other bound: as soon as issued
        EmuBar& b = emu_bar(bar);
        b.tx -= copy();
        emu_bar_settle(b);
    } else {
        g_copies[bar].push_back(std::move(copy));
    }
    g_bar_cv.notify_all();
}
static bool emu_phase_done(const void* bar, unsigned parity) {  // (g_bar_mu held)
    auto it = g_copies.find(bar);
    if (it != g_copies.end()) {
        std::vector<std::function<long long()>> copies = std::move(it->second);
        g_copies.erase(it);
        EmuBar& b = emu_bar(bar);
        for (auto& copy : copies) b.tx -= copy();
        emu_bar_settle(b);
    }
    return (emu_bar(bar).phase & 1u) != (parity & 1u);
}
// try_wait.parity / test_wait.parity: the phase of that parity has completed
static inline bool mbar_test(unsigned long long* bar, unsigned parity) {
    std::lock_guard<std::mutex> l(g_bar_mu);
    return emu_phase_done(bar, parity);
}
static inline void mbar_wait(unsigned long long* bar, unsigned parity) {
    std::unique_lock<std::mutex> l(g_bar_mu);
    if (!g_bar_cv.wait_for(l, std::chrono::seconds(g_deadlock_seconds),
                           [&] { return emu_phase_done(bar, parity); })) {
        fprintf(stderr, "mbarrier wait: no phase completed in %d s (a deadlock)\n",
                g_deadlock_seconds);
        abort();
    }
}

// the 128-byte swizzle by address bits: 16-byte chunk c of a 128-byte row r (of a 1024-byte
// atom) sits at chunk c ^ (r % 8)
static inline unsigned emu_swizzle(unsigned a) { return a ^ (((a >> 7) & 7u) << 4); }
// tensor maps as the harness writes them (w[0]: 1 tiled, 2 im2col; w[1] the address)
static void emu_box_row(unsigned dst, int row, const unsigned char* src, int bytes) {
    for (int i = 0; i < 128; i += bytes)  // elements of `bytes` stay within one 16-byte chunk
        memcpy(g_arena + emu_swizzle(dst + row * 128 + i), src + i, bytes);
}
static inline void tma_load(void* dst, const void* map, int col, int row,
                            unsigned long long* bar) {
    const unsigned long long* w = (const unsigned long long*)map;
    const unsigned d = emu_shared(dst);
    if (w[0] != 1 || d % 128 || w[2] * w[6] != 128) {
        fprintf(stderr, "cp.async.bulk.tensor.2d: not a 128-byte swizzled tiled copy into a "
                        "128-byte aligned destination\n");
        abort();
    }
    const unsigned char* base = (const unsigned char*)w[1];
    const long long size = w[2], d0 = w[3], d1 = w[4], pitch = w[5], b0 = w[6], b1 = w[7];
    emu_copy_later(bar, [=] {
        unsigned char line[128];
        for (long long r = 0; r < b1; ++r) {
            for (long long e = 0; e < b0; ++e) {
                const long long x = col + e, y = row + r;
                if (x >= 0 && x < d0 && y >= 0 && y < d1)
                    memcpy(line + e * size, base + y * pitch + x * size, size);
                else memset(line + e * size, 0, size);
            }
            emu_box_row(d, (int)r, line, (int)size);
        }
        return b0 * b1 * size;
    });
}
// `pixels` output pixels from the one whose window starts at (x, y) of image n, channels
// [c, c + channels) at filter offset (ox, oy): the pixels walk W by the traversal stride up to
// the upper corner (W - 1 + upper), then H, then N, each starting again at the lower corner
static inline void tma_load_im2col(void* dst, const void* map, int c, int x, int y, int n,
                                   unsigned short ox, unsigned short oy,
                                   unsigned long long* bar) {
    const unsigned long long* w = (const unsigned long long*)map;
    const unsigned d = emu_shared(dst);
    const long long C = w[2], W = w[3], H = w[4], N = w[5], sw = w[6], sh = w[7], sn = w[8];
    const long long lw = (long long)w[9], lh = (long long)w[10], uw = (long long)w[11],
                    uh = (long long)w[12], tw = w[13], th = w[14];
    const long long channels = w[15] & 0xffffffffu, pixels = w[15] >> 32;
    if (w[0] != 2 || d % 128 || channels * 2 != 128) {
        fprintf(stderr, "cp.async.bulk.tensor.4d.im2col: not 64 2-byte channels into a "
                        "128-byte aligned destination\n");
        abort();
    }
    const unsigned char* base = (const unsigned char*)w[1];
    emu_copy_later(bar, [=] {
        unsigned char line[128];
        long long px = x, py = y, pn = n;
        for (long long p = 0; p < pixels; ++p) {
            const long long ix = px + ox, iy = py + oy;
            for (long long e = 0; e < channels; ++e) {
                const long long ch = c + e;
                if (ch >= 0 && ch < C && ix >= 0 && ix < W && iy >= 0 && iy < H && pn >= 0
                        && pn < N)
                    memcpy(line + 2 * e, base + pn * sn + iy * sh + ix * sw + ch * 2, 2);
                else memset(line + 2 * e, 0, 2);
            }
            emu_box_row(d, (int)p, line, 2);
            px += tw;
            if (px > W - 1 + uw) {
                px = lw;
                py += th;
                if (py > H - 1 + uh) { py = lh; ++pn; }
            }
        }
        return pixels * channels * 2;
    });
}

// wgmma.mma_async m64nNk(32 bytes): kinds 0 f16, 1 bf16, 2 tf32, 3 s8 (int sums), 4 e4m3
struct EmuWgmma { void* d; unsigned long long da, db; int n, kind; };
thread_local std::vector<EmuWgmma> t_wg_open;
thread_local std::vector<std::vector<EmuWgmma>> t_wg_groups;
static std::barrier<>* g_warpgroup_bar[8];
// byte `byte` of row `row` of the K-major operand a descriptor names: 128-byte swizzle, 8-row
// atoms 1024 bytes apart (the one form ember's descriptors take)
static inline const unsigned char* emu_operand(unsigned long long desc, int row, int byte) {
    if (((desc >> 16) & 0x3FFF) != 1 || ((desc >> 32) & 0x3FFF) != 64 || (desc >> 62) != 1) {
        fprintf(stderr, "wgmma: a descriptor not of 128-byte swizzle and 1024-byte atoms\n");
        abort();
    }
    const unsigned a = ((unsigned)(desc & 0x3FFF) << 4) + (row / 8) * 1024 + (row % 8) * 128 + byte;
    return g_arena + emu_swizzle(a);
}
static inline float emu_value(int kind, const unsigned char* p) {
    unsigned short h;
    switch (kind) {
    case 0: memcpy(&h, p, 2); return ember_load(ember_half{h});
    case 1: memcpy(&h, p, 2); return ember_load(ember_bf16{h});
    case 2: { float f; memcpy(&f, p, 4); return __uint_as_float(__float_as_uint(f) & ~0x1fffu); }
    default: return e4m3_of(*p, 0);
    }
}
static void emu_wgmma_run(const EmuWgmma& op) {
    const int wr = (my_warp() % 4) * 16, lane = my_lane();
    const int size = op.kind == 2 ? 4 : op.kind <= 1 ? 2 : 1, k = 32 / size;
    for (int i = 0; i < op.n / 2; ++i) {
        const int row = wr + lane / 4 + 8 * ((i >> 1) & 1);
        const int col = (i >> 2) * 8 + (lane % 4) * 2 + (i & 1);
        if (op.kind == 3) {
            int acc = ((int*)op.d)[i];
            for (int e = 0; e < k; ++e)
                acc += (int)(signed char)*emu_operand(op.da, row, e) *
                       (int)(signed char)*emu_operand(op.db, col, e);
            ((int*)op.d)[i] = acc;
        } else {
            float acc = ((float*)op.d)[i];
            for (int e = 0; e < k; ++e)
                acc += emu_value(op.kind, emu_operand(op.da, row, e * size)) *
                       emu_value(op.kind, emu_operand(op.db, col, e * size));
            ((float*)op.d)[i] = acc;
        }
    }
}
static inline void emu_wgmma(void* d, unsigned long long da, unsigned long long db, int n,
                             int kind) {
    t_wg_open.push_back({d, da, db, n, kind});
}
static inline void wgmma_fence() {}
static inline void wgmma_commit() { t_wg_groups.push_back(t_wg_open); t_wg_open.clear(); }
template <int N> static inline void wgmma_wait() {
    // (COPIES_AT_ISSUE) the tensor cores slow: the other threads run first, a producer's
    // copies into a stage freed too early land before its wgmmas read it
    if (g_copies_at_issue) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    while ((int)t_wg_groups.size() > N) {
        for (const EmuWgmma& op : t_wg_groups.front()) emu_wgmma_run(op);
        t_wg_groups.erase(t_wg_groups.begin());
    }
    g_warpgroup_bar[my_warp() / 4]->arrive_and_wait();
}
template <typename T> static inline void fence_operand(T&) {}

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
        for (int g = 0; g < n / 128; ++g) {
            warps.push_back(new std::barrier<>(128));
            g_warpgroup_bar[g] = warps.back();
        }
        g_bars.clear();
        g_copies.clear();
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


DEADLOCK_SECONDS = 60  # an mbarrier wait this long fails the run (HOPPER's mbar_wait)
# bulk copies land when a thread tests their barrier (the latest: a reader that does not wait
# reads none); True: when issued, each wgmma wait first sleeping (a stage freed early is then
# overwritten before its wgmmas read it)
COPIES_AT_ISSUE = False


class EmulatorError(RuntimeError):
    """The emulated program failed (an abort: its message, e.g. a deadlock or a misaligned
    copy, is the error's)."""


# (no fused multiply-adds: the tests' numpy references round each float op, and g++ contracts
# a * b + c where the host has an FMA instruction, aarch64's by default)
FLAGS = ["-std=c++20", "-O1", "-ffp-contract=off", "-pthread", "-w", "-Wno-psabi"]


def _header() -> Path:
    """HEADER as a file with its precompiled form beside it (`-include` picks the .gch), made
    once per machine in the temporary directory, named by its text and FLAGS (each program
    compiles in a third of the time: most of it was the header's C++ library)."""
    key = hashlib.sha256((HEADER + " ".join(FLAGS)).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"ember-emulator-{key}"
    header = folder / "emu_header.hpp"
    if not (folder / "emu_header.hpp.gch").exists():
        folder.mkdir(exist_ok=True)
        part = folder / f"part{os.getpid()}"  # workers in parallel: each writes its own, then
        part.mkdir(exist_ok=True)            # renames (the last rename wins, all alike)
        (part / "emu_header.hpp").write_text(HEADER)
        subprocess.run(["g++", *FLAGS, "-x", "c++-header", str(part / "emu_header.hpp"), "-o",
                        str(part / "emu_header.hpp.gch")], check=True)
        if not header.exists():
            os.replace(part / "emu_header.hpp", header)
        os.replace(part / "emu_header.hpp.gch", folder / "emu_header.hpp.gch")
        shutil.rmtree(part, ignore_errors=True)
    return header


def available() -> bool:
    return shutil.which("g++") is not None


# wgmma operand types -> the emulation's kinds (HOPPER's `emu_value`)
_WGMMA_KINDS = {"f16": 0, "bf16": 1, "tf32": 2, "s8": 3, "e4m3": 4}


def _wgmma_shim(helper: str) -> list[str]:
    """For a dropped helper issuing `wgmma.mma_async` (`gemm_wgmma.helpers`' `wgmma_{bn}`), the
    function of the same name that queues its emulation; nothing for any other helper."""
    name = re.search(r"void (wgmma_\d+)\((int|float)\* d, unsigned long long da,", helper)
    if name is None:
        assert "wgmma.mma_async" not in helper, "a wgmma form the emulator does not know"
        return []
    ptx = re.search(r"wgmma\.mma_async\.sync\.aligned\.m64n(\d+)k(\d+)\.(\w+)\.(\w+)\.(\w+) ",
                    helper)
    assert ptx and ptx.group(4) == ptx.group(5), helper
    return [f"static inline void {name.group(1)}({name.group(2)}* d, unsigned long long da, "
            "unsigned long long db) {",
            f"    emu_wgmma(d, da, db, {ptx.group(1)}, {_WGMMA_KINDS[ptx.group(4)]});", "}"]


def _map_words(tmap, pointer: str) -> list[str]:
    """The 16 words of HOPPER's tensor map for `tmap` (`ember.runtime.tensor_maps`) over the
    C expression `pointer`."""
    from ember.runtime.tensor_maps import ELEMENT_BYTES, Im2colMap

    if isinstance(tmap, Im2colMap):
        words = [2, pointer, *tmap.dims, *tmap.strides, *tmap.lower, *tmap.upper,
                 *tmap.traversal, f"{tmap.channels}ull | ((unsigned long long){tmap.pixels} << 32)"]
    else:
        words = [1, pointer, ELEMENT_BYTES[tmap.dtype], *tmap.dims, tmap.row_bytes, *tmap.box]
    return [f"(unsigned long long)(long long)({w})" for w in words]


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
                else:
                    kept += _wgmma_shim("\n".join(block))
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
    params = [arg.strip() for arg in sig.group(1).split(",")]
    types = [arg.rsplit("*", 1)[0].replace("__restrict__", "").strip()
             for arg in params if "*" in arg]
    maps = [arg for arg in params if "TmaDesc" in arg]
    assert len(types) + len(maps) == len(params), params  # (no size arguments)
    assert len(maps) == len(spec.tensor_maps), (maps, spec.tensor_maps)
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
    for j, tmap in enumerate(spec.tensor_maps):  # HOPPER's tensor maps over their buffers
        buffer = (f"bufs[{tmap.operand}].data()" if tmap.operand < len(inputs)
                  else f"out{tmap.operand - len(inputs)}.data()")
        main += [f"    TmaDesc map{j};", f"    memset(&map{j}, 0, sizeof map{j});"]
        main += [f"    map{j}.w[{i}] = {w};" for i, w in enumerate(_map_words(tmap, buffer))]
        args.append(f"map{j}")
    (gx, gy, gz), (bx, by, bz) = spec.grid, spec.block
    main += [f"    emu_launch({{{gx}, {gy}, {gz}}}, {{{bx}, {by}, {bz}}}, [&] {{ "
             f"{name}({', '.join(args)}); }});"]
    for k, n in enumerate(out_bytes):
        main += [f"    {{ FILE* f = fopen(argv[{len(inputs) + 1 + k}], \"wb\");",
                 f"      fwrite(out{k}.data(), 1, {n}, f); fclose(f); }}"]
    main += ["    return 0;", "}"]
    bf16 = ".bf16.bf16.f32" in spec.source or ".f32.bf16.bf16" in spec.source  # mma, wgmma
    smem = 256 * 1024
    if "extern __shared__" in spec.source:
        assert 0 < spec.shared_bytes <= 256 * 1024, spec.shared_bytes
        smem = spec.shared_bytes
    settings = [f"extern const int g_smem_bytes = {smem};",
                f"extern const bool g_bf16 = {'true' if bf16 else 'false'};",
                f"extern const int g_deadlock_seconds = {DEADLOCK_SECONDS};",
                f"extern const bool g_copies_at_issue = {str(COPIES_AT_ISSUE).lower()};"]
    program = "\n".join([*settings, source, *main])
    header = _header()
    key = hashlib.sha256((header.name + program).encode()).hexdigest()[:16]
    exe = workdir / f"emu_{key}"
    if not exe.exists():
        (workdir / f"emu_{key}.cpp").write_text(program)
        subprocess.run(["g++", *FLAGS, "-include", str(header), str(workdir / f"emu_{key}.cpp"),
                        "-o", str(exe)], check=True)
    paths = []
    for i, a in enumerate(inputs):
        paths.append(workdir / f"in{i}.bin")
        np.ascontiguousarray(a).tofile(paths[-1])
    outs = [workdir / f"out{k}.bin" for k in range(n_out)]
    done = subprocess.run([str(exe), *map(str, paths), *map(str, outs)], capture_output=True,
                          text=True, timeout=600)
    if done.returncode:
        raise EmulatorError(f"emulated kernel {name} failed ({done.returncode}): "
                            f"{done.stderr.strip()[-2000:]}")
    return [np.fromfile(path, dtype=dt).reshape(shape)
            for path, shape, dt in zip(outs, out_shapes, out_dtypes, strict=True)]
