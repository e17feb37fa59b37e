"""resize: ONNX Resize (nearest with every nearest_mode, linear, cubic; every
coordinate_transformation_mode, exclude_outside, antialias, tf_crop_and_resize's extrapolation)
as a separable gather. The per-axis source indices and weights are computed here, with the numpy
kernel's own coordinate and weight rules, and baked into the kernel as constant tables; each
thread sums the taps' product of weights for one output element (in double; float16 / bfloat16
loaded into floats and the sum rounded once on the store)."""

from __future__ import annotations

import math

import numpy as np

from ember.codegen.scalar_c import (
    c_literal,
    is_half,
    load_float,
    storage_type,
    store_from_float,
)
from ember.codegen.symbolic import is_sym
from ember.codegen.templates import (
    KernelSpec,
    close_loops,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
    strides_of,
)
from ember.errors import ShapeError, SymbolicError, UnsupportedError
from ember.runtime.cpu_kernels.movement import resize_taps

MAX_TABLE = 1 << 18  # table entries (index + weight pairs) one kernel may bake in


def _axis_table(params: dict, in_len: int, out_len: int, scale: float,
                roi: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices [out, taps] clipped to the input, weights [out, taps], outside [out]) of one axis,
    from the CPU kernel's own `resize_taps`, so both compute the same function."""
    try:
        index, weights, outside = resize_taps(params, in_len, out_len, scale, roi)
    except ShapeError as e:
        raise UnsupportedError(f"CUDA resize: {e}") from None
    return index, weights, np.zeros(out_len, bool) if outside is None else outside


def _table(ctype: str, name: str, values: np.ndarray) -> str:
    flat = values.reshape(-1).tolist()
    if ctype == "double":
        items = [repr(float(v)) for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    rows = [", ".join(items[i:i + 12]) for i in range(0, len(items), 12)]
    return (f"__device__ const {ctype} {name}[{len(flat)}] = {{\n    "
            + ",\n    ".join(rows) + "\n};")


def _scaled(d: int, scale: float) -> int:
    """floor(d * scale); a symbolic d only where the axis is not resized."""
    if is_sym(d):
        if scale != 1.0:
            raise SymbolicError(f"resize bakes per-axis tables: the symbolic size {d} is "
                                f"scaled by {scale}")
        return d
    return int(math.floor(d * scale))


def emit(name: str, params: dict) -> KernelSpec:
    shape = list(params["in_shapes"][0])
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    if len(params["in_shapes"]) > 1:
        raise UnsupportedError("CUDA resize: run-time roi / scales / sizes are not supported")
    if dtype == "bool":
        raise UnsupportedError("CUDA resize: bool input is not supported")
    t = storage_type(dtype)
    rank = len(shape)
    scales = [float(s) for s in params["scales"]]
    sizes = params.get("sizes") or [-1] * rank
    sizes = [int(n) if n >= 0 else _scaled(d, s) for d, s, n in zip(shape, scales, sizes,
                                                                     strict=True)]
    if sizes != out_shape:
        raise UnsupportedError(f"CUDA resize: sizes {sizes} differ from the result {out_shape}")
    if 0 in shape:
        raise UnsupportedError(f"CUDA resize: empty input {shape}")
    roi = params.get("roi")
    axes, tables, taps = [], [], []
    for a in range(rank):
        axis_roi = None if roi is None else (float(roi[a]), float(roi[rank + a]))
        trivial_roi = axis_roi is None or (math.isclose(axis_roi[0], 0.0)
                                           and math.isclose(axis_roi[1], 1.0))
        if math.isclose(scales[a], 1.0) and sizes[a] == shape[a] and trivial_roi:
            continue
        if is_sym(shape[a]) or is_sym(sizes[a]):
            raise SymbolicError(f"resize bakes per-axis tables: axis {a} of {shape} -> "
                                f"{out_shape} must be static")
        index, weights, outside = _axis_table(params, shape[a], sizes[a], scales[a], axis_roi)
        axes.append(a)
        tables.append((index, weights, outside))
        taps.append(index.shape[1])
    entries = sum(idx.size for idx, _, _ in tables)
    if entries > MAX_TABLE:
        raise UnsupportedError(f"CUDA resize: {entries} table entries exceed {MAX_TABLE}")
    extrapolate = any(o.any() for _, _, o in tables)
    helpers = []
    for a, (index, weights, outside) in zip(axes, tables, strict=True):
        helpers.append(_table("int", f"index{a}", index))
        helpers.append(_table("double", f"weight{a}", weights))
        if extrapolate:
            helpers.append(_table("int", f"outside{a}", outside.astype(int)))
            helpers.append(_table("double", f"weight_sum{a}", weights.sum(axis=1)))
    n = prod(out_shape)
    itype = index_type(n, prod(shape))
    in_st = strides_of(shape)
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "o", "        ", itype)
    fixed = " + ".join(f"(size_t)o{d} * {in_st[d]}" for d in range(rank)
                       if d not in axes and in_st[d] != 0) or "0"
    body += [f"        const size_t base = {fixed};", "        double acc = 0;"]
    indent = "        "
    terms = []
    for a, nt in zip(axes, taps, strict=True):
        body.append(f"{indent}for (int t{a} = 0; t{a} < {nt}; ++t{a}) {{")
        indent += "    "
        body.append(f"{indent}const int e{a} = (int)o{a} * {nt} + t{a};")
        terms.append(a)
    weight = " * ".join(f"weight{a}[e{a}]" for a in terms) or "1.0"
    at = " + ".join(f"(size_t)index{a}[e{a}] * {in_st[a]}" for a in terms) or "0"
    body.append(f"{indent}acc += {weight} * (double){load_float(f'in0[base + {at}]', dtype)};")
    indent = close_loops(body, indent, len(terms))
    if extrapolate:
        # the last axis whose coordinate falls outside the roi sets the value to the
        # extrapolation value; the later axes only scale it by their weight sums
        value = c_literal(float(params.get("extrapolation_value", 0.0)), "float64")
        body.append("        double fill = 0; bool filled = false;")
        for a in axes:
            body += [f"        if (filled) fill *= weight_sum{a}[o{a}];",
                     f"        if (outside{a}[o{a}]) {{ fill = {value}; filled = true; }}"]
        body.append("        if (filled) acc = fill;")
    if is_half(dtype):
        body.append(f"        out0[i] = {store_from_float('(float)acc', dtype)};")
    elif dtype in ("float32", "float64"):
        body.append(f"        out0[i] = ({t})acc;")
    else:
        info = np.iinfo(np.dtype(dtype))
        body.append(f"        out0[i] = ({t})fmin(fmax(rint(acc), {float(info.min)!r}), "
                    f"{float(info.max)!r});")
    body.append("    }")
    grid, block = grid_1d(n)
    mode = params.get("mode", "nearest")
    detail = (f"nearest_mode={params.get('nearest_mode', 'round_prefer_floor')}"
              if mode == "nearest" else f"cubic_coeff_a={params.get('cubic_coeff_a', -0.75)}"
              if mode == "cubic" else "")
    text = source(f"resize {mode} {shape} -> {out_shape} {dtype} coordinate_transformation_mode="
                  f"{params.get('coordinate_transformation_mode', 'half_pixel')} {detail}".rstrip(),
                  ["tactic: separable gather, one thread per output element (grid-stride loop, "
                   "block 256);",
                   f"resized axes {axes} with {taps} taps each: source indices and weights "
                   "precomputed per output coordinate (index<a>, weight<a>), sums in double"],
                  signature(name, [dtype], [dtype], halves=True), body,
                  helpers="\n".join(helpers))
    return KernelSpec(text, grid, block, 0)
