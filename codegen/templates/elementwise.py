"""elementwise: a scalar region over broadcast inputs, one thread per output element
(grid-stride loop); each input is read through its own broadcast strides, computed here.
`epilogue_lines` prints the same region as a conv's / matmul's epilogue."""

from __future__ import annotations

from collections.abc import Sequence

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


def read_inputs(first: int, shapes: Sequence[Sequence[int]], dtypes: Sequence[str],
                out_shape: Sequence[int], index: str, prefix: str, indent: str,
                itype: str = "int", number_from: int = 0) -> list[str]:
    """C lines defining `<prefix><number_from + k>` = the element of input `in<first + k>` at
    output index `index`, read through its broadcast strides (coordinates `<prefix>c0..` where
    needed)."""
    lines: list[str] = []
    if any(list(s) != list(out_shape) and prod(s) != 1 for s in shapes):
        lines += decompose(index, out_shape, f"{prefix}c", indent, itype)
    for k, (shape, dt) in enumerate(zip(shapes, dtypes, strict=True)):
        if list(shape) == list(out_shape):
            at = index
        elif prod(shape) == 1:
            at = "0"
        else:
            at = linear(f"{prefix}c", broadcast_strides(shape, out_shape))
        lines.append(f"{indent}const {c_type(dt)} {prefix}{number_from + k} = "
                     f"in{first + k}[{at}];")
    return lines


def region_lines(region: dict, dtypes: Sequence[str], prefix: str, indent: str) -> list[str]:
    """C lines computing a region's ops over values `<prefix>0..` (of `dtypes`), each op's result
    the next numbered value; the result is `<prefix><region["result"]>`."""
    dtypes, lines = list(dtypes), []
    for op in region["ops"]:
        args = [f"{prefix}{a}" for a in op["args"]]
        expr = scalar_expr(op["fn"], args, [dtypes[a] for a in op["args"]], op["dtype"],
                           op.get("alpha"), op.get("beta"))
        lines.append(f"{indent}const {c_type(op['dtype'])} {prefix}{len(dtypes)} = {expr};"
                     f"  // {op['fn']}")
        dtypes.append(op["dtype"])
    return lines


def epilogue_lines(params: dict, value: str, index: str, indent: str) -> list[str]:
    """C lines applying a launch's `epilogue` to `value` (the output element at flat output
    index `index`), assigning the result back to `value`; none without an epilogue. Its extra
    inputs are the kernel's last pointer arguments."""
    epilogue = params.get("epilogue")
    if epilogue is None:
        return []
    out_shape, dtype = params["out_shapes"][0], params["out_dtypes"][0]
    first = len(params["in_shapes"])
    lines = [f"{indent}// epilogue: {', '.join(op['fn'] for op in epilogue['ops']) or 'copy'}",
             f"{indent}const {c_type(dtype)} e0 = {value};"]
    lines += read_inputs(first, epilogue["in_shapes"], epilogue["in_dtypes"], out_shape,
                         index, "e", indent, "size_t", number_from=1)
    lines += region_lines(epilogue, [dtype, *epilogue["in_dtypes"]], "e", indent)
    lines.append(f"{indent}{value} = ({c_type(dtype)})e{epilogue['result']};")
    return lines


def epilogue_summary(params: dict) -> list[str]:
    """The tactic-comment line describing a launch's epilogue (none without one)."""
    epilogue = params.get("epilogue")
    if epilogue is None:
        return []
    fns = ", ".join(op["fn"] for op in epilogue["ops"]) or "copy"
    return [f"epilogue fused: [{fns}] on each output before the store, "
            f"{len(epilogue['in_shapes'])} extra input(s) read through broadcast strides"]


def epilogue_dtypes(params: dict) -> list[str]:
    """The dtypes of a launch's extra (epilogue) inputs, which follow its own in the signature."""
    epilogue = params.get("epilogue")
    return list(epilogue["in_dtypes"]) if epilogue else []


def uses_mod(params: dict) -> bool:
    epilogue = params.get("epilogue")
    return bool(epilogue) and any(op["fn"] == "mod" for op in epilogue["ops"])


def emit(name: str, params: dict) -> KernelSpec:
    in_shapes, in_dtypes = params["in_shapes"], params["in_dtypes"]
    out_shape, out_dtype = params["out_shapes"][0], params["out_dtypes"][0]
    region = params["region"]
    n = prod(out_shape)
    itype = index_type(n)
    body = [grid_stride_loop(n, itype)]
    body += read_inputs(0, in_shapes, in_dtypes, out_shape, "i", "v", "        ", itype)
    body += region_lines(region, in_dtypes, "v", "        ")
    body.append(f"        out0[i] = ({c_type(out_dtype)})v{region['result']};")
    body.append("    }")
    fns = ", ".join(op["fn"] for op in region["ops"]) or "copy"
    grid, block = grid_1d(n)
    text = source(f"elementwise [{fns}] -> {out_dtype}{list(out_shape)}",
                  ["tactic: one thread per output element, grid-stride loop, block 256;",
                   "inputs read through numpy broadcast strides"],
                  signature(name, in_dtypes, [out_dtype]), body,
                  prelude=any(op["fn"] == "mod" for op in region["ops"]))
    return KernelSpec(text, grid, block, 0)
