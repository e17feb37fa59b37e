"""roi_align: one thread per output element (region r, channel c, bin ph, pw) averaging (or
taking the max of) the bilinear samples of its bin, as the numpy kernel (ONNX's reference): a
region's corners scaled by spatial_scale (and shifted by half a pixel in half_pixel mode; a
malformed region made 1 x 1 in output_half_pixel mode), sampling_ratio samples per bin side
(else ceil of the bin size), samples outside [-1, size] contributing 0, the rest clamped at 0 and
snapped to the last pixel. Coordinates and sums in double (the reference's float64), the result
rounded once."""

from __future__ import annotations

from ember.codegen.scalar_c import load_float, storage_type
from ember.codegen.symbolic import dims_text
from ember.codegen.templates import (
    KernelSpec,
    decompose,
    grid_1d,
    grid_stride_loop,
    index_type,
    prod,
    signature,
    source,
)
from ember.codegen.templates.half import cast_to, is_float
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    x_shape, out_shape = list(params["in_shapes"][0]), list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    if not is_float(dtype):
        raise UnsupportedError(f"CUDA roi_align: {dtype} runs on the host")
    _, channels, height, width = x_shape
    oh, ow = int(params["output_height"]), int(params["output_width"])
    ratio = int(params["sampling_ratio"])
    scale = float(params["spatial_scale"])
    half = params["coordinate_transformation_mode"] == "half_pixel"
    is_max = params.get("mode", "avg") == "max"
    st = storage_type(dtype)
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape))
    helpers = (
        "static __device__ __forceinline__ bool axis_sample(double p, int size, int* lo, "
        "int* hi, double* frac) {\n"
        "    if (p < -1.0 || p > size) return false;\n"
        "    if (p < 0.0) p = 0.0;\n"
        "    int low = (int)p;\n"
        "    if (low >= size - 1) { *lo = *hi = size - 1; *frac = 0.0; return true; }\n"
        "    *lo = low; *hi = low + 1; *frac = p - low;\n"
        "    return true;\n"
        "}\n"
        "static __device__ __forceinline__ double nan_max(double a, double b) {\n"
        "    return (a > b || a != a) ? a : b;  // a NaN wins, as numpy's maximum\n"
        "}")
    load = lambda expr: f"(double){load_float(expr, dtype)}"  # noqa: E731
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "c", "        ", itype)
    body += [
        f"        const {st}* roi = in1 + (size_t)c0 * 4;",
        "        const long long b = in2[c0];",
        f"        const double shift = {0.5 if half else 0.0};",
        f"        const double x1 = {load('roi[0]')} * {scale!r} - shift, "
        f"y1 = {load('roi[1]')} * {scale!r} - shift;",
        f"        double rw = {load('roi[2]')} * {scale!r} - shift - x1, "
        f"rh = {load('roi[3]')} * {scale!r} - shift - y1;",
    ]
    if not half:
        body.append("        rw = rw > 1.0 ? rw : 1.0; rh = rh > 1.0 ? rh : 1.0;")
    body += [
        f"        const double bh = rh / {oh}, bw = rw / {ow};",
        f"        const int gh = {ratio} > 0 ? {ratio} : (int)ceil(rh / {oh});",
        f"        const int gw = {ratio} > 0 ? {ratio} : (int)ceil(rw / {ow});",
        f"        const {st}* image = in0 + ((size_t)b * {channels} + c1) * "
        f"{height * width};",
        "        double acc = 0.0;",
        *(["        bool first = true;"] if is_max else []),
        "        for (int iy = 0; iy < gh; ++iy) {",
        "            const double y = y1 + c2 * bh + (iy + 0.5) * bh / gh;",
        "            for (int ix = 0; ix < gw; ++ix) {",
        "                const double x = x1 + c3 * bw + (ix + 0.5) * bw / gw;",
        "                int ylo = 0, yhi = 0, xlo = 0, xhi = 0;",
        "                double ly = 0.0, lx = 0.0;",
        f"                const bool inside = axis_sample(y, {height}, &ylo, &yhi, &ly) && "
        f"axis_sample(x, {width}, &xlo, &xhi, &lx);",
        "                const double hy = 1.0 - ly, hx = 1.0 - lx;",
        "                double v1 = 0.0, v2 = 0.0, v3 = 0.0, v4 = 0.0;",
        "                if (inside) {",
        f"                    v1 = hy * hx * {load(f'image[ylo * {width} + xlo]')};",
        f"                    v2 = hy * lx * {load(f'image[ylo * {width} + xhi]')};",
        f"                    v3 = ly * hx * {load(f'image[yhi * {width} + xlo]')};",
        f"                    v4 = ly * lx * {load(f'image[yhi * {width} + xhi]')};",
        "                }",
    ]
    if is_max:
        body += ["                const double m = nan_max(nan_max(v1, v2), nan_max(v3, v4));",
                 "                acc = first ? m : nan_max(acc, m);",
                 "                first = false;"]
    else:
        body.append("                acc += v1 + v2 + v3 + v4;")
    body += ["            }", "        }"]
    if not is_max:
        body.append("        acc /= (gh * gw > 1 ? gh * gw : 1);")
    body += [f"        out0[i] = {cast_to('acc', dtype)};", "    }"]
    grid, block = grid_1d(n)
    text = source(f"roi_align {params.get('mode', 'avg')} {dims_text(x_shape)} -> "
                  f"{dims_text(out_shape)} "
                  f"scale={scale} sampling_ratio={ratio} "
                  f"{params['coordinate_transformation_mode']}",
                  ["tactic: one thread per output element sampling its bin, grid-stride loop, "
                   "block 256"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body,
                  helpers=helpers)
    return KernelSpec(text, grid, block, 0)
