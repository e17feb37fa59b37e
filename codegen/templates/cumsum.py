"""cumsum: running sum along `axis` (`exclusive` leaves the element itself out, `reverse` runs
from the end). One thread per line of the axis, summing sequentially in the element type as
numpy's cumsum does (float16 / bfloat16: in float, rounded to the type after each add)."""

from __future__ import annotations

from ember.codegen.scalar_c import compute_type, is_half, load_float, round_to, storage_type
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import (
    KernelSpec,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)
from ember.codegen.templates.half import stored
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    dtype = params["out_dtypes"][0]
    if len(params["in_shapes"]) > 1 or params.get("axis") is None:
        raise UnsupportedError("CUDA cumsum: a run-time axis is not supported")
    if params.get("product"):
        raise UnsupportedError("CUDA cumsum: no running-product (CumProd) kernel yet")
    if dtype == "bool" or not shape:
        raise UnsupportedError(f"CUDA cumsum: {dtype} input of rank {len(shape)}")
    axis = int(params["axis"]) % len(shape)
    exclusive, reverse = bool(params.get("exclusive")), bool(params.get("reverse"))
    dim, inner = shape[axis], prod(shape[axis + 1:])
    n = prod(shape) // dim if is_sym(dim) or dim else 0
    itype = index_type(prod(shape))
    t, st = compute_type(dtype), storage_type(dtype)
    add = round_to(f"acc + {load_float('line[at]', dtype)}", dtype)
    acc = stored("acc", dtype)
    loop = (f"for (long long j = {dim - 1}; j >= 0; --j)" if reverse
            else f"for (long long j = 0; j < {dim}; ++j)")
    step = f"            acc = {add};" if is_half(dtype) else "            acc += line[at];"
    update = (["            const size_t at = (size_t)j * " + f"{inner};",
               f"            out0[at] = {acc};", step] if exclusive
              else ["            const size_t at = (size_t)j * " + f"{inner};",
                    step, f"            out0[at] = {acc};"])
    body = [grid_stride_loop(n, itype),
            f"        const size_t base = (size_t)(i / {inner}) * {dim * inner} + i % {inner};",
            f"        const {st}* line = in0 + base;",
            f"        {st}* out_line = out0 + base;",
            f"        {t} acc = 0;",
            f"        {loop} {{",
            *(u.replace("out0[", "out_line[") for u in update),
            "        }",
            "    }"]
    grid, block = grid_1d(n)
    text = source(f"cumsum axis {axis} of {shape} {dtype} exclusive={int(exclusive)} "
                  f"reverse={int(reverse)}",
                  [f"tactic: one thread per line ({n} lines of {dim}, stride {inner}), "
                   "sequential sum in the element type, grid-stride loop, block 256"],
                  signature(name, [dtype], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
