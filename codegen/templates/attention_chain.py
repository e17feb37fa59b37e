"""attention_chain (fuse-attention-kernels): the kernels of an attention chain as one, on FP16 /
BF16 tensor cores. One block per (batch, head, 64 query rows): 4 query warps of 16 rows, each
holding whole score rows (Sk <= 128 keys) in registers; or (tactic `key_split` 2, where Sk is
a multiple of 32) 8 warps, each query warp's keys split over two, so that twice the warps hold
half the scores each. Either form loads Q/K/V into registers, or (`staged` 1) copies them into
shared memory by cp.async first. `tactics` offers the forms (whole rows, registers first: the
form measured so far); a build for the GPU present times them (the autotuner):

- Q's 64 rows, and K's and V's Sk rows, of this head: each thread's 16-byte chunks (16 8-bit
  values each) all loaded into registers (or staged) first, then each value through its
  stage's region (a dequantize) into a half, stored in shared memory as the FP16 path's tiles
  (rows of D + 8 halves);
- S = Q Kᵀ by `mma.sync.m16n8k16` (FP32 accumulation) over the warp's keys, then each score
  through the scores stage's epilogue (fake-quantizes, the scale, the mask) in registers;
- the softmax over each row (max and sum over its quad's four lanes by shuffles, then over the
  key halves' warps through shared memory; `expf(x - m) * (1 / s)` as the softmax kernel
  computes), rounded to its type, then the softmax stage's epilogue (P's fake-quantize);
- O = P V over the warp's keys (P from the registers, V by `ldmatrix.trans`); with split keys
  each warp of a pair adds its partner's partial sums for half of the columns (through shared
  memory, over K's dead tile); each output through the last matmul's epilogue (the quantize)
  and stored where the transpose puts it, [B, Sq, H, D].

Each stage's value is rounded where the unfused kernel rounded it (its own type, then its
epilogue's), so only the summation orders differ from the kernels it replaces (the softmax's
sum, and P V's over two key halves)."""

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

WARPS = 4  # query warps: 16 rows each
MAX_SHARED = 99 * 1024  # a block's shared memory on every sm_80+ GPU (sm_86/89's)
BLOCK_Q = 16 * WARPS


def tactics(params: dict, arch: str | None = None, sms: int = 0) -> list[dict]:
    """The kernel's forms, the cost model's choice first: whole score rows a warp
    (`key_split` 1), and where Sk is a multiple of 32 each query warp's keys over two warps;
    each with Q/K/V loaded into registers, or (`staged` 1) copied into shared memory by
    cp.async first, where the block's shared memory still fits a multiprocessor."""
    seq_k = _stages(params)["k"]["params"]["out_shapes"][0][2]
    splits = [1, 2] if seq_k % 32 == 0 else [1]
    out = [{"key_split": k} for k in splits]
    return out + [{"key_split": k, "staged": 1} for k in splits
                  if _shared_bytes(params, k, True) + _static_bytes(k) <= MAX_SHARED]


def _static_bytes(split: int) -> int:
    """The split form's static shared array `red`: each warp's row maxima and sums."""
    return 2 * split * BLOCK_Q * 4 if split > 1 else 0


def _form(params: dict, seq_k: int) -> tuple[int, bool]:
    """(the warps a query warp's keys are split over, whether Q/K/V are staged in shared
    memory), as the step's tactic says (whole rows, loaded into registers, without one)."""
    tactic = params.get("tactic") or {"key_split": 1}
    if tactic not in tactics(params):
        raise UnsupportedError(f"attention_chain: tactic {tactic} is none of "
                               f"{tactics(params)} (Sk {seq_k})")
    return tactic["key_split"], bool(tactic.get("staged", 0))


def _shared_bytes(params: dict, split: int, staged: bool) -> int:
    """The block's dynamic shared memory: the Q, K and V tiles (halves), P V's partial sums
    over K's tile where the keys are split (past it if they need more), the 8-bit Q/K/V
    staging after them."""
    st = _stages(params)
    _, _, _, dim = st["q"]["params"]["out_shapes"][0]
    seq_k = st["k"]["params"]["out_shapes"][0][2]
    ld = dim + 8
    tiles = (BLOCK_Q + 2 * seq_k) * ld * 2
    ns = dim // 8
    exchange = WARPS * split * (ns // 2) * 4 * 32 * 4 if split > 1 else 0
    halves = max(tiles, BLOCK_Q * ld * 2 + exchange)
    return halves + ((BLOCK_Q + 2 * seq_k) * dim if staged else 0)


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


def _heads(stage: dict, tile: str, rows: int, row0: str, prefix: str, threads: int,
           staging: str | None) -> tuple[list[str], list[str], list[str]]:
    """(lines before, loads, conversions) of `rows` rows of this head from row `row0`
    (clamped into the sequence) through the stage's region into shared tile `tile` (rows of
    D + 8 halves): each thread's 16-byte chunks c = tid + threads i are loaded into registers
    first (`<prefix>raw[i]`), all of Q's, K's and V's before any is converted, so the loads
    are in flight together; or, with `staging` (a shared byte array, rows of D bytes), copied
    there by cp.async (all in flight whatever the compiler schedules; the caller waits for
    them) and read back 16 bytes at a time to convert."""
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
    per = -(-total // threads)
    st = storage_type(src_t)
    raw = f"{prefix}raw"
    guard = "" if total % threads == 0 else f"if (c < {total}) "

    def chunk(i: str) -> list[str]:
        return [f"        const int c = tid + {i} * {threads};",
                f"        const int r = c / {chunks}, col = c % {chunks} * 16;"]

    def element(at: str, target: str) -> list[str]:
        lines, result = _region(p["region"], dtypes, {**values, kv: f"({st})bytes[{at}]"},
                                prefix, "                ", uniform)
        return ["            {", *lines, f"                {target} = {result};", "            }"]

    address = (f"{src} + ((size_t)b * {seq} + row) * {width} + {view['offset']} + h * {dim} "
               "+ col")
    load = (f"cp_async16(&{staging}[c * 16], {address}, true);" if staging else
            f"{raw}[i] = __ldg((const uint4*)({address}));")
    loads = [
        *([] if staging else [f"    uint4 {raw}[{per}];"]),
        "    #pragma unroll",
        f"    for (int i = 0; i < {per}; ++i) {{",
        *chunk("i"),
        f"        const int row = min({row0} + r, {seq - 1});",
        f"        {guard}{load}",
        "    }"]
    read = ([f"        const uint4 chunk16 = *(const uint4*)&{staging}[c * 16];",
             f"        const {st}* bytes = (const {st}*)&chunk16;"] if staging else
            [f"        const {st}* bytes = (const {st}*)&{raw}[i];"])
    convert = [
        "    #pragma unroll",
        f"    for (int i = 0; i < {per}; ++i) {{",
        *chunk("i"),
        *([f"        if (c >= {total}) break;"] if guard else []),
        *read,
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
    (clamped into Sq: rows past it are computed, never stored) and `key` (from the warp's
    first key k0)."""
    return [
        "    #pragma unroll",
        f"    for (int j = 0; j < {fragments}; ++j) {{",
        "        #pragma unroll",
        "        for (int e = 0; e < 4; ++e) {",
        f"            const int qc = min(q0 + qw * 16 + g + 8 * (e >> 1), {seq_q - 1});",
        "            const int key = k0 + j * 8 + 2 * t + (e & 1);",
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


def _softmax(nj: int, split: int) -> list[str]:
    """Each row's max and sum over its quad's four lanes (shuffles) and, with the keys split
    over `split` warps, over those warps (shared `red`: each warp's value of its two rows, then
    combined in key order; one barrier for the maxima, one for the sums), leaving the scores
    exp(x - m) and inv[r] = 1 / s."""
    def across(value: str, combine: str, slot: int) -> list[str]:
        if split == 1:
            return []
        row = "qw * 16 + g + 8 * r"
        return [
            "    #pragma unroll",
            "    for (int r = 0; r < 2; ++r)",
            f"        if (t == 0) red[{slot}][kh][{row}] = {value}[r];",
            "    __syncthreads();",
            "    #pragma unroll",
            "    for (int r = 0; r < 2; ++r) {",
            f"        {value}[r] = red[{slot}][0][{row}];",
            f"        for (int w = 1; w < {split}; ++w) "
            f"{value}[r] = {combine.format(f'{value}[r]', f'red[{slot}][w][{row}]')};",
            "    }"]
    return [
        "    float m[2], s[2], inv[2];",
        "    #pragma unroll",
        "    for (int r = 0; r < 2; ++r) {",
        "        m[r] = sc[0][2 * r];",
        "        #pragma unroll",
        f"        for (int j = 0; j < {nj}; ++j) m[r] = fmaxf(m[r], fmaxf(sc[j][2 * r], "
        "sc[j][2 * r + 1]));",
        "        m[r] = fmaxf(m[r], __shfl_xor_sync(0xffffffffu, m[r], 1));",
        "        m[r] = fmaxf(m[r], __shfl_xor_sync(0xffffffffu, m[r], 2));",
        "    }",
        *across("m", "fmaxf({}, {})", 0),
        "    #pragma unroll",
        "    for (int r = 0; r < 2; ++r) {",
        "        s[r] = 0.f;",
        "        #pragma unroll",
        f"        for (int j = 0; j < {nj}; ++j) {{",
        "            sc[j][2 * r] = expf(sc[j][2 * r] - m[r]);",
        "            sc[j][2 * r + 1] = expf(sc[j][2 * r + 1] - m[r]);",
        "            s[r] += sc[j][2 * r] + sc[j][2 * r + 1];",
        "        }",
        "        s[r] += __shfl_xor_sync(0xffffffffu, s[r], 1);",
        "        s[r] += __shfl_xor_sync(0xffffffffu, s[r], 2);",
        "    }",
        *across("s", "{} + {}", 1),
        "    #pragma unroll",
        "    for (int r = 0; r < 2; ++r) inv[r] = 1.0f / s[r];"]


def _sum_halves(ns: int, split: int, xs: str) -> list[str]:
    """With the keys split over two warps, each keeps half of the O columns (fragments
    kh·ns/2 on): it puts the other half's partial sums in shared `xs` (its own slot), adds its
    partner's for its half (partial sums in key order) and leaves them in o[0 .. ns/2)
    (constant register indices: each branch names its fragments)."""
    if split == 1:
        return []
    half = ns // 2
    mine = f"{xs}[((warp * {half} + jj) * 4 + e) * 32 + lane]"
    partner = f"{xs}[((((1 - kh) * {WARPS} + qw) * {half} + jj) * 4 + e) * 32 + lane]"

    def each(line: str) -> list[str]:
        return ["        #pragma unroll",
                f"        for (int jj = 0; jj < {half}; ++jj)",
                "            #pragma unroll",
                "            for (int e = 0; e < 4; ++e)",
                f"                {line}"]
    return [
        "    // the key halves' partial sums: each warp keeps half of the columns",
        "    __syncthreads();  // every warp is past Q Kᵀ: Ks is free",
        "    if (kh == 0) {",
        *each(f"{mine} = o[{half} + jj][e];"),
        "    } else {",
        *each(f"{mine} = o[jj][e];"),
        "    }",
        "    __syncthreads();",
        "    if (kh == 0) {",
        *each(f"o[jj][e] = o[jj][e] + {partner};"),
        "    } else {",
        *each(f"o[jj][e] = {partner} + o[{half} + jj][e];"),
        "    }"]


def emit(name: str, params: dict) -> KernelSpec:
    st = _stages(params)
    q, k, v, sc, sm, pv = (st[n] for n in ("q", "k", "v", "scores", "softmax", "pv"))
    b_, heads, seq_q, dim = q["params"]["out_shapes"][0]
    seq_k = k["params"]["out_shapes"][0][2]
    half = q["params"]["out_dtypes"][0]
    ld = dim + 8
    split, staged = _form(params, seq_k)
    threads = WARPS * split * 32
    keys = seq_k // split  # a warp's keys
    nj, ks, ns = keys // 8, dim // 16, dim // 8
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
    staging = {"xq": 0, "xk": BLOCK_Q * dim, "xv": (BLOCK_Q + seq_k) * dim}
    for stage, tile, rows, row0, prefix in ((q, "Qs", BLOCK_Q, "q0", "xq"),
                                            (k, "Ks", seq_k, "0", "xk"),
                                            (v, "Vs", seq_k, "0", "xv")):
        before, load, convert = _heads(stage, tile, rows, row0, prefix, threads,
                                       f"(raw8 + {staging[prefix]})" if staged else None)
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
    shared = _shared_bytes(params, split, staged)
    halves = _shared_bytes(params, split, False)  # the staging starts after the halves' tiles
    shared_red = f"    __shared__ float red[2][{split}][{BLOCK_Q}];  // rows' max, sum per warp"
    own = ns // split  # the O fragments a warp stores: o[0 .. own) from column kh·own·8
    body = [
        "    extern __shared__ __align__(16) unsigned short smem[];",
        f"    unsigned short* Qs = smem;  // [{BLOCK_Q}][{ld}]",
        f"    unsigned short* Ks = smem + {BLOCK_Q * ld};  // [{seq_k}][{ld}]",
        f"    unsigned short* Vs = smem + {(BLOCK_Q + seq_k) * ld};  // [{seq_k}][{ld}]",
        *([shared_red, "    float* xs = (float*)Ks;  // after Q Kᵀ: P V's partial sums"]
          if split > 1 else []),
        *block_coordinates(q_tiles, heads),
        *([f"    // warp = kh * {WARPS} + qw: query rows q0 + 16 qw, keys k0 = {keys} kh on",
           f"    const int qw = warp % {WARPS}, kh = warp / {WARPS}, k0 = kh * {keys};"]
          if split > 1 else
          ["    const int qw = warp, kh = 0, k0 = 0;  // query rows q0 + 16 qw, every key"]),
        *setup, *s_setup, *p_setup, *o_setup,
        "    // this head's Q rows, K and V rows: loaded, then through their stages' regions",
        "    // into shared tiles",
        *([f"    unsigned char* raw8 = (unsigned char*)smem + {halves};  // 8-bit Q, K, V rows"]
          if staged else []),
        *loads,
        *(["    cp_async_commit();", "    cp_async_wait<0>();", "    __syncthreads();"]
          if staged else []),
        *converts,
        "    __syncthreads();",
        f"    unsigned qf[{ks}][4];",
        "    #pragma unroll",
        f"    for (int kk = 0; kk < {ks}; ++kk)",
        f"        ldsm_x4(qf[kk], &Qs[(qw * 16 + (lane & 15)) * {ld} + kk * 16 + "
        "(lane >> 4) * 8]);",
        "    // S = Q Kᵀ over the warp's keys: K rows [key][d] are the col-major B operand",
        f"    float sc[{nj}][4];",
        "    #pragma unroll",
        f"    for (int j = 0; j < {nj}; ++j) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;",
        "    #pragma unroll",
        f"    for (int kk = 0; kk < {ks}; ++kk) {{",
        "        #pragma unroll",
        f"        for (int j = 0; j < {nj}; j += 2) {{",
        "            unsigned kb[4];",
        f"            ldsm_x4(kb, &Ks[(k0 + j * 8 + (lane >> 4) * 8 + (lane & 7)) * {ld} + "
        "kk * 16 + ((lane >> 3) & 1) * 8]);",
        "            mma_16816(sc[j], qf[kk], kb[0], kb[1]);",
        "            mma_16816(sc[j + 1], qf[kk], kb[2], kb[3]);",
        "        }",
        "    }",
        "    // the scores stage's epilogue on each score (rows past Sq read row Sq - 1's inputs)",
        *_each_score(nj, seq_q, s_lines),
        "    // softmax over each row (rows g and g + 8: the quad's four lanes hold the warp's",
        "    // part of it)",
        *_softmax(nj, split),
        "    // P: each probability rounded to its type, then the softmax stage's epilogue",
        *_each_score(nj, seq_q, p_lines),
        "    // O = P V: S fragments 2 kk, 2 kk + 1 are the A fragment of k16 step kk; V rows",
        "    // [key][d] are the row-major B operand (ldmatrix .trans)",
        f"    float o[{ns}][4];",
        "    #pragma unroll",
        f"    for (int j = 0; j < {ns}; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;",
        *p_times_v(keys, ns, ld, f"(Vs + k0 * {ld})", "    "),
        *_sum_halves(ns, split, "xs"),
        "    // each output through the last matmul's epilogue, stored at [b, row, h, column]",
        "    #pragma unroll",
        "    for (int r = 0; r < 2; ++r) {",
        "        const int qi = q0 + qw * 16 + g + 8 * r;",
        f"        if (qi >= {seq_q}) continue;",
        "        const int qc = qi;",
        "        #pragma unroll",
        f"        for (int j = 0; j < {own}; ++j) {{",
        f"            const int col = (kh * {own} + j) * 8 + 2 * t;",
        f"            {y_t} y[2];",
        "            #pragma unroll",
        "            for (int i = 0; i < 2; ++i) {",
        *o_lines,
        "            }",
        *_store(stored, heads, dim, seq_q),
        "        }",
        "    }",
    ]
    in_dtypes = params["in_dtypes"]
    text = source(
        f"attention_chain [{b_}, {heads} heads, {seq_q} queries, {seq_k} keys, dim {dim}] "
        f"{half}",
        [f"tactic: tensor cores (mma.sync m16n8k16, FP32 accumulation): one block of "
         f"{WARPS * split} warps per (batch, head, {BLOCK_Q} queries), each warp 16 rows of "
         f"scores over {keys} keys in registers"
         + ("; Q/K/V copied into shared memory by cp.async first" if staged else ""),
         "stages: " + ", ".join(f"{s['name']} ({s['template']})" for s in params["stages"]),
         f"stored as {stored} [B, Sq, H, D]"],
        signature(name, in_dtypes, [stored], launch_bounds=(threads, 1), halves=True),
        body, helpers=helpers(half) + pack_helper(half))
    blocks = b_ * heads * q_tiles
    return KernelSpec(text, (blocks, 1, 1), (threads, 1, 1), shared)
