"""batch_norm: inference batch norm per channel (dim 1), one thread per element."""

from __future__ import annotations

from ember.codegen.scalar_c import c_literal, c_type
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
    dtype = params["out_dtypes"][0]
    if dtype not in ("float32", "float64"):
        raise UnsupportedError(f"CUDA batch_norm: element type {dtype} is not supported")
    channels, inner = shape[1], prod(shape[2:])
    n = prod(shape)
    itype = index_type(n)
    t = c_type(dtype)
    f = "" if dtype == "float64" else "f"
    eps = c_literal(float(params["epsilon"]), dtype)
    body = [grid_stride_loop(n, itype),
            f"        const int c = (int)((i / {inner}) % {channels});",
            "        // inputs: x, scale, bias, mean, var",
            f"        const {t} inv = rsqrt{f}(in4[c] + {eps});",
            "        out0[i] = (in0[i] - in3[c]) * inv * in1[c] + in2[c];",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"batch_norm {shape} eps={float(params['epsilon'])} {dtype}",
                  ["tactic: one thread per element, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"], [dtype]), body)
    return KernelSpec(text, grid, block, 0)
