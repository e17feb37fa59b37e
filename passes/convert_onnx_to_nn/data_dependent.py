"""Legalizers of the ops whose result length depends on the data: NonZero, Compress, Unique and
NonMaxSuppression. On constants they are evaluated here; otherwise each makes a data-dependent
symbol bounded by what its inputs' shapes allow (at the profile's max), which its step binds
when the plan runs (dialects/symbol_ranges.py)."""

from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from ember.dialects.dtypes import element_type_from_numpy
from ember.dialects.nn.base import dim_product
from ember.dialects.nn.data_dependent import CompressOp, NonMaxSuppressionOp, NonZeroOp, UniqueOp
from ember.dialects.nn.movement import GatherOp
from ember.dialects.onnx import OnnxOp
from ember.passes.convert_onnx_to_nn.builder import NNBuilder
from ember.passes.convert_onnx_to_nn.registry import legalizes
from ember.runtime.cpu_kernels import data_dependent as kernels
from ember.runtime.cpu_kernels.common import normalize_axis


def _bound(b: NNBuilder, shape: tuple, what: str) -> int:
    count = b.at_maxima(shape)
    if count is None:
        raise b.unsupported(f"its result length depends on the data and {what} "
                            f"{list(shape)} has a dim of unknown bound")
    return count


@legalizes("NonZero")
def nonzero(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    value = b.const(x)
    if value is not None:
        return [b.constant(kernels.nonzero([value], {})[0])]
    shape = b.shape(x)
    size = b.data_symbol("nonzero", _bound(b, shape, "the input"))
    return [b.op(NonZeroOp, [x], {"size": size}).results[0]]


@legalizes("Compress")
def compress(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, condition = op.operands[0], op.operands[1]
    shape = b.shape(x)
    axis = normalize_axis(int(op.attr("axis")), len(shape), "Compress") \
        if op.has_attr("axis") else None
    if len(b.shape(condition)) != 1:
        raise b.unsupported(f"the condition must be 1-D, not {list(b.shape(condition))}")
    known = b.const(condition)
    if known is not None:  # a constant condition: a gather of the slices it keeps
        keep = np.nonzero(np.asarray(known).astype(bool))[0].astype(np.int64)
        data = x if axis is not None else b.reshape(x, (dim_product(shape),))
        length = b.shape(data)[axis or 0]
        if isinstance(length, int) and np.asarray(known).size > length:
            raise b.unsupported(f"the condition has {np.asarray(known).size} values for "
                                f"{length} slices")
        return [b.value(GatherOp, [data, b.constant(keep)], axis=axis or 0)]
    length = _bound(b, shape if axis is None else (shape[axis],), "the input")
    bound = min(length, _bound(b, b.shape(condition), "the condition"))
    size = b.data_symbol("compress", bound)
    return [b.op(CompressOp, [x, b.cast(condition, element_type_from_numpy(np.dtype(bool)))],
                 {"axis": axis, "size": size}).results[0]]


@legalizes("Unique")
def unique(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x = op.operands[0]
    shape = b.shape(x)
    axis = normalize_axis(int(op.attr("axis")), len(shape), "Unique") \
        if op.has_attr("axis") else None
    flags = {"axis": axis, "sorted": bool(op.attr("sorted", 1))}
    value = b.const(x)
    if value is not None:
        return [b.constant(r) for r in kernels.unique([value], flags)]
    bound = _bound(b, shape if axis is None else (shape[axis],), "the input")
    size = b.data_symbol("unique", bound)
    return list(b.op(UniqueOp, [x], {**flags, "size": size}, num_results=4).results)


@legalizes("NonMaxSuppression")
def non_max_suppression(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    boxes, scores = op.operands[0], op.operands[1]
    scalars = []
    for name, dtype in (("max_output_boxes_per_class", np.int64),
                        ("iou_threshold", np.float32), ("score_threshold", np.float32)):
        value = op.onnx_input(name)
        if value is None:  # not given: an empty tensor, as the kernel reads it
            scalars.append(b.constant(np.zeros((0,), dtype)))
            continue
        if len(b.shape(value)) > 1 or b.at_maxima(b.shape(value)) not in (0, 1):
            raise b.unsupported(f"input '{name}' must hold one value, not "
                                f"{list(b.shape(value))}")
        scalars.append(value)
    if len(b.shape(scores)) != 3:
        raise b.unsupported(f"scores must be [B, C, N], not {list(b.shape(scores))}")
    b_, c_, n_ = b.shape(scores)
    per_class = _bound(b, (n_,), "scores")
    limit = b.const(scalars[0])
    if limit is not None:  # a constant limit bounds the boxes per class
        flat = np.asarray(limit).reshape(-1)
        per_class = min(per_class, max(int(flat[0]), 0) if flat.size else 0)
    bound = _bound(b, (b_, c_), "scores") * per_class
    size = b.data_symbol("nms", bound)
    return [b.op(NonMaxSuppressionOp, [boxes, scores, *scalars],
                 {"center_point_box": int(op.attr("center_point_box", 0)),
                  "size": size}).results[0]]
