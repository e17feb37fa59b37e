"""arg_reduce: the int64 index of the max / min along `axis` (the first one, or the last with
`select_last_index`; a NaN wins as in numpy's argmax/argmin). One thread per output element
scans its line of the reduced axis (float16 / bfloat16 compared as floats)."""

from __future__ import annotations

from ember.codegen.scalar_c import compute_type, load_float, storage_type
from ember.codegen.templates import (
    KernelSpec,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    dtype = params["in_dtypes"][0]
    fn = params["fn"]
    if fn not in ("max", "min"):
        raise UnsupportedError(f"CUDA arg_reduce: unknown function '{fn}'")
    if dtype == "bool":
        raise UnsupportedError("CUDA arg_reduce: bool input is not supported")
    if params["out_dtypes"][0] != "int64":
        raise UnsupportedError(f"CUDA arg_reduce: result type {params['out_dtypes'][0]}")
    if not shape:
        raise UnsupportedError("CUDA arg_reduce: a rank-0 input is not supported")
    axis = int(params["axis"]) % len(shape)
    dim, inner = shape[axis], prod(shape[axis + 1:])
    if dim == 0:
        raise UnsupportedError("CUDA arg_reduce: the reduced axis is empty")
    last = bool(params.get("select_last_index"))
    n = prod(shape) // dim
    itype = index_type(prod(shape))
    t, st = compute_type(dtype), storage_type(dtype)
    better = ">" if fn == "max" else "<"
    first, step, cond = (f"{dim - 1}", "--j", "j >= 0") if last else ("0", "++j", f"j < {dim}")
    body = [grid_stride_loop(n, itype),
            f"        const {st}* line = in0 + (i / {inner}) * {dim * inner} + i % {inner};",
            f"        long long best_j = {first};",
            f"        {t} best = {load_float(f'line[(size_t)best_j * {inner}]', dtype)};",
            f"        for (long long j = {first}; {cond}; {step}) {{",
            "            if (best != best) break;  // a NaN is final",
            f"            const {t} v = {load_float(f'line[(size_t)j * {inner}]', dtype)};",
            f"            if (v {better} best || v != v) {{ best = v; best_j = j; }}",
            "        }",
            "        out0[i] = best_j;",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"arg_reduce arg{fn} axis {axis} of {shape} {dtype} "
                  f"select_last_index={int(last)}",
                  ["tactic: one thread per output element scans the reduced axis "
                   f"({dim} values, stride {inner}), grid-stride loop, block 256;",
                   "ties keep the first value met (scanning from the end for select_last_index)"],
                  signature(name, [dtype], ["int64"], halves=True), body)
    return KernelSpec(text, grid, block, 0)
