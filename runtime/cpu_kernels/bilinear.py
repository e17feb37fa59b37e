"""numpy kernels of the ops that sample an image bilinearly at computed points: nn.roi_align
(ONNX RoiAlign: Mask/Faster R-CNN's region features) and nn.deform_conv (ONNX DeformConv, 2-D:
a convolution whose taps are moved by learned offsets), as ONNX's reference computes them
(coordinates and weights in float64, the result in the input's type)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _axis_samples(start: float, bin_size: float, bins: int, grid: int, size: int
                  ) -> tuple[np.ndarray, ...]:
    """Along one axis, for bins x grid sample points (RoiAlign's): whether each is inside
    [-1, size], its low and high neighbours and their weights (the reference's rules: clamped
    at 0, snapped to the last pixel past it)."""
    points = (start + np.arange(bins)[:, None] * bin_size
              + (np.arange(grid)[None, :] + 0.5) * bin_size / grid).reshape(-1)
    inside = (points >= -1.0) & (points <= size)
    p = np.maximum(points, 0.0)
    low = np.floor(p).astype(np.int64)
    last = low >= size - 1
    low = np.where(last, size - 1, low)
    high = np.where(last, size - 1, low + 1)
    p = np.where(last, low, p)
    frac = p - low
    return inside, low, high, 1.0 - frac, frac


def roi_align(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """Each region of interest (x1, y1, x2, y2 scaled by `spatial_scale`, of the image its
    batch index names) cut into output_height x output_width bins, each the average (or the
    max) of a grid of bilinear samples (`sampling_ratio` per side, else ceil(bin size))."""
    x, rois = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(np.float64)
    batch = np.asarray(inputs[2]).astype(np.int64).reshape(-1)
    oh, ow = int(params["output_height"]), int(params["output_width"])
    scale, ratio = float(params["spatial_scale"]), int(params["sampling_ratio"])
    half = params["coordinate_transformation_mode"] == "half_pixel"
    height, width = x.shape[2], x.shape[3]
    if batch.size != rois.shape[0] or (batch.size and (batch.min() < 0
                                                       or batch.max() >= x.shape[0])):
        raise ValueError(f"batch_indices {batch.tolist()} do not name images of the batch of "
                         f"{x.shape[0]} for {rois.shape[0]} regions")
    out = np.zeros((rois.shape[0], x.shape[1], oh, ow), np.float64)
    shift = 0.5 if half else 0.0
    for r, (x1, y1, x2, y2) in enumerate(rois * scale - shift):
        roi_w, roi_h = x2 - x1, y2 - y1
        if not half:  # malformed regions are 1 x 1
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / oh, roi_w / ow
        gh = ratio if ratio > 0 else int(np.ceil(roi_h / oh))
        gw = ratio if ratio > 0 else int(np.ceil(roi_w / ow))
        in_y, y_lo, y_hi, hy, ly = _axis_samples(y1, bin_h, oh, gh, height)
        in_x, x_lo, x_hi, hx, lx = _axis_samples(x1, bin_w, ow, gw, width)
        inside = in_y[:, None] & in_x[None, :]
        image = x[batch[r]].astype(np.float64)  # [C, H, W]
        corners = [(y_lo, x_lo, hy[:, None] * hx[None, :]), (y_lo, x_hi, hy[:, None] * lx),
                   (y_hi, x_lo, ly[:, None] * hx), (y_hi, x_hi, ly[:, None] * lx)]
        terms = [np.where(inside, w, 0.0) * image[:, ys][:, :, xs]
                 for ys, xs, w in corners]  # each [C, oh*gh, ow*gw]
        if params.get("mode", "avg") == "max":
            samples = np.maximum.reduce(terms)
            pooled = samples.reshape(-1, oh, gh, ow, gw).max(axis=(2, 4))
        else:
            pooled = sum(terms).reshape(-1, oh, gh, ow, gw).sum(axis=(2, 4)) / max(gh * gw, 1)
        out[r] = pooled
    return [out.astype(x.dtype)]


def _bilinear_zeros(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """image [C, H, W] sampled at (y, x) (any equal shapes S) bilinearly, corners outside the
    image reading 0: [C, *S]."""
    height, width = image.shape[1:]
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    out = np.zeros((image.shape[0], *y.shape), np.float64)
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = y0 + dy, x0 + dx
            weight = (1 - np.abs(y - yy)) * (1 - np.abs(x - xx))
            ok = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
            values = image[:, np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)]
            out += np.where(ok, weight, 0.0) * values
    return out


def deform_conv(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """2-D deformable convolution: tap (kh, kw) of output (i, j) reads X bilinearly at
    (i * stride - pad + kh * dilation + offset_y, ... + offset_x) (an offset per offset group,
    tap and output position), times the mask, then the grouped convolution's weights; the
    bias is added. Inputs: X, W, offset, then B and mask where present (`present`)."""
    present = list(params.get("present") or [])
    x, w, offset = (np.asarray(a) for a in inputs[:3])
    extra = dict(zip(present, inputs[3:], strict=True))
    n, channels, _, _ = x.shape
    out_channels, per_group, kh, kw = w.shape
    groups, offset_groups = int(params["group"]), int(params["offset_group"])
    sh, sw = params["strides"]
    dh, dw = params["dilations"]
    pt, pl = params["pads"][0], params["pads"][1]
    oh, ow = offset.shape[2:]
    offset = offset.astype(np.float64).reshape(n, offset_groups, kh, kw, 2, oh, ow)
    mask = (np.asarray(extra["mask"]).astype(np.float64).reshape(n, offset_groups, kh, kw,
                                                                  oh, ow)
            if "mask" in extra else np.ones((n, offset_groups, kh, kw, oh, ow)))
    base_y = (np.arange(oh) * sh - pt)[None, None, :, None] \
        + (np.arange(kh) * dh)[:, None, None, None]
    base_x = (np.arange(ow) * sw - pl)[None, None, None, :] \
        + (np.arange(kw) * dw)[None, :, None, None]
    per_offset = channels // offset_groups
    out = np.zeros((n, out_channels, oh, ow), np.float64)
    for b in range(n):
        columns = np.empty((channels, kh, kw, oh, ow), np.float64)
        for g in range(offset_groups):
            y = base_y + offset[b, g, :, :, 0]
            xx = base_x + offset[b, g, :, :, 1]
            chans = slice(g * per_offset, (g + 1) * per_offset)
            columns[chans] = _bilinear_zeros(x[b, chans].astype(np.float64), y, xx) \
                * mask[b, g]
        per_out = out_channels // groups
        for g in range(groups):
            cols = columns[g * per_group:(g + 1) * per_group]
            weights = w[g * per_out:(g + 1) * per_out].astype(np.float64)
            out[b, g * per_out:(g + 1) * per_out] = np.einsum("ocij,cijhw->ohw", weights, cols)
    if "bias" in extra:
        out += np.asarray(extra["bias"]).astype(np.float64).reshape(1, -1, 1, 1)
    return [out.astype(x.dtype)]


KERNELS = {"roi_align": roi_align, "deform_conv": deform_conv}
