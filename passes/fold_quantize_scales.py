"""fold-quantize-scales: TensorRT's INT8 arithmetic — a quantize's division by its scale folds
into the multiplies by constants before it, or becomes a multiply by the scale's reciprocal.

fold-qdq writes a quantize as `cast(clip(round(x / s)))` and the dequantizing tail of an int8
conv as `cast(acc) * (sx·sw) + b`, so a conv that feeds an int8 layer computes

    round((cast(acc) * (sx·sw) + b) / s)             (a multiply, an add, a division)

which is ONNX's arithmetic op by op; TensorRT's INT8 kernels compute the same value with the
scales folded, `round(cast(acc) * (sx·sw / s) + b / s)`: a multiply-add. This pass rewrites
every such division, at the nn level (before fusion, so the kernels' epilogues inherit it):
where `x` is, through ops that have no other user, a sum of terms that are each a multiply by a
constant (or a constant), under ReLUs, the constants are divided by `s` (in float64, rounded to
their type) and the division goes; otherwise `x / s` becomes `x * (1 / s)`. A QDQ residual
block's tail `relu(cast(q) * sq + cast(r) * sr) / so` so becomes
`relu(cast(q) * (sq / so) + cast(r) * (sr / so))`.

The results are not bit for bit those of the op-by-op arithmetic: each folded value is
rounded once where it was rounded two or three times, so a quantized value whose exact quotient
lies within a few float32 ulps of a rounding boundary (x.5) may land on the other integer, as in
TensorRT and in onnxruntime's own fused QLinearConv. Everything the plan computes is what the IR
says: the CPU executor runs the folded arithmetic too.

Only divisions of float32 values by positive, finite, normal float32 constants (one value, or
one per column: a merged Q/K/V GEMM's output scales) that do not broadcast the dividend, and
whose only user is a `round` (an integer quantize, `ember.qdq_math` as fold-qdq marks them),
are touched; a
division that cancel-requantize takes exactly (`round(relu?(cast(q) * s) / s)`, the same `s`:
an int8 value dequantized and quantized again) is left to it. GPU builds for INT8 tensor-core
targets run it (before convert-nn-to-kernel); CPU builds keep ONNX's op-by-op arithmetic. (REFIT
builds refuse Q/DQ models: no scale folded here can change after the build.)
"""

from __future__ import annotations

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import Float32Type, IntegerType, ModuleOp, UnitAttr
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.nn.base import build
from ember.dialects.nn.elementwise import BinaryOp, CastOp, UnaryOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of
from ember.dialects.weights import WeightStore, weights_of
from ember.passes.convert_onnx_to_nn.builder import make_constant, traced_value
from ember.passes.precision_policy import QDQ_MATH

MAX_DEPTH = 8  # terms searched below a division (a residual tail is 4 deep)


def _constant(value: SSAValue, store: WeightStore) -> np.ndarray | None:
    """`value`'s float constant, if it is one."""
    array, _ = traced_value(value, store)
    if array is None:
        return None
    array = np.asarray(array)
    return array if array.dtype.kind == "f" and np.isfinite(array).all() else None


def _scale(div: BinaryOp, store: WeightStore) -> np.ndarray | None:
    """The divisor of a quantize's division: positive normal float32 values (one, or one per
    index of an axis: a merged Q/K/V GEMM's column scales) that do not broadcast the dividend
    to a bigger shape."""
    array = _constant(div.rhs, store)
    if array is None or array.dtype != np.float32 or div.output.type != div.lhs.type:
        return None
    info = np.finfo(np.float32)
    return array if np.all((array >= info.tiny) & (array <= info.max)) else None


def _single_use(value: SSAValue) -> bool:
    return value.uses.get_length() == 1


def _scalable(value: SSAValue, store: WeightStore, per_element: bool, top: SSAValue,
              depth: int = 0) -> bool:
    """Whether `value / s` can be written by dividing constants only: `value` is a constant, a
    multiply by a constant, or (through ops with no other user) a sum / difference of such terms
    or a ReLU of one. With a divisor of several values (`per_element`), every op must have the
    dividend's (`top`'s) shape, so that no constant divided by it broadcasts a smaller one."""
    if _constant(value, store) is not None:
        return True
    op = value.owner
    if depth > MAX_DEPTH or not _single_use(value) or \
            not isinstance(element_type_of(value), Float32Type) or \
            per_element and value.type != top.type:
        return False
    if isinstance(op, BinaryOp) and op.fn.data == "mul":
        return any(_constant(v, store) is not None for v in (op.lhs, op.rhs))
    if isinstance(op, BinaryOp) and op.fn.data in ("add", "sub"):
        return all(_scalable(v, store, per_element, top, depth + 1) for v in (op.lhs, op.rhs))
    if isinstance(op, UnaryOp) and op.fn.data == "relu":
        return _scalable(op.input, store, per_element, top, depth + 1)
    return False


def _new_constant(array: np.ndarray, store: WeightStore, at: Operation,
                  names: list[str]) -> SSAValue:
    const = make_constant(array, store, "qdq.folded")
    Rewriter.insert_op(const, InsertPoint.before(at))
    if names:
        set_origin(const, names)
    return const.results[0]


def _divide(value: SSAValue, s: np.ndarray, store: WeightStore, at: Operation,
            names: list[str]) -> SSAValue:
    """Rewrite `value` (a `_scalable` one, read by `at`) so that it computes value / s: a
    constant becomes a new constant (inserted before `at`), ops are changed in place."""
    array = _constant(value, store)
    if array is not None:  # divided in float64, rounded once to its type
        quotient = array.astype(np.float64) / s.astype(np.float64)
        return _new_constant(quotient.astype(array.dtype), store, at, names)
    op = value.owner
    operands = list(op.operands)
    if isinstance(op, BinaryOp) and op.fn.data == "mul":
        index = 1 if _constant(op.rhs, store) is not None else 0
        operands[index] = _divide(operands[index], s, store, op, names)
    else:  # add, sub: both terms; relu (s > 0): its input
        operands = [_divide(v, s, store, op, names) for v in operands]
    op.operands = operands
    return value


def _cancelled_later(div: BinaryOp, store: WeightStore) -> bool:
    """Whether cancel-requantize takes this division exactly: its dividend is, through a ReLU
    or clip, `cast(q) * t` for an integer `q` and `t` the divisor's value."""
    value = div.lhs
    if isinstance(value.owner, UnaryOp) and value.owner.fn.data in ("relu", "clip"):
        value = value.owner.input
    mul = value.owner
    if not (isinstance(mul, BinaryOp) and mul.fn.data == "mul"):
        return False
    divisor = _constant(div.rhs, store)
    for x, t in ((mul.lhs, mul.rhs), (mul.rhs, mul.lhs)):
        scale = _constant(t, store)
        if isinstance(x.owner, CastOp) and \
                isinstance(element_type_of(x.owner.input), IntegerType) and \
                scale is not None and np.array_equal(scale, divisor):
            return True
    return False


def _quantize_divisions(module: ModuleOp, store: WeightStore
                        ) -> list[tuple[BinaryOp, np.ndarray]]:
    out = []
    for op in module.walk():
        if not (isinstance(op, BinaryOp) and op.fn.data == "div" and QDQ_MATH in op.attributes
                and isinstance(element_type_of(op.output), Float32Type)
                and _single_use(op.output)):
            continue
        user = next(iter(op.output.uses)).operation
        s = _scale(op, store)
        if s is not None and isinstance(user, UnaryOp) and user.fn.data == "round" \
                and not _cancelled_later(op, store):
            out.append((op, s))
    return out


class FoldQuantizeScales(ModulePass):
    name = "fold-quantize-scales"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for div, s in _quantize_divisions(module, store):
            names = origin_of(div)
            if _scalable(div.lhs, store, s.size > 1, div.lhs):
                result = _divide(div.lhs, s, store, div, names)
            else:
                reciprocal = _new_constant((1.0 / s.astype(np.float64)).astype(np.float32),
                                           store, div, names)
                mul = build(BinaryOp, [div.lhs, reciprocal], {"fn": "mul"})
                mul.attributes[QDQ_MATH] = UnitAttr()
                Rewriter.insert_op(mul, InsertPoint.before(div))
                if names:
                    set_origin(mul, names)
                result = mul.output
            div.output.replace_all_uses_with(result)
            Rewriter.erase_op(div)
