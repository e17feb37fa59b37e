"""lrn: local response normalization across channels (ONNX LRN), one thread per element summing
the squares of its `size` neighbouring channels (float16 / bfloat16 computed in float)."""

from __future__ import annotations

from ember.codegen.scalar_c import compute_type, load_float
from ember.codegen.templates import (
    KernelSpec,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)
from ember.codegen.templates.half import compute_literal, is_float, stored
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    dtype = params["out_dtypes"][0]
    if not is_float(dtype):
        raise UnsupportedError(f"CUDA lrn: element type {dtype} is not supported")
    size = int(params["size"])
    lo, hi = (size - 1) // 2, size // 2  # ceil((size - 1) / 2) == size // 2
    channels, inner = shape[1], prod(shape[2:])
    n = prod(shape)
    itype = index_type(n)
    t = compute_type(dtype)
    f = "" if dtype == "float64" else "f"
    alpha = compute_literal(float(params["alpha"]) / size, dtype)
    beta = compute_literal(float(params["beta"]), dtype)
    bias = compute_literal(float(params["bias"]), dtype)
    value = f"{load_float('in0[i]', dtype)} / pow{f}({bias} + {alpha} * s, {beta})"
    body = [grid_stride_loop(n, itype),
            f"        const int c = (int)((i / {inner}) % {channels});",
            f"        const {itype} base = i - ({itype})c * {inner};  // channel 0, same position",
            f"        const int c_lo = c - {lo} < 0 ? 0 : c - {lo};",
            f"        const int c_hi = c + {hi} > {channels - 1} ? {channels - 1} : c + {hi};",
            f"        {t} s = 0;",
            "        for (int cc = c_lo; cc <= c_hi; ++cc) {",
            f"            const {t} v = {load_float(f'in0[base + ({itype})cc * {inner}]', dtype)};",
            "            s += v * v;",
            "        }",
            f"        out0[i] = {stored(value, dtype)};",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"lrn {shape} size={size} alpha={params['alpha']} beta={params['beta']} "
                  f"bias={params['bias']} {dtype}",
                  ["tactic: one thread per element, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
