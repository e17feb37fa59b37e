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
    x0 = f"const {t}* x0 = in0 + (size_t)({linear('k', [st[d] for d in kept])});"
    at = load_float(f"x0[{linear('r', [st[d] for d in axes])}]", dtype)
    identity = _identity(fn, dtype if acc == t else "float32")
    if _per_thread(axes, shape, n_out):
        # one thread per output: neighbouring threads read neighbouring elements
        body = ["    const int o = blockIdx.x * blockDim.x + threadIdx.x;",
                f"    if (o >= {n_out}) return;",
                *decompose("o", kept_shape, "k", "    "), f"    {x0}",
                *_accumulate(fn, acc, identity, at, mapped, red_shape, n_red, "    ",
                             f"    for (int j = 0; j < {n_red}; ++j) {{"),
                f"    const {acc} r = v;",
                f"    out0[o] = {cast_to(f'({final})', dtype)};"]
        tactic = (f"tactic: one thread per output element ({n_out} outputs x {n_red} reduced), "
                  "neighbouring threads on neighbouring elements")
        block, grid = 256, -(-n_out // 256)
    else:
        block = block_size_for(n_red)
        grid = grid_blocks(n_out)
        body = [f"    __shared__ {acc} smem[{block}];",
                f"    for (int o = blockIdx.x; o < {n_out}; o += gridDim.x) {{",
                *(decompose("o", kept_shape, "k", "        ") if kept_shape else []),
                f"        {x0}",
                *_accumulate(fn, acc, identity, at, mapped, red_shape, n_red, "        ",
                             f"        for (int j = threadIdx.x; j < {n_red}; j += {block}) {{",
                             block_combine=combine),
                f"        const {acc} r = block_reduce(v, smem, {combine}());",
                f"        if (threadIdx.x == 0) out0[o] = {cast_to(f'({final})', dtype)};",
                "    }"]
        tactic = (f"tactic: one block of {block} threads per output element ({n_out} outputs "
                  f"x {n_red} reduced), shared-memory tree")
    text = source(f"reduce {fn} over axes {axes} of {shape} {dtype}", [tactic],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body,
                  helpers=BLOCK_REDUCE)
    return KernelSpec(text, (grid, 1, 1), (block, 1, 1), 0)


def _accumulate(fn: str, acc: str, identity: str, at: str, mapped: str, red_shape: list,
                n_red: int, indent: str, loop: str, block_combine: str | None = None
                ) -> list[str]:
    """Lines leaving this thread's combination of its reduced elements (read by `loop`) in `v`;
    log_sum_exp first finds their max `m` (over the block with `block_combine`)."""
    combine = _FNS[fn][0]
    red_lines = decompose("j", red_shape, "r", indent + "    ")
    lines = []
    if fn == "log_sum_exp":
        neg_inf = c_literal(float("-inf"), "float64" if acc == "double" else "float32")
        lines += [f"{indent}{acc} mx = {neg_inf};", loop, *red_lines,
                  f"{indent}    const {acc} x = {at};",
                  f"{indent}    if (!isinf(x) && (x > mx || x != x)) mx = x;",
                  f"{indent}}}"]
        if block_combine:
            lines.append(f"{indent}mx = block_reduce(mx, smem, MaxOp());")
        lines.append(f"{indent}const {acc} m = isfinite(mx) ? mx : ({acc})0;")
    return lines + [f"{indent}{acc} v = {identity};", loop, *red_lines,
                    f"{indent}    const {acc} x = {at};",
                    f"{indent}    v = {combine}()(v, ({acc})({mapped}));",
                    f"{indent}}}"]


# outputs from which a reduction that keeps the innermost dim runs one thread per output
PER_THREAD_OUTPUTS = 2048


def _per_thread(axes: list[int], shape: list, n_out) -> bool:
    """Whether the innermost dim is kept and there are enough outputs for one thread each (a
    global average pool in NHWC); else one block per output."""
    return (bool(axes) and len(shape) - 1 not in axes and isinstance(n_out, int)
            and n_out >= PER_THREAD_OUTPUTS)
