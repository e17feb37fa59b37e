"""softmax: exp(x - max) / sum along one axis (log: (x - max) - log(sum)). One thread block per
row (a position of the other dims); threads stride along the axis, max and sum by block trees.
float16 / bfloat16 are loaded into floats and computed in float, rounded once on the store."""

from __future__ import annotations

from ember.codegen.scalar_c import compute_type, load_float
from ember.codegen.templates import (
    BLOCK_REDUCE,
    KernelSpec,
    block_size_for,
    grid_blocks,
    prod,
    signature,
    source,
)
from ember.codegen.templates.half import compute_literal, is_float, stored
from ember.errors import UnsupportedError


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
            f"            out0[base + (size_t)j * {inner}] = {stored(result, dtype)};",
            "        }",
            "    }"]
    text = source(f"{'log_' if log else ''}softmax axis {axis} of {shape} {dtype}",
                  [f"tactic: one block of {block} threads per row ({rows} rows of {length}), "
                   "shared-memory trees for max and sum"],
                  signature(name, [dtype], [dtype], halves=True), body, helpers=BLOCK_REDUCE)
    return KernelSpec(text, (grid_blocks(rows), 1, 1), (block, 1, 1), 0)

