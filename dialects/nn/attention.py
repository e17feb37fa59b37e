"""Fused multi-head attention, `nn.attention`: what fuse-attention makes of the
matmul-scale-mask-softmax-matmul chain with its head reshapes and transposes. Its numpy semantics
are the runtime's `attention` kernel."""

from __future__ import annotations

from xdsl.dialects.builtin import FloatAttr, IntegerAttr, UnitAttr, i1
from xdsl.ir import Attribute
from xdsl.irdl import (
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from ember.dialects.nn.base import NNOp, broadcast_shapes, dim_product, like
from ember.dialects.tensor_types import Dim, element_type_of
from ember.errors import ShapeError


def _known_differ(a: Dim, b: Dim) -> bool:
    return isinstance(a, int) and isinstance(b, int) and a != b


@irdl_op_definition
class AttentionOp(NNOp):
    """softmax(scale · Q Kᵀ + mask) V for each batch and each of `num_heads` heads.

    q [B, Sq, Wq], k [B, Sk, Wk] and v [B, Sk, Wv] are row-major projection outputs; head h reads
    columns `<x>_offset + h·head_dim` onward of each row (q, k and v may be one packed tensor with
    three offsets). The result is [B, Sq, num_heads·head_dim], heads side by side in each row.
    The optional mask broadcasts to [B, num_heads, Sq, Sk]: a float mask is added to the scaled
    scores; a boolean one keeps them where true and puts `masked_value` (default -inf) elsewhere.
    A query row whose scores are all -inf gives zeros."""

    name = "nn.attention"
    q = operand_def()
    k = operand_def()
    v = operand_def()
    mask = opt_operand_def()
    num_heads = prop_def(IntegerAttr)
    head_dim = prop_def(IntegerAttr)
    scale = prop_def(FloatAttr)
    q_offset = opt_prop_def(IntegerAttr)
    k_offset = opt_prop_def(IntegerAttr)
    v_offset = opt_prop_def(IntegerAttr)
    masked_value = opt_prop_def(FloatAttr)
    tf32 = opt_prop_def(UnitAttr)  # may use TF32 tensor cores (assign-precision, TF32 allowed)
    output = result_def()
    traits = traits_def(Pure())
    assembly_format = (
        "$q `,` $k `,` $v (`,` $mask^)? attr-dict `:` functional-type(operands, results)"
    )

    def infer(self) -> list[Attribute]:
        heads, dim = self.prop("num_heads"), self.prop("head_dim")
        if heads < 1 or dim < 1:
            raise ShapeError(f"nn.attention: num_heads ({heads}) and head_dim ({dim}) must be "
                             "positive")
        shapes = {}
        for i, what in enumerate("qkv"):
            shape = self.operand_shape(i)
            if len(shape) != 3:
                raise ShapeError(f"nn.attention: {what} must be [B, S, W], not rank {len(shape)}")
            if element_type_of(self.operands[i]) != element_type_of(self.q):
                raise ShapeError("nn.attention: q, k and v must have one element type")
            offset = self.prop(f"{what}_offset", 0)
            if offset < 0 or (isinstance(shape[2], int) and offset + heads * dim > shape[2]):
                raise ShapeError(f"nn.attention: {what} has {shape[2]} columns, too few for "
                                 f"{heads} heads of {dim} from column {offset}")
            shapes[what] = shape
        q, k, v = shapes["q"], shapes["k"], shapes["v"]
        if _known_differ(q[0], k[0]) or _known_differ(q[0], v[0]) or _known_differ(k[1], v[1]):
            raise ShapeError(f"nn.attention: q {list(q)}, k {list(k)} and v {list(v)} disagree "
                             "on the batch or key length")
        if self.mask is not None:
            mask = self.operand_shape(3)
            if len(mask) > 4:
                raise ShapeError(f"nn.attention: a mask of rank {len(mask)} (at most 4)")
            want = (q[0], heads, q[1], k[1])
            if broadcast_shapes(mask, want, op=self.name) != broadcast_shapes(want):
                raise ShapeError(f"nn.attention: mask {list(mask)} does not broadcast to the "
                                 f"scores {list(want)}")
            if element_type_of(self.mask) not in (i1, element_type_of(self.q)):
                raise ShapeError("nn.attention: the mask must be boolean or of q's type")
        return [like(self.q, [q[0], q[1], dim_product([heads, dim])])]


OPS = [AttentionOp]
