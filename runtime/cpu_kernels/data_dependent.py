"""numpy kernels of the data-dependent ops (nn.nonzero, nn.compress, nn.unique,
nn.non_max_suppression): each returns results of the length it found; the executor binds the
step's data-dependent symbol to it (runtime.symbolic.bind_data_symbols)."""

from __future__ import annotations

from typing import Any

import numpy as np


def nonzero(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX NonZero: [rank, count] i64, the indices in row-major order."""
    x = np.asarray(inputs[0])
    if x.ndim == 0:
        return [np.zeros((0, int(x != 0)), dtype=np.int64)]
    return [np.stack(np.nonzero(x)).astype(np.int64).reshape(x.ndim, -1)]


def compress(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX Compress: the slices along `axis` (the flattened input without one) whose
    condition is true; the condition may be shorter than the axis, never longer."""
    x, condition = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(bool).reshape(-1)
    axis = params.get("axis")
    length = x.size if axis is None else x.shape[axis]
    if condition.size > length:
        raise ValueError(f"the condition has {condition.size} values for {length} slices")
    return [np.compress(condition, x, axis=axis)]


def unique(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX Unique: the unique values (slices along `axis`), sorted or in the order of their
    first occurrence, with the first occurrences' indices, each input element's (slice's) index
    into them, and the counts."""
    x = np.asarray(inputs[0])
    axis = params.get("axis")
    flat = x.reshape(-1) if axis is None else x
    y, first, inverse, counts = np.unique(flat, return_index=True, return_inverse=True,
                                          return_counts=True, axis=0 if axis is None else axis)
    inverse = np.asarray(inverse).reshape(-1)
    if not params.get("sorted"):
        order = np.argsort(first, kind="stable")  # by first occurrence
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
        y = np.take(flat, first, axis=0 if axis is None else axis)
    return [y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)]


def _corners(boxes: np.ndarray, center: bool) -> tuple[np.ndarray, ...]:
    """(x_min, x_max, y_min, y_max) of [..., 4] boxes: corners [y1, x1, y2, x2] in either
    order, or [x_center, y_center, width, height]."""
    if center:
        half_w, half_h = boxes[..., 2] / 2, boxes[..., 3] / 2
        return (boxes[..., 0] - half_w, boxes[..., 0] + half_w, boxes[..., 1] - half_h,
                boxes[..., 1] + half_h)
    return (np.minimum(boxes[..., 1], boxes[..., 3]), np.maximum(boxes[..., 1], boxes[..., 3]),
            np.minimum(boxes[..., 0], boxes[..., 2]), np.maximum(boxes[..., 0], boxes[..., 2]))


def _suppressed(top: int, rest: np.ndarray, corners: tuple[np.ndarray, ...],
                iou_threshold: Any) -> np.ndarray:
    """Which boxes `rest` overlap box `top` by more than the threshold (ONNX's rule: boxes
    that do not intersect, or of no area, are never suppressed)."""
    x0, x1, y0, y1 = corners
    ix0, ix1 = np.maximum(x0[top], x0[rest]), np.minimum(x1[top], x1[rest])
    iy0, iy1 = np.maximum(y0[top], y0[rest]), np.minimum(y1[top], y1[rest])
    inter = (ix1 - ix0) * (iy1 - iy0)
    area_top = (x1[top] - x0[top]) * (y1[top] - y0[top])
    area = (x1[rest] - x0[rest]) * (y1[rest] - y0[rest])
    union = area_top + area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / np.where(union > 0, union, 1)
    return ((ix1 > ix0) & (iy1 > iy0) & (inter > 0) & (area_top > 0) & (area > 0)
            & (union > 0) & (iou > iou_threshold))


def non_max_suppression(inputs: list[np.ndarray], params: dict[str, Any]) -> list[np.ndarray]:
    """ONNX NonMaxSuppression: per batch and class, boxes by descending score (equal scores:
    the lower index first), each kept unless it overlaps a kept one by more than the IoU
    threshold, at most `max_output` per class; the scalar inputs are empty where not given."""
    boxes, scores = np.asarray(inputs[0]), np.asarray(inputs[1])
    max_output, iou, score = (np.asarray(a).reshape(-1) for a in inputs[2:5])
    limit = max(int(max_output[0]), 0) if max_output.size else 0
    iou_threshold = iou[0] if iou.size else boxes.dtype.type(0)
    center = bool(params.get("center_point_box"))
    selected: list[tuple[int, int, int]] = []
    for b in range(boxes.shape[0]):
        corners = _corners(boxes[b], center)
        for c in range(scores.shape[1]):
            s = scores[b, c]
            candidates = np.arange(s.size) if not score.size else np.nonzero(s > score[0])[0]
            # descending score, the lower index first among equals
            order = candidates[np.lexsort((candidates, -s[candidates].astype(np.float64)))]
            kept = 0
            while order.size and kept < limit:
                top, order = order[0], order[1:]
                selected.append((b, c, int(top)))
                kept += 1
                order = order[~_suppressed(top, order, corners, iou_threshold)]
    return [np.asarray(selected, dtype=np.int64).reshape(-1, 3)]


KERNELS = {"nonzero": nonzero, "compress": compress, "unique": unique,
           "non_max_suppression": non_max_suppression}
