"""einsum: numpy einsum of one or two operands as a strided contraction: one thread per output
element loops over the summed labels; each operand is read through per-label strides computed
here (a repeated label adds its strides — a diagonal —, a broadcast "..." dim has stride 0).
"bij,bjk->bik" is a batched matmul, "ii->i" a diagonal, "ij->" a full sum. float16 / bfloat16
operands are loaded into floats and summed in float."""

from __future__ import annotations

from ember.codegen.scalar_c import c_type, is_half, load_float, storage_type, store_from_float
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import (
    KernelSpec,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
    strides_of,
)
from ember.dialects.nn.linear import parse_einsum
from ember.errors import ShapeError, SymbolicError, UnsupportedError


def _broadcast(a: int, b: int) -> int:
    """The broadcast size of a "..." dim of sizes a and b, one of them symbolic."""
    if a == 1 or a == b:
        return b
    if b == 1:
        return a
    # whether the symbolic size is 1 (a broadcast, stride 0) is known only at run time
    raise SymbolicError(f"einsum broadcasts '...' dims of sizes {a} and {b}")


def emit(name: str, params: dict) -> KernelSpec:
    shapes = [list(s) for s in params["in_shapes"]]
    dtype = params["out_dtypes"][0]
    if dtype == "bool" or any(d != dtype for d in params["in_dtypes"]):
        raise UnsupportedError(f"CUDA einsum: operand types {params['in_dtypes']} -> {dtype}")
    equation = params["equation"]
    try:
        terms, out = parse_einsum(equation, [len(s) for s in shapes])
    except ShapeError as e:
        raise UnsupportedError(f"CUDA einsum: {e}") from None
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        for lab, d in zip(term, shape, strict=True):
            if lab.isdigit() and (is_sym(d) or is_sym(sizes.get(lab, 1))):
                sizes[lab] = _broadcast(sizes.get(lab, 1), d)
            else:
                sizes[lab] = max(sizes.get(lab, 1), d) if lab.isdigit() else d
    summed = [lab for term in terms for lab in term if lab not in out]
    summed = list(dict.fromkeys(summed))
    # per operand: label -> element stride (0 where a "..." dim of size 1 broadcasts)
    op_strides = []
    for term, shape in zip(terms, shapes, strict=True):
        st: dict[str, int] = {}
        for lab, d, s in zip(term, shape, strides_of(shape), strict=True):
            st[lab] = st.get(lab, 0) + (0 if d == 1 and sizes[lab] != 1 else s)
        op_strides.append(st)
    out_shape = [sizes[lab] for lab in out]
    if out_shape != list(params["out_shapes"][0]):
        raise UnsupportedError(f"CUDA einsum: '{equation}' gives {out_shape}, the result is "
                               f"{params['out_shapes'][0]}")
    n = prod(out_shape)
    n_sum = prod(sizes[lab] for lab in summed)
    itype = index_type(n, *(prod(s) for s in shapes))
    half = is_half(dtype)
    t = storage_type(dtype) if half else c_type(dtype)
    acc_t = "float" if dtype == "float32" or half else t
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "o", "        ", itype)

    def offset(k: int, coord: dict[str, str]) -> str:
        terms_ = [f"(size_t){coord[lab]} * {s}" for lab, s in op_strides[k].items()
                  if s != 0 and lab in coord]
        return " + ".join(terms_) or "0"

    out_coord = {lab: f"o{j}" for j, lab in enumerate(out)}
    sum_coord = {lab: f"r{j}" for j, lab in enumerate(summed)}
    for k in range(len(shapes)):
        body.append(f"        const {t}* a{k} = in{k} + {offset(k, out_coord)};")
    body.append(f"        {acc_t} acc = 0;")
    product = " * ".join(f"({acc_t}){load_float(f'a{k}[{offset(k, sum_coord)}]', dtype)}"
                         for k in range(len(shapes)))
    if summed:
        body.append(f"        for (long long r = 0; r < {n_sum}; ++r) {{")
        body += decompose("r", [sizes[lab] for lab in summed], "r", "            ", "long long")
        body.append(f"            acc += {product};")
        body.append("        }")
    else:
        body.append(f"        acc = {product};")
    body += [f"        out0[i] = {store_from_float('acc', dtype) if half else f'({t})acc'};",
             "    }"]
    grid, block = grid_1d(n)
    labels = ", ".join(f"{lab}={sizes[lab]}" for lab in sizes)
    text = source(f"einsum '{equation}' {shapes} -> {out_shape} {dtype}",
                  ["tactic: one thread per output element (grid-stride loop, block 256) sums "
                   f"over the labels {summed or 'none'} ({n_sum} terms);",
                   f"label sizes: {labels}; operand strides per label: {op_strides}"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)
