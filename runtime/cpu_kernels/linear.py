"""Linear-algebra kernels: matmul, N-d convolution and transposed convolution, einsum.
Floats accumulate in float64 (see `accumulate_dtype`)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ember.errors import PlanError
from ember.runtime.cpu_kernels.common import accumulate_dtype, out_dtype, stored_dtype
from ember.runtime.cpu_kernels.elementwise import elementwise, with_epilogue
from ember.runtime.cpu_kernels.layout import pack, unpack


def _linear_dtypes(a: np.ndarray, b: np.ndarray, params: dict[str, Any]
                   ) -> tuple[np.dtype, np.dtype]:
    """(result, accumulation) dtypes of a matmul / conv: 8-bit integer operands give int32
    (ONNX MatMulInteger / ConvInteger), summed exactly in int64; floats sum in float64."""
    if a.dtype.kind in "iu" and b.dtype.kind in "iu" and a.dtype.itemsize == b.dtype.itemsize == 1:
        return np.dtype(np.int32), np.dtype(np.int64)
    dtype = out_dtype(params) or np.result_type(a, b)
    return dtype, accumulate_dtype(dtype)


def matmul(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """numpy matmul; `transpose_a`/`transpose_b` swap the last two dims of that operand first."""
    a, b = inputs
    if params.get("transpose_a"):
        a = np.swapaxes(a, -1, -2)
    if params.get("transpose_b"):
        b = np.swapaxes(b, -1, -2)
    dtype, acc = _linear_dtypes(a, b, params)
    return [np.asarray(np.matmul(a.astype(acc), b.astype(acc))).astype(dtype)]


def _conv_params(params: dict[str, Any]) -> tuple[list[int], list[int], list[int], int]:
    return (list(params["strides"]), list(params["pads"]), list(params["dilations"]),
            int(params["groups"]))


def conv(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX Conv (cross-correlation) with explicit pads [begin..., end...]; optional bias.
    `layout: NHWC`: x is [N, H, W, C], w is OHWI [K, R, S, C/g], the result [N, P, Q, K].
    `layout: NC4HW4`: x is [N, ceil(C/4), H, W, 4] (`channels` = C), the result [N, ceil(K/4), P,
    Q, 4] (pad lanes zero here; readers ignore them); w is OIHW, or with `weight_layout: C4RS4`
    (depthwise) [ceil(C/4), R, S, 4]. With `shortcut`: `_shortcut_conv`."""
    if params.get("shortcut") is not None:
        return [_shortcut_conv(inputs, params)]
    if params.get("layout") == "NC4HW4":
        channels = int(params["channels"])
        x, w = unpack(inputs[0], channels), inputs[1]
        if params.get("weight_layout") == "C4RS4":
            w = w.transpose(0, 3, 1, 2).reshape(-1, 1, *w.shape[1:3])[:channels]
        (out,) = conv([x, w, *inputs[2:]], {**params, "layout": "NCHW"})
        return [pack(out)]
    if params.get("layout") == "NHWC":
        x, w = np.transpose(inputs[0], (0, 3, 1, 2)), np.transpose(inputs[1], (0, 3, 1, 2))
        (out,) = conv([x, w, *inputs[2:]], {**params, "layout": "NCHW"})
        return [np.ascontiguousarray(np.transpose(out, (0, 2, 3, 1)))]
    x, w = inputs[0], inputs[1]
    dtype, acc = _linear_dtypes(x, w, params)
    nd = x.ndim - 2
    strides, pads, dilations, groups = _conv_params(params)
    n, c = x.shape[:2]
    m, kernel = w.shape[0], w.shape[2:]
    xp = np.pad(x.astype(acc), [(0, 0), (0, 0)] + [(pads[i], pads[nd + i]) for i in range(nd)])
    span = [dilations[i] * (kernel[i] - 1) + 1 for i in range(nd)]
    view = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + nd)))
    # view: [N, C, *positions, *span] -> take every stride-th position, every dilation-th tap
    view = view[(slice(None), slice(None),
                 *(slice(None, None, s) for s in strides),
                 *(slice(None, None, d) for d in dilations))]
    out_spatial = view.shape[2:2 + nd]
    cg, mg = c // groups, m // groups
    view = view.reshape(n, groups, cg, *out_spatial, *kernel)
    wg = w.astype(acc).reshape(groups, mg, cg, *kernel)
    if groups == 1:
        # contract channels and kernel taps: [N, *out] x [M] -> [N, *out, M]
        axes_v = [1] + list(range(2 + nd, 2 + 2 * nd))
        axes_w = [1] + list(range(2, 2 + nd))
        out = np.moveaxis(np.tensordot(view[:, 0], wg[0], axes=(axes_v, axes_w)), -1, 1)
    elif cg == 1 and mg == 1:  # depthwise: one multiply-add over the whole tensor per tap
        view = view.reshape(n, groups, *out_spatial, *kernel)
        wd = wg.reshape(groups, *kernel)
        out = np.zeros((n, m, *out_spatial), acc)
        for tap in itertools.product(*(range(k) for k in kernel)):
            out += view[(..., *tap)] * wd[(slice(None), *tap)].reshape(-1, *[1] * nd)
    else:  # every group at once (a Python loop over the groups is much slower)
        o, k = "opqr"[:nd], "stuv"[:nd]
        out = np.einsum(f"ngc{o}{k},gmc{k}->ngm{o}", view, wg, optimize=True)
        out = out.reshape(n, m, *out_spatial)
    if len(inputs) > 2:
        out = out + inputs[2].astype(acc).reshape(1, m, *([1] * nd))
    return [np.ascontiguousarray(out.astype(dtype))]


def _shortcut_conv(inputs: list[np.ndarray], params: dict[str, Any]) -> np.ndarray:
    """fuse-shortcut-convs' conv: two 1x1 NHWC convs summed, x [N, H, W, C1] and x2 [N, H2,
    W2, C2] read every `shortcut["strides"]`-th pixel, w [K, 1, 1, C1 + C2] (x's channels
    first), bias [K]; one sum per output, in the accumulation type, rounded once."""
    if len(inputs) != 4:
        raise PlanError(f"conv: a shortcut conv takes 4 inputs (x, w, bias, x2), not "
                        f"{len(inputs)}")
    x, w, bias, x2 = inputs
    sh, sw = (int(v) for v in params["shortcut"]["strides"])
    strided = x2[:, ::sh, ::sw]
    if params.get("layout") != "NHWC" or w.shape[1:3] != (1, 1) \
            or list(params["strides"]) != [1, 1] or any(params["pads"]) \
            or strided.shape[:3] != x.shape[:3] or w.shape[3] != x.shape[3] + x2.shape[3]:
        raise PlanError("conv: a shortcut conv is two 1x1 NHWC convs over the same pixels, the "
                        f"first of stride 1 without padding (layout {params.get('layout')}, x "
                        f"{list(x.shape)}, x2 {list(x2.shape)} every {[sh, sw]}, weight "
                        f"{list(w.shape)}, strides {list(params['strides'])})")
    dtype = out_dtype(params) or np.result_type(x, w)
    acc = accumulate_dtype(dtype)
    w2d = w.reshape(w.shape[0], -1).astype(acc)
    c1 = x.shape[-1]
    out = (x.astype(acc) @ w2d[:, :c1].T + strided.astype(acc) @ w2d[:, c1:].T
           + bias.astype(acc))
    return np.ascontiguousarray(out.astype(dtype))


def _shortcut_sums(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """fuse-shortcut-convs' INT8 form (`shortcut["sums"]` = k): two 1x1 NHWC INT8 convs over
    the same output pixels, y [N, H, W, C1] at stride 1 and the epilogue's extra input k, x [N,
    H2, W2, C2], read every `shortcut["strides"]`-th pixel; w [K, 1, 1, C2 + C1] (x's channels
    first). The epilogue's value 0 is y's exact int32 sum, its value k + 1 x's."""
    epilogue = params.get("epilogue")
    k = int(params["shortcut"]["sums"])
    extras = len(epilogue["in_shapes"]) if epilogue else 0
    if len(inputs) != 2 + extras or not 0 <= k < extras:
        raise PlanError(f"conv: a shortcut-sums conv takes y, w and its epilogue's inputs, the "
                        f"second conv's input among them (input {k} of {extras})")
    y, w, rest = inputs[0], inputs[1], list(inputs[2:])
    x = rest[k]
    sh, sw = (int(v) for v in params["shortcut"]["strides"])
    strided = x[:, ::sh, ::sw] if x.ndim == 4 else x
    if params.get("layout") != "NHWC" or w.ndim != 4 or w.shape[1:3] != (1, 1) \
            or list(params["strides"]) != [1, 1] or any(params["pads"]) or y.ndim != 4 \
            or strided.shape[:3] != y.shape[:3] or w.shape[3] != y.shape[3] + x.shape[-1] \
            or {y.dtype, w.dtype, x.dtype} != {np.dtype(np.int8)}:
        raise PlanError("conv: a shortcut-sums conv is two int8 1x1 NHWC convs over the same "
                        f"pixels, the first of stride 1 without padding (layout "
                        f"{params.get('layout')}, y {list(y.shape)}, x {list(x.shape)} every "
                        f"{[sh, sw]}, weight {list(w.shape)})")
    c2 = x.shape[-1]
    w2d = w.reshape(w.shape[0], -1).astype(np.int64)
    rest[k] = (strided.astype(np.int64) @ w2d[:, :c2].T).astype(np.int32)
    sums = (y.astype(np.int64) @ w2d[:, c2:].T).astype(np.int32)
    region = {"ops": epilogue["ops"], "result": epilogue["result"]}
    (out,) = elementwise([sums, *rest],
                         {**params, "region": region, "out_dtypes": [stored_dtype(params)]})
    return [np.ascontiguousarray(out)]


def _conv_step(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """The conv template's CPU kernel: `conv` with its epilogue, or `_shortcut_sums`."""
    if (params.get("shortcut") or {}).get("sums") is not None:
        return _shortcut_sums(inputs, params)
    return _conv_with_epilogue(inputs, params)


_conv_with_epilogue = with_epilogue(conv)


def conv_transpose(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX ConvTranspose with explicit pads (a negative pad adds zeros on that side)."""
    x, w = inputs[0], inputs[1]
    dtype, acc = _linear_dtypes(x, w, params)
    nd = x.ndim - 2
    strides, pads, dilations, groups = _conv_params(params)
    out_pad = list(params.get("output_padding") or [0] * nd)
    n, c, size = x.shape[0], x.shape[1], x.shape[2:]
    mg, kernel = w.shape[1], w.shape[2:]
    cg = c // groups
    xg = x.astype(acc).reshape(n, groups, cg, *size)
    wg = w.astype(acc).reshape(groups, cg, mg, *kernel)
    # columns [N, G, mg, *size, *kernel]
    cols = np.stack([np.tensordot(xg[:, g], wg[g], axes=([1], [0])) for g in range(groups)],
                    axis=1)  # [N, G, *size, mg, *kernel]
    cols = np.moveaxis(cols, 2 + nd, 2)
    full = [strides[i] * (size[i] - 1) + dilations[i] * (kernel[i] - 1) + 1 + out_pad[i]
            for i in range(nd)]
    before = [max(0, -pads[i]) for i in range(nd)]
    after = [max(0, -pads[nd + i]) for i in range(nd)]
    buf = np.zeros((n, groups, mg, *(before[i] + full[i] + after[i] for i in range(nd))), acc)
    for taps in itertools.product(*(range(k) for k in kernel)):
        starts = [before[i] + taps[i] * dilations[i] for i in range(nd)]
        region = tuple(slice(starts[i], starts[i] + strides[i] * (size[i] - 1) + 1, strides[i])
                       for i in range(nd))
        buf[(slice(None), slice(None), slice(None), *region)] += cols[(..., *taps)]
    crop = tuple(slice(before[i] + max(0, pads[i]),
                       before[i] + full[i] - max(0, pads[nd + i])) for i in range(nd))
    out = buf[(slice(None), slice(None), slice(None), *crop)]
    out = out.reshape(n, groups * mg, *out.shape[3:])
    if len(inputs) > 2:
        out = out + inputs[2].astype(acc).reshape(1, groups * mg, *([1] * nd))
    return [np.ascontiguousarray(out.astype(dtype))]


def einsum(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """numpy einsum of the `equation`."""
    dtype = np.result_type(*inputs)
    acc = accumulate_dtype(dtype)
    eq = params["equation"].replace(" ", "")
    out = np.einsum(eq, *(a.astype(acc) for a in inputs))
    return [np.asarray(out).astype(dtype)]


# a step's `epilogue` (fuse-epilogues) runs on the result before it is returned
def det(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX Det: each square matrix's determinant, in float64, stored as the input's type."""
    x = np.asarray(inputs[0])
    return [np.asarray(np.linalg.det(x.astype(np.float64))).astype(x.dtype)]


KERNELS = {"det": det, "matmul": with_epilogue(matmul), "conv": _conv_step,
           "conv_transpose": conv_transpose, "einsum": einsum}
