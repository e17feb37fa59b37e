"""Legalizers of ONNX's linear-algebra operators: Conv, ConvTranspose, Gemm, MatMul, Einsum,
MatMulInteger and ConvInteger.

auto_pad and ConvTranspose's output_shape are resolved here into the explicit pads of `nn.conv` /
`nn.conv_transpose`; Gemm's transposes become `nn.matmul`'s transpose_a/transpose_b, alpha and beta
become multiplications by constants.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import IntegerType
from xdsl.ir import SSAValue

from ember.dialects.dtypes import is_float
from ember.dialects.nn.linear import ConvOp, ConvTransposeOp, DetOp, EinsumOp, MatMulOp
from ember.dialects.nn.movement import GatherOp, TransposeOp
from ember.dialects.onnx import OnnxOp
from ember.dialects.tensor_types import element_type_of
from ember.errors import ShapeError
from ember.passes.convert_onnx_to_nn.builder import NNBuilder
from ember.passes.convert_onnx_to_nn.registry import legalizes

I32 = IntegerType(32)


def _spatial(b: NNBuilder, x: SSAValue, w: SSAValue) -> tuple[tuple, tuple, int]:
    xs, ws = b.shape(x), b.shape(w)
    if len(xs) < 3:
        raise b.unsupported(f"the input has shape {list(xs)}; rank >= 3 (N, C, spatial...) "
                            "is needed")
    if len(ws) != len(xs):
        raise b.unsupported(f"the weight {list(ws)} and the input {list(xs)} differ in rank")
    return xs, ws, len(xs) - 2


def _kernel(b: NNBuilder, op: OnnxOp, ws: tuple, nd: int) -> list:
    """The kernel's spatial dims: from W, checked against the kernel_shape attribute."""
    kernel = list(ws[2:])
    if op.has_attr("kernel_shape"):
        given = [int(k) for k in op.attr("kernel_shape")]
        if len(given) != nd:
            raise b.unsupported(f"kernel_shape {given} does not have {nd} spatial dims")
        for i, (k, g) in enumerate(zip(kernel, given, strict=True)):
            if isinstance(k, int) and k != g:
                raise b.unsupported(f"kernel_shape {given} differs from the weight's spatial "
                                    f"dims {list(ws[2:])}")
            kernel[i] = g
    return kernel


def _ints(b: NNBuilder, op: OnnxOp, name: str, n: int, default: int) -> list[int]:
    values = op.attr(name)
    if not values:
        return [default] * n
    values = [int(v) for v in values]
    if len(values) != n:
        raise b.unsupported(f"{name} {values} should have {n} values")
    return values


def _auto_pad(op: OnnxOp) -> str:
    mode = op.attr("auto_pad", "NOTSET")
    return mode.decode() if isinstance(mode, bytes) else str(mode)


def _conv_pads(b: NNBuilder, op: OnnxOp, xs: tuple, kernel: list, strides: list[int],
               dilations: list[int]) -> list[int]:
    nd = len(kernel)
    mode = _auto_pad(op)
    if mode == "NOTSET":
        return _ints(b, op, "pads", 2 * nd, 0)
    if mode == "VALID":
        return [0] * (2 * nd)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise b.unsupported(f"auto_pad '{mode}' is not supported")
    begin, end = [], []
    for i in range(nd):
        size, k, s, d = xs[2 + i], kernel[i], strides[i], dilations[i]
        if not isinstance(k, int):
            raise b.unsupported(f"auto_pad {mode} needs a static kernel (spatial dim #{i})")
        if isinstance(size, int):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        elif s == 1:
            total = (k - 1) * d  # independent of the input size
        else:
            raise b.unsupported(f"auto_pad {mode} with stride {s} needs a static input size "
                                f"(spatial dim #{i} is '{size}')")
        small, large = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else large)
        end.append(large if mode == "SAME_UPPER" else small)
    return begin + end


@legalizes("Conv")
def conv(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, w, bias = op.onnx_input("X"), op.onnx_input("W"), op.onnx_input("B")
    return [conv_from_attrs(b, op, x, w, bias)]


def conv_from_attrs(b: NNBuilder, op: OnnxOp, x: SSAValue, w: SSAValue,
          bias: SSAValue | None) -> SSAValue:
    xs, ws, nd = _spatial(b, x, w)
    kernel = _kernel(b, op, ws, nd)
    strides = _ints(b, op, "strides", nd, 1)
    dilations = _ints(b, op, "dilations", nd, 1)
    pads = _conv_pads(b, op, xs, kernel, strides, dilations)
    group = int(op.attr("group", 1))
    operands = [x, w] + ([bias] if bias is not None else [])
    return b.value(ConvOp, operands, strides=strides, pads=pads, dilations=dilations,
                   groups=group)


@legalizes("ConvTranspose")
def conv_transpose(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, w, bias = op.onnx_input("X"), op.onnx_input("W"), op.onnx_input("B")
    xs, ws, nd = _spatial(b, x, w)
    kernel = _kernel(b, op, ws, nd)
    strides = _ints(b, op, "strides", nd, 1)
    dilations = _ints(b, op, "dilations", nd, 1)
    out_pad = _ints(b, op, "output_padding", nd, 0)
    group = int(op.attr("group", 1))
    mode = _auto_pad(op)
    if mode not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise b.unsupported(f"auto_pad '{mode}' is not supported")
    output_shape = [int(v) for v in op.attr("output_shape") or []]
    if output_shape and len(output_shape) == nd + 2:
        output_shape = output_shape[2:]
    if output_shape and len(output_shape) != nd:
        raise b.unsupported(f"output_shape {output_shape} should have {nd} spatial dims")
    if output_shape or mode in ("SAME_UPPER", "SAME_LOWER"):
        # pads from the wanted output size (output_shape, else input * stride for SAME_*)
        begin, end = [], []
        for i in range(nd):
            size, k = xs[2 + i], kernel[i]
            if not isinstance(k, int):
                raise b.unsupported(f"a static kernel is needed (spatial dim #{i})")
            natural = out_pad[i] + (k - 1) * dilations[i] + 1
            if output_shape:
                if not isinstance(size, int):
                    raise b.unsupported(f"output_shape needs a static input size (spatial dim "
                                        f"#{i} is '{size}')")
                total = strides[i] * (size - 1) + natural - output_shape[i]
            else:  # output = size * stride: the total does not depend on the size
                total = natural - strides[i]
            small, large = total // 2, total - total // 2
            begin.append(small if mode == "SAME_UPPER" else large)
            end.append(large if mode == "SAME_UPPER" else small)
        # a negative end pad is more output padding
        for i in range(nd):
            if end[i] < 0:
                out_pad[i] -= end[i]
                end[i] = 0
        pads = begin + end
    elif mode == "VALID":
        pads = [0] * (2 * nd)
    else:
        pads = _ints(b, op, "pads", 2 * nd, 0)
    operands = [x, w] + ([bias] if bias is not None else [])
    return [b.value(ConvTransposeOp, operands, strides=strides, pads=pads, dilations=dilations,
                    groups=group, output_padding=out_pad if any(out_pad) else None)]


def _scale(b: NNBuilder, x: SSAValue, factor: float) -> SSAValue:
    if factor == 1.0:
        return x
    if not is_float(element_type_of(x)) and factor != int(factor):
        raise b.unsupported(f"a non-integer factor {factor} on an integer tensor")
    return b.binary("mul", x, b.constant(factor, like=x))


@legalizes("Gemm")
def gemm(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    a, bm, c = op.onnx_input("A"), op.onnx_input("B"), op.onnx_input("C")
    for name, v in (("A", a), ("B", bm)):
        if len(b.shape(v)) != 2:
            raise b.unsupported(f"input {name} has shape {list(b.shape(v))}; Gemm needs 2-D")
    y = b.value(MatMulOp, [a, bm], transpose_a=bool(op.attr("transA", 0)) or None,
                transpose_b=bool(op.attr("transB", 0)) or None)
    y = _scale(b, y, float(op.attr("alpha", 1.0)))
    beta = float(op.attr("beta", 1.0))
    if c is not None and beta != 0.0:
        y = b.binary("add", y, _scale(b, c, beta))
    return [y]


@legalizes("MatMul")
def matmul(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    return [b.value(MatMulOp, [op.onnx_input("A"), op.onnx_input("B")])]


def einsum_problem(equation: str, operands: int) -> str | None:
    """Why ember does not take an Einsum equation (None: it does)."""
    if operands > 2:
        return f"equation '{equation}' has {operands} operands; at most 2 are supported"
    return None


def _diagonals(b: NNBuilder, inputs: list[SSAValue], equation: str
               ) -> tuple[list[SSAValue], str]:
    """Operands whose term repeats a label (a diagonal, "...ii", or a trace, "ii->") replaced
    by that diagonal (the two dims moved last, flattened, every (n + 1)-th element gathered),
    and the equation with the label once: what numpy's einsum means by the repeat."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(inputs):
        raise b.unsupported(f"equation '{equation}' has {len(terms)} operand term(s) for "
                            f"{len(inputs)} input(s)")
    out = []
    for k, (term, x) in enumerate(zip(terms, inputs, strict=True)):
        shape = list(b.shape(x))
        explicit = term.replace("...", "")
        ellipsis = len(shape) - len(explicit)
        if ellipsis < 0 or (ellipsis and "..." not in term):
            raise b.unsupported(f"equation '{equation}': term '{term}' does not fit an operand "
                                f"of rank {len(shape)}")
        head, _, tail = term.partition("...")
        labels = [*head, *(["..."] * ellipsis), *tail]
        while (c := next((c for c in explicit if labels.count(c) > 1), None)) is not None:
            p1, p2 = [i for i, label in enumerate(labels) if label == c][:2]
            n = shape[p1]
            if not isinstance(n, int) or shape[p2] != n:
                raise b.unsupported(f"equation '{equation}': the diagonal of label {c} needs "
                                    f"equal static dims, not {shape[p1]} and {shape[p2]}")
            rest = [i for i in range(len(shape)) if i not in (p1, p2)]
            x = b.value(TransposeOp, [x], perm=[*rest, p1, p2])
            shape = [shape[i] for i in rest]
            x = b.reshape(x, (*shape, n * n))
            x = b.value(GatherOp, [x, b.constant(np.arange(n, dtype=np.int64) * (n + 1))],
                        axis=len(shape))
            shape.append(n)
            labels = [labels[i] for i in rest] + [c]
            explicit = "".join(label for label in labels if label != "...")
        out.append(x)
        if len(labels) == len(head) + ellipsis + len(tail):
            continue  # no label repeated: the term as written
        dots = "".join(label for i, label in enumerate(labels)
                       if label != "..." or i == labels.index("..."))
        terms[k] = dots if "..." in dots or "..." not in term else "..." + dots
    return out, ",".join(terms) + arrow + rhs


@legalizes("Det")
def det(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    try:
        return [b.value(DetOp, [op.operands[0]])]
    except ShapeError as e:
        raise b.unsupported(str(e)) from None


@legalizes("Einsum")
def einsum(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    inputs = list(op.onnx_variadic_input())
    equation = str(op.attr("equation"))
    problem = einsum_problem(equation, len(inputs))
    if problem:
        raise b.unsupported(problem)
    inputs, equation = _diagonals(b, inputs, equation)
    return [b.value(EinsumOp, inputs, equation=equation)]


def minus_zero_point(b: NNBuilder, x: SSAValue, zp: SSAValue | None,
                      target: Sequence | None = None) -> SSAValue:
    """x - zp in i32 (zp reshaped to `target` first, where given); int8 x without a zero point
    stays int8 (an int8 conv/matmul sums into int32 itself, on the INT8 tensor cores)."""
    if zp is None and str(element_type_of(x)) == "i8":
        return x
    x = b.cast(x, I32)
    if zp is None:
        return x
    if target is not None:
        zp = b.reshape(zp, target)
    return b.binary("sub", x, b.cast(zp, I32))


@legalizes("MatMulInteger")
def matmul_integer(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    a, bm = op.onnx_input("A"), op.onnx_input("B")
    azp, bzp = op.onnx_input("a_zero_point"), op.onnx_input("b_zero_point")
    a_shape = b.shape(a)
    target = None
    if azp is not None and len(b.shape(azp)) == 1 and len(a_shape) >= 2 and b.shape(azp)[0] != 1:
        target = [b.shape(azp)[0], 1]  # per-row zero points
    return [b.value(MatMulOp, list(_same_integers(b, minus_zero_point(b, a, azp, target),
                                                  minus_zero_point(b, bm, bzp))))]


@legalizes("ConvInteger")
def conv_integer(b: NNBuilder, op: OnnxOp) -> list[SSAValue]:
    x, w = op.onnx_input("x"), op.onnx_input("w")
    xzp, wzp = op.onnx_input("x_zero_point"), op.onnx_input("w_zero_point")
    nd = len(b.shape(w)) - 2
    target = None
    if wzp is not None and len(b.shape(wzp)) == 1 and b.shape(wzp)[0] != 1:
        target = [b.shape(wzp)[0], *([1] * (nd + 1))]  # per output channel
    x32, w32 = _same_integers(b, minus_zero_point(b, x, xzp),
                              minus_zero_point(b, w, wzp, target))
    return [conv_from_attrs(b, op, x32, w32, None)]


def _same_integers(b: NNBuilder, x: SSAValue, y: SSAValue) -> tuple[SSAValue, SSAValue]:
    """Both int8 (summed into int32 by the op), else both int32."""
    if element_type_of(x) == element_type_of(y):
        return x, y
    return b.cast(x, I32), b.cast(y, I32)
