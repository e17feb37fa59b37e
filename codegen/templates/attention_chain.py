"""attention_chain (fuse-attention-kernels): the kernels of an attention chain as one, on FP16 /
BF16 tensor cores. One block of 4 warps per (batch, head, 64 query rows), each warp 16 rows
holding whole score rows (Sk <= 128 keys: 4·Sk/32 floats a thread):

- Q's 64 rows, and K's and V's Sk rows, of this head: each thread's 16-byte chunks (16 8-bit
  values each) all loaded into registers first, then each value through its stage's region (a
  dequantize) into a half, stored in shared memory as the FP16 path's tiles (rows of D + 8
  halves);
- S = Q Kᵀ by `mma.sync.m16n8k16` (FP32 accumulation), then each score through the scores
  stage's epilogue (fake-quantizes, the scale, the mask) in registers;
- the softmax over each row (its four lanes of a quad: max and sum by shuffles, `expf(x - m)
  * (1 / s)` as the softmax kernel computes), rounded to its type, then the softmax stage's
  epilogue (P's fake-quantize);
- O = P V (P from the registers, V by `ldmatrix.trans`), each output through the last matmul's
  epilogue (the quantize) and stored where the transpose puts it, [B, Sq, H, D].

Each stage's value is rounded where the unfused kernel rounded it (its own type, then its
epilogue's), so only the softmax's summation order differs from the kernels it replaces."""

from __future__ import annotations

from ember.codegen.scalar_c import (
    c_type,
    compute_type,
    load_float,
    round_to,
    storage_type,
    stored_in_float,
)
from ember.codegen.templates import KernelSpec, broadcast_strides, prod, signature, source
from ember.codegen.templates.attention_mma import block_coordinates, p_times_v, pack_helper
from ember.codegen.templates.elementwise import region_lines
from ember.codegen.templates.gemm_mma import helpers
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.common import stored_dtype

WARPS = 4
BLOCK_Q = 16 * WARPS


def _stages(params: dict) -> dict[str, dict]:
    return {s["name"]: s for s in params["stages"]}


def _arg(name: str) -> str:
    """A stage input naming a chain operand ("in3") as the kernel argument."""
    if not name.startswith("in"):
        raise UnsupportedError(f"attention_chain: a stage reads '{name}' where the kernel "
                               "takes one of the chain's operands (in<i>)")
    return name


def _uniform_reads(extras: list[tuple[str, list[int], str]], prefix: str,
                   first: int) -> tuple[list[str], dict[int, str], dict[int, str]]:
    """Lines reading the one-value extra inputs once a thread, {region value: its variable},
    and {region value: kernel argument} (region_lines' `uniform`)."""
    lines, values, uniform = [], {}, {}
    for k, (arg, shape, dt) in enumerate(extras):
        if prod(shape) == 1:
            var = f"{prefix}u{first + k}"
            lines.append(f"    const {compute_type(dt)} {var} = {load_float(f'{arg}[0]', dt)};")
            values[first + k] = var
            uniform[first + k] = arg
    return lines, values, uniform


def _region(region: dict, dtypes: list[str], values: dict[int, str], prefix: str,
            indent: str, uniform: dict[int, str]) -> tuple[list[str], str]:
    """Lines defining region values `<prefix>0..` from `values` (value -> expression) and
    computing the region; the result's variable."""
    lines = [f"{indent}const {compute_type(dtypes[i])} {prefix}{i} = {values[i]};"
             for i in range(len(dtypes))]
    lines += region_lines(region, dtypes, prefix, indent, uniform=uniform)
    return lines, f"{prefix}{region['result']}"


def _heads(stage: dict, tile: str, rows: int, row0: str, prefix: str
           ) -> tuple[list[str], list[str], list[str]]:
    """(lines before, loads, conversions) of `rows` rows of this head from row `row0`
    (clamped into the sequence) through the stage's region into shared tile `tile` (rows of
    D + 8 halves): each thread's 16-byte chunks c = tid + 128 i are loaded into registers
    first (`<prefix>raw[i]`), all of Q's, K's and V's before any is converted, so the loads
    are in flight together."""
    p = stage["params"]
    view = p["in_views"][0]
    kv = view["input"]
    src, src_t = _arg(stage["inputs"][kv]), p["in_dtypes"][kv]
    _, _, seq, dim = p["out_shapes"][0]
    width = p["in_shapes"][kv][2]
    extras = [(_arg(n), p["in_shapes"][i], p["in_dtypes"][i])
              for i, n in enumerate(stage["inputs"]) if i != kv]
    setup, values, uniform = _uniform_reads(extras, prefix, 0)
    # region values: input kv is the loaded byte, the others (one value each) in input order
    others = [i for i in range(len(stage["inputs"])) if i != kv]
    values = {i: values[j] for j, i in enumerate(others)}
    uniform = {i: uniform[j] for j, i in enumerate(others)}
    dtypes = list(p["in_dtypes"])
    chunks = dim // 16
    total = rows * chunks
    per = -(-total // (WARPS * 32))
    st = storage_type(src_t)
    raw = f"{prefix}raw"
    guard = "" if total % (WARPS * 32) == 0 else f"if (c < {total}) "

    def chunk(i: str) -> list[str]:
        return [f"        const int c = tid + {i} * {WARPS * 32};",
                f"        const int r = c / {chunks}, col = c % {chunks} * 16;"]

    def element(at: str, target: str) -> list[str]:
        lines, result = _region(p["region"], dtypes, {**values, kv: f"({st})bytes[{at}]"},
                                prefix, "                ", uniform)
        return ["            {", *lines, f"                {target} = {result};", "            }"]

    loads = [
        f"    uint4 {raw}[{per}];",
        "    #pragma unroll",
        f"    for (int i = 0; i < {per}; ++i) {{",
        *chunk("i"),
        f"        const int row = min({row0} + r, {seq - 1});",
        f"        {guard}{raw}[i] = __ldg((const uint4*)({src} + ((size_t)b * {seq} + row) * "
        f"{width} + {view['offset']} + h * {dim} + col));",
        "    }"]
    convert = [
        "    #pragma unroll",
        f"    for (int i = 0; i < {per}; ++i) {{",
        *chunk("i"),
        *([f"        if (c >= {total}) break;"] if guard else []),
        f"        const {st}* bytes = (const {st}*)&{raw}[i];",
        "        unsigned packed[8];",
        "        #pragma unroll",
        "        for (int e = 0; e < 16; e += 2) {",
        "            float lo, hi;",
        *element("e", "lo"),
        *element("e + 1", "hi"),
        "            packed[e / 2] = pack2(lo, hi);",
        "        }",
        f"        uint4* dst = (uint4*)&{tile}[r * {dim + 8} + col];",
        "        dst[0] = make_uint4(packed[0], packed[1], packed[2], packed[3]);",
        "        dst[1] = make_uint4(packed[4], packed[5], packed[6], packed[7]);",
        "    }"]
    return setup, loads, convert


def _epilogue(stage: dict, own: str, value: str, coords: tuple[str, str, str, str],
              prefix: str, indent: str, target: str, first_extra: int
              ) -> tuple[list[str], list[str]]:
    """(lines before the loops, lines) taking `value` (the stage's own result, FP32) through
    the stage's epilogue (if any) to its stored type, left in `target` (a float for float
    types, else the stored C type); extras broadcast to the stage's output at `coords`
    (b, h, query row, column)."""
    p = stage["params"]
    epilogue = p.get("epilogue")
    stored = stored_dtype(p)
    if epilogue is None:
        return [], [f"{indent}{target} = {round_to(value, own)};"]
    out = p["out_shapes"][0]
    names = stage["inputs"][first_extra:]
    extras = [(_arg(n), s, dt) for n, s, dt in zip(names, epilogue["in_shapes"],
                                                   epilogue["in_dtypes"], strict=True)]
    setup, values, uniform = _uniform_reads(extras, prefix, 1)
    for k, (arg, shape, dt) in enumerate(extras):
        if prod(shape) != 1:
            strides = broadcast_strides(shape, out)
            at = " + ".join(f"(size_t){c} * {s}" if s != 1 else f"(size_t){c}"
                            for c, s in zip(coords, strides, strict=True) if s) or "0"
            values[1 + k] = load_float(f"{arg}[{at}]", dt)
    values[0] = round_to(value, own)
    lines, result = _region(epilogue, [own, *epilogue["in_dtypes"]], values, prefix, indent,
                            uniform)
    if stored_in_float(stored):
        lines.append(f"{indent}{target} = {round_to(result, stored)};")
    else:
        lines.append(f"{indent}{target} = ({c_type(stored)}){result};")
    return setup, [f"{indent[:-4]}{{", *lines, f"{indent[:-4]}}}"]


def _each_score(fragments: int, seq_q: int, lines: list[str]) -> list[str]:
    """`lines` for each score element sc[j][e] of this thread, with its query row `qc`
    (clamped into Sq: rows past it are computed, never stored) and `key`."""
    return [
        "    #pragma unroll",
        f"    for (int j = 0; j < {fragments}; ++j) {{",
        "        #pragma unroll",
        "        for (int e = 0; e < 4; ++e) {",
        f"            const int qc = min(q0 + warp * 16 + g + 8 * (e >> 1), {seq_q - 1});",
        "            const int key = j * 8 + 2 * t + (e & 1);",
        "            (void)qc; (void)key;",
        *lines,
        "        }",
        "    }"]


def _store(stored: str, heads: int, dim: int, seq_q: int) -> list[str]:
    """Each lane's two neighbouring outputs (columns 8 j + 2 t, + 1) of rows g and g + 8 to
    out0 [B, Sq, H, D]."""
    if stored_in_float(stored) and stored != "float32":
        pair, put = "unsigned", "pack2(y[0], y[1])"
    elif stored == "float32":
        pair, put = "float2", "make_float2(y[0], y[1])"
    else:
        t = c_type(stored)
        pair = "unsigned short"
        put = f"(unsigned short)((unsigned char)({t})y[0] | ((unsigned char)({t})y[1] << 8))"
    return [f"            *reinterpret_cast<{pair}*>(out0 + (((size_t)b * {seq_q} + qi) * "
            f"{heads} + h) * {dim} + col) = {put};"]


def emit(name: str, params: dict) -> KernelSpec:
    st = _stages(params)
    q, k, v, sc, sm, pv = (st[n] for n in ("q", "k", "v", "scores", "softmax", "pv"))
    b_, heads, seq_q, dim = q["params"]["out_shapes"][0]
    seq_k = k["params"]["out_shapes"][0][2]
    half = q["params"]["out_dtypes"][0]
    ld = dim + 8
    nj, ks, ns = seq_k // 8, dim // 16, dim // 8
    q_tiles = -(-seq_q // BLOCK_Q)
    stored = params["out_dtypes"][0]
    sources = {s["params"]["in_dtypes"][s["params"]["in_views"][0]["input"]] for s in (q, k, v)}
    if stored not in (half, "int8", "uint8", "float32") or not sources <= {"int8", "uint8"}:
        raise UnsupportedError(f"attention_chain: stores {half} (Q/K/V's), int8, uint8 or "
                               f"float32 and reads 8-bit integer heads, not {stored} from "
                               f"{', '.join(sorted(sources))} (fuse-attention-kernels fuses "
                               "only those)")
    score_t, soft_t, out_t = (s["params"]["out_dtypes"][0] for s in (sc, sm, pv))
    setup: list[str] = []
    loads: list[str] = []
    converts: list[str] = []
    for stage, tile, rows, row0, prefix in ((q, "Qs", BLOCK_Q, "q0", "xq"),
                                            (k, "Ks", seq_k, "0", "xk"),
                                            (v, "Vs", seq_k, "0", "xv")):
        before, load, convert = _heads(stage, tile, rows, row0, prefix)
        setup += before
        loads += load
        converts += convert
    coords_s = ("b", "h", "qc", "key")
    s_setup, s_lines = _epilogue(sc, score_t, "sc[j][e]", coords_s, "es", "                ",
                                 "sc[j][e]", 2)
    p_setup, p_lines = _epilogue(sm, soft_t, "sc[j][e] * inv[e >> 1]", coords_s, "ep",
                                 "                ", "sc[j][e]", 1)
    o_setup, o_lines = _epilogue(pv, out_t, "o[j][2 * r + i]", ("b", "h", "qc", "col + i"),
                                 "eo", "                ", "y[i]", 2)
    y_t = "float" if stored_in_float(stored) else c_type(stored)
    body = [
        "    extern __shared__ __align__(16) unsigned short smem[];",
        f"    unsigned short* Qs = smem;  // [{BLOCK_Q}][{ld}]",
        f"    unsigned short* Ks = smem + {BLOCK_Q * ld};  // [{seq_k}][{ld}]",
        f"    unsigned short* Vs = smem + {(BLOCK_Q + seq_k) * ld};  // [{seq_k}][{ld}]",
        *block_coordinates(q_tiles, heads),
        *setup, *s_setup, *p_setup, *o_setup,
        "    // this head's Q rows, K and V rows: loaded, then through their stages' regions",
        "    // into shared tiles",
        *loads,
        *converts,
        "    __syncthreads();",
        f"    unsigned qf[{ks}][4];",
        "    #pragma unroll",
        f"    for (int kk = 0; kk < {ks}; ++kk)",
        f"        ldsm_x4(qf[kk], &Qs[(warp * 16 + (lane & 15)) * {ld} + kk * 16 + "
        "(lane >> 4) * 8]);",
        "    // S = Q Kᵀ over all keys: K rows [key][d] are the col-major B operand",
        f"    float sc[{nj}][4];",
        "    #pragma unroll",
        f"    for (int j = 0; j < {nj}; ++j) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;",
        "    #pragma unroll",
        f"    for (int kk = 0; kk < {ks}; ++kk) {{",
        "        #pragma unroll",
        f"        for (int j = 0; j < {nj}; j += 2) {{",
        "            unsigned kb[4];",
        f"            ldsm_x4(kb, &Ks[(j * 8 + (lane >> 4) * 8 + (lane & 7)) * {ld} + "
        "kk * 16 + ((lane >> 3) & 1) * 8]);",
        "            mma_16816(sc[j], qf[kk], kb[0], kb[1]);",
        "            mma_16816(sc[j + 1], qf[kk], kb[2], kb[3]);",
        "        }",
        "    }",
        "    // the scores stage's epilogue on each score (rows past Sq read row Sq - 1's inputs)",
        *_each_score(nj, seq_q, s_lines),
        "    // softmax over each row (rows g and g + 8: the quad's four lanes hold it)",
        "    float inv[2];",
        "    #pragma unroll",
        "    for (int r = 0; r < 2; ++r) {",
        "        float m = sc[0][2 * r];",
        "        #pragma unroll",
        f"        for (int j = 0; j < {nj}; ++j) m = fmaxf(m, fmaxf(sc[j][2 * r], "
        "sc[j][2 * r + 1]));",
        "        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));",
        "        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));",
        "        float s = 0.f;",
        "        #pragma unroll",
        f"        for (int j = 0; j < {nj}; ++j) {{",
        "            sc[j][2 * r] = expf(sc[j][2 * r] - m);",
        "            sc[j][2 * r + 1] = expf(sc[j][2 * r + 1] - m);",
        "            s += sc[j][2 * r] + sc[j][2 * r + 1];",
        "        }",
        "        s += __shfl_xor_sync(0xffffffffu, s, 1);",
        "        s += __shfl_xor_sync(0xffffffffu, s, 2);",
        "        inv[r] = 1.0f / s;",
        "    }",
        "    // P: each probability rounded to its type, then the softmax stage's epilogue",
        *_each_score(nj, seq_q, p_lines),
        "    // O = P V: S fragments 2 kk, 2 kk + 1 are the A fragment of k16 step kk; V rows",
        "    // [key][d] are the row-major B operand (ldmatrix .trans)",
        f"    float o[{ns}][4];",
        "    #pragma unroll",
        f"    for (int j = 0; j < {ns}; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;",
        *p_times_v(seq_k, ns, ld, "Vs", "    "),
        "    // each output through the last matmul's epilogue, stored at [b, row, h, column]",
        "    #pragma unroll",
        "    for (int r = 0; r < 2; ++r) {",
        "        const int qi = q0 + warp * 16 + g + 8 * r;",
        f"        if (qi >= {seq_q}) continue;",
        "        const int qc = qi;",
        "        #pragma unroll",
        f"        for (int j = 0; j < {ns}; ++j) {{",
        "            const int col = j * 8 + 2 * t;",
        f"            {y_t} y[2];",
        "            #pragma unroll",
        "            for (int i = 0; i < 2; ++i) {",
        *o_lines,
        "            }",
        *_store(stored, heads, dim, seq_q),
        "        }",
        "    }",
    ]
    shared = (BLOCK_Q + 2 * seq_k) * ld * 2
    in_dtypes = params["in_dtypes"]
    text = source(
        f"attention_chain [{b_}, {heads} heads, {seq_q} queries, {seq_k} keys, dim {dim}] "
        f"{half}",
        [f"tactic: tensor cores (mma.sync m16n8k16, FP32 accumulation): one block of {WARPS} "
         f"warps per (batch, head, {BLOCK_Q} queries), whole score rows in registers",
         "stages: " + ", ".join(f"{s['name']} ({s['template']})" for s in params["stages"]),
         f"stored as {stored} [B, Sq, H, D]"],
        signature(name, in_dtypes, [stored], launch_bounds=(WARPS * 32, 1), halves=True),
        body, helpers=helpers(half) + pack_helper(half))
    blocks = b_ * heads * q_tiles
    return KernelSpec(text, (blocks, 1, 1), (WARPS * 32, 1, 1), shared)
