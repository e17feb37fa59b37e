"""softmax: exp(x - max) / sum along one axis (log: (x - max) - log(sum)). Rows along the last
axis of at most `WARP_ROW_MAX` elements (attention scores: 128 a row): one warp per row, the row
in registers (read once; a lane's elements neighbours, one vector, where the row is 32 whole
vectors), max and sum by warp shuffles, the exponentials kept for the store.
Other rows: one thread block per row (a position of the other dims); threads stride along the
axis, max and sum by block trees. float16 / bfloat16 are loaded into floats and computed in
float, rounded once on the store. Either kernel stores each element through the step's epilogue
where fuse-epilogues gave it one (a QDQ attention's fake-quantize of the probabilities, or a
quantize to int8), in the type the epilogue stores."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type, compute_type, is_half, load_float, storage_type
from ember.codegen.templates import (
    BLOCK_REDUCE,
    VEC_HELPER,
    KernelSpec,
    block_size_for,
    grid_blocks,
    item_bytes,
    prod,
    signature,
    source,
)
from ember.codegen.templates.elementwise import (
    epilogue_dtypes,
    epilogue_summary,
    uses_mod,
)
from ember.codegen.templates.half import compute_literal, is_float
from ember.codegen.templates.layer_norm import (
    WARP_ROW_MAX,
    WARP_SUM,
    WARPS,
    store_lines,
    warp_row_head,
)
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.common import stored_dtype

# NaN-propagating max over a warp (every lane gets the result); layer_norm's warp_sum beside it
WARP_MAX_SUM = """\
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffffu, v, o);
        if (w > v || w != w) v = w;
    }
    return v;
}
""" + WARP_SUM


def _guarded(lines: list[str], cond: str) -> list[str]:
    """`lines` run only where `cond` holds: one store as `if (cond) store;`, an epilogue's
    lines after a `continue` of the loop otherwise."""
    if len(lines) == 1:
        return [f"            if ({cond}) {lines[0].lstrip()}"]
    return [f"            if (!({cond})) continue;", *lines]


def _signature(name: str, params: dict) -> str:
    return signature(name, [params["out_dtypes"][0], *epilogue_dtypes(params)],
                     [stored_dtype(params)], halves=True)


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0]) or [1]
    dtype = params["out_dtypes"][0]
    if not is_float(dtype):
        raise UnsupportedError(f"CUDA softmax: element type {dtype} is not supported")
    axis = int(params["axis"]) if params["in_shapes"][0] else 0
    log = bool(params.get("log", False))
    outer, length, inner = prod(shape[:axis]), shape[axis], prod(shape[axis + 1:])
    rows = outer * inner
    t = compute_type(dtype)
    if inner == 1 and isinstance(length, int) and isinstance(rows, int) and \
            0 < length <= WARP_ROW_MAX and t == "float":
        return _warp_rows(name, params, shape, axis, rows, length, dtype, log)
    f = "" if dtype == "float64" else "f"
    block = block_size_for(length)
    result = "(x - m) - logs" if log else "exp" + f + "(x - m) * inv"
    x_at = load_float(f"in0[base + (size_t)j * {inner}]", dtype)
    body = [f"    __shared__ {t} smem[{block}];",
            f"    for (int row = blockIdx.x; row < {rows}; row += gridDim.x) {{",
            f"        const size_t base = (size_t)(row / {inner}) * {length * inner} + "
            f"row % {inner};",
            f"        {t} mx = {compute_literal(float('-inf'), dtype)};",
            f"        for (int j = threadIdx.x; j < {length}; j += {block}) {{",
            f"            const {t} x = {x_at};",
            "            if (x > mx || x != x) mx = x;",
            "        }",
            "        const " + t + " m = block_reduce(mx, smem, MaxOp());",
            f"        {t} s = 0;",
            f"        for (int j = threadIdx.x; j < {length}; j += {block})",
            f"            s += exp{f}({x_at} - m);",
            "        s = block_reduce(s, smem, SumOp());",
            f"        const {t} inv = ({t})1 / s, logs = log{f}(s);",
            "        (void)inv; (void)logs;",
            f"        for (int j = threadIdx.x; j < {length}; j += {block}) {{",
            f"            const {t} x = {x_at};",
            *store_lines(result, params, length, f"out0[base + (size_t)j * {inner}]",
                         f"base + (size_t)j * {inner}"),
            "        }",
            "    }"]
    text = source(f"{'log_' if log else ''}softmax axis {axis} of {shape} {dtype}",
                  [f"tactic: one block of {block} threads per row ({rows} rows of {length}), "
                   "shared-memory trees for max and sum", *epilogue_summary(params)],
                  _signature(name, params), body, prelude=uses_mod(params),
                  helpers=BLOCK_REDUCE)
    return KernelSpec(text, (grid_blocks(rows), 1, 1), (block, 1, 1), 0)


def _warp_rows(name: str, params: dict, shape: list, axis: int, rows: int, length: int,
               dtype: str, log: bool) -> KernelSpec:
    """`emit` with one warp per row (the last axis): lane l holds x[l], x[l + 32], ..., or,
    where the row is 32 whole vectors (`_lane_vector`), x[per·l .. per·l + per - 1], read and
    stored as one vector each (attention's 128-wide FP16 rows: 8 bytes a lane, where 2-byte
    accesses left the kernel waiting on four loads a lane)."""
    per = -(-length // 32)
    st = storage_type(dtype) if is_half(dtype) else "float"
    out = stored_dtype(params)
    ot = storage_type(out) if is_half(out) else c_type(out)
    result = "(v[i] - m) - logf(s)" if log else "v[i] * inv"
    vector = _lane_vector(length, dtype, out)
    if vector:
        load = [f"        const ember_vec<{st}, {per}> xv = "
                f"*(const ember_vec<{st}, {per}>*)(x + {per} * lane);",
                "        #pragma unroll",
                f"        for (int i = 0; i < {per}; ++i) {{",
                f"            v[i] = {load_float('xv.v[i]', dtype)};",
                "            if (v[i] > mx || v[i] != v[i]) mx = v[i];",
                "        }"]
        store = [f"        ember_vec<{ot}, {per}> yv;",
                 "        #pragma unroll",
                 f"        for (int i = 0; i < {per}; ++i) {{",
                 f"            const int j = {per} * lane + i;",
                 *store_lines(result, params, length, at="yv.v[i]"),
                 "        }",
                 f"        *(ember_vec<{ot}, {per}>*)(y + {per} * lane) = yv;"]
        counted = "s += e;"
    else:
        load = ["        #pragma unroll",
                f"        for (int i = 0; i < {per}; ++i) {{",
                "            const int j = lane + 32 * i;",
                f"            v[i] = j < {length} ? {load_float('x[j]', dtype)} : "
                "-__int_as_float(0x7f800000);",
                "            if (v[i] > mx || v[i] != v[i]) mx = v[i];",
                "        }"]
        store = ["        #pragma unroll",
                 f"        for (int i = 0; i < {per}; ++i) {{",
                 "            const int j = lane + 32 * i;",
                 *_guarded(store_lines(result, params, length), f"j < {length}"),
                 "        }"]
        counted = f"if (lane + 32 * i < {length}) s += e;"
    body = [*warp_row_head(rows, length, st, ot),
            f"        float v[{per}];",
            "        float mx = -__int_as_float(0x7f800000);",
            *load,
            "        const float m = warp_max(mx);",
            "        float s = 0;",
            "        #pragma unroll",
            f"        for (int i = 0; i < {per}; ++i) {{",
            "            const float e = expf(v[i] - m);",
            f"            {counted}",
            *([] if log else ["            v[i] = e;"]),
            "        }",
            "        s = warp_sum(s);",
            *([] if log else ["        const float inv = 1.0f / s;"]),
            *store,
            "    }"]
    held = (f"{per} neighbouring elements a lane, one vector load and store" if vector
            else f"{per} a lane")
    text = source(f"{'log_' if log else ''}softmax axis {axis} of {shape} {dtype}",
                  [f"tactic: one warp per row ({rows} rows of {length}, {WARPS} rows a block), "
                   f"the row in registers ({held}), max and sum by warp shuffles",
                   *epilogue_summary(params)],
                  _signature(name, params), body, prelude=uses_mod(params),
                  helpers=WARP_MAX_SUM + (VEC_HELPER if vector else ""))
    blocks = min(-(-rows // WARPS), 65535)
    return KernelSpec(text, (max(1, blocks), 1, 1), (32 * WARPS, 1, 1), 0)


def _lane_vector(length: int, dtype: str, out: str) -> bool:
    """Whether a row is 32 lanes' whole vectors: length = 32 · per with per in 2..8, the per
    elements of the input and of the stored result each at most 16 bytes."""
    per = length // 32
    if length % 32 or per not in (2, 4, 8):
        return False
    return all(0 < per * item_bytes(t) <= 16 for t in (dtype, out))
