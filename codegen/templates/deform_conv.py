"""deform_conv (2-D): one thread per output element (n, oc, i, j) summing, over its group's
input channels and the kernel taps, the weight times the input sampled bilinearly at the tap's
offset position (corners outside the image read 0), times the mask where there is one; then the
bias. The offsets and mask are read per offset group; sums in float (double for float64)."""

from __future__ import annotations

from ember.codegen.scalar_c import load_float, storage_type
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
    x_shape, w_shape, off_shape = (list(s) for s in params["in_shapes"][:3])
    out_shape = list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    if not is_float(dtype):
        raise UnsupportedError(f"CUDA deform_conv: {dtype} runs on the host")
    present = list(params.get("present") or [])
    _, channels, height, width = x_shape
    out_channels, per_group, kh, kw = w_shape
    oh, ow = off_shape[2:]
    groups, offset_groups = int(params["group"]), int(params["offset_group"])
    sh, sw = params["strides"]
    dh, dw = params["dilations"]
    pt, pl = params["pads"][0], params["pads"][1]
    per_out = out_channels // groups
    per_offset = channels // offset_groups
    acc = "double" if dtype == "float64" else "float"
    st = storage_type(dtype)
    extra = {p: f"in{3 + k}" for k, p in enumerate(present)}
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape), prod(off_shape))
    plane = oh * ow
    helpers = (
        f"static __device__ __forceinline__ {acc} sample(const {st}* image, {acc} y, {acc} x) "
        "{\n"
        f"    const int y0 = (int)floor(y), x0 = (int)floor(x);\n"
        f"    {acc} v = 0;\n"
        "    for (int dy = 0; dy < 2; ++dy) {\n"
        "        for (int dx = 0; dx < 2; ++dx) {\n"
        "            const int yy = y0 + dy, xx = x0 + dx;\n"
        f"            if (yy < 0 || yy >= {height} || xx < 0 || xx >= {width}) continue;\n"
        f"            const {acc} w = (1 - fabs(y - yy)) * (1 - fabs(x - xx));\n"
        f"            v += w * {load_float(f'image[yy * {width} + xx]', dtype)};\n"
        "        }\n"
        "    }\n"
        "    return v;\n"
        "}")
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "c", "        ", itype)
    body += [f"        const int g = c1 / {per_out};",
             f"        {acc} sum = 0;",
             f"        for (int ci = 0; ci < {per_group}; ++ci) {{",
             f"            const int c = g * {per_group} + ci;",
             f"            const int og = c / {per_offset};",
             f"            const {st}* image = in0 + ((size_t)c0 * {channels} + c) * "
             f"{height * width};",
             f"            for (int ky = 0; ky < {kh}; ++ky) {{",
             f"                for (int kx = 0; kx < {kw}; ++kx) {{",
             f"                    const size_t tap = ((size_t)c0 * {offset_groups} + og) * "
             f"{kh * kw} + ky * {kw} + kx;",
             f"                    const size_t at = (tap * 2) * {plane} + c2 * {ow} + c3;",
             f"                    const {acc} y = c2 * {sh} - {pt} + ky * {dh} + "
             f"{load_float('in2[at]', dtype)};",
             f"                    const {acc} x = c3 * {sw} - {pl} + kx * {dw} + "
             f"{load_float(f'in2[at + {plane}]', dtype)};",
             f"                    {acc} v = sample(image, y, x);"]
    if "mask" in extra:
        mask = f"{extra['mask']}[tap * {plane} + c2 * {ow} + c3]"
        body.append(f"                    v *= {load_float(mask, dtype)};")
    weight = f"in1[(((size_t)c1 * {per_group} + ci) * {kh} + ky) * {kw} + kx]"
    body += [f"                    sum += v * {load_float(weight, dtype)};",
             "                }",
             "            }",
             "        }"]
    if "bias" in extra:
        body.append(f"        sum += {load_float(extra['bias'] + '[c1]', dtype)};")
    body += [f"        out0[i] = {cast_to('sum', dtype)};", "    }"]
    grid, block = grid_1d(n)
    text = source(f"deform_conv {x_shape} * {w_shape} -> {out_shape} group={groups} "
                  f"offset_group={offset_groups} strides={[sh, sw]} pads={params['pads']} "
                  f"dilations={[dh, dw]}" + (f" with {', '.join(present)}" if present else ""),
                  ["tactic: one thread per output element, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body,
                  helpers=helpers)
    return KernelSpec(text, grid, block, 0)
