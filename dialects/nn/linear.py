"""Linear-algebra nn ops: matmul (with optional operand transposes), N-d convolution and
transposed convolution (explicit pads), and einsum of one or two operands.

Dims stay symbolic where the arithmetic allows (a batch dim passes through; a spatial dim passes
through a 1-wide, stride-1, unpadded window), else they become "?".
"""

from __future__ import annotations

import string

from xdsl.dialects.builtin import (
    DenseArrayBase,
    Float8E4M3FNType,
    IntegerAttr,
    IntegerType,
    StringAttr,
    UnitAttr,
    f32,
)
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, broadcast_shapes, like
from ember.dialects.tensor_types import UNKNOWN, Dim, Shape, element_type_of
from ember.errors import ShapeError


def _same_element_type(op: NNOp, *indices: int) -> Attribute:
    types = [element_type_of(op.operands[i]) for i in indices]
    if any(t != types[0] for t in types):
        raise ShapeError(f"{op.name}: operand element types differ ({', '.join(map(str, types))})")
    return types[0]


I32 = IntegerType(32)


def accumulated_type(op: NNOp, *indices: int) -> Attribute:
    """The result element type of a matmul / conv over `indices`: 8-bit integer operands (int8
    or uint8, mixed as ONNX MatMulInteger / ConvInteger allow) accumulate into int32, E4M3
    operands (fold-qdq's FP8 convs and matmuls) into float32; otherwise the operands' common
    type."""
    types = [element_type_of(op.operands[i]) for i in indices]
    if all(isinstance(t, IntegerType) and t.width.data == 8 for t in types):
        return I32
    if all(isinstance(t, Float8E4M3FNType) for t in types):
        return f32
    return _same_element_type(op, *indices)


def _dims_match(a: Dim, b: Dim) -> bool:
    """False only where two dims are known to differ."""
    return not (isinstance(a, int) and isinstance(b, int) and a != b)


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# -- matmul -------------------------------------------------------------------------------------

@irdl_op_definition
class MatMulOp(NNOp):
    """numpy `matmul`: 1-D operands are promoted (and the added dim dropped), batch dims
    broadcast. `transpose_a`/`transpose_b` swap the last two dims of that operand first.
    8-bit integer operands accumulate into int32 (ONNX MatMulInteger with zero points 0)."""

    name = "nn.matmul"
    lhs = operand_def()
    rhs = operand_def()
    transpose_a = opt_prop_def(IntegerAttr)
    transpose_b = opt_prop_def(IntegerAttr)
    tf32 = opt_prop_def(UnitAttr)  # may use TF32 tensor cores (assign-precision, TF32 allowed)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$lhs `,` $rhs attr-dict `:` functional-type(operands, results)"

    def _operand(self, index: int, transposed: bool) -> Shape:
        shape = self.operand_shape(index)
        if not shape:
            raise ShapeError(f"nn.matmul: operand #{index} is a scalar")
        if transposed:
            if len(shape) < 2:
                raise ShapeError(f"nn.matmul: operand #{index} of rank {len(shape)} "
                                 "cannot be transposed")
            shape = (*shape[:-2], shape[-1], shape[-2])
        return shape

    def infer(self) -> list[Attribute]:
        element = accumulated_type(self, 0, 1)
        a = self._operand(0, bool(self.prop("transpose_a", False)))
        b = self._operand(1, bool(self.prop("transpose_b", False)))
        a2 = (1, *a) if len(a) == 1 else a
        b2 = (*b, 1) if len(b) == 1 else b
        if not _dims_match(a2[-1], b2[-2]):
            raise ShapeError(f"nn.matmul: shapes {_fmt(a)} and {_fmt(b)} do not agree on the "
                             f"contracted dim ({a2[-1]} vs {b2[-2]})")
        batch = broadcast_shapes(a2[:-2], b2[:-2], op="nn.matmul (batch dims)")
        out = (*batch, *(() if len(a) == 1 else (a2[-2],)), *(() if len(b) == 1 else (b2[-1],)))
        return [like(self.lhs, out, element)]


# -- convolution --------------------------------------------------------------------------------

def _window_out(size: Dim, kernel: Dim, stride: int, dilation: int, pad: int) -> Dim:
    """Output length of a sliding window (pad = begin + end)."""
    if isinstance(size, int) and isinstance(kernel, int):
        n = (size + pad - dilation * (kernel - 1) - 1) // stride + 1
        if n < 1:
            raise ShapeError(f"the window (kernel {kernel}, dilation {dilation}) does not fit "
                             f"an input of {size} padded by {pad}")
        return n
    if kernel == 1 and stride == 1 and pad == 0:
        return size
    return UNKNOWN


class _ConvBase(NNOp):
    input = operand_def()
    weight = operand_def()
    bias = opt_operand_def()
    strides = prop_def(DenseArrayBase)
    pads = prop_def(DenseArrayBase)
    dilations = prop_def(DenseArrayBase)
    groups = prop_def(IntegerAttr)
    tf32 = opt_prop_def(UnitAttr)  # may use TF32 tensor cores (assign-precision, TF32 allowed)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)"
    )

    def _params(self) -> tuple[Shape, Shape, int, list[int], list[int], list[int], int]:
        x, w = self.operand_shape(0), self.operand_shape(1)
        if len(x) < 3:
            raise ShapeError(f"{self.name}: the input {_fmt(x)} must have rank >= 3 "
                             "(batch, channels, spatial dims)")
        if len(w) != len(x):
            raise ShapeError(f"{self.name}: the weight {_fmt(w)} and the input {_fmt(x)} "
                             "differ in rank")
        nd = len(x) - 2
        strides, pads = list(self.prop("strides")), list(self.prop("pads"))
        dilations, groups = list(self.prop("dilations")), int(self.prop("groups"))
        if len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd:
            raise ShapeError(f"{self.name}: {nd} spatial dims need {nd} strides, {nd} dilations "
                             f"and {2 * nd} pads (got {strides}, {dilations}, {pads})")
        if any(s < 1 for s in strides) or any(d < 1 for d in dilations):
            raise ShapeError(f"{self.name}: strides {strides} and dilations {dilations} must "
                             "be positive")
        if groups < 1:
            raise ShapeError(f"{self.name}: groups must be positive, not {groups}")
        _same_element_type(self, *range(len(self.operands)))
        return x, w, nd, strides, pads, dilations, groups

    def _check_bias(self, channels: Dim) -> None:
        if self.bias is None:
            return
        b = self.operand_shape(2)
        if len(b) != 1 or not _dims_match(b[0], channels):
            raise ShapeError(f"{self.name}: the bias {_fmt(b)} must be 1-D of the "
                             f"{channels} output channels")


@irdl_op_definition
class ConvOp(_ConvBase):
    """N-d convolution (cross-correlation) as ONNX Conv, with explicit pads.

    input [N, C, *spatial], weight [M, C/groups, *kernel], bias [M]; pads are
    [begin_0, ..., begin_{n-1}, end_0, ..., end_{n-1}]. 8-bit integer input and weight
    accumulate into int32, without bias (ONNX ConvInteger with zero points 0)."""

    name = "nn.conv"

    def infer(self) -> list[Attribute]:
        x, w, nd, strides, pads, dilations, groups = self._params()
        if isinstance(x[1], int) and isinstance(w[1], int) and x[1] != w[1] * groups:
            raise ShapeError(f"nn.conv: the input has {x[1]} channels but the weight {_fmt(w)} "
                             f"with {groups} group(s) expects {w[1] * groups}")
        if isinstance(w[0], int) and w[0] % groups:
            raise ShapeError(f"nn.conv: {w[0]} output channels do not split into "
                             f"{groups} groups")
        if any(p < 0 for p in pads):
            raise ShapeError(f"nn.conv: pads {pads} must not be negative")
        self._check_bias(w[0])
        element = accumulated_type(self, 0, 1)
        if element == I32 and self.bias is not None:
            raise ShapeError("nn.conv: an integer (ConvInteger) conv takes no bias")
        try:
            spatial = [_window_out(x[2 + i], w[2 + i], strides[i], dilations[i],
                                   pads[i] + pads[nd + i]) for i in range(nd)]
        except ShapeError as e:
            raise ShapeError(f"nn.conv: input {_fmt(x)}, weight {_fmt(w)}: {e}") from None
        return [like(self.input, (x[0], w[0], *spatial), element)]


@irdl_op_definition
class ConvTransposeOp(_ConvBase):
    """N-d transposed convolution as ONNX ConvTranspose, with explicit pads.

    input [N, C, *spatial], weight [C, M/groups, *kernel], bias [M]. Each spatial output is
    stride*(in-1) + output_padding + dilation*(kernel-1) + 1 - pad_begin - pad_end; a negative
    pad adds zeros on that side."""

    name = "nn.conv_transpose"
    output_padding = opt_prop_def(DenseArrayBase)

    def _output_padding(self, nd: int) -> list[int]:
        op = list(self.prop("output_padding", [0] * nd))
        if len(op) != nd:
            raise ShapeError(f"nn.conv_transpose: output_padding {op} needs {nd} values")
        return op

    def infer(self) -> list[Attribute]:
        x, w, nd, strides, pads, dilations, groups = self._params()
        out_pad = self._output_padding(nd)
        if not _dims_match(x[1], w[0]):
            raise ShapeError(f"nn.conv_transpose: the input has {x[1]} channels but the weight "
                             f"{_fmt(w)} expects {w[0]}")
        if isinstance(x[1], int) and x[1] % groups:
            raise ShapeError(f"nn.conv_transpose: {x[1]} input channels do not split into "
                             f"{groups} groups")
        channels = w[1] * groups if isinstance(w[1], int) else UNKNOWN
        self._check_bias(channels)
        spatial: list[Dim] = []
        for i in range(nd):
            size, k = x[2 + i], w[2 + i]
            if isinstance(size, int) and isinstance(k, int):
                o = (strides[i] * (size - 1) + out_pad[i] + dilations[i] * (k - 1) + 1
                     - pads[i] - pads[nd + i])
                if o < 1:
                    raise ShapeError(f"nn.conv_transpose: input {_fmt(x)}, weight {_fmt(w)}: "
                                     f"spatial dim #{i} would be {o}")
                spatial.append(o)
            elif k == 1 and strides[i] == 1 and pads[i] == pads[nd + i] == out_pad[i] == 0:
                spatial.append(size)
            else:
                spatial.append(UNKNOWN)
        return [like(self.input, (x[0], channels, *spatial))]


# -- einsum -------------------------------------------------------------------------------------

_LABELS = set(string.ascii_letters)


def parse_einsum(equation: str, ranks: list[int]) -> tuple[list[list[str]], list[str]]:
    """Each operand's labels and the output's, with "..." expanded to labels "0", "1", ...
    (right-aligned: the last dim an ellipsis covers is always the highest number)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ShapeError(f"nn.einsum: equation '{equation}' names {len(terms)} operand(s) but "
                         f"{len(ranks)} were given")
    split: list[tuple[str, bool, str, int]] = []
    for term, rank in zip(terms, ranks, strict=True):
        head, dots, tail = term.partition("...")
        letters = head + tail
        if not set(letters) <= _LABELS:
            raise ShapeError(f"nn.einsum: bad term '{term}' in equation '{equation}'")
        n = rank - len(letters)
        if n < 0 or (n and not dots):
            raise ShapeError(f"nn.einsum: term '{term}' of equation '{equation}' does not fit "
                             f"an operand of rank {rank}")
        split.append((head, bool(dots), tail, n))
    ell_rank = max((n for *_, n in split), default=0)
    parsed = [[*head, *(str(ell_rank - n + j) for j in range(n)), *tail]
              for head, _, tail, n in split]
    ellipsis = [str(i) for i in range(ell_rank)]
    if arrow:
        head, dots, tail = rhs.partition("...")
        if not set(head + tail) <= _LABELS:
            raise ShapeError(f"nn.einsum: bad output term '{rhs}' in equation '{equation}'")
        out = [*head, *(ellipsis if dots else []), *tail]
        if not dots and ell_rank:
            raise ShapeError(f"nn.einsum: equation '{equation}' drops the dims of '...'")
        known = {lab for term in parsed for lab in term}
        missing = [lab for lab in head + tail if lab not in known]
        if missing or len(set(head + tail)) != len(head + tail):
            raise ShapeError(f"nn.einsum: bad output term '{rhs}' in equation '{equation}'")
    else:
        counts: dict[str, int] = {}
        for term in parsed:
            for lab in term:
                counts[lab] = counts.get(lab, 0) + 1
        out = ellipsis + sorted(lab for lab, k in counts.items()
                                if k == 1 and not lab.isdigit())
    return parsed, out


@irdl_op_definition
class EinsumOp(NNOp):
    """numpy `einsum` of one or two operands (an explicit or implicit output, "..." allowed)."""

    name = "nn.einsum"
    equation = prop_def(StringAttr)
    tf32 = opt_prop_def(UnitAttr)  # may use TF32 tensor cores (assign-precision, TF32 allowed)
    inputs = var_operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$equation $inputs attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        if not 1 <= len(self.inputs) <= 2:
            raise ShapeError(f"nn.einsum: takes 1 or 2 operands, not {len(self.inputs)}")
        _same_element_type(self, *range(len(self.inputs)))
        shapes = [self.operand_shape(i) for i in range(len(self.inputs))]
        terms, out = parse_einsum(self.equation.data, [len(s) for s in shapes])
        dims: dict[str, list[Dim]] = {}
        for term, shape in zip(terms, shapes, strict=True):
            for lab, d in zip(term, shape, strict=True):
                dims.setdefault(lab, []).append(d)
        sizes: dict[str, Dim] = {}
        for lab, ds in dims.items():
            if lab.isdigit():  # ellipsis dims broadcast
                sizes[lab] = broadcast_shapes(*((d,) for d in ds), op="nn.einsum")[0]
                continue
            static = {d for d in ds if isinstance(d, int)}
            if len(static) > 1:
                raise ShapeError(f"nn.einsum: label '{lab}' of '{self.equation.data}' has "
                                 f"dims {sorted(static)} in {[list(s) for s in shapes]}")
            symbols = {d for d in ds if isinstance(d, str)}
            sizes[lab] = static.pop() if static else (symbols.pop() if len(symbols) == 1
                                                      else UNKNOWN)
        return [like(self.inputs[0], tuple(sizes[lab] for lab in out))]


@irdl_op_definition
class DetOp(NNOp):
    """The determinant of each square matrix in the last two dims (ONNX Det): [..., M, M] ->
    [...]. It has no CUDA kernel: a host step in GPU plans."""

    name = "nn.det"
    input = operand_def()
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` functional-type(operands, results)"

    def infer(self) -> list[Attribute]:
        shape = self.operand_shape(0)
        if len(shape) < 2 or (isinstance(shape[-1], int) and isinstance(shape[-2], int)
                              and shape[-1] != shape[-2]):
            raise ShapeError(f"nn.det: takes square matrices in the last two dims, not "
                             f"{list(shape)}")
        return [like(self.input, tuple(shape[:-2]))]


OPS = [MatMulOp, ConvOp, ConvTransposeOp, EinsumOp, DetOp]
