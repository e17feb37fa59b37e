"""reformat: a 4-D tensor from one format to another (NCHW, NHWC, NC4HW4: `params["reformat"]`
= "SRC->DST", `channels` = the logical C). One thread per result element: its logical
coordinate read from the source's layout; packing writes zeros to pad lanes (C % 4 != 0).
NCHW->NHWC may pad the channels with zeros to `padded_channels` (`fold-channel-pad`); where a
padded pixel is 16 bytes, one thread writes each pixel whole. Elements are copied as stored (a
half as its 2 bytes)."""

from __future__ import annotations

import numpy as np

from ember.codegen.scalar_c import load_float, storage_type, store_from_float
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
from ember.codegen.templates.half import zero
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels.layout import space_to_depth_params
from ember.runtime.formats import FORMATS


def _logical(fmt: str, shape: list[int], channels: int) -> list[int]:
    """[N, C, H, W] of a physical shape in `fmt`."""
    if fmt == "NHWC":
        return [shape[0], shape[3], shape[1], shape[2]]
    if fmt == "NC4HW4":
        return [shape[0], channels, shape[2], shape[3]]
    return list(shape)


def _coords(fmt: str) -> list[str]:
    """Lines naming the logical n, c, h, w of result coordinates o0.. in `fmt`."""
    if fmt == "NHWC":
        return ["        const long long n = o0, c = o3, h = o1, w = o2;"]
    if fmt == "NC4HW4":
        return ["        const long long n = o0, c = o1 * 4 + o4, h = o2, w = o3;"]
    return ["        const long long n = o0, c = o1, h = o2, w = o3;"]


def _address(fmt: str, dims: list[int]) -> str:
    """The flat index of logical (n, c, h, w) in `fmt`."""
    _, c, h, w = dims
    if fmt == "NHWC":
        return f"((n * {h} + h) * {w} + w) * {c} + c"
    if fmt == "NC4HW4":
        return f"(((n * {-(-c // 4)} + (c >> 2)) * {h} + h) * {w} + w) * 4 + (c & 3)"
    return f"((n * {c} + c) * {h} + h) * {w} + w"


def emit(name: str, params: dict) -> KernelSpec:
    src, dst = params["reformat"].split("->")
    if src not in FORMATS or dst not in FORMATS:
        raise UnsupportedError(f"CUDA reformat: {params['reformat']} is not supported")
    channels = int(params["channels"])
    in_shape, out_shape = list(params["in_shapes"][0]), list(params["out_shapes"][0])
    dtype = params["out_dtypes"][0]
    padded = params.get("padded_channels")
    if padded is not None and (src, dst) != ("NCHW", "NHWC"):
        raise UnsupportedError(f"CUDA reformat: padded_channels with {params['reformat']}")
    if space_to_depth_params(params) is not None:
        return _space_to_depth(name, params)
    if params["in_dtypes"][0] != dtype:
        raise UnsupportedError(f"CUDA reformat: {params['in_dtypes'][0]} to {dtype} (a cast) "
                               "only with space_to_depth")
    dims = _logical(src, in_shape, channels)
    if padded is not None and int(padded) * _bytes(dtype) == 16:
        return _pixel_pack(name, params, dims, int(padded))
    n = prod(out_shape)
    itype = index_type(n, prod(in_shape))
    body = [grid_stride_loop(n, itype)]
    body += decompose("i", out_shape, "o", "        ", itype)
    body += _coords(dst)
    if dst == "NC4HW4" and channels % 4 or padded is not None:
        body.append(f"        if (c >= {channels}) {{ out0[i] = {zero(dtype)}; continue; }}")
    body += [f"        out0[i] = in0[{_address(src, dims)}];", "    }"]
    grid, block = grid_1d(n)
    text = source(f"reformat {src}->{dst} {in_shape} -> {out_shape} {dtype}",
                  ["tactic: one thread per result element reading its logical coordinate "
                   "from the source layout, grid-stride loop, block 256"
                   + ("; pad lanes written as zeros" if dst == "NC4HW4" and channels % 4
                      or padded is not None else "")],
                  signature(name, params["in_dtypes"], [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)


def _bytes(dtype: str) -> int:
    return 2 if dtype in ("float16", "bfloat16") else np.dtype(dtype).itemsize


def _pixel_pack(name: str, params: dict, dims: list[int], padded: int) -> KernelSpec:
    """NCHW -> NHWC with the channels padded to 16 bytes a pixel: one thread per pixel reads
    its channels from their planes (neighbouring threads, neighbouring pixels) and stores the
    padded pixel with one 16-byte store."""
    dtype = params["out_dtypes"][0]
    t = storage_type(dtype)
    n, c, h, w = dims
    plane = h * w
    pixels = n * plane
    itype = index_type(pixels * padded, n * c * plane)
    lines = [f"        union {{ uint4 v; {t} e[{padded}]; }} px;",
             "        #pragma unroll",
             f"        for (int k = 0; k < {padded}; ++k)",
             f"            px.e[k] = k < {c} ? in0[(img * {c} + k) * {plane} + p] : {zero(dtype)};",
             f"        *(uint4*)&out0[i * {padded}] = px.v;"]
    return _per_pixel(name, params["in_dtypes"], dtype, pixels, plane, itype, lines,
                      f"reformat NCHW->NHWC {list(params['in_shapes'][0])} -> "
                      f"{list(params['out_shapes'][0])} {dtype}",
                      f"tactic: one thread per pixel, its {c} channels read from their planes, "
                      f"padded to {padded} with zeros and stored as 16 bytes, grid-stride loop")


def _per_pixel(name: str, in_dtypes: list[str], dtype: str, pixels, plane, itype: str,
               lines: list[str], title: str, tactic: str) -> KernelSpec:
    """The frame `_pixel_pack` and `_space_to_depth` share: one thread per result pixel (NHWC)
    in a grid-stride loop over the `pixels`, naming its image `img` and its place `p` in the
    result's `plane`, then `lines` (gathering the pixel into `px` and storing it whole)."""
    body = [grid_stride_loop(pixels, itype),
            f"        const {itype} img = i / {plane}, p = i % {plane};",
            *lines,
            "    }"]
    grid, block = grid_1d(pixels)
    text = source(title, [tactic], signature(name, in_dtypes, [dtype], halves=True), body)
    return KernelSpec(text, grid, block, 0)


def _space_to_depth(name: str, params: dict) -> KernelSpec:
    """NCHW -> NHWC blocks of `space_to_depth` pixels a side, zero-padded by `pads` (top, left;
    the other sides as the result's shape asks), the channels of a block's pixels side by side
    and padded to `padded_channels` (a strided stem conv's input, `space-to-depth-stem`): one
    thread per result pixel reads its block from the planes, converts to the result's type and
    stores the pixel in 16-byte pieces."""
    shapes = [*params["in_shapes"][0], *params["out_shapes"][0]]
    if not all(isinstance(d, int) for d in shapes):
        raise UnsupportedError("CUDA reformat: space_to_depth with symbolic sizes")
    block, top, left = space_to_depth_params(params)
    n, c, h, w = (int(d) for d in params["in_shapes"][0])
    _, hs, ws, padded = (int(d) for d in params["out_shapes"][0])
    in_t, dtype = params["in_dtypes"][0], params["out_dtypes"][0]
    t = storage_type(dtype)
    if (padded * _bytes(dtype)) % 16:
        raise UnsupportedError(f"CUDA reformat: space_to_depth into {padded} channels of "
                               f"{dtype} (whole 16-byte pieces)")
    pixels = n * hs * ws
    itype = index_type(pixels * padded, n * c * h * w)
    pieces = padded * _bytes(dtype) // 16
    value = store_from_float(load_float(f"in0[((img * {c} + k) * {h} + y) * {w} + x]", in_t),
                             dtype)
    lines = [f"        const int y0 = (int)(p / {ws}) * {block} - {top}, "
             f"x0 = (int)(p % {ws}) * {block} - {left};",
             f"        union {{ uint4 v[{pieces}]; {t} e[{padded}]; }} px;",
             "        #pragma unroll",
             f"        for (int k = {block * block * c}; k < {padded}; ++k) "
             f"px.e[k] = {zero(dtype)};",
             "        #pragma unroll",
             f"        for (int b = 0; b < {block * block}; ++b) {{",
             f"            const int y = y0 + b / {block}, x = x0 + b % {block};",
             f"            const bool inside = y >= 0 && y < {h} && x >= 0 && x < {w};",
             "            #pragma unroll",
             f"            for (int k = 0; k < {c}; ++k)",
             f"                px.e[b * {c} + k] = inside ? {value} : {zero(dtype)};",
             "        }",
             "        #pragma unroll",
             f"        for (int v = 0; v < {pieces}; ++v)",
             f"            *(uint4*)&out0[i * {padded} + v * {16 // _bytes(dtype)}] = px.v[v];"]
    return _per_pixel(name, [in_t], dtype, pixels, hs * ws, itype, lines,
                      f"reformat NCHW->NHWC space_to_depth {block} {[n, c, h, w]} {in_t} -> "
                      f"{[n, hs, ws, padded]} {dtype}",
                      f"tactic: one thread per result pixel, its {block}x{block} block's {c} "
                      f"channels each read from their planes (zero outside the input: pads "
                      f"{top}, {left}), converted to {dtype}, padded to {padded} with zeros and "
                      "stored in 16-byte pieces, grid-stride loop")
