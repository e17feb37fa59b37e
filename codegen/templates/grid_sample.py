"""grid_sample: ONNX GridSample in any spatial rank, every mode (nearest, linear, cubic) and
padding (zeros, border, reflection), with the numpy kernel's rules (runtime/cpu_kernels/
sampling.py): one thread per output element reads its grid point, denormalizes each coordinate
in float (double for float64), brings it inside the border as padding says and sums the taps
(nearest: 1, linear: 2, cubic: 4 per dim), each tap's index under the padding rule."""

from __future__ import annotations

from ember.codegen.scalar_c import load_float, store_from_float
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
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.sampling import CUBIC_A

FLOATS = ("float32", "float64", "float16", "bfloat16")


def _helpers(ftype: str, padding: str) -> str:
    index = {
        "zeros": "    ok = ok && k >= 0 && k < size;\n"
                 "    return k < 0 ? 0 : (k >= size ? size - 1 : k);",
        "border": "    return k < 0 ? 0 : (k >= size ? size - 1 : k);",
        "reflection": f"    int r = (int)trunc(gs_reflect(({ftype})k, lo, hi));\n"
                      "    return r < 0 ? 0 : (r >= size ? size - 1 : r);",
    }[padding]
    a = repr(CUBIC_A)
    return f"""\
// x reflected by the nearer border until it lies in [lo, hi]
__device__ __forceinline__ {ftype} gs_reflect({ftype} x, {ftype} lo, {ftype} hi) {{
    const {ftype} span = hi - lo;
    if (span <= 0) return lo;
    if (x < lo) {{
        const {ftype} d = lo - x, n = trunc(d / span), r = d - n * span;
        return fmod(n, ({ftype})2) == 0 ? lo + r : hi - r;
    }}
    if (x > hi) {{
        const {ftype} d = x - hi, n = trunc(d / span), r = d - n * span;
        return fmod(n, ({ftype})2) == 0 ? hi - r : lo + r;
    }}
    return x;
}}
// a tap's index along a dim of `size` under {padding} padding (ok: false where it reads 0)
__device__ __forceinline__ int gs_index(int k, int size, {ftype} lo, {ftype} hi, bool& ok) {{
{index}
}}
// Keys' cubic weights of taps floor-1 .. floor+2 at fraction t
__device__ __forceinline__ void gs_cubic({ftype} t, {ftype}* w) {{
    const {ftype} a = {a}, x = fabs(t);
    w[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
    w[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
    w[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
    w[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a;
}}"""


def emit(name: str, params: dict) -> KernelSpec:
    x_shape, grid_shape = (list(s) for s in params["in_shapes"])
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    mode, padding = params["mode"], params["padding_mode"]
    align = bool(params["align_corners"])
    if dtype not in FLOATS or params["in_dtypes"][1] != dtype:
        raise UnsupportedError(f"CUDA grid_sample: {dtype} X with a {params['in_dtypes'][1]} "
                               "grid")
    if any(is_sym(d) for d in [*x_shape, *grid_shape]):
        raise UnsupportedError("CUDA grid_sample: symbolic shapes")
    if 0 in out_shape:
        raise UnsupportedError(f"CUDA grid_sample: empty result {out_shape}")
    r = len(x_shape) - 2
    spatial = x_shape[2:]
    ftype = "double" if dtype == "float64" else "float"
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape), prod(grid_shape))
    xs, gs = strides_of(x_shape), strides_of(grid_shape)
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "o", "        ", itype)
    gbase = " + ".join([f"(size_t)o0 * {gs[0]}"]
                       + [f"(size_t)o{2 + j} * {gs[1 + j]}" for j in range(r)])
    body += [f"        const size_t gbase = {gbase};",
             f"        const size_t xbase = (size_t)o0 * {xs[0]} + (size_t)o1 * {xs[1]};"]
    for d, size in enumerate(spatial):
        g = f"({ftype}){load_float(f'in1[gbase + {r - 1 - d}]', dtype)}"
        lo = 0.0 if align else -0.5
        hi = size - 1.0 if align else size - 0.5
        denorm = (f"({g} + 1) / 2 * {size - 1}" if align else f"(({g} + 1) * {size} - 1) / 2")
        body += [f"        {ftype} v{d} = ({ftype})({denorm});",
                 f"        const {ftype} lo{d} = {lo!r}, hi{d} = {hi!r};"]
        if mode == "nearest":
            body.append(f"        v{d} = rint(v{d});")
        if padding == "border":
            body.append(f"        if (v{d} < lo{d} || v{d} > hi{d}) "
                        f"v{d} = v{d} < 0 ? 0 : (v{d} > {size - 1} ? {size - 1} : v{d});")
        elif padding == "reflection":
            body.append(f"        if (v{d} < lo{d} || v{d} > hi{d}) "
                        f"v{d} = gs_reflect(v{d}, lo{d}, hi{d});")
    if mode == "nearest":
        body.append("        bool ok = true;")
        at = []
        for d, size in enumerate(spatial):
            body.append(f"        const int k{d} = gs_index((int)trunc(v{d}), {size}, lo{d}, "
                        f"hi{d}, ok);")
            at.append(f"(size_t)k{d} * {xs[2 + d]}")
        offset = " + ".join(at)
        body.append(f"        const {ftype} acc = ok ? ({ftype})"
                    f"{load_float(f'in0[xbase + {offset}]', dtype)} : 0;")
    else:
        taps, first = (2, 0) if mode == "linear" else (4, -1)
        for d in range(r):
            body += [f"        const {ftype} f{d} = floor(v{d}), t{d} = v{d} - f{d};",
                     f"        {ftype} w{d}[{taps}];"]
            body.append(f"        w{d}[0] = 1 - t{d}; w{d}[1] = t{d};" if mode == "linear"
                        else f"        gs_cubic(t{d}, w{d});")
        body.append(f"        {ftype} acc = 0;")
        indent = "        "
        for d, size in enumerate(spatial):
            body += [f"{indent}for (int j{d} = 0; j{d} < {taps}; ++j{d}) {{",
                     f"{indent}    bool ok{d} = {'ok' + str(d - 1) if d else 'true'};",
                     f"{indent}    const int k{d} = gs_index((int)f{d} + j{d} + ({first}), "
                     f"{size}, lo{d}, hi{d}, ok{d});"]
            indent += "    "
        at = " + ".join(f"(size_t)k{d} * {xs[2 + d]}" for d in range(r))
        weight = " * ".join(f"w{d}[j{d}]" for d in range(r))
        body.append(f"{indent}if (ok{r - 1}) acc += {weight} * ({ftype})"
                    f"{load_float(f'in0[xbase + {at}]', dtype)};")
        indent = close_loops(body, indent, r)
    body += [f"        out0[i] = {store_from_float('acc', dtype)};", "    }"]
    grid, block = grid_1d(n)
    text = source(f"grid_sample {mode} padding={padding} align_corners={int(align)} "
                  f"{x_shape} at {grid_shape} {dtype}",
                  ["tactic: one thread per output element (grid-stride loop, block 256), "
                   f"taps summed in {ftype}"],
                  signature(name, [dtype, dtype], [dtype], halves=True), body,
                  helpers=_helpers(ftype, padding))
    return KernelSpec(text, grid, block, 0)
