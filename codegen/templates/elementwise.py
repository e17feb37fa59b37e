"""elementwise: a scalar region over broadcast inputs, one thread per output element
(grid-stride loop); each input is read through its own broadcast strides, computed here."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type, scalar_expr
from ember.codegen.templates import (
    KernelSpec,
    broadcast_strides,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    linear,
    prod,
    signature,
    source,
)


def emit(name: str, params: dict) -> KernelSpec:
    in_shapes, in_dtypes = params["in_shapes"], params["in_dtypes"]
    out_shape, out_dtype = params["out_shapes"][0], params["out_dtypes"][0]
    region = params["region"]
    n = prod(out_shape)
    itype = index_type(n)
    body = [grid_stride_loop(n, itype)]
    needs_coords = any(list(s) != list(out_shape) and prod(s) != 1 for s in in_shapes)
    if needs_coords:
        body += decompose("i", out_shape, "c", "        ", itype)
    dtypes = list(in_dtypes)
    for k, (shape, dt) in enumerate(zip(in_shapes, in_dtypes, strict=True)):
        if list(shape) == list(out_shape):
            index = "i"
        elif prod(shape) == 1:
            index = "0"
        else:
            index = linear("c", broadcast_strides(shape, out_shape))
        body.append(f"        const {c_type(dt)} v{k} = in{k}[{index}];")
    for j, op in enumerate(region["ops"]):
        idx = len(in_dtypes) + j
        args = [f"v{a}" for a in op["args"]]
        expr = scalar_expr(op["fn"], args, [dtypes[a] for a in op["args"]], op["dtype"],
                           op.get("alpha"), op.get("beta"))
        body.append(f"        const {c_type(op['dtype'])} v{idx} = {expr};  // {op['fn']}")
        dtypes.append(op["dtype"])
    result = region["result"]
    body.append(f"        out0[i] = ({c_type(out_dtype)})v{result};")
    body.append("    }")
    fns = ", ".join(op["fn"] for op in region["ops"]) or "copy"
    grid, block = grid_1d(n)
    text = source(f"elementwise [{fns}] -> {out_dtype}{list(out_shape)}",
                  ["tactic: one thread per output element, grid-stride loop, block 256;",
                   "inputs read through numpy broadcast strides"],
                  signature(name, in_dtypes, [out_dtype]), body,
                  prelude=any(op["fn"] == "mod" for op in region["ops"]))
    return KernelSpec(text, grid, block, 0)
