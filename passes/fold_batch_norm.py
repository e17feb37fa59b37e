"""fold-batch-norm: inference BatchNorm disappears into constants.

A `nn.batch_norm` whose statistics and affine parameters are constants becomes, after a `nn.conv`
with a constant weight that only it uses, a new conv weight and bias (w·s, (b − mean)·s + β with
s = γ/√(var + ε), per output channel), and otherwise a per-channel `x·s + t` (two `nn.binary`
ops that elementwise fusion can absorb). After this pass no such `nn.batch_norm` remains; the
new weights are store entries named after the conv weight and the BatchNorm's ONNX node, and the
conv's origin lists both nodes.
"""

from __future__ import annotations

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
    insert_before,
    make_constant,
    traced_value,
    weight_name,
)
from ember.runtime.cpu_kernels.common import is_storage_only
from ember.runtime.refit_recipes import apply, node


def _bn_params(bn: BatchNormOp, store: WeightStore) -> list[tuple] | None:
    """(value, refit recipe) of γ, β, mean and var; None if one is not constant."""
    traced = [traced_value(v, store) for v in (bn.scale, bn.bias, bn.mean, bn.var)]
    return None if any(a is None for a, _ in traced) else traced


class FoldBatchNorm(ModulePass):
    name = "fold-batch-norm"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        for op in list(module.walk()):
            if not isinstance(op, BatchNormOp):
                continue
            params = _bn_params(op, store)
            if params is None:
                continue
            producer = op.input.owner
            if isinstance(producer, ConvOp) and op.input.uses.get_length() == 1 \
                    and self._into_conv(op, producer, params, store):
                continue
            self._to_scale_shift(op, params, store)

    def _into_conv(self, bn: BatchNormOp, conv: ConvOp, params: list[tuple],
                   store: WeightStore) -> bool:
        weight, w_recipe = traced_value(conv.weight, store)
        bias, b_recipe = traced_value(conv.bias, store) if conv.bias is not None else (None, None)
        (gamma, g), (beta, be), (mean, m), (var, v) = params
        if weight is None or (conv.bias is not None and bias is None) \
                or weight.shape[0] != gamma.size or is_storage_only(weight.dtype):
            return False
        eps, dtype = bn.epsilon.value.data, weight.dtype
        w = apply("bn_conv_weight", [weight, gamma, var], eps=eps)
        extra = [] if bias is None else [bias]
        b = apply("bn_conv_bias", [gamma, beta, mean, var, *extra], eps=eps, dtype=dtype.name)
        w_recipe = node("bn_conv_weight", [w_recipe, g, v], eps=eps)
        b_recipe = node("bn_conv_bias", [g, be, m, v] + ([b_recipe] if extra else []), eps=eps,
                        dtype=dtype.name)
        tag = "+".join(origin_of(bn)) or "batch_norm"
        name = weight_name(conv.weight, "conv.weight")
        w_op = insert_before(make_constant(w, store, f"{name}+{tag}", w_recipe), conv)
        b_op = insert_before(make_constant(b, store, f"{weight_name(conv.bias, name)}+{tag}.bias"
                                          if conv.bias is not None else f"{name}+{tag}.bias",
                                           b_recipe), conv)
        new = build(ConvOp, [conv.input, w_op.results[0], b_op.results[0]],
                    dict(conv.properties), result_types=[bn.output.type])
        set_origin(new, origin_of(conv) + origin_of(bn))
        Rewriter.insert_op(new, InsertPoint.before(bn))
        bn.output.replace_all_uses_with(new.output)
        Rewriter.erase_op(bn)
        Rewriter.erase_op(conv)
        return True

    def _to_scale_shift(self, bn: BatchNormOp, params: list[tuple],
                        store: WeightStore) -> None:
        shape = shape_of(bn.input)
        (gamma, g), (beta, be), (mean, m), (var, v) = params
        eps, dtype = bn.epsilon.value.data, gamma.dtype.name
        per_channel = (-1,) + (1,) * (len(shape) - 2)  # channels on dim 1
        s = apply("bn_scale", [gamma, var], eps=eps, dtype=dtype, shape=per_channel)
        t = apply("bn_shift", [gamma, beta, mean, var], eps=eps, dtype=dtype, shape=per_channel)
        s_op = insert_before(make_constant(s, store, "batch_norm.scale", node(
            "bn_scale", [g, v], eps=eps, dtype=dtype, shape=per_channel)), bn)
        t_op = insert_before(make_constant(t, store, "batch_norm.shift", node(
            "bn_shift", [g, be, m, v], eps=eps, dtype=dtype, shape=per_channel)), bn)
        mul = insert_before(build(BinaryOp, [bn.input, s_op.results[0]], {"fn": "mul"}), bn)
        add = build(BinaryOp, [mul.results[0], t_op.results[0]], {"fn": "add"})
        for new in (mul, add):
            set_origin(new, origin_of(bn))
        Rewriter.insert_op(add, InsertPoint.before(bn))
        bn.output.replace_all_uses_with(add.results[0])
        Rewriter.erase_op(bn)

