"""layer_norm: normalize over dims axis..end, then scale (+ bias) broadcast to those dims. Rows of
at most `WARP_ROW_MAX` elements (a transformer's hidden size): one warp per row, the row held in
registers, mean and variance by warp shuffles (no shared memory, no barrier); longer rows: one
thread block per row, mean then variance of the centred values (two passes) by block trees. The
RMS variant (`rms`) skips the mean and divides by the root mean square.
float16 / bfloat16 operands are loaded into floats and the row computed in float."""

from __future__ import annotations

from ember.codegen.quantize_c import HOISTED
from ember.codegen.scalar_c import compute_type, is_half, load_float, storage_type
from ember.codegen.templates import (
    BLOCK_REDUCE,
    VEC_HELPER,
    KernelSpec,
    block_size_for,
    broadcast_strides,
    decompose,
    grid_blocks,
    item_bytes,
    linear,
    prod,
    signature,
    source,
    vector_width,
)
from ember.codegen.templates.elementwise import (
    epilogue_dtypes,
    epilogue_lines,
    epilogue_store,
    epilogue_summary,
    uses_mod,
)
from ember.codegen.templates.half import compute_literal, is_float, stored
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.common import stored_dtype


def param_index(shape: list[int], inner: list[int], body: list[str], k: int) -> str:
    """Index into a parameter broadcast to the normalized dims, at flat position `j`."""
    if list(shape) == list(inner) or prod(shape) == prod(inner):
        return "j"
    if prod(shape) == 1:
        return "0"
    body += decompose("j", inner, f"p{k}_", "            ")
    return linear(f"p{k}_", broadcast_strides(shape, inner))


def param(params: dict, k: int, index: str) -> str:
    """Operand `in<k>` at `index` as a computing-type expression."""
    return load_float(f"in{k}[{index}]", params["in_dtypes"][k])


WARP_ROW_MAX = 1024  # the longest row a warp holds in registers (32 floats a lane)
WARPS = 8  # rows (warps) per block of the warp-per-row kernel
WARP_SUM = """\
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
"""


def normalized_rows(name: str, params: dict, rows: int, length: int, what: str,
                    affine: list[str], centred: bool = True, lane: tuple = ()) -> KernelSpec:
    """Rows of `length`: `mean` (0 unless `centred`) and `inv` = 1 / sqrt(mean of
    (x - mean)² + eps), then the `affine` lines (which read `XJ`, x[j] as a computing-type
    expression, and `mean`, `inv`, `j`) store y[j]: a warp per row where the row fits its
    registers (`_warp_rows`), else a block per row with block trees. `lane` = (width, the
    parameters read as vectors), where `lane_width` gave the width and the `affine` lines were
    made for it (`pv<k>.v[e]`, stored as `yv.v[e]`): the warp kernel's lanes then hold
    neighbouring elements, `width` at a time."""
    dtype = params["out_dtypes"][0]
    if not is_float(dtype) or any(not is_float(d) for d in params["in_dtypes"]):
        raise UnsupportedError(f"CUDA {what}: element types {params['in_dtypes']} -> {dtype} "
                               "are not supported")
    split = row_warps(params)
    if split > 1:
        if not lane or (length // (32 * lane[0])) % split:
            raise UnsupportedError(
                f"CUDA {what}: tactic row_warps {split} needs the warp kernel's vector lanes "
                f"(a static row count, rows of whole 16-byte vectors) in chunks a multiple of "
                f"{split} ({rows} rows of {length})")
        return _split_rows(name, params, rows, length, what, affine, centred, lane, split)
    if isinstance(length, int) and isinstance(rows, int) and length <= WARP_ROW_MAX \
            and compute_type(dtype) == "float":
        return _warp_rows(name, params, rows, length, what, affine, centred, lane)
    if lane:
        raise ValueError(f"{what}: lane vectors belong to the warp-per-row kernel (lane_width)")
    t = compute_type(dtype)
    f = "" if dtype == "float64" else "f"
    eps = compute_literal(float(params["epsilon"]), dtype)
    block = block_size_for(length, hi=512)
    xj = load_float("x[j]", dtype)
    if centred:
        mean = [f"        {t} s = 0;",
                f"        for (int j = threadIdx.x; j < {length}; j += {block}) s += {xj};",
                f"        const {t} mean = block_reduce(s, smem, SumOp()) / ({t}){length};"]
        passes = "two-pass mean / variance"
    else:
        mean = [f"        const {t} mean = 0;"]
        passes = "one-pass mean square"
    st = storage_type(dtype) if is_half(dtype) else t
    body = [f"    __shared__ {t} smem[{block}];",
            f"    for (int row = blockIdx.x; row < {rows}; row += gridDim.x) {{",
            f"        const {st}* x = in0 + (size_t)row * {length};",
            f"        {storage_type(stored_dtype(params))}* y = out0 + (size_t)row * {length};",
            *mean,
            f"        {t} q = 0;",
            f"        for (int j = threadIdx.x; j < {length}; j += {block}) {{",
            f"            const {t} d = {xj} - mean;",
            "            q += d * d;",
            "        }",
            f"        const {t} inv = rsqrt{f}(block_reduce(q, smem, SumOp()) / ({t}){length} "
            f"+ {eps});",
            f"        for (int j = threadIdx.x; j < {length}; j += {block}) {{",
            *[line.replace("XJ", xj) for line in affine],
            "        }",
            "    }"]
    text = source(f"{what} of {params['in_shapes'][0]} eps={float(params['epsilon'])} {dtype}",
                  [f"tactic: one block of {block} threads per row ({rows} rows of {length}), "
                   f"{passes} with shared-memory trees", *epilogue_summary(params)],
                  _signature(name, params), body, prelude=uses_mod(params), helpers=BLOCK_REDUCE)
    return KernelSpec(text, (grid_blocks(rows), 1, 1), (block, 1, 1), 0)


def warp_row_head(rows: int, length: int, in_type: str, out_type: str) -> list[str]:
    """The opening lines of a warp-per-row kernel (layer_norm's, softmax's): the lane, the
    grid-stride loop over rows (`WARPS` a block) and the row's input `x` and output `y`."""
    return ["    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;",
            f"    for (int row = blockIdx.x * {WARPS} + warp; row < {rows}; "
            f"row += gridDim.x * {WARPS}) {{",
            f"        const {in_type}* x = in0 + (size_t)row * {length};",
            f"        {out_type}* y = out0 + (size_t)row * {length};"]


def _warp_rows(name: str, params: dict, rows: int, length: int, what: str,
               affine: list[str], centred: bool, lane: tuple = ()) -> KernelSpec:
    """`normalized_rows` with one warp per row: lane l holds x[l], x[l + 32], ... in registers
    (read once), the sums are warp shuffles, then it stores its own elements. With `lane`
    (width W, vector parameters), lane l holds x[W·l ..] of each 32·W chunk c instead (element
    i = W·c + e is j = 32·W·c + W·l + e), reading x and each vector parameter and storing y one
    vector a chunk (BERT's 768-wide FP16 rows: 9 16-byte loads a lane where 72 2-byte ones and
    24 stores left the kernel latency-bound)."""
    dtype = params["out_dtypes"][0]
    eps = compute_literal(float(params["epsilon"]), dtype)
    per = -(-length // 32)
    st = storage_type(dtype) if is_half(dtype) else "float"
    ot = storage_type(stored_dtype(params))
    mean = (f"        const float mean = warp_sum(s) / (float){length};" if centred
            else "        const float mean = 0;")
    summed = ["            s += v[i];"] if centred else []
    if lane:
        width, vector_params = lane
        at = f"{32 * width} * c + {width} * lane"
        vec = f"ember_vec<{st}, {width}>"
        load = ["        #pragma unroll",
                f"        for (int c = 0; c < {length // (32 * width)}; ++c) {{",
                f"            const {vec} xv = *(const {vec}*)(x + {at});",
                "            #pragma unroll",
                f"            for (int e = 0; e < {width}; ++e) {{",
                f"                const int i = {width} * c + e;",
                f"                v[i] = {load_float('xv.v[e]', dtype)};",
                *["    " + line for line in summed],
                "            }",
                "        }"]
        counted = "q += d * d;"
        chunks = length // (32 * width)
        pvec = {k: f"ember_vec<{storage_type(params['in_dtypes'][k])}, {width}>"
                for k in vector_params}
        # the parameters' vectors are read with x, before the sums: their latency overlaps
        # x's instead of following the second shuffle tree
        early = [line for k in vector_params for line in (
            f"        {pvec[k]} pvs{k}[{chunks}];",
            "        #pragma unroll",
            f"        for (int c = 0; c < {chunks}; ++c) "
            f"pvs{k}[c] = *(const {pvec[k]}*)(in{k} + {at});")]
        load = early + load
        store = ["        #pragma unroll",
                 f"        for (int c = 0; c < {chunks}; ++c) {{",
                 *[f"            const {pvec[k]} pv{k} = pvs{k}[c];" for k in vector_params],
                 f"            ember_vec<{ot}, {width}> yv;",
                 "            #pragma unroll",
                 f"            for (int e = 0; e < {width}; ++e) {{",
                 f"                const int i = {width} * c + e, j = {at} + e;",
                 *[("" if line.endswith(HOISTED) else "    ") + line.replace("XJ", "v[i]")
                   for line in affine],
                 "            }",
                 f"            *(ember_vec<{ot}, {width}>*)(y + {at}) = yv;",
                 "        }"]
        held = f"{per} a lane, {width} neighbouring elements a vector load / store"
    else:
        load = ["        #pragma unroll",
                f"        for (int i = 0; i < {per}; ++i) {{",
                "            const int j = lane + 32 * i;",
                f"            v[i] = j < {length} ? {load_float('x[j]', dtype)} : 0.0f;",
                *summed,
                "        }"]
        counted = f"if (lane + 32 * i < {length}) q += d * d;"
        store = ["        #pragma unroll",
                 f"        for (int i = 0; i < {per}; ++i) {{",
                 "            const int j = lane + 32 * i;",
                 f"            if (j >= {length}) continue;",
                 *[line.replace("XJ", "v[i]") for line in affine],
                 "        }"]
        held = f"{per} a lane"
    body = [*warp_row_head(rows, length, st, ot),
            f"        float v[{per}];",
            *(["        float s = 0;"] if centred else []),
            *load,
            mean,
            "        float q = 0;",
            "        #pragma unroll",
            f"        for (int i = 0; i < {per}; ++i) {{",
            "            const float d = v[i] - mean;",
            f"            {counted}",
            "        }",
            f"        const float inv = rsqrtf(warp_sum(q) / (float){length} + {eps});",
            *store,
            "    }"]
    return _rows_kernel(name, params, what, body, rows, WARPS, 1, bool(lane),
                        f"one warp per row ({rows} rows of {length}, {WARPS} rows a block), "
                        f"the row in registers ({held}), {_passes(centred)} by warp shuffles")


def _passes(centred: bool) -> str:
    return "two-pass mean / variance" if centred else "one-pass mean square"


def _rows_kernel(name: str, params: dict, what: str, body: list[str], rows: int,
                 block_rows: int, split: int, vectors: bool, tactic: str) -> KernelSpec:
    """The warp kernels' source (its `tactic` line) and launch: `block_rows` rows of `split`
    warps a block."""
    dtype = params["out_dtypes"][0]
    text = source(f"{what} of {params['in_shapes'][0]} eps={float(params['epsilon'])} {dtype}",
                  [f"tactic: {tactic}", *epilogue_summary(params)],
                  _signature(name, params), body, prelude=uses_mod(params),
                  helpers=WARP_SUM + (VEC_HELPER if vectors else ""))
    blocks = min(-(-rows // block_rows), 65535)
    return KernelSpec(text, (max(1, blocks), 1, 1), (32 * split * block_rows, 1, 1), 0)


def row_warps(params: dict) -> int:
    """The warps that share a row (the step's tactic `row_warps`; 1 without one). A tactic
    naming anything else is refused, not ignored."""
    tactic = params.get("tactic") or {}
    unknown = sorted(set(tactic) - {"row_warps"})
    if unknown:
        raise UnsupportedError(f"layer_norm: tactic {tactic} names {', '.join(unknown)}: "
                               "a layer norm's only tactic is row_warps")
    split = tactic.get("row_warps", 1)
    if not isinstance(split, int) or split < 1:
        raise ValueError(f"layer_norm: tactic row_warps {split!r} is not a positive integer")
    return split


def tactics(params: dict, arch: str | None = None, sms: int = 0) -> list[dict]:
    """The row forms worth timing: one warp a row (`row_warps` 1, the measured default), and
    where the warp kernel reads whole vectors (`lane_width`), 2, 3 or 4 warps of a block
    sharing each row (its vector chunks split evenly): BERT's 1024 rows of 768 are 8 warps a
    multiprocessor one way, 24 with three warps a row, each a third of the chain. `arch` and
    `sms` change nothing (select-tactics' interface). Layer norms of symbolic or long rows,
    and RMS norms (their own template options), have none."""
    shape = list(params["in_shapes"][0])
    axis = int(params["axis"])
    rows, length = prod(shape[:axis]), prod(shape[axis:])
    if params.get("rms") or not isinstance(rows, int) or not isinstance(length, int):
        return []
    whole = [k for k in range(1, len(params["in_shapes"]))
             if prod(params["in_shapes"][k]) == length]
    width = lane_width(params, rows, length, whole)
    if not width:
        return []
    chunks = length // (32 * width)
    return [{"row_warps": r} for r in (1, 2, 3, 4) if chunks % r == 0 and r <= chunks]


def _split_rows(name: str, params: dict, rows: int, length: int, what: str,
                affine: list[str], centred: bool, lane: tuple, split: int) -> KernelSpec:
    """The lane-vector warp kernel with `split` warps of a block sharing each row: warp h of a
    row holds chunks [h·C/split, (h+1)·C/split) of its C vector chunks (and those of the
    vector parameters, read before the sums), each sum is a warp shuffle tree then the
    `split` warps' partial sums added in order through shared memory (one barrier each);
    WARPS // `split` rows a block. The block's warps walk the rows together (a warp
    past the last row computes on the last one and stores nothing), so every barrier is
    reached by all."""
    width, vector_params = lane
    dtype = params["out_dtypes"][0]
    eps = compute_literal(float(params["epsilon"]), dtype)
    st = storage_type(dtype) if is_half(dtype) else "float"
    ot = storage_type(stored_dtype(params))
    chunks = length // (32 * width)
    mine = chunks // split  # chunks a warp holds
    per = mine * width
    block_rows = max(1, WARPS // split)
    at = f"{32 * width} * c + {width} * lane"
    vec = f"ember_vec<{st}, {width}>"
    pvec = {k: f"ember_vec<{storage_type(params['in_dtypes'][k])}, {width}>"
            for k in vector_params}

    def each_chunk(lines: list[str]) -> list[str]:
        return ["        #pragma unroll",
                f"        for (int cc = 0; cc < {mine}; ++cc) {{",
                "            const int c = c0 + cc;",
                *lines,
                "        }"]

    def combined(partial: str, table: str, result: str) -> list[str]:
        return [f"        const float {partial}_w = warp_sum({partial});",
                f"        if (lane == 0) {table}[slot][h] = {partial}_w;",
                "        __syncthreads();",
                f"        float {result} = 0;",
                "        #pragma unroll",
                f"        for (int k = 0; k < {split}; ++k) {result} += {table}[slot][k];"]

    body = ["    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;",
            f"    const int h = warp % {split}, slot = warp / {split}, c0 = h * {mine};",
            f"    __shared__ float red_s[{block_rows}][{split}], red_q[{block_rows}][{split}];",
            f"    for (int base = blockIdx.x * {block_rows}; base < {rows}; "
            f"base += gridDim.x * {block_rows}) {{",
            f"        const bool live = base + slot < {rows};",
            f"        const int row = live ? base + slot : {rows} - 1;",
            f"        const {st}* x = in0 + (size_t)row * {length};",
            f"        {ot}* y = out0 + (size_t)row * {length};",
            *[line for k in vector_params for line in (
                f"        {pvec[k]} pvs{k}[{mine}];",
                "        #pragma unroll",
                f"        for (int cc = 0; cc < {mine}; ++cc) pvs{k}[cc] = "
                f"*(const {pvec[k]}*)(in{k} + {32 * width} * (c0 + cc) + {width} * lane);")],
            f"        float v[{per}];",
            "        float s = 0;",
            *each_chunk([f"            const {vec} xv = *(const {vec}*)(x + {at});",
                         "            #pragma unroll",
                         f"            for (int e = 0; e < {width}; ++e) {{",
                         f"                const int i = {width} * cc + e;",
                         f"                v[i] = {load_float('xv.v[e]', dtype)};",
                         "                s += v[i];",
                         "            }"])]
    if centred:
        body += [*combined("s", "red_s", "total"),
                 f"        const float mean = total / (float){length};"]
    else:
        body += ["        const float mean = 0;"]
    body += ["        float q = 0;",
             "        #pragma unroll",
             f"        for (int i = 0; i < {per}; ++i) {{",
             "            const float d = v[i] - mean;",
             "            q += d * d;",
             "        }",
             *combined("q", "red_q", "squares"),
             f"        const float inv = rsqrtf(squares / (float){length} + {eps});",
             *each_chunk([*[f"            const {pvec[k]} pv{k} = pvs{k}[cc];"
                            for k in vector_params],
                           f"            ember_vec<{ot}, {width}> yv;",
                           "            #pragma unroll",
                           f"            for (int e = 0; e < {width}; ++e) {{",
                           f"                const int i = {width} * cc + e, j = {at} + e;",
                           *[("" if line.endswith(HOISTED) else "    ")
                             + line.replace("XJ", "v[i]") for line in affine],
                           "            }",
                           f"            if (live) *(ember_vec<{ot}, {width}>*)(y + {at}) = yv;"]),
             "    }"]
    return _rows_kernel(name, params, what, body, rows, block_rows, split, True,
                        f"{split} warps per row ({rows} rows of {length}, {block_rows} rows a "
                        f"block), each {per} elements a lane in {width}-element vectors, "
                        f"{_passes(centred)} by warp shuffles and shared-memory partial sums")


def _signature(name: str, params: dict) -> str:
    """The kernel's signature: its operands, an epilogue's extra inputs, the stored result."""
    return signature(name, [*params["in_dtypes"], *epilogue_dtypes(params)],
                     [stored_dtype(params)], halves=True)


def store_line(value: str, dtype: str) -> str:
    """The affine line storing `value` as y[j]."""
    return f"            y[j] = {stored(value, dtype)};"


def store_lines(value: str, params: dict, length: int | str, at: str = "y[j]",
                index: str | None = None, ind: str = "            ",
                loaded: dict[int, str] | None = None) -> list[str]:
    """The lines storing `value` (a float expression) as `at` (y[j]): rounded to the result
    dtype, or through the step's epilogue (fuse-epilogues': a quantize for the next GEMM) into
    the type it stores. `at` is output element `index` (element j of the row `row`: row *
    length + j), where the epilogue's inputs are read (`loaded`: those the caller read already,
    as `epilogue_lines` takes them). softmax's kernels store this way too."""
    if not params.get("epilogue"):
        return [f"{ind}{at} = {stored(value, params['out_dtypes'][0])};"]
    out, own = stored_dtype(params), compute_type(params["out_dtypes"][0])
    lines = [f"{ind}{own} r = {value};"]
    result = None
    if compute_type(out) != own:  # an integer (int8) result: the region's own C type
        result = "res"
        lines.append(f"{ind}{compute_type(out)} res;")
    lines += epilogue_lines(params, "r", index or f"(size_t)row * {length} + j", ind,
                            loaded=loaded, result=result)
    return lines + [f"{ind}{at} = {epilogue_store(params, result or 'r')};"]


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    axis = int(params["axis"])
    inner = shape[axis:]
    rows, length = prod(shape[:axis]), prod(inner)
    rms = bool(params.get("rms", False))
    what = f"{'rms_norm' if rms else 'layer_norm'} axis {axis}"
    affine: list[str] = []
    indices = {k: param_index(list(params["in_shapes"][k]), inner, affine, k)
               for k in range(1, len(params["in_shapes"]))}
    whole = [k for k, index in indices.items() if index == "j"]
    width = lane_width(params, rows, length, whole)
    reads = {k: load_float(f"pv{k}.v[e]", params["in_dtypes"][k]) if width and k in whole
             else param(params, k, index) for k, index in indices.items()}
    expr = f"{'XJ' if rms else '(XJ - mean)'} * inv * {reads[1]}"
    if len(params["in_shapes"]) > 2:
        expr += f" + {reads[2]}"
    loaded = _uniform_reads(params, affine) if width else {}
    affine += store_lines(expr, params, length, at="yv.v[e]" if width else "y[j]",
                          loaded=loaded)
    return normalized_rows(name, params, rows, length, what, affine, centred=not rms,
                           lane=(width, whole) if width else ())


def _uniform_reads(params: dict, lines: list[str]) -> dict[int, str]:
    """{epilogue input k: its value} for the epilogue's one-element inputs (a quantize's
    scale), each read once per thread at the kernel's top (a `HOISTED` line added to `lines`):
    read where the epilogue is, after the row's sums, its load was one more memory round trip
    on the warp's chain."""
    epilogue, first = params.get("epilogue"), len(params["in_shapes"])
    out: dict[int, str] = {}
    for k, (shape, dtype) in enumerate(zip(epilogue["in_shapes"], epilogue["in_dtypes"],
                                           strict=True) if epilogue else ()):
        if prod(shape) == 1:
            out[k] = f"ember_u{first + k}"
            lines.append(f"    const {compute_type(dtype)} {out[k]} = "
                         f"{load_float(f'in{first + k}[0]', dtype)};{HOISTED}")
    return out


def lane_width(params: dict, rows: int, length: int, vector_params: list[int]) -> int:
    """Elements a lane of the warp kernel takes at a time as one vector: the most (2..16)
    whose bytes of x, of the stored result and of each of `vector_params` (parameters indexed
    like x) fit 16 and whose 32 lanes divide the row; 0 where the warp kernel does not run
    or none does."""
    dtype = params["out_dtypes"][0]
    if not (isinstance(length, int) and isinstance(rows, int) and length <= WARP_ROW_MAX
            and compute_type(dtype) == "float"):
        return 0
    types = [dtype, stored_dtype(params), *(params["in_dtypes"][k] for k in vector_params)]
    width = vector_width([item_bytes(t) for t in types], [length // 32])
    return width if length % 32 == 0 else 0
