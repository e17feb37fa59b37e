"""fold-scale-shift: multiplies and adds by constants fold into the conv or matmul before them.

- `conv(x, w, b) * c` (or `/ c`) with `c` a scalar or one value per output channel becomes
  `conv(x, w·c, b·c)`; `conv(x, w, b) + c` (or `- c`) becomes `conv(x, w, b + c)` (a bias is
  made where there was none).
- `matmul(a, B) * c` (or `/ c`) with `B` a constant 2-D weight and `c` a scalar or one value
  per output column becomes `matmul(a, B·c)`. (An add after a matmul stays: it becomes the
  kernel's epilogue.)

Only where the conv/matmul result has no other user, its weight (and bias) are constants, the
result is float, the constant is finite (and non-zero for a division), and the multiply or add
does not broadcast the result to a bigger shape. The
new weights are store entries named after the old ones and the folded node; the folded op's
origin lists both. BatchNorm not directly after a conv reaches this pass as such a multiply-add
(fold-batch-norm), so BatchNorm after a Linear folds into its weight too.
"""

from __future__ import annotations

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.nn.base import build
from ember.dialects.nn.elementwise import BinaryOp
from ember.dialects.nn.linear import ConvOp, MatMulOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import shape_of
from ember.dialects.weights import WeightStore, weights_of
from ember.passes.convert_onnx_to_nn.builder import (
    constant_value,
    insert_before,
    make_constant,
    weight_name,
)
from ember.runtime.cpu_kernels.common import is_floating

SCALES, SHIFTS = ("mul", "div"), ("add", "sub")


def _operands(op: BinaryOp) -> tuple[SSAValue, SSAValue] | None:
    """(the conv/matmul result, the other operand): commutative ops either way round, div and
    sub only with the conv/matmul on the left."""
    fn = op.fn.data
    if isinstance(op.lhs.owner, ConvOp | MatMulOp):
        return op.lhs, op.rhs
    if fn in ("mul", "add") and isinstance(op.rhs.owner, ConvOp | MatMulOp):
        return op.rhs, op.lhs
    return None


def _vector(c: np.ndarray, out_shape: tuple, axis: int) -> np.ndarray | None:
    """`c` as one float64 value per index of `axis` of the result, if it is a scalar or varies
    along that axis only (numpy broadcasting); else None."""
    rank = len(out_shape)
    if c.ndim > rank:
        return None
    padded = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for i, d in enumerate(padded.shape) if i != axis):
        return None
    n = out_shape[axis]
    if not isinstance(n, int) or padded.shape[axis] not in (1, n):
        return None
    return np.broadcast_to(padded.reshape(-1).astype(np.float64), (n,))


class FoldScaleShift(ModulePass):
    name = "fold-scale-shift"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        changed = True
        while changed:  # a conv * s + t folds twice
            changed = False
            for op in list(module.walk()):
                if isinstance(op, BinaryOp) and op.parent is not None \
                        and op.fn.data in SCALES + SHIFTS:
                    changed |= self._fold(op, store)

    def _fold(self, op: BinaryOp, store: WeightStore) -> bool:
        pair = _operands(op)
        if pair is None:
            return False
        result, other = pair
        producer = result.owner
        out_shape = shape_of(result)
        if result.uses.get_length() != 1 or op.output.type != result.type or out_shape is None:
            return False
        c = constant_value(other, store)
        if c is None or not is_floating(np.asarray(c).dtype):
            return False
        fn = op.fn.data
        c = np.asarray(c, np.float64)
        if not np.isfinite(c).all() or (fn == "div" and (c == 0).any()):
            return False  # inf/NaN (or 1/0) in a weight would turn exact zeros into NaN
        if isinstance(producer, ConvOp):
            v = _vector(np.asarray(c), tuple(out_shape), 1)
            new = None if v is None else self._conv(op, producer, fn, v, store)
        elif fn in SCALES:
            v = _vector(np.asarray(c), tuple(out_shape), len(out_shape) - 1)
            new = None if v is None else self._matmul(op, producer, fn, v, store)
        else:
            new = None
        if new is None:
            return False
        set_origin(new, origin_of(producer) + origin_of(op))
        Rewriter.insert_op(new, InsertPoint.before(op))
        op.output.replace_all_uses_with(new.results[0])
        Rewriter.erase_op(op)
        Rewriter.erase_op(producer)
        return True

    @staticmethod
    def _tag(op: BinaryOp) -> str:
        return "+".join(origin_of(op)) or op.fn.data

    def _conv(self, op: BinaryOp, conv: ConvOp, fn: str, v: np.ndarray,
              store: WeightStore) -> Operation | None:
        weight = constant_value(conv.weight, store)
        bias = constant_value(conv.bias, store) if conv.bias is not None else None
        if weight is None or (conv.bias is not None and bias is None) \
                or not is_floating(weight.dtype):
            return None
        dtype = weight.dtype
        b = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
        w = weight
        if fn in SCALES:
            s = 1.0 / v if fn == "div" else v
            w = (weight.astype(np.float64) * s.reshape(-1, *[1] * (weight.ndim - 1))).astype(dtype)
            b = b * s
        else:
            b = b + v if fn == "add" else b - v
        name, tag = weight_name(conv.weight, "conv.weight"), self._tag(op)
        w_op = (conv.weight.owner if fn in SHIFTS
                else insert_before(make_constant(w, store, f"{name}+{tag}"), conv))
        b_op = insert_before(make_constant(b.astype(dtype), store, f"{name}+{tag}.bias"), conv)
        return build(ConvOp, [conv.input, w_op.results[0], b_op.results[0]],
                     dict(conv.properties), result_types=[op.output.type])

    def _matmul(self, op: BinaryOp, mm: MatMulOp, fn: str, v: np.ndarray,
                store: WeightStore) -> Operation | None:
        weight = constant_value(mm.rhs, store)
        if weight is None or weight.ndim != 2 or not is_floating(weight.dtype):
            return None
        s = 1.0 / v if fn == "div" else v
        transposed = mm.transpose_b is not None and mm.transpose_b.value.data
        scaled = weight.astype(np.float64) * (s[:, None] if transposed else s[None, :])
        name = f"{weight_name(mm.rhs, 'matmul.weight')}+{self._tag(op)}"
        w_op = insert_before(make_constant(scaled.astype(weight.dtype), store, name), mm)
        return build(MatMulOp, [mm.lhs, w_op.results[0]], dict(mm.properties),
                     result_types=[op.output.type])

