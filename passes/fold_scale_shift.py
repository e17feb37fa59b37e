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
    insert_before,
    make_constant,
    traced_value,
    weight_name,
)
from ember.runtime.cpu_kernels.common import is_floating, is_storage_only
from ember.runtime.refit_recipes import Recipe, apply, node

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
        c, c_recipe = traced_value(other, store)
        if c is None or not is_floating(np.asarray(c).dtype):
            return False
        fn = op.fn.data
        c = np.asarray(c, np.float64)
        if not np.isfinite(c).all() or (fn == "div" and (c == 0).any()):
            return False  # inf/NaN (or 1/0) in a weight would turn exact zeros into NaN
        axis = 1 if isinstance(producer, ConvOp) else len(out_shape) - 1
        v = _vector(np.asarray(c), tuple(out_shape), axis)
        # v's refit recipe (a REFIT build's): the same vector from c's
        v_recipe = None if v is None else node("channel_vector", [c_recipe], n=v.size,
                                               axis=axis, rank=len(out_shape))
        if v is None:
            new = None
        elif isinstance(producer, ConvOp):
            new = self._conv(op, producer, fn, v, v_recipe, store)
        elif fn in SCALES:
            new = self._matmul(op, producer, fn, v, v_recipe, store)
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

    def _conv(self, op: BinaryOp, conv: ConvOp, fn: str, v: np.ndarray, v_recipe: Recipe,
              store: WeightStore) -> Operation | None:
        weight, w_recipe = traced_value(conv.weight, store)
        bias, b_recipe = traced_value(conv.bias, store) if conv.bias is not None else (None, None)
        if weight is None or (conv.bias is not None and bias is None) \
                or not is_floating(weight.dtype) or is_storage_only(weight.dtype):
            return None
        dtype = weight.dtype.name
        extra = [] if bias is None else [bias]
        b = apply("conv_bias", [*extra, v], fn=fn, n=weight.shape[0], dtype=dtype)
        b_recipe = node("conv_bias", ([b_recipe] if extra else []) + [v_recipe], fn=fn,
                        n=weight.shape[0], dtype=dtype)
        name, tag = weight_name(conv.weight, "conv.weight"), self._tag(op)
        if fn in SHIFTS:
            w_op = conv.weight.owner
        else:
            w = apply("scale_axis", [weight, v], axis=0, invert=fn == "div")
            w_op = insert_before(make_constant(w, store, f"{name}+{tag}", node(
                "scale_axis", [w_recipe, v_recipe], axis=0, invert=fn == "div")), conv)
        b_op = insert_before(make_constant(b, store, f"{name}+{tag}.bias", b_recipe), conv)
        return build(ConvOp, [conv.input, w_op.results[0], b_op.results[0]],
                     dict(conv.properties), result_types=[op.output.type])

    def _matmul(self, op: BinaryOp, mm: MatMulOp, fn: str, v: np.ndarray, v_recipe: Recipe,
                store: WeightStore) -> Operation | None:
        weight, w_recipe = traced_value(mm.rhs, store)
        if weight is None or weight.ndim != 2 or not is_floating(weight.dtype) \
                or is_storage_only(weight.dtype):
            return None
        transposed = mm.transpose_b is not None and mm.transpose_b.value.data
        axis = 0 if transposed else 1
        scaled = apply("scale_axis", [weight, v], axis=axis, invert=fn == "div")
        name = f"{weight_name(mm.rhs, 'matmul.weight')}+{self._tag(op)}"
        w_op = insert_before(make_constant(scaled, store, name, node(
            "scale_axis", [w_recipe, v_recipe], axis=axis, invert=fn == "div")), mm)
        return build(MatMulOp, [mm.lhs, w_op.results[0]], dict(mm.properties),
                     result_types=[op.output.type])

