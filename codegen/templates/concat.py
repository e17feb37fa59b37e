"""concat: inputs joined along one axis; one thread per output element picks its input by the
position along the axis (elements copied as stored, a half as its 2 bytes)."""

from __future__ import annotations

from ember.codegen.templates import (
    KernelSpec,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)


def emit(name: str, params: dict) -> KernelSpec:
    shapes = [list(s) for s in params["in_shapes"]]
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    axis = int(params["axis"]) % len(out_shape)
    inner = prod(out_shape[axis + 1:])
    total = out_shape[axis]
    n = prod(out_shape)
    itype = index_type(n)
    body = [grid_stride_loop(n, itype),
            f"        const {itype} outer = i / {total * inner};",
            f"        const int a = (int)((i / {inner}) % {total});",
            f"        const {itype} r = i % {inner};"]
    start = 0
    first = True
    for k, s in enumerate(shapes):
        size = s[axis]
        if size == 0:
            continue
        end = start + size
        cond = f"a < {end}"
        kw = "if" if first else "} else if"
        body.append(f"        {kw} ({cond}) {{")
        body.append(f"            out0[i] = in{k}[(outer * {size} + (a - {start})) * {inner} + r];")
        first = False
        start = end
    if not first:
        body.append("        }")
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"concat axis {axis} of {len(shapes)} inputs -> {out_shape} {dtype}",
                  ["tactic: one thread per output element, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
