"""attention: softmax(scale · Q Kᵀ + mask) V in one pass over the keys (flash-attention style).
One block per (batch, head, tile of query rows); K/V tiles of one warp's width staged in shared
memory; each warp owns some query rows and keeps their running max, sum and output in registers.
float16 / bfloat16 Q, K, V (and mask) are loaded into float tiles and computed in float (CUDA
cores, not tensor cores), the output rounded once on the store — where `attention_mma`'s
tensor-core kernel does not take them (head_dim % 16, rows not in 16-byte chunks)."""

from __future__ import annotations

from ember.codegen.scalar_c import compute_type, load_float
from ember.codegen.templates import KernelSpec, attention_mma, broadcast_strides, signature, source
from ember.codegen.templates.half import compute_literal, is_float, stored
from ember.errors import UnsupportedError
from ember.runtime.manifest import decode

WARPS = 4
BLOCK_Q = 16  # query rows per block: WARPS warps of BLOCK_Q / WARPS rows
BLOCK_K = 32  # keys per shared-memory tile: one per lane
MAX_HEAD_DIM = 128
STATIC_SHARED = 48 * 1024

HELPERS = """\
template <typename T>
__device__ T warp_max(T v) {
    for (int o = 16; o > 0; o >>= 1) {
        const T w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}
template <typename T>
__device__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
"""


def _mask_lines(params: dict, t: str) -> list[str]:
    """C lines that apply the mask (in3) to score `s` of query `qi`, key `key`."""
    if len(params["in_shapes"]) < 4:
        return []
    b, sq = params["in_shapes"][0][:2]
    sk = params["in_shapes"][1][1]
    st = broadcast_strides(params["in_shapes"][3], [b, int(params["num_heads"]), sq, sk])
    terms = [f"(size_t){c}" + (f" * {s}" if s != 1 else "")
             for c, s in zip(("b", "h", "qi", "key"), st, strict=True) if s != 0]
    index = " + ".join(terms) or "0"
    if params["in_dtypes"][3] == "bool":
        value = decode(params.get("masked_value", {"float": "-inf"}))  # plan JSON: -inf as a dict
        masked = compute_literal(float(value), params["out_dtypes"][0])
        return [f"                if (!in3[{index}]) s = {masked};"]
    return [f"                s += ({t}){load_float(f'in3[{index}]', params['in_dtypes'][3])};"]


def title(params: dict) -> str:
    """The first line of an attention kernel's text: its sizes, type and mask."""
    (b, sq, _), (_, sk, _) = params["in_shapes"][:2]
    heads, dim = int(params["num_heads"]), int(params["head_dim"])
    mask = ""
    if len(params["in_shapes"]) > 3:
        mask = f", mask {params['in_shapes'][3]} {params['in_dtypes'][3]}"
    return (f"attention {b}x{heads} heads of {dim}, {sq} queries x {sk} keys, "
            f"{params['out_dtypes'][0]}{mask}")


def emit(name: str, params: dict) -> KernelSpec:
    dtype = params["out_dtypes"][0]
    if not is_float(dtype) or any(d != dtype for d in params["in_dtypes"][:3]):
        raise UnsupportedError(f"CUDA attention: element type {dtype} is not supported")
    if attention_mma.accepts(params):
        return attention_mma.emit(name, params)
    heads, dim = int(params["num_heads"]), int(params["head_dim"])
    if dim > MAX_HEAD_DIM:
        raise UnsupportedError(f"CUDA attention: head_dim {dim} > {MAX_HEAD_DIM}")
    (b, sq, wq), (_, sk, wk), (_, _, wv) = params["in_shapes"][:3]
    qo, ko, vo = (int(params.get(f"{x}_offset", 0)) for x in "qkv")
    t = compute_type(dtype)
    f = "" if dtype == "float64" else "f"
    size = 8 if dtype == "float64" else 4
    shared = size * (BLOCK_Q * dim + BLOCK_K * (dim + 1) + BLOCK_K * dim)
    if shared > STATIC_SHARED:
        raise UnsupportedError(f"CUDA attention: {dtype} head_dim {dim} needs {shared} bytes of "
                               "shared memory")
    rows = BLOCK_Q // WARPS
    per_lane = -(-dim // 32)  # output dims per lane: lane + 32·a
    q_tiles = -(-sq // BLOCK_Q)
    blocks = b * heads * q_tiles
    neg_inf = compute_literal(float("-inf"), dtype)
    scale = compute_literal(float(decode(params["scale"])), dtype)
    q_at = load_float(f"in0[((size_t)b * {sq} + qi) * {wq} + {qo} + h * {dim} + d]", dtype)
    k_at = load_float(f"in1[row * {wk} + {ko} + h * {dim} + d]", dtype)
    v_at = load_float(f"in2[row * {wv} + {vo} + h * {dim} + d]", dtype)
    out_at = f"out0[((size_t)b * {sq} + qi) * {heads * dim} + h * {dim} + d]"
    body = [
        f"    __shared__ {t} Qs[{BLOCK_Q}][{dim}];",
        f"    __shared__ {t} Ks[{BLOCK_K}][{dim + 1}];  // +1: lanes read rows, no bank conflicts",
        f"    __shared__ {t} Vs[{BLOCK_K}][{dim}];",
        f"    const int tile = blockIdx.x % {q_tiles};",
        f"    const int h = (blockIdx.x / {q_tiles}) % {heads};",
        f"    const int b = blockIdx.x / {q_tiles * heads};",
        "    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;",
        f"    for (int i = threadIdx.x; i < {BLOCK_Q * dim}; i += {WARPS * 32}) {{",
        f"        const int r = i / {dim}, d = i % {dim}, qi = tile * {BLOCK_Q} + r;",
        f"        Qs[r][d] = qi < {sq} ? {q_at} : 0;",
        "    }",
        f"    {t} m[{rows}], l[{rows}], acc[{rows}][{per_lane}];",
        "    #pragma unroll",
        f"    for (int r = 0; r < {rows}; ++r) {{",
        f"        m[r] = {neg_inf};",
        "        l[r] = 0;",
        "        #pragma unroll",
        f"        for (int a = 0; a < {per_lane}; ++a) acc[r][a] = 0;",
        "    }",
        f"    for (int k0 = 0; k0 < {sk}; k0 += {BLOCK_K}) {{",
        "        __syncthreads();  // the previous tile is consumed (and Qs is ready)",
        f"        for (int i = threadIdx.x; i < {BLOCK_K * dim}; i += {WARPS * 32}) {{",
        f"            const int r = i / {dim}, d = i % {dim}, key = k0 + r;",
        f"            const size_t row = ((size_t)b * {sk} + key);",
        f"            Ks[r][d] = key < {sk} ? {k_at} : 0;",
        f"            Vs[r][d] = key < {sk} ? {v_at} : 0;",
        "        }",
        "        __syncthreads();",
        "        const int key = k0 + lane;",
        "        #pragma unroll",
        f"        for (int r = 0; r < {rows}; ++r) {{",
        f"            const int row = warp * {rows} + r, qi = tile * {BLOCK_Q} + row;",
        f"            {t} s = 0;",
        "            #pragma unroll 8",
        f"            for (int d = 0; d < {dim}; ++d) s += Qs[row][d] * Ks[lane][d];",
        f"            s *= {scale};",
        f"            if (key >= {sk} || qi >= {sq}) {{",
        f"                s = {neg_inf};",
        "            } else {",
        *_mask_lines(params, t),
        "            }",
        f"            const {t} m_new = fmax{f}(m[r], warp_max(s));",
        "            // a row with no finite score yet: exp(-inf - 0) = 0 instead of NaN",
        f"            const {t} m_use = m_new == {neg_inf} ? ({t})0 : m_new;",
        f"            const {t} p = exp{f}(s - m_use);",
        f"            const {t} alpha = exp{f}(m[r] - m_use);",
        "            l[r] = l[r] * alpha + warp_sum(p);",
        "            m[r] = m_new;",
        "            #pragma unroll",
        f"            for (int a = 0; a < {per_lane}; ++a) acc[r][a] *= alpha;",
        f"            for (int j = 0; j < {BLOCK_K}; ++j) {{",
        f"                const {t} pj = __shfl_sync(0xffffffffu, p, j);",
        "                #pragma unroll",
        f"                for (int a = 0; a < {per_lane}; ++a) {{",
        "                    const int d = lane + 32 * a;",
        f"                    if (d < {dim}) acc[r][a] += pj * Vs[j][d];",
        "                }",
        "            }",
        "        }",
        "    }",
        "    #pragma unroll",
        f"    for (int r = 0; r < {rows}; ++r) {{",
        f"        const int qi = tile * {BLOCK_Q} + warp * {rows} + r;",
        f"        if (qi >= {sq}) continue;",
        "        // every score -inf (a fully masked row): zeros, as the IsNaN guard gives",
        f"        const {t} inv = l[r] > 0 ? ({t})1 / l[r] : ({t})0;",
        "        #pragma unroll",
        f"        for (int a = 0; a < {per_lane}; ++a) {{",
        "            const int d = lane + 32 * a;",
        f"            if (d < {dim}) {out_at} = {stored('acc[r][a] * inv', dtype)};",
        "        }",
        "    }",
    ]
    text = source(
        title(params),
        [f"tactic: one block of {WARPS} warps per ({b} batch, {heads} heads, {q_tiles} tiles of "
         f"{BLOCK_Q} queries); {BLOCK_K}-key K/V tiles in shared memory; online softmax per row",
         f"q cols {qo}+ of {wq}, k cols {ko}+ of {wk}, v cols {vo}+ of {wv}; scale {scale}"],
        signature(name, params["in_dtypes"], [dtype], launch_bounds=(WARPS * 32, 1),
                  halves=True), body,
        helpers=HELPERS)
    return KernelSpec(text, (blocks, 1, 1), (WARPS * 32, 1, 1), 0)
