"""fold-batch-norm: inference BatchNorm disappears into constants.

A `nn.batch_norm` whose statistics and affine parameters are constants becomes, after a `nn.conv`
with a constant weight that only it uses, a new conv weight and bias (w·s, (b − mean)·s + β with
s = γ/√(var + ε), per output channel), and otherwise a per-channel `x·s + t` (two `nn.binary`
ops that elementwise fusion can absorb). After this pass no such `nn.batch_norm` remains; the
new weights are store entries named after the conv weight and the BatchNorm's ONNX node, and the
conv's origin lists both nodes.
"""

from __future__ import annotations

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.nn.base import build
from ember.dialects.nn.elementwise import BinaryOp
from ember.dialects.nn.linear import ConvOp
from ember.dialects.nn.reduction import BatchNormOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import shape_of
from ember.dialects.weights import WeightStore, weights_of
from ember.passes.convert_onnx_to_nn.builder import (
    constant_value,
    insert_before,
    make_constant,
    weight_name,
)


def _scale_shift(bn: BatchNormOp, store: WeightStore) -> tuple[np.ndarray, np.ndarray] | None:
    """(s, t) with bn(x) = x·s + t per channel, in float64; None if a parameter is not constant."""
    values = [constant_value(v, store) for v in (bn.scale, bn.bias, bn.mean, bn.var)]
    if any(v is None for v in values):
        return None
    gamma, beta, mean, var = (np.asarray(v, np.float64).reshape(-1) for v in values)
    s = gamma / np.sqrt(var + bn.epsilon.value.data)
    return s, beta - mean * s


class FoldBatchNorm(ModulePass):
    name = "fold-batch-norm"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for op in list(module.walk()):
            if not isinstance(op, BatchNormOp):
                continue
            folded = _scale_shift(op, store)
            if folded is None:
                continue
            s, t = folded
            producer = op.input.owner
            if isinstance(producer, ConvOp) and op.input.uses.get_length() == 1 \
                    and self._into_conv(op, producer, s, t, store):
                continue
            self._to_scale_shift(op, s, t, store)

    def _into_conv(self, bn: BatchNormOp, conv: ConvOp, s: np.ndarray, t: np.ndarray,
                   store: WeightStore) -> bool:
        weight = constant_value(conv.weight, store)
        bias = constant_value(conv.bias, store) if conv.bias is not None else None
        if weight is None or (conv.bias is not None and bias is None) \
                or weight.shape[0] != s.size:
            return False
        dtype = weight.dtype
        w = (weight.astype(np.float64) * s.reshape(-1, *[1] * (weight.ndim - 1))).astype(dtype)
        b0 = np.zeros(s.size) if bias is None else bias.astype(np.float64)
        b = (b0 * s + t).astype(dtype)
        tag = "+".join(origin_of(bn)) or "batch_norm"
        name = weight_name(conv.weight, "conv.weight")
        w_op = insert_before(make_constant(w, store, f"{name}+{tag}"), conv)
        b_op = insert_before(make_constant(b, store, f"{weight_name(conv.bias, name)}+{tag}.bias"
                                          if conv.bias is not None else f"{name}+{tag}.bias"),
                            conv)
        new = build(ConvOp, [conv.input, w_op.results[0], b_op.results[0]],
                    dict(conv.properties), result_types=[bn.output.type])
        set_origin(new, origin_of(conv) + origin_of(bn))
        Rewriter.insert_op(new, InsertPoint.before(bn))
        bn.output.replace_all_uses_with(new.output)
        Rewriter.erase_op(bn)
        Rewriter.erase_op(conv)
        return True

    def _to_scale_shift(self, bn: BatchNormOp, s: np.ndarray, t: np.ndarray,
                        store: WeightStore) -> None:
        shape = shape_of(bn.input)
        dtype = constant_value(bn.scale, store).dtype
        per_channel = (-1,) + (1,) * (len(shape) - 2)  # channels on dim 1
        s_op = insert_before(make_constant(s.astype(dtype).reshape(per_channel), store,
                                          "batch_norm.scale"), bn)
        t_op = insert_before(make_constant(t.astype(dtype).reshape(per_channel), store,
                                          "batch_norm.shift"), bn)
        mul = insert_before(build(BinaryOp, [bn.input, s_op.results[0]], {"fn": "mul"}), bn)
        add = build(BinaryOp, [mul.results[0], t_op.results[0]], {"fn": "add"})
        for new in (mul, add):
            set_origin(new, origin_of(bn))
        Rewriter.insert_op(add, InsertPoint.before(bn))
        bn.output.replace_all_uses_with(add.results[0])
        Rewriter.erase_op(bn)

