"""batch_norm: inference batch norm per channel (dim 1), one thread per element (float16 /
bfloat16 operands loaded into floats, computed in float)."""

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
    if not is_float(dtype) or any(not is_float(d) for d in params["in_dtypes"]):
        raise UnsupportedError(f"CUDA batch_norm: element types {params['in_dtypes']} -> "
                               f"{dtype} are not supported")
    channels, inner = shape[1], prod(shape[2:])
    n = prod(shape)
    itype = index_type(n)
    t = compute_type(dtype)
    f = "" if dtype == "float64" else "f"
    eps = compute_literal(float(params["epsilon"]), dtype)
    x, scale, bias, mean, var = (load_float(f"in{k}[{'i' if k == 0 else 'c'}]", d)
                                 for k, d in enumerate(params["in_dtypes"]))
    body = [grid_stride_loop(n, itype),
            f"        const int c = (int)((i / {inner}) % {channels});",
            "        // inputs: x, scale, bias, mean, var",
            f"        const {t} inv = rsqrt{f}({var} + {eps});",
            f"        out0[i] = {stored(f'({x} - {mean}) * inv * {scale} + {bias}', dtype)};",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"batch_norm {shape} eps={float(params['epsilon'])} {dtype}",
                  ["tactic: one thread per element, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
