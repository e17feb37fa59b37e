"""attention on tensor cores (FP16/BF16, FP32 accumulation), FlashAttention-2 style: one block of
4 warps per 64 query rows of one (batch, head), each warp 16 rows; K/V tiles of 64 keys copied
with `cp.async` into two shared buffers each, the next tile's copies in flight while one
is computed; S = Q Kᵀ and O += P V by `mma.sync.m16n8k16`, the online
softmax on the accumulator fragments in registers. `attention.emit` picks it for half Q/K/V whose
rows `accepts` proves 16-byte aligned; the CUDA-core kernel there covers the rest."""

from __future__ import annotations

from ember.codegen.scalar_c import load_float, storage_type
from ember.codegen.symbolic import Sym, is_sym
from ember.codegen.templates import KernelSpec, broadcast_strides, signature, source
from ember.codegen.templates.gemm_mma import HALF_TYPES, PTX_TYPE, helpers
from ember.codegen.templates.half import compute_literal
from ember.runtime.manifest import decode

WARPS = 4
BLOCK_Q = 16 * WARPS  # query rows per block: one m16 fragment row block per warp
BLOCK_K = 64  # keys per K/V tile: 8 n8 fragments of S, 4 k16 steps of P V
MAX_HEAD_DIM = 128
LOG2E = 1.4426950408889634


def accepts(params: dict) -> bool:
    """float16 / bfloat16 Q, K, V and result, head_dim a multiple of 16 up to 128, and every
    head's row chunk of 8 elements 16-byte aligned (row widths and q/k/v offsets multiples of
    8 elements; buffers are 256-byte aligned), so `cp.async` copies whole 16-byte chunks."""
    dtype = params["out_dtypes"][0]
    if dtype not in HALF_TYPES or any(d != dtype for d in params["in_dtypes"][:3]):
        return False
    dim = int(params["head_dim"])
    if dim % 16 or not 16 <= dim <= MAX_HEAD_DIM:
        return False
    for (*_, width), x in zip(params["in_shapes"][:3], "qkv", strict=True):
        if int(params.get(f"{x}_offset", 0)) % 8 or not width % 8 == 0:
            return False
    return True


def shared_bytes(dim: int) -> int:
    """Q tile, then two K and two V tiles: rows of head_dim + 8 halves (the padding keeps
    ldmatrix's eight row addresses on distinct banks)."""
    return (1 + 2 + 2) * BLOCK_Q * (dim + 8) * 2


def pack_helper(dtype: str) -> str:
    ptx = PTX_TYPE[dtype]
    return f"""\
// two floats rounded (to nearest even) into one register of {ptx} pair: lo in bits 0-15, as
// mma fragments and memory order want (cvt puts its first source in the upper half)
__device__ __forceinline__ unsigned pack2(float lo, float hi) {{
    unsigned r;
    asm("cvt.rn.{ptx}x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}}
"""


def block_coordinates(q_tiles: int, heads: int) -> list[str]:
    """Lines naming a block's (batch b, head h, query tile from row q0) for blocks numbered
    tile-fastest, its thread's warp and lane, and the lane's fragment coordinates g, t."""
    return [
        f"    const int tile = blockIdx.x % {q_tiles};",
        f"    const int h = (blockIdx.x / {q_tiles}) % {heads};",
        f"    const int b = blockIdx.x / {q_tiles * heads};",
        "    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;",
        "    // fragment coordinates: lane = 4 g + t; C element e of n8 fragment j is row",
        "    // g + 8 (e >> 1), column 8 j + 2 t + (e & 1)",
        "    const int g = lane >> 2, t = lane & 3;",
        f"    const int q0 = tile * {BLOCK_Q};"]


def p_times_v(keys: int, fragments: int, ld: int, tile: str, indent: str) -> list[str]:
    """O += P V over `keys` keys: the C fragments of S fragments 2 kk, 2 kk + 1 (`sc`), rounded
    to pairs, are the A fragment of k16 step kk; V's rows [key][d] in shared `tile` (rows of
    `ld` halves) are the row-major B operand, read by ldmatrix .trans (matrices keys +0 / +8
    at d +0: b0 b1 of fragment j, then at d +8: fragment j + 1) into `fragments` n8 fragments
    of `o`."""
    lines = [
        "#pragma unroll",
        f"for (int kk = 0; kk < {keys // 16}; ++kk) {{",
        "    const unsigned pa[4] = {pack2(sc[2 * kk][0], sc[2 * kk][1]),",
        "                            pack2(sc[2 * kk][2], sc[2 * kk][3]),",
        "                            pack2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),",
        "                            pack2(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};",
        "    #pragma unroll",
        f"    for (int j = 0; j < {fragments}; j += 2) {{",
        "        unsigned vb[4];",
        f"        ldsm_x4_trans(vb, &{tile}[(kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * "
        f"{ld} + j * 8 + (lane >> 4) * 8]);",
        "        mma_16816(o[j], pa, vb[0], vb[1]);",
        "        mma_16816(o[j + 1], pa, vb[2], vb[3]);",
        "    }",
        "}"]
    return [indent + line for line in lines]


def _chunks(dim: int) -> tuple[int, bool]:
    """A tile's rows are dim / 8 chunks of 16 bytes, 8·dim in all: dim / 16 per thread. Where
    the 128 threads cover whole rows (dim / 8 divides 128), each thread keeps one column and
    walks rows r0 + 1024 / dim · i from one pointer; else each chunk's row and column are
    computed. Returns (rows per pass of the 128 threads or 0, whether they are whole)."""
    per_pass, rest = divmod(WARPS * 32 * 8, dim)
    return (0, False) if rest else (per_pass, True)


def _copy_setup(pointers: list[tuple[str, str, str, int | Sym, int]], dim: int,
                ctype: str) -> list[str]:
    """This thread's `ctype` pointers (name, input, batch-row expression, row width, offset)."""
    per_pass, whole = _chunks(dim)
    lines = ["    // this thread's 16-byte chunks: "
             + (f"column col of rows r0 + {per_pass} i of each tile" if whole else
                f"chunks tid + {WARPS * 32} i of each tile, row-major")]
    if whole:
        lines.append(f"    const int r0 = tid / {dim // 8}, col = tid % {dim // 8} * 8;")
    at = " + r0) * {w} + {o} + h * {dim} + col;" if whole else ") * {w} + {o} + h * {dim};"
    for ptr, src, row, width, offset in pointers:
        lines.append(f"    const {ctype}* {ptr} = {src} + ((size_t){row}"
                     + at.format(w=width, o=offset, dim=dim))
    return lines


def _copy_tile(ptrs: list[tuple[str, str, str, int | Sym]], row0: str, rows: int | Sym,
               dim: int, indent: str) -> list[str]:
    """`cp.async` of rows [row0, row0 + 64) of one head into shared tiles, per operand (shared
    tile, this thread's pointer from `_copy_setup`, fallback pointer, row width). Rows past
    `rows` are zero-filled (their scores are masked; zero V rows keep 0 · garbage out of O)."""
    per_pass, whole = _chunks(dim)
    lines = [f"{indent}#pragma unroll",
             f"{indent}for (int i = 0; i < {dim // 16}; ++i) {{"]
    if whole:
        lines.append(f"{indent}    const int r = r0 + i * {per_pass};")
    else:
        lines.append(f"{indent}    const int c = tid + i * {WARPS * 32}, r = c / {dim // 8}, "
                     f"col = c % {dim // 8} * 8;")
    lines.append(f"{indent}    const bool ok = {row0} + r < {rows};")
    for tile, ptr, base, width in ptrs:
        src = (f"{ptr} + (size_t)({row0} + i * {per_pass}) * {width}" if whole
               else f"{ptr} + (size_t)({row0} + r) * {width} + col")
        lines.append(f"{indent}    cp_async16({tile} + r * {dim + 8} + col, ok ? "
                     f"(const void*)({src}) : (const void*){base}, ok);")
    return lines + [f"{indent}}}"]


def _times(expr: str, stride: int | Sym) -> str:
    """`expr * stride`, `expr` for a stride of 1, "" for 0."""
    return "" if stride == 0 else expr if stride == 1 else f"{expr} * {stride}"


def _scores(params: dict, dtype: str, b: int | Sym, heads: int, sq: int | Sym, sk: int | Sym,
            scale: float) -> tuple[list[str], list[str], str]:
    """(lines before the key loop, lines of each K tile, the factor to the log2 domain) taking
    the S fragments `sc` to the scores: scale, the mask (in3: additive, or boolean:
    `masked_value` where false), -inf for keys past Sk. Without a mask the scores are finite
    and scale · log2 e goes in at once (exp2 then needs no multiply); a mask's value stays
    apart, since times log2 e a huge finite one (float's min) would become -inf and turn a
    fully masked row's uniform weights into zeros. Each lane reads the mask of its rows g
    and g + 8 (clamped to Sq - 1: rows past Sq are never stored) from one pointer per row; a
    tile wholly inside Sk skips the key bound."""
    def lit(v: float) -> str:
        return compute_literal(v, dtype)

    setup: list[str] = []
    masked = len(params["in_shapes"]) > 3
    value = f"sc[j][e] * {lit(scale if masked else scale * LOG2E)}"
    if masked:
        mask_t = params["in_dtypes"][3]
        sb, sh, sqs, sks = broadcast_strides(params["in_shapes"][3], [b, heads, sq, sk])
        base = " + ".join(x for x in [_times("(size_t)b", sb), _times("(size_t)h", sh),
                                      _times("(size_t)(2 * t)", sks)] if x)
        rows = ["mrow"] if sqs == 0 else ["mrow0", "mrow1"]
        setup.append("    // this lane's mask rows (g, g + 8) at its first key, 2 t")
        for r, ptr in enumerate(rows):
            row = _times(f"(size_t)min(q0 + warp * 16 + g{f' + {8 * r}' if r else ''}, "
                         f"{sq} - 1)", sqs)
            setup.append(f"    const {storage_type(mask_t)}* {ptr} = in3"
                         + "".join(f" + {x}" for x in (base, row) if x) + ";")
        row_ptr = rows[0] if sqs == 0 else "(e < 2 ? mrow0 : mrow1)"
        at = f"{row_ptr}[{_times(f'(size_t)(kt * {BLOCK_K} + j * 8 + (e & 1))', sks) or 0}]"
        if mask_t == "bool":
            off = float(decode(params.get("masked_value", {"float": "-inf"})))
            value = f"({at} ? {value} : {lit(off)})"
        else:
            value = f"fmaf(sc[j][e], {lit(scale)}, {load_float(at, mask_t)})"

    def loop(checked: bool, indent: str) -> list[str]:
        body = [f"{indent}#pragma unroll",
                f"{indent}for (int j = 0; j < {BLOCK_K // 8}; ++j) {{",
                f"{indent}    #pragma unroll"]
        if checked:
            body += [f"{indent}    for (int e = 0; e < 4; ++e) {{",
                     f"{indent}        const int key = kt * {BLOCK_K} + j * 8 + 2 * t + (e & 1);",
                     f"{indent}        sc[j][e] = key < {sk} ? {value} : {lit(float('-inf'))};",
                     f"{indent}    }}"]
        else:
            body += [f"{indent}    for (int e = 0; e < 4; ++e) sc[j][e] = {value};"]
        return body + [f"{indent}}}"]

    lines = ["        // scores: scale" + (", mask" if masked else " (and log2 e)")
             + (", keys past Sk -inf" if is_sym(sk) or sk % BLOCK_K else "")]
    if is_sym(sk) or sk % BLOCK_K:
        lines += [f"        if ((kt + 1) * {BLOCK_K} <= {sk}) {{", *loop(False, "            "),
                  "        } else {", *loop(True, "            "), "        }"]
    else:
        lines += loop(False, "        ")
    return setup, lines, "" if not masked else f" * {lit(LOG2E)}"


def emit(name: str, params: dict) -> KernelSpec:
    dtype = params["out_dtypes"][0]
    heads, dim = int(params["num_heads"]), int(params["head_dim"])
    (b, sq, wq), (_, sk, wk), (_, _, wv) = params["in_shapes"][:3]
    qo, ko, vo = (int(params.get(f"{x}_offset", 0)) for x in "qkv")
    ld = dim + 8  # shared row length (halves)
    ks, ns = dim // 16, dim // 8  # k16 steps of Q Kᵀ, n8 fragments of O
    q_tiles = -(-sq // BLOCK_Q)
    kv_tiles = -(-sk // BLOCK_K)
    blocks = b * heads * q_tiles
    neg_inf = compute_literal(float("-inf"), dtype)
    scale = float(decode(params["scale"]))
    mask_setup, score, to_log2 = _scores(params, dtype, b, heads, sq, sk, scale)
    q_ptrs = [("Qs", "qg", "in0", wq)]
    k_ptrs = [(f"Ks + st * {BLOCK_K * ld}", "kg", "in1", wk)]
    v_ptrs = [(f"Vs + st * {BLOCK_K * ld}", "vg", "in2", wv)]
    in_t = out_t = storage_type(dtype)
    body = [
        "    extern __shared__ __align__(16) unsigned short smem[];",
        f"    unsigned short* Qs = smem;  // [{BLOCK_Q}][{ld}]",
        f"    unsigned short* Ks = smem + {BLOCK_Q * ld};  // [2][{BLOCK_K}][{ld}]",
        f"    unsigned short* Vs = smem + {(BLOCK_Q + 2 * BLOCK_K) * ld};  // [2][{BLOCK_K}][{ld}]",
        *block_coordinates(q_tiles, heads),
        f"    const int kv_tiles = {kv_tiles};",
        *_copy_setup([("qg", "in0", f"b * {sq}", wq, qo), ("kg", "in1", f"b * {sk}", wk, ko),
                      ("vg", "in2", f"b * {sk}", wv, vo)], dim, in_t),
        "    // cp.async groups: the Q tile, K tile 0, V tile 0 (buffer 0), then per tile kt the",
        "    // K and V tiles kt + 1 (empty groups after the last): S waits only for K",
        *_copy_tile(q_ptrs, "q0", sq, dim, "    "),
        "    cp_async_commit();",
        "    {",
        "        const int st = 0, k0 = 0;",
        *_copy_tile(k_ptrs, "k0", sk, dim, "        "),
        "        cp_async_commit();",
        *_copy_tile(v_ptrs, "k0", sk, dim, "        "),
        "        cp_async_commit();",
        "    }",
        "    cp_async_wait<2>();",
        "    __syncthreads();  // the Q tile landed",
        "    // Q as A fragments (row-major 16x16 per k16 step): ldmatrix matrices 0-3 are rows",
        "    // 0-7 / 8-15 at columns +0, then the same at +8, i.e. a0 a1 a2 a3",
        f"    unsigned qf[{ks}][4];",
        "    #pragma unroll",
        f"    for (int kk = 0; kk < {ks}; ++kk)",
        f"        ldsm_x4(qf[kk], &Qs[(warp * 16 + (lane & 15)) * {ld} + kk * 16 + "
        "(lane >> 4) * 8]);",
        f"    float o[{ns}][4];",
        "    #pragma unroll",
        f"    for (int j = 0; j < {ns}; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;",
        "    // rows g and g + 8: running max and this lane's part of the sum",
        f"    float m[2] = {{{neg_inf}, {neg_inf}}}, l[2] = {{0.f, 0.f}};",
        *mask_setup,
        "    for (int kt = 0; kt < kv_tiles; ++kt) {",
        "        cp_async_wait<1>();",
        "        __syncthreads();  // K tile kt landed; every warp is done with tile kt - 1",
        "        {  // prefetch tile kt + 1 into the buffers tile kt - 1 used",
        "            const bool more = kt + 1 < kv_tiles;",
        f"            const int st = (kt + 1) & 1, k0 = (kt + 1) * {BLOCK_K};",
        "            if (more) {",
        *_copy_tile(k_ptrs, "k0", sk, dim, "                "),
        "            }",
        "            cp_async_commit();",
        "            if (more) {",
        *_copy_tile(v_ptrs, "k0", sk, dim, "                "),
        "            }",
        "            cp_async_commit();",
        "        }",
        f"        const unsigned short* ks = Ks + (kt & 1) * {BLOCK_K * ld};",
        f"        const unsigned short* vs = Vs + (kt & 1) * {BLOCK_K * ld};",
        "        // S = Q Kᵀ: K rows [key][d] are the col-major B operand; ldmatrix (no .trans)",
        "        // matrices: keys +0 at d +0 / +8 (b0 b1 of fragment j), keys +8 likewise (j + 1)",
        f"        float sc[{BLOCK_K // 8}][4];",
        "        #pragma unroll",
        f"        for (int j = 0; j < {BLOCK_K // 8}; ++j) "
        "sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;",
        "        #pragma unroll",
        f"        for (int kk = 0; kk < {ks}; ++kk) {{",
        "            #pragma unroll",
        f"            for (int j = 0; j < {BLOCK_K // 8}; j += 2) {{",
        "                unsigned kb[4];",
        f"                ldsm_x4(kb, &ks[(j * 8 + (lane >> 4) * 8 + (lane & 7)) * {ld} + "
        "kk * 16 + ((lane >> 3) & 1) * 8]);",
        "                mma_16816(sc[j], qf[kk], kb[0], kb[1]);",
        "                mma_16816(sc[j + 1], qf[kk], kb[2], kb[3]);",
        "            }",
        "        }",
        *score,
        "        // online softmax: a row's 64 scores sit in the 4 lanes of its quad",
        "        #pragma unroll",
        "        for (int r = 0; r < 2; ++r) {",
        f"            float mx = {neg_inf};",
        "            #pragma unroll",
        f"            for (int j = 0; j < {BLOCK_K // 8}; ++j)",
        "                mx = fmaxf(mx, fmaxf(sc[j][2 * r], sc[j][2 * r + 1]));",
        "            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));",
        "            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));",
        "            const float m_new = fmaxf(m[r], mx);",
        "            // a row with no finite score yet: exp2(-inf - 0) = 0 instead of NaN",
        f"            const float m_use = m_new == {neg_inf} ? 0.f : m_new;",
        f"            const float alpha = exp2f((m[r] - m_use){to_log2});",
        "            m[r] = m_new;",
        "            float sum = 0.f;",
        "            #pragma unroll",
        f"            for (int j = 0; j < {BLOCK_K // 8}; ++j) {{",
        f"                sc[j][2 * r] = exp2f((sc[j][2 * r] - m_use){to_log2});",
        f"                sc[j][2 * r + 1] = exp2f((sc[j][2 * r + 1] - m_use){to_log2});",
        "                sum += sc[j][2 * r] + sc[j][2 * r + 1];",
        "            }",
        "            l[r] = l[r] * alpha + sum;",
        "            #pragma unroll",
        f"            for (int j = 0; j < {ns}; ++j) {{",
        "                o[j][2 * r] *= alpha;",
        "                o[j][2 * r + 1] *= alpha;",
        "            }",
        "        }",
        "        // O += P V: the C fragments of S fragments 2 kk, 2 kk + 1 are, rounded to pairs,",
        "        // the A fragment of k16 step kk (a0: row g keys 2t.., a1: row g + 8, a2 a3: +8",
        "        // keys); V rows [key][d] are the row-major B operand: ldmatrix .trans, matrices",
        "        // keys +0 / +8 at d +0 (b0 b1 of fragment j), then at d +8 (fragment j + 1)",
        "        cp_async_wait<2>();",
        "        __syncthreads();  // V tile kt landed",
        *p_times_v(BLOCK_K, ns, ld, "vs", "        "),
        "    }",
        "    #pragma unroll",
        "    for (int r = 0; r < 2; ++r) {",
        "        float sum = l[r];",
        "        sum += __shfl_xor_sync(0xffffffffu, sum, 1);",
        "        sum += __shfl_xor_sync(0xffffffffu, sum, 2);",
        "        // every score -inf (a fully masked row): zeros, as the IsNaN guard gives",
        "        const float inv = sum > 0.f ? 1.f / sum : 0.f;",
        "        const int qi = q0 + warp * 16 + g + r * 8;",
        f"        if (qi >= {sq}) continue;",
        f"        {out_t}* dst = out0 + ((size_t)b * {sq} + qi) * {heads * dim} + h * {dim} "
        "+ 2 * t;",
        "        #pragma unroll",
        f"        for (int j = 0; j < {ns}; ++j)",
        "            *reinterpret_cast<unsigned*>(dst + j * 8) = "
        "pack2(o[j][2 * r] * inv, o[j][2 * r + 1] * inv);",
        "    }",
    ]
    from ember.codegen.templates.attention import title

    text = source(
        title(params),
        [f"tactic: tensor cores (mma.sync m16n8k16, FP32 accumulation), FlashAttention-2: one "
         f"block of {WARPS} warps per ({b} batch, {heads} heads, {q_tiles} tiles of {BLOCK_Q} "
         f"queries), 16 query rows per warp",
         f"Q tile -> A fragments (ldmatrix) once; {BLOCK_K}-key K/V tiles by cp.async, double "
         "buffered, K and V in separate groups (S needs only K); S = Q Kᵀ (K via ldmatrix), "
         "online softmax on the S fragments (FP32, quad shuffles), P reused from registers as "
         "the A operand of P V (V via ldmatrix.trans)",
         f"q cols {qo}+ of {wq}, k cols {ko}+ of {wk}, v cols {vo}+ of {wv}; "
         f"scale {compute_literal(scale, dtype)}"],
        signature(name, params["in_dtypes"], [dtype], launch_bounds=(WARPS * 32, 1),
                  halves=True), body,
        helpers=helpers(dtype) + pack_helper(dtype))
    return KernelSpec(text, (blocks, 1, 1), (WARPS * 32, 1, 1), shared_bytes(dim))
