"""Legalizers of ONNX GridSample (opsets 16, 20, 22) into nn.grid_sample (opset 16's mode names,
bilinear and bicubic, are its later ones, linear and cubic), of DFT (opsets 17, 20) into nn.dft
and of STFT into nn.stft."""

from __future__ import annotations

import numpy as np
from xdsl.ir import SSAValue

from ember.dialects.dtypes import element_type_from_onnx, numpy_dtype
from ember.dialects.nn.bilinear import DeformConvOp, RoiAlignOp
from ember.dialects.nn.movement import SliceOp
from ember.dialects.nn.sampling import GridSampleOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of, shape_of
from ember.passes.convert_onnx_to_nn.builder import NNBuilder, declared_type, with_declared
from ember.passes.convert_onnx_to_nn.registry import legalizes
from ember.runtime.cpu_kernels.sampling import MODES, PADDING_MODES

_OPSET16_MODES = {"bilinear": "linear", "bicubic": "cubic", "nearest": "nearest"}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@legalizes("GridSample")
def grid_sample(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, grid = op.operands[0], op.operands[1]
    default = "bilinear" if b.opset < 20 else "linear"
    mode = _text(op.attr("mode", default))
    if b.opset < 20:
        if mode not in _OPSET16_MODES:
            raise b.unsupported(f"mode '{mode}' (opset {b.opset} has "
                                f"{', '.join(_OPSET16_MODES)})")
        mode = _OPSET16_MODES[mode]
    padding = _text(op.attr("padding_mode", "zeros"))
    if mode not in MODES or padding not in PADDING_MODES:
        raise b.unsupported(f"mode '{mode}' / padding_mode '{padding}' (modes "
                            f"{', '.join(MODES)}; padding {', '.join(PADDING_MODES)})")
    if element_type_of(grid) != element_type_of(x):
        grid = b.cast(grid, element_type_of(x))  # the grid's type T2 may differ from X's T1
    return [b.value(GridSampleOp, [x, grid], mode=mode, padding_mode=padding,
                    align_corners=bool(op.attr("align_corners", 0)))]


@legalizes("DFT")
def dft(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """DFT: opset 17-19's axis is an attribute (default 1), opset 20's an input (default -2);
    dft_length an input. Each may be a constant (a property) or computed at run time (an
    operand, read when the plan runs; the dims it decides are the model's declared ones)."""
    from ember.dialects.nn.dynamic_params import segments
    from ember.dialects.nn.sampling import DFTOp

    x = op.operands[0]
    flags = {"inverse": bool(op.attr("inverse", 0)), "onesided": bool(op.attr("onesided", 0))}
    length_in = op.onnx_input("dft_length")
    axis_in = op.onnx_input("axis") if b.opset >= 20 else None
    props: dict = dict(flags)
    dyn_length = dyn_axis = None
    if length_in is not None:
        value = b.const(length_in)
        if value is None:
            dyn_length = b.cast(length_in, element_type_from_onnx(7))
        else:
            props["dft_length"] = int(np.asarray(value).reshape(-1)[0])
    if axis_in is not None:
        value = b.const(axis_in)
        if value is None:
            dyn_axis = b.cast(axis_in, element_type_from_onnx(7))
        else:
            props["axis"] = int(np.asarray(value).reshape(-1)[0])
    elif b.opset < 20:
        props["axis"] = int(op.attr("axis", 1))
    else:
        props["axis"] = -2
    if "axis" in props:
        props["axis"] %= max(len(b.shape(x)), 1)
    operands, segment = segments(x, dyn_length, dyn_axis)
    return [with_declared(b, DFTOp, operands, {**props, **segment},
                          declared_type(op, x, len(b.shape(x))))]


@legalizes("STFT")
def stft(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """STFT: the step, window and frame length are read when the plan runs; the result's dims
    come from them where they are constants, else from the model's declared shape."""
    from ember.dialects.nn.dynamic_params import segments
    from ember.dialects.nn.sampling import StftOp
    from ember.dialects.tensor_types import tensor_type

    x, step = op.operands[0], op.onnx_input("frame_step")
    window, length = op.onnx_input("window"), op.onnx_input("frame_length")
    i64 = element_type_from_onnx(7)
    onesided = bool(op.attr("onesided", 1))
    shape = b.shape(x)
    hint = None
    known = [b.const(v) if v is not None else None for v in (step, length)]
    size = (known[1] if length is not None else
            (b.shape(window)[0] if window is not None else shape[1] if len(shape) == 3
             else None))
    if known[0] is not None and size is not None and (length is None or known[1] is not None) \
            and len(shape) == 3 and all(isinstance(d, int) for d in shape) \
            and isinstance(np.asarray(size).reshape(-1)[0].item(), int):
        n = int(np.asarray(size).reshape(-1)[0])
        hop = int(np.asarray(known[0]).reshape(-1)[0])
        if n < 1 or hop < 1 or n > shape[1]:
            raise b.unsupported(f"frame_length {n} / frame_step {hop} do not fit a signal of "
                                f"{shape[1]}")
        frames = 1 + (shape[1] - n) // hop
        hint = tensor_type([shape[0], frames, n // 2 + 1 if onesided else n, 2],
                           element_type_of(x))
    else:
        hint = declared_type(op, x, 4)
    operands, segment = segments(x, b.cast(step, i64), window,
                                 b.cast(length, i64) if length is not None else None)
    return [with_declared(b, StftOp, operands, {"onesided": onesided, **segment}, hint)]


@legalizes("RoiAlign")
def roi_align(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, rois, batch = op.operands
    # opset 10 has no coordinate_transformation_mode: its sampling is opset 16's
    # output_half_pixel
    mode = op.attr("coordinate_transformation_mode", "half_pixel" if b.opset >= 16
                   else "output_half_pixel")
    return [b.value(RoiAlignOp, [x, b.cast(rois, element_type_of(x)), batch],
                    mode=str(op.attr("mode", "avg")),
                    coordinate_transformation_mode=str(mode),
                    output_height=int(op.attr("output_height", 1)),
                    output_width=int(op.attr("output_width", 1)),
                    sampling_ratio=int(op.attr("sampling_ratio", 0)),
                    spatial_scale=float(op.attr("spatial_scale", 1.0)))]


@legalizes("DeformConv")
def deform_conv(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, w, offset = (op.onnx_input(n) for n in ("X", "W", "offset"))
    rank = len(b.shape(x))
    if rank != 4:
        raise b.unsupported(f"only 2-D deformable convolution is supported (X of rank 4, not "
                            f"{rank})")
    kernel = [int(k) for k in op.attr("kernel_shape") or b.shape(w)[2:]]
    if list(b.shape(w)[2:]) != kernel:
        raise b.unsupported(f"kernel_shape {kernel} differs from W's {list(b.shape(w)[2:])}")
    present, extra = [], []
    for name, onnx_name in (("bias", "B"), ("mask", "mask")):
        value = op.onnx_input(onnx_name)
        if value is not None:
            present.append(name)
            extra.append(b.cast(value, element_type_of(x)))
    return [b.value(DeformConvOp, [x, w, offset, *extra], present=present or None,
                    strides=[int(v) for v in op.attr("strides") or [1, 1]],
                    pads=[int(v) for v in op.attr("pads") or [0] * 4],
                    dilations=[int(v) for v in op.attr("dilations") or [1, 1]],
                    group=int(op.attr("group", 1)),
                    offset_group=int(op.attr("offset_group", 1)))]


def _base_grid(size: int, align_corners: bool) -> np.ndarray:
    """AffineGrid's normalized coordinates along one dim of `size` points."""
    if align_corners:
        return np.array([-1.0]) if size == 1 else np.linspace(-1.0, 1.0, size)
    return (2.0 * np.arange(size) + 1.0) / size - 1.0


@legalizes("AffineGrid")
def affine_grid(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    """AffineGrid: each (x, y[, z], 1) of the normalized base grid times theta [N, k, k + 1]
    -> [N, *spatial, k]: a constant base grid, a transpose and a matmul. The spatial size is
    the size input where it is a constant, else the declared result's (the size input must
    then equal it when the plan runs, an nn.assert)."""
    from ember.dialects.nn.linear import MatMulOp
    from ember.dialects.nn.movement import TransposeOp

    theta, size_in = op.operands
    shape = b.shape(theta)
    if len(shape) != 3 or shape[1] not in (2, 3) or shape[2] != shape[1] + 1:
        raise b.unsupported(f"theta must be [N, 2, 3] or [N, 3, 4], not {list(shape)}")
    k = shape[1]
    value = b.const(size_in)
    if value is not None:
        size = [int(v) for v in np.asarray(value).reshape(-1)]
    else:
        declared = shape_of(op.results[0].type)
        if declared is None or len(declared) != k + 2 or not all(
                isinstance(d, int) for d in declared[1:-1]):
            raise b.unsupported("the size input is computed at run time and the result's "
                                "shape is not declared")
        size = [shape[0], -1, *declared[1:-1]]  # N and C are not known: only the spatial dims
        b.assume_equal(b.value(SliceOp, [b.cast(size_in, element_type_from_onnx(7))],
                               starts=[2], ends=[k + 2], steps=[1]), size[2:], "its spatial size")
    if len(size) != k + 2:
        raise b.unsupported(f"size {size} does not fit theta {list(shape)}")
    spatial = size[2:]
    align = bool(op.attr("align_corners", 0))
    axes = [_base_grid(n, align) for n in spatial]  # z, y, x order; the grid holds x first
    mesh = np.meshgrid(*axes, indexing="ij")
    base = np.stack([*mesh[::-1], np.ones(spatial)], -1).reshape(1, -1, k + 1)
    dtype = numpy_dtype(element_type_of(theta))
    grid = b.value(MatMulOp, [b.constant(base.astype(dtype)),
                              b.value(TransposeOp, [theta], perm=[0, 2, 1])])
    return [b.reshape(grid, (shape[0], *spatial, k))]
