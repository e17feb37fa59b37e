"""pool: N-d max / avg / lp pooling, one thread per output element walking its window.
avg divides by the count of input positions in the window, or with count_include_pad of input
and pad positions (not those a ceil-mode window adds past the end pad). `layout: NHWC` (2-d):
input [N, H, W, C] and output [N, P, Q, C], a warp's threads reading neighbouring channels.
`layout: NC4HW4` (2-d): input [N, C4, H, W, 4] and output [N, C4, P, Q, 4], every lane pooled on
its own; float32 runs one thread per output pixel's 4 lanes (float4 loads and store), other
dtypes one thread per output element. float16 / bfloat16 are loaded into floats (max compares,
avg and lp sum in float) and rounded once on the store."""

from __future__ import annotations

from ember.codegen.scalar_c import (
    c_literal,
    c_type,
    load_float,
    storage_type,
    stored_in_float,
)
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
)
from ember.codegen.templates.gemm_epilogue import STORE16, chunk, helpers, store16
from ember.codegen.templates.half import cast_to, is_float, stored
from ember.errors import UnsupportedError


def emit(name: str, params: dict) -> KernelSpec:
    fn = params["fn"]
    x_shape, out_shape = params["in_shapes"][0], params["out_shapes"][0]
    dtype = params["out_dtypes"][0]
    if fn not in ("max", "avg", "lp"):
        raise UnsupportedError(f"CUDA pool: unknown function '{fn}'")
    if fn != "max" and not is_float(dtype):
        raise UnsupportedError(f"CUDA pool: {fn} pooling of {dtype} is not supported")
    kernel, strides = list(params["kernel"]), list(params["strides"])
    pads, dilations = list(params["pads"]), list(params["dilations"])
    include_pad = bool(params.get("count_include_pad", False))
    p = float(params.get("p", 2.0) or 2.0)
    nd = len(kernel)
    nhwc = params.get("layout") == "NHWC"
    packed = params.get("layout") == "NC4HW4"
    if nhwc and len(x_shape) != 4 or packed and len(x_shape) != 5:
        raise UnsupportedError(f"CUDA pool: layout {params['layout']} needs a "
                               f"{4 + packed}-D input, got {list(x_shape)}")
    if packed and dtype == "float32":
        return _emit_packed(name, params, fn, kernel, strides, pads, dilations, include_pad, p)
    if nhwc and fn == "max" and dtype in _BYTE_MAX and x_shape[3] % 16 == 0:
        return _emit_nhwc_bytes(name, params, kernel, strides, pads, dilations)
    if nhwc and fn in ("max", "avg") and dtype in ("float16", "bfloat16", "float32") \
            and x_shape[3] % chunk(dtype) == 0:
        return _emit_nhwc_chunks(name, params, fn, kernel, strides, pads, dilations,
                                 include_pad)
    # NCHW: out index c0 c1 | c2.. spatial; NHWC: c0 | c1.. spatial | c(nd+1) the channel
    # NC4HW4: c0 c1 | c2 c3 spatial | c4 the lane
    spatial = list(x_shape[1:3] if nhwc else x_shape[2:4] if packed else x_shape[2:])
    channels = x_shape[3] if nhwc else 4 if packed else 1
    first = 1 if nhwc else 2
    n = prod(out_shape)
    itype = index_type(n, prod(x_shape))
    half = stored_in_float(dtype)  # the halves and E4M3: structs, computed in float
    t = storage_type(dtype) if half else c_type(dtype)
    acc_t = ("float" if half else t) if fn == "max" else ("double" if dtype == "float64"
                                                           else "float")
    if fn == "max":
        init = (c_literal(float("-inf"), "float32" if half else dtype) if is_float(dtype) or half
                else f"({t})({'0' if dtype == 'bool' else _int_min(dtype)})")
    else:
        init = "0"
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "c", "        ", itype)
    if nhwc:
        body.append(f"        const {t}* x = in0 + (size_t)c0 * {prod(spatial) * channels} + c3;")
    elif packed:
        body.append(f"        const {t}* x = in0 + ((size_t)c0 * {x_shape[1]} + c1) * "
                    f"{prod(spatial) * 4} + c4;")
    else:
        body.append(f"        const {t}* x = in0 + ((size_t)c0 * {x_shape[1]} + c1) * "
                    f"{prod(spatial)};")
    body.append(f"        {acc_t} acc = {init};")
    indent = _window_loops(body, fn, kernel, strides, pads, dilations, first)
    inside, index = _window_position(body, indent, fn, spatial, channels, pads, include_pad)
    body.append(f"{indent}if ({inside}) {{")
    body.append(f"{indent}    const {acc_t} v = {load_float(f'x[{index}]', dtype)};")
    if fn == "max":
        body.append(f"{indent}    if (v > acc || v != v) acc = v;")
    elif fn == "avg":
        body.append(f"{indent}    acc += v;")
        if not include_pad:
            body.append(f"{indent}    ++count;")
    else:
        pw = "powf" if acc_t == "float" else "pow"
        ab = "fabsf" if acc_t == "float" else "fabs"
        body.append(f"{indent}    acc += {pw}({ab}(v), ({acc_t}){p!r});")
    body.append(f"{indent}}}")
    indent = close_loops(body, indent, nd)
    if fn == "avg":
        body.append(f"        out0[i] = {cast_to(f'(acc / ({acc_t})count)', dtype)};")
    elif fn == "lp":
        pw = "powf" if acc_t == "float" else "pow"
        body.append(f"        out0[i] = {cast_to(f'{pw}(acc, ({acc_t}){1.0 / p!r})', dtype)};")
    else:
        body.append(f"        out0[i] = {stored('acc', dtype)};")
    body.append("    }")
    grid, block = grid_1d(n)
    text = source(f"pool {fn} {nd}-d{' ' + params['layout'] if nhwc or packed else ''} "
                  f"{list(x_shape)} -> "
                  f"{list(out_shape)} kernel={kernel} "
                  f"strides={strides} pads={pads} dilations={dilations}"
                  + (f" count_include_pad={int(include_pad)}" if fn == "avg" else "")
                  + (f" p={p}" if fn == "lp" else ""),
                  ["tactic: one thread per output element walking its window, grid-stride "
                   "loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)


def _emit_packed(name: str, params: dict, fn: str, kernel: list[int], strides: list[int],
                 pads: list[int], dilations: list[int], include_pad: bool, p: float
                 ) -> KernelSpec:
    """float32 NC4HW4: one thread per (image, channel block, output pixel), its 4 lanes read
    and written as float4s."""
    x_shape, out_shape = params["in_shapes"][0], params["out_shapes"][0]
    spatial, nd = list(x_shape[2:4]), 2
    n = prod(out_shape[:4])
    itype = index_type(n * 4, prod(x_shape))
    init = c_literal(float("-inf"), "float32") if fn == "max" else "0.f"
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", [out_shape[0] * out_shape[1], *out_shape[2:4]], "c", "        ", itype)
    body += [f"        const float4* x = (const float4*)in0 + (size_t)c0 * {prod(spatial)};",
             f"        float acc[4] = {{{init}, {init}, {init}, {init}}};"]
    indent = _window_loops(body, fn, kernel, strides, pads, dilations, 1)
    if fn == "avg" and include_pad:
        padded = " && ".join(f"i{d} >= -{pads[d]} && i{d} < {spatial[d] + pads[nd + d]}"
                             for d in range(nd))
        body.append(f"{indent}if ({padded}) ++count;")
    inside = " && ".join(f"(unsigned)i{d} < {spatial[d]}u" for d in range(nd))
    body += [f"{indent}if ({inside}) {{",
             f"{indent}    const float4 v4 = x[i0 * {spatial[1]} + i1];",
             f"{indent}    const float v[4] = {{v4.x, v4.y, v4.z, v4.w}};"]
    if fn == "avg" and not include_pad:
        body.append(f"{indent}    ++count;")
    body.append(f"{indent}    #pragma unroll")
    body.append(f"{indent}    for (int l = 0; l < 4; ++l) {{")
    if fn == "max":
        body.append(f"{indent}        if (v[l] > acc[l] || v[l] != v[l]) acc[l] = v[l];")
    elif fn == "avg":
        body.append(f"{indent}        acc[l] += v[l];")
    else:
        body.append(f"{indent}        acc[l] += powf(fabsf(v[l]), {p!r}f);")
    body += [f"{indent}    }}", f"{indent}}}"]
    indent = close_loops(body, indent, nd)
    if fn == "avg":
        body.append("        const float4 r = make_float4(acc[0] / (float)count, acc[1] / "
                    "(float)count, acc[2] / (float)count, acc[3] / (float)count);")
    elif fn == "lp":
        body.append(f"        const float q = {1.0 / p!r}f;")
        body.append("        const float4 r = make_float4(powf(acc[0], q), powf(acc[1], q), "
                    "powf(acc[2], q), powf(acc[3], q));")
    else:
        body.append("        const float4 r = make_float4(acc[0], acc[1], acc[2], acc[3]);")
    body += ["        ((float4*)out0)[i] = r;", "    }"]
    grid, block = grid_1d(n)
    text = source(f"pool {fn} 2-d NC4HW4 {list(x_shape)} -> {list(out_shape)} kernel={kernel} "
                  f"strides={strides} pads={pads} dilations={dilations}"
                  + (f" count_include_pad={int(include_pad)}" if fn == "avg" else "")
                  + (f" p={p}" if fn == "lp" else ""),
                  ["tactic: one thread per output pixel's 4 channel lanes (float4 loads and "
                   "store) walking its window, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"][:1], ["float32"]), body)
    return KernelSpec(text, grid, block, 0)


def _emit_nhwc_chunks(name: str, params: dict, fn: str, kernel: list[int], strides: list[int],
                      pads: list[int], dilations: list[int], include_pad: bool) -> KernelSpec:
    """max / avg in NHWC over halves or floats whose channels come in 16-byte chunks: one
    thread per chunk of an output pixel's channels, one 16-byte load per window position and
    one 16-byte store (neighbouring threads on neighbouring chunks)."""
    x_shape, out_shape = list(params["in_shapes"][0]), list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    size = chunk(dtype)
    nd, spatial, channels = len(kernel), x_shape[1:3], x_shape[3]
    shape = [*out_shape[:-1], channels // size]  # c3: the chunk
    n = prod(shape)
    itype = index_type(n * size, prod(x_shape))
    init = c_literal(float("-inf"), "float32") if fn == "max" else "0.0f"
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", shape, "c", "        ", itype)
    body += [f"        const {storage_type(dtype)}* x = in0 + (size_t)c0 * "
             f"{prod(spatial) * channels} + c3 * {size};",
             f"        float acc[{size}];",
             "        #pragma unroll",
             f"        for (int e = 0; e < {size}; ++e) acc[e] = {init};"]
    indent = _window_loops(body, fn, kernel, strides, pads, dilations, 1)
    inside, index = _window_position(body, indent, fn, spatial, channels, pads, include_pad)
    update = "if (v > acc[e] || v != v) acc[e] = v;" if fn == "max" else "acc[e] += v;"
    # a position outside the input reads a chunk that changes nothing (-inf for max, -0 for
    # avg), so the window has no branches and its loads are in flight together
    fill = _FILL[fn][dtype]
    body += [f"{indent}pack16 xv;  xv.v = make_uint4({fill}, {fill}, {fill}, {fill});",
             f"{indent}if ({inside}) xv.v = __ldg((const uint4*)&x[{index}]);",
             f"{indent}#pragma unroll",
             f"{indent}for (int e = 0; e < {size}; ++e) {{",
             f"{indent}    const float v = {load_float('xv.e[e]', dtype)};",
             f"{indent}    {update}",
             f"{indent}}}"]
    if fn == "avg" and not include_pad:
        body.append(f"{indent}count += ({inside});")
    indent = close_loops(body, indent, nd)
    value = "acc[e]" if fn == "max" else "acc[e] / (float)count"
    body += ["        pack16 h;",
             "        #pragma unroll",
             f"        for (int e = 0; e < {size}; ++e) h.e[e] = {cast_to(f'({value})', dtype)};",
             f"        {store16(f'&out0[i * {size}]', 'h.v')}",
             "    }"]
    grid, block = grid_1d(n)
    text = source(f"pool {fn} {nd}-d NHWC {x_shape} -> {out_shape} kernel={kernel} "
                  f"strides={strides} pads={pads} dilations={dilations}"
                  + (f" count_include_pad={int(include_pad)}" if fn == "avg" else ""),
                  [f"tactic: one thread per {size} channels of an output pixel walking its "
                   "window, 16-byte loads and stores, grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype], halves=True), body,
                  helpers=helpers(dtype))
    return KernelSpec(text, grid, block, 0)


# 8-bit max pooling four lanes to a word: the SIMD max and the word of four lanes' minimum
_BYTE_MAX = {"int8": ("__vmaxs4", "0x80808080u"), "uint8": ("__vmaxu4", "0u")}


def _emit_nhwc_bytes(name: str, params: dict, kernel: list[int], strides: list[int],
                     pads: list[int], dilations: list[int]) -> KernelSpec:
    """max in NHWC over int8 / uint8 whose channels come in 16-byte chunks (a QDQ ResNet's max
    pool): one thread per 16 channels of an output pixel, one 16-byte load per window position,
    four SIMD byte maxima (`__vmaxs4` / `__vmaxu4`) and one 16-byte store."""
    x_shape, out_shape = list(params["in_shapes"][0]), list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    vmax, lowest = _BYTE_MAX[dtype]
    nd, spatial, channels = len(kernel), x_shape[1:3], x_shape[3]
    shape = [*out_shape[:-1], channels // 16]  # c3: the chunk
    n = prod(shape)
    itype = index_type(n * 16, prod(x_shape))
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", shape, "c", "        ", itype)
    body += [f"        const {c_type(dtype)}* x = in0 + (size_t)c0 * "
             f"{prod(spatial) * channels} + c3 * 16;",
             f"        uint4 acc = make_uint4({lowest}, {lowest}, {lowest}, {lowest});"]
    indent = _window_loops(body, "max", kernel, strides, pads, dilations, 1)
    inside, index = _window_position(body, indent, "max", spatial, channels, pads, False)
    # a position outside the input reads lanes of the type's minimum: no branch around the max
    body += [f"{indent}uint4 xv = make_uint4({lowest}, {lowest}, {lowest}, {lowest});",
             f"{indent}if ({inside}) xv = __ldg((const uint4*)&x[{index}]);",
             *(f"{indent}acc.{w} = {vmax}(acc.{w}, xv.{w});" for w in "xyzw")]
    indent = close_loops(body, indent, nd)
    body += [f"        {store16('&out0[i * 16]', 'acc')}", "    }"]
    grid, block = grid_1d(n)
    text = source(f"pool max {nd}-d NHWC {x_shape} -> {out_shape} kernel={kernel} "
                  f"strides={strides} pads={pads} dilations={dilations}",
                  [f"tactic: one thread per 16 {dtype} channels of an output pixel walking "
                   f"its window, 16-byte loads and stores, {vmax} on four lanes a word, "
                   "grid-stride loop, block 256"],
                  signature(name, params["in_dtypes"][:1], [dtype]), body,
                  helpers=STORE16)
    return KernelSpec(text, grid, block, 0)


# a 32-bit word of elements that leave a max (-inf) or a sum (-0) as it is, by dtype
_FILL = {"max": {"float16": "0xFC00FC00u", "bfloat16": "0xFF80FF80u", "float32": "0xFF800000u"},
         "avg": {"float16": "0x80008000u", "bfloat16": "0x80008000u", "float32": "0x80000000u"}}


def _int_min(dtype: str) -> str:
    import numpy as np

    v = int(np.iinfo(np.dtype(dtype)).min)
    return "(-9223372036854775807LL - 1)" if dtype == "int64" else str(v)


def _window_position(body: list[str], indent: str, fn: str, spatial: list, channels: int,
                     pads: list[int], include_pad: bool) -> tuple[str, str]:
    """Inside the window loops: (the test that input position `i<d>` is inside the input, its
    offset from the image's first element); avg with count_include_pad counts every position
    inside the pads (appended to `body`)."""
    nd = len(spatial)
    inside = " && ".join(f"(unsigned)i{d} < {spatial[d]}u" for d in range(nd)) or "true"
    index = " + ".join(f"i{d} * {prod(spatial[d + 1:]) * channels}" for d in range(nd)) or "0"
    if fn == "avg" and include_pad:
        padded = " && ".join(f"i{d} >= -{pads[d]} && i{d} < {spatial[d] + pads[nd + d]}"
                             for d in range(nd))
        body.append(f"{indent}if ({padded}) ++count;")
    return inside, index


# windows of up to this many positions are unrolled: their loads are issued together (a 3x3
# max pool otherwise waits for each of its nine loads in turn)
UNROLLED_WINDOW = 64


def _window_loops(body: list[str], fn: str, kernel, strides, pads, dilations,
                  first: int) -> str:
    """Append the nested loops over a pooling window (input coordinates `i<d>` from output
    coordinates `c<d + first>`, and avg's `count`); returns the loop body's indent."""
    if fn == "avg":
        body.append("        int count = 0;")
    indent = "        "
    unroll = prod(kernel) <= UNROLLED_WINDOW
    for d in range(len(kernel)):
        if unroll:
            body.append(f"{indent}#pragma unroll")
        body.append(f"{indent}for (int k{d} = 0; k{d} < {kernel[d]}; ++k{d}) {{")
        indent += "    "
        body.append(f"{indent}const int i{d} = c{d + first} * {strides[d]} - {pads[d]} + "
                    f"k{d} * {dilations[d]};")
    return indent
