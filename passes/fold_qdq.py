"""fold-qdq: convs and matmuls between DequantizeLinear nodes run on 8-bit integers
(TensorRT's explicit quantization: the Q/DQ nodes of a quantized model say where INT8 goes).

A conv whose input is `dequantize(xq, sx)` and whose weight is `dequantize(wq, sw)`, with
- `xq` int8 with one scale (per tensor), zero point 0 or none,
- `wq` a constant int8 weight with one scale per output channel (axis 0) or per tensor, zero
  point 0 or none,
becomes the integer conv and its dequantization, a multiply by one float per output channel:

    y = conv(dequantize(xq, sx), dequantize(wq, sw), b)
 -> y = cast<f32>(conv(xq, wq) : i32) * (sx · sw)[channel] + b

and a matmul `dequantize(xq, sx) @ dequantize(wq, sw)` with a constant 2-D weight [K, N] (per
column: axis 1, or per tensor) likewise (its bias add stays where it was). Integer sums are
exact (int32 accumulation). The cast, multiply and bias add are marked `ember.qdq_math`: under
FP16 they stay FP32, as TensorRT dequantizes (a sum of 64 products of 100 x 100 overflows half).

Then every per-tensor float32 <-> 8/16-bit quantize and dequantize left, with a constant scale
and zero point, becomes elementwise arithmetic in float32, as the quantize kernels compute it:
quantize(x) = cast(clip(round(x / s) + zp, min, max)), dequantize(q) = (cast(q) - zp) * s. So
fuse-elementwise and fuse-epilogues merge a conv's dequantizing tail, its activation and the
quantize feeding the next layer into the conv (which then stores int8), and a
dequantize -> relu -> quantize between layers into one kernel. Before that, a max pool or a
data-movement op (reshape, transpose, squeeze, unsqueeze, slice, expand, tile, gather) between a
dequantize and a quantize of the same scale and zero point runs on the int8 data itself (the
quantizer's Q/DQ pairs around a BERT's reshapes and transposes: they move 1 byte an element,
not 4, and no Q/DQ arithmetic is left around them).

E4M3 (float8e4m3fn) Q/DQ, as NVIDIA's ModelOpt writes FP8 models, fold the same way (option
`fp8`: GPU builds for sm_89 and newer, whose tensor cores multiply E4M3; CPU builds): the conv
or matmul takes the E4M3 input and weight and sums their products in float32 (`ember.qdq_math`:
they stay so under FP16), the scale multiply and bias follow; a quantize to E4M3 becomes
cast(x / s) (saturating as the node says), a dequantize cast(q) * s.

Int8 convs and matmuls fold likewise only with option `int8` (GPU builds: sm_80 and newer,
whose INT8 tensor cores ember's int8 kernels use; CPU builds): off, they run dequantized.

Not folded (they keep running in floating point, as the model's arithmetic says): zero points
other than 0 (TensorRT refuses them; ember runs them dequantized), uint8 data, per-channel
activation scales, blocked scales, a weight that is not a constant, and (option `multiple`)
grouped convs and matmuls whose K is not a multiple of it: GPU builds fold only what the INT8
tensor cores take (16). An ungrouped conv over other channel counts (an image's 3) reads its
int8 input zero-padded to the next multiple (an `nn.pad`, which fold-channel-pad merges with
the reformat to NHWC) with its weight padded alike (`<weight>.padC`): the same sums.
Runs right after convert-onnx-to-nn, before fold-constants would fold the weights' dequantize
into float weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import Float8E4M3FNType, IntegerType, ModuleOp, Signedness, UnitAttr, f32
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter

from ember.dialects.dtypes import numpy_dtype
from ember.dialects.nn.base import build, set_result_types
from ember.dialects.nn.elementwise import BinaryOp, CastOp, UnaryOp
from ember.dialects.nn.linear import ConvOp, MatMulOp
from ember.dialects.nn.movement import (
    ExpandOp,
    GatherOp,
    PadOp,
    ReshapeOp,
    SliceOp,
    SqueezeOp,
    TileOp,
    TransposeOp,
    UnsqueezeOp,
)
from ember.dialects.nn.quant import DequantizeOp, QuantizeOp
from ember.dialects.nn.reduction import PoolOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, shape_of
from ember.dialects.weights import WeightStore, weights_of
from ember.errors import PassError
from ember.passes.convert_onnx_to_nn.builder import (
    constant_value,
    insert_before,
    make_constant,
    weight_name,
)
from ember.passes.precision_policy import QDQ_MATH

I8 = IntegerType(8, Signedness.SIGNLESS)
E4M3 = Float8E4M3FNType()
# ops that only move elements (their data is operand 0): quantize(op(dequantize(q))) with one
# scale and zero point is op(q)
MOVEMENT = (ReshapeOp, TransposeOp, SqueezeOp, UnsqueezeOp, SliceOp, ExpandOp, TileOp, GatherOp)


@dataclass(frozen=True)
class FoldQDQ(ModulePass):
    name = "fold-qdq"

    multiple: int = 1
    """Fold only convs whose input channels, and matmuls whose K, are multiples of this, and
    with a multiple > 1 only ungrouped convs (GPU builds: 16, what the INT8 tensor cores read
    at a time; the others stay float)."""

    fp8: bool = True
    """Fold E4M3 (float8e4m3fn) Q/DQ convs and matmuls too, onto float32 sums of E4M3
    products (GPU builds: targets with FP8 tensor cores, sm_89 and newer; CPU builds: always).
    Off, they run dequantized, in floating point."""

    int8: bool = True
    """Fold int8 Q/DQ convs and matmuls onto int8 operands with int32 sums (GPU builds: targets
    with INT8 tensor cores, sm_80 and newer; CPU builds: always). Off, they run dequantized,
    in floating point (the Q/DQ nodes still become float32 arithmetic)."""

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        if self.multiple < 1:
            raise PassError(f"fold-qdq: multiple={self.multiple} must be at least 1")
        store = weights_of(module)
        for op in list(module.walk()) if self._types else []:
            if isinstance(op, ConvOp):
                w = shape_of(op.weight)
                if w is None or not isinstance(w[1], int) \
                        or self.multiple > 1 and op.prop("groups", 1) != 1:
                    continue  # (the INT8 tensor-core conv runs ungrouped, NHWC)
                _fold(op, store, self._types, weight_axis=0, out_axis=1,
                      pad_channels=-(-w[1] // self.multiple) * self.multiple)
            elif isinstance(op, MatMulOp) and not op.prop("transpose_a", False):
                w_shape = shape_of(op.rhs)
                if w_shape is not None and len(w_shape) == 2:
                    transposed = bool(op.prop("transpose_b", False))
                    if not _multiple(w_shape[1 if transposed else 0], self.multiple):
                        continue
                    _fold(op, store, self._types, weight_axis=0 if transposed else 1,
                          out_axis=-1)
        for op in list(module.walk()):
            if isinstance(op, QuantizeOp) and op.parent is not None:
                _int8_through(op, store)
        for op in list(module.walk()):
            if isinstance(op, QuantizeOp | DequantizeOp) and op.parent is not None:
                _expand(op, store)

    @property
    def _types(self) -> tuple:
        """The 8-bit operand types a conv or matmul folds onto."""
        return (I8,) * self.int8 + (E4M3,) * self.fp8


def _int8_through(q: QuantizeOp, store: WeightStore) -> None:
    """quantize(op(dequantize(x, s, zp)), s, zp) with one positive scale and zero point on both
    sides is op(x) on the int8 data itself, for a max pool (max commutes with a positive scale)
    and the MOVEMENT ops (they only move elements)."""
    mover = q.input.owner
    if not (isinstance(mover, PoolOp) and mover.fn.data == "max" or isinstance(mover, MOVEMENT)):
        return
    dq = mover.operands[0].owner
    if not isinstance(dq, DequantizeOp) or element_type_of(dq.input) != element_type_of(q.output):
        return
    sides = [(_scalar(o.scale, store), _scalar(o.zero_point, store)) for o in (dq, q)]
    if None in sides[0] or sides[0] != sides[1] or not sides[0][0] > 0 \
            or dq.prop("block_size", 0) or q.prop("block_size", 0):
        return
    int8_op = type(mover).create(operands=[dq.input, *mover.operands[1:]],
                                  properties=dict(mover.properties),
                                  attributes=dict(mover.attributes), result_types=[q.output.type])
    insert_before(int8_op, q)
    if origin_of(mover):
        set_origin(int8_op, origin_of(mover))
    q.output.replace_all_uses_with(int8_op.results[0])
    Rewriter.erase_op(q)
    for op in (mover, dq):
        if not op.results[0].uses:
            Rewriter.erase_op(op)


def _scalar(value: SSAValue | None, store: WeightStore) -> float | None:
    """The one value of a constant scale or zero point (0 where there is none)."""
    if value is None:
        return 0.0
    array = constant_value(value, store)
    if array is None or array.size != 1:
        return None
    return float(np.asarray(array, np.float64).reshape(()))


def _expand(op: QuantizeOp | DequantizeOp, store: WeightStore) -> None:
    """A per-tensor float32 <-> 8/16-bit quantize or dequantize with constant scale and zero
    point as elementwise arithmetic, so it fuses with its neighbours (into a conv's epilogue):
    quantize(x) = cast(clip(round(x / s) + zp, lo, hi)), dequantize(q) = (cast(q) - zp) * s,
    in float32 as the quantize kernels compute them; to and from E4M3 (zero point 0):
    quantize(x) = cast(x / s) (saturating unless the node says saturate=0: the cast rounds to
    nearest even), dequantize(q) = cast(q) * s."""
    scale, zp = _scalar(op.scale, store), _scalar(op.zero_point, store)
    if scale is None or zp is None or op.prop("block_size", 0):
        return
    quantize = isinstance(op, QuantizeOp)
    real, integer = (op.input, op.output) if quantize else (op.output, op.input)
    int_type = element_type_of(integer)
    float8 = int_type == E4M3  # no rounding to an integer: the cast rounds (and saturates)
    if element_type_of(real) != f32 or float8 and zp \
            or not float8 and not (isinstance(int_type, IntegerType)
                                   and int_type.width.data in (8, 16)):
        return
    made: list[Operation] = []

    def const(value: float) -> SSAValue:
        made.append(make_constant(np.array(value, np.float32), store, "qdq.const"))
        return made[-1].results[0]

    def emit(new: Operation) -> SSAValue:
        new.attributes[QDQ_MATH] = UnitAttr()  # assign-precision keeps it in FP32
        made.append(new)
        return new.results[0]

    if quantize and float8:
        y = emit(build(BinaryOp, [op.input, const(scale)], {"fn": "div"}))
        saturate = UnitAttr() if op.prop("saturate", 1) else None
        y = emit(build(CastOp, [y], {"to": int_type, "saturate": saturate}))
    elif quantize:
        info = np.iinfo(numpy_dtype(int_type))
        y = emit(build(BinaryOp, [op.input, const(scale)], {"fn": "div"}))
        y = emit(build(UnaryOp, [y], {"fn": "round"}))
        if zp:
            y = emit(build(BinaryOp, [y, const(zp)], {"fn": "add"}))
        y = emit(build(UnaryOp, [y], {"fn": "clip", "alpha": float(info.min),
                                      "beta": float(info.max)}))
        y = emit(build(CastOp, [y], {"to": int_type}))
    else:
        y = emit(build(CastOp, [op.input], {"to": f32}))
        if zp:
            y = emit(build(BinaryOp, [y, const(zp)], {"fn": "sub"}))
        y = emit(build(BinaryOp, [y, const(scale)], {"fn": "mul"}))
    names = origin_of(op)
    for new in made:
        insert_before(new, op)
        if names:
            set_origin(new, names)
    op.results[0].replace_all_uses_with(y)
    Rewriter.erase_op(op)


def _multiple(dim: object, multiple: int) -> bool:
    return isinstance(dim, int) and dim % multiple == 0


def _per_tensor(dq: Operation, store: WeightStore, types: tuple
                ) -> tuple[SSAValue, float] | None:
    """(the int8 or E4M3 input (one of `types`), its one scale) of a dequantize with zero point 0
    (or none)."""
    if not isinstance(dq, DequantizeOp) or element_type_of(dq.input) not in types \
            or dq.prop("block_size", 0):
        return None
    scale = constant_value(dq.scale, store)
    if scale is None or scale.size != 1 or not _zero(dq, store):
        return None
    return dq.input, float(np.asarray(scale, np.float64).reshape(()))


def _weight(dq: Operation, store: WeightStore, axis: int, types: tuple
            ) -> tuple[SSAValue, np.ndarray] | None:
    """(the constant int8 or E4M3 weight (one of `types`), its scales: one, or one per index of
    `axis`) of a dequantize with zero point 0 (or none)."""
    if not isinstance(dq, DequantizeOp) or element_type_of(dq.input) not in types \
            or dq.prop("block_size", 0) or constant_value(dq.input, store) is None:
        return None
    scale = constant_value(dq.scale, store)
    shape = shape_of(dq.input)
    if scale is None or shape is None or not _zero(dq, store):
        return None
    scale = np.asarray(scale, np.float64)
    if scale.size == 1:
        return dq.input, scale.reshape(1)
    dq_axis = dq.prop("axis", 1) % len(shape)
    if scale.ndim != 1 or dq_axis != axis % len(shape):
        return None
    return dq.input, scale


def _folded(value: SSAValue, store: WeightStore) -> np.ndarray | None:
    """A constant's value, or a dequantized constant's (a bias quantized to int32)."""
    array = constant_value(value, store)
    dq = value.owner
    if array is None and isinstance(dq, DequantizeOp):
        arrays = [constant_value(v, store) for v in dq.operands]
        if all(a is not None for a in arrays):
            array = dq.evaluate(arrays)[0]
    return array


def _zero(dq: DequantizeOp, store: WeightStore) -> bool:
    if dq.zero_point is None:
        return True
    zp = constant_value(dq.zero_point, store)
    return zp is not None and not np.any(zp)


def _fold(op: ConvOp | MatMulOp, store: WeightStore, types: tuple, *, weight_axis: int,
          out_axis: int, pad_channels: int = 0) -> None:
    x_dq, w_dq = op.operands[0].owner, op.operands[1].owner
    x = _per_tensor(x_dq, store, types)
    w = _weight(w_dq, store, weight_axis, types)
    out = shape_of(op.results[0])
    if x is None or w is None or out is None \
            or element_type_of(x[0]) != element_type_of(w[0]):  # int8 with int8, E4M3 with E4M3
        return
    (xq, sx), (wq, sw) = x, w
    channels = out[out_axis]
    if not isinstance(channels, int) or sw.size not in (1, channels):
        return
    bias = None
    if isinstance(op, ConvOp) and op.bias is not None:
        bias = _folded(op.bias, store)
        if bias is None:
            return
    float_type = element_type_of(op.results[0])
    dtype = numpy_dtype(float_type)
    shape = [1] * len(out)
    shape[out_axis] = channels
    made: list[Operation] = []
    unpadded = wq.owner
    in_shape = shape_of(xq)
    if isinstance(op, ConvOp) and in_shape is not None and pad_channels > in_shape[1]:
        weight = constant_value(wq, store)
        extra = [(0, 0)] * weight.ndim
        extra[1] = (0, pad_channels - in_shape[1])
        made.append(make_constant(np.pad(weight, extra), store, f"{weight_name(wq)}.padC"))
        ends = [0] * len(in_shape)
        ends[1] = pad_channels - in_shape[1]
        made.append(build(PadOp, [xq], {"pads": [0] * len(in_shape) + ends,
                                        "mode": "constant", "value": 0.0}))
        xq, wq = made[-1].results[0], made[-2].results[0]
    integer = type(op).create(operands=[xq, wq], properties=dict(op.properties),
                              result_types=[op.results[0].type])
    set_result_types(integer, integer.infer())
    if element_type_of(integer.results[0]) == f32:  # E4M3 products summed in float32: they
        integer.attributes[QDQ_MATH] = UnitAttr()  # stay so under FP16 (assign-precision)
    made.append(integer)  # int32 sums (int8), float32 sums (E4M3): cast to the model's type
    if element_type_of(integer.results[0]) != float_type:
        made.append(build(CastOp, [integer.results[0]], {"to": float_type}))
    scale = np.broadcast_to(sx * sw, (channels,)).astype(dtype).reshape(shape)
    made.append(make_constant(scale, store, "qdq.scale"))
    made.append(build(BinaryOp, [made[-2].results[0], made[-1].results[0]], {"fn": "mul"}))
    if bias is not None:
        bshape = [1] * len(out)
        bshape[1] = channels
        made.append(make_constant(np.asarray(bias).astype(dtype).reshape(bshape), store,
                                  "qdq.bias"))
        made.append(build(BinaryOp, [made[-2].results[0], made[-1].results[0]],
                          {"fn": "add"}))
    for new in made[made.index(integer) + 1:]:
        if isinstance(new, CastOp | BinaryOp):  # the dequantizing arithmetic stays FP32 under
            new.attributes[QDQ_MATH] = UnitAttr()  # FP16 (an int32 sum overflows half)
    names = origin_of(op)
    bias_dq = op.bias.owner if isinstance(op, ConvOp) and op.bias is not None else None
    for new in made:
        insert_before(new, op)
        if names:
            set_origin(new, names)
    op.results[0].replace_all_uses_with(made[-1].results[0])
    Rewriter.erase_op(op)
    for dq in (x_dq, w_dq, bias_dq, unpadded):
        if isinstance(dq, Operation) and dq.parent is not None and not dq.results[0].uses:
            Rewriter.erase_op(dq)
