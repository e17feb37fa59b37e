"""reduce: sum / mean / max / min / prod / l1 / l2 / sum_square / log_sum / log_sum_exp over the
given axes. One thread block per output element: threads stride over the reduced elements and
combine with a shared-memory tree (log_sum_exp takes a max pass first). float16 / bfloat16
accumulate in float, rounded once on the store."""

from __future__ import annotations

import numpy as np

from ember.codegen.scalar_c import c_literal, c_type, is_half, load_float, storage_type
from ember.codegen.templates import (
    BLOCK_REDUCE,
    KernelSpec,
    block_size_for,
    decompose,
    grid_blocks,
    linear,
    prod,
    signature,
    source,
    strides_of,
)
from ember.codegen.templates.half import cast_to, is_float
from ember.errors import UnsupportedError

# fn -> (combine functor, map of x, finalize of r over count n)
_FNS = {
    "sum": ("SumOp", "x", "r"),
    "mean": ("SumOp", "x", "r / (ACC){n}"),
    "max": ("MaxOp", "x", "r"),
    "min": ("MinOp", "x", "r"),
    "prod": ("ProdOp", "x", "r"),
    "l1": ("SumOp", "(x < 0 ? -x : x)", "r"),
    "l2": ("SumOp", "x * x", "SQRT(r)"),
    "sum_square": ("SumOp", "x * x", "r"),
    "log_sum": ("SumOp", "x", "LOG(r)"),
    "log_sum_exp": ("SumOp", "EXP(x - m)", "LOG(r) + m"),
}


def _identity(fn: str, dtype: str) -> str:
    if fn in ("max", "min"):
        if dtype in ("float32", "float64"):
            return c_literal(float("-inf") if fn == "max" else float("inf"), dtype)
        info = np.iinfo(np.dtype(dtype))
        return c_literal(int(info.min if fn == "max" else info.max), dtype)
    return "1" if fn == "prod" else "0"


def emit(name: str, params: dict) -> KernelSpec:
    fn = params["fn"]
    shape = list(params["in_shapes"][0])
    dtype = params["out_dtypes"][0]
    if fn not in _FNS:
        raise UnsupportedError(f"CUDA reduce: unknown function '{fn}'")
    floating = is_float(dtype)
    if not floating and (dtype == "bool" or fn not in ("sum", "max", "min", "prod")):
        raise UnsupportedError(f"CUDA reduce: {fn} over {dtype} is not supported")
    axes = sorted(int(a) for a in params["axes"])
    kept = [d for d in range(len(shape)) if d not in axes]
    st = strides_of(shape)
    kept_shape, red_shape = [shape[d] for d in kept], [shape[d] for d in axes]
    n_out, n_red = prod(kept_shape), prod(red_shape)
    t = storage_type(dtype) if is_half(dtype) else c_type(dtype)
    acc = "double" if dtype == "float64" else ("float" if floating else t)
    math_sfx = "" if acc == "double" else "f"
    combine, mapped, final = _FNS[fn]
    final = (final.replace("ACC", acc).replace("{n}", str(n_red))
             .replace("SQRT", "sqrt" + math_sfx).replace("LOG", "log" + math_sfx))
    mapped = mapped.replace("EXP", "exp" + math_sfx)
    block = block_size_for(n_red)
    blocks = grid_blocks(n_out)
    body = [f"    __shared__ {acc} smem[{block}];",
            f"    for (int o = blockIdx.x; o < {n_out}; o += gridDim.x) {{"]
    body += decompose("o", kept_shape, "k", "        ") if kept_shape else []
    body.append(f"        const {t}* x0 = in0 + (size_t)({linear('k', [st[d] for d in kept])});")
    loop = f"        for (int j = threadIdx.x; j < {n_red}; j += {block}) {{"
    red_lines = decompose("j", red_shape, "r", "            ")
    at = load_float(f"x0[{linear('r', [st[d] for d in axes])}]", dtype)
    if fn == "log_sum_exp":
        neg_inf = c_literal(float("-inf"), "float64" if acc == "double" else "float32")
        body += [f"        {acc} mx = {neg_inf};",
                 loop, *red_lines,
                 f"            const {acc} x = {at};",
                 "            if (!isinf(x) && (x > mx || x != x)) mx = x;",
                 "        }",
                 "        mx = block_reduce(mx, smem, MaxOp());",
                 f"        const {acc} m = isfinite(mx) ? mx : ({acc})0;"]
    body += [f"        {acc} v = {_identity(fn, dtype if acc == t else 'float32')};",
             loop, *red_lines,
             f"            const {acc} x = {at};",
             f"            v = {combine}()(v, ({acc})({mapped}));",
             "        }",
             f"        const {acc} r = block_reduce(v, smem, {combine}());",
             f"        if (threadIdx.x == 0) out0[o] = {cast_to(f'({final})', dtype)};",
             "    }"]
    text = source(f"reduce {fn} over axes {axes} of {shape} {dtype}",
                  [f"tactic: one block of {block} threads per output element ({n_out} outputs "
                   f"x {n_red} reduced), shared-memory tree"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body,
                  helpers=BLOCK_REDUCE)
    return KernelSpec(text, (blocks, 1, 1), (block, 1, 1), 0)
