"""range: ONNX Range, out[i] = start + i * delta over the static result length, computed as
numpy's arange fills (delta taken as (start + delta) - start in the element type)."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type
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
    dtype = params["out_dtypes"][0]
    if params.get("declared"):
        raise UnsupportedError("CUDA range: run-time bounds with the model's declared length "
                               "are checked on the host")
    if dtype == "bool":
        raise UnsupportedError("CUDA range: bool is not supported")
    if any(prod(s) != 1 for s in params["in_shapes"]):
        raise UnsupportedError(f"CUDA range: operands {params['in_shapes']} are not scalars")
    t = c_type(dtype)
    n = prod(params["out_shapes"][0])
    itype = index_type(n)
    body = [f"    const {t} start = in0[0];",
            f"    const {t} delta = ({t})(start + in2[0]) - start;",
            grid_stride_loop(n, itype),
            f"        out0[i] = start + ({t})i * delta;",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"range of {n} {dtype}",
                  ["tactic: one thread per element, grid-stride loop, block 256; the limit "
                   "operand only fixed the (static) length"],
                  signature(name, [dtype] * 3, [dtype]), body)
    return KernelSpec(text, grid, block, 0)
