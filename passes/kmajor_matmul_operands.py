"""kmajor-matmul-operands: a matmul's run-time B operand whose K axis a transpose takes from
its input's contiguous last axis is laid out [..., N, K] instead, and read with transpose_b.

Recognized: `nn.matmul(A, B)` (B read [..., K, N]: no `transpose_b`) with
B = e_n(...e_1(transpose(X, perm))), each e_i an elementwise op (`nn.cast`, `nn.unary`, or
`nn.binary` whose other operand holds one value), every value of the chain used once, and
perm[-2] X's last axis while perm[-1] is not: the copy the transpose becomes then reads
across X's rows, one element at a time. After this pass the transpose's last two entries are
swapped (X's last axis stays last; the chain's values are [..., N, K]; the transpose is gone
where that leaves the identity) and the matmul's `transpose_b` is set. So BERT's
K = transpose(reshape(k), [0, 2, 3, 1]) feeding Q Kᵀ (left unfused by fuse-attention where
Q/DQ sits in the chain) becomes the same contiguous [0, 2, 1, 3] copy as Q's and V's (a
vectorized elementwise kernel), and the matmul reads both operands K-major, as the 8-bit and
Hopper tactics need. Results are unchanged (elementwise ops commute with transposes). GPU
builds run it after kmajor-matmul-weights.
"""

from __future__ import annotations

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

from ember.dialects.attributes import to_attribute
from ember.dialects.nn.base import like, set_result_types
from ember.dialects.nn.elementwise import BinaryOp, CastOp, UnaryOp
from ember.dialects.nn.linear import MatMulOp
from ember.dialects.nn.movement import TransposeOp
from ember.dialects.tensor_types import shape_of


def _one_value(value: SSAValue) -> bool:
    shape = shape_of(value)
    return shape is not None and all(d == 1 for d in shape)


def _chain(b: SSAValue) -> tuple[TransposeOp, list[Operation]] | None:
    """(the transpose, the elementwise ops after it in order) that make matmul operand `b`, each
    value used once; None where `b` is not so made."""
    chain: list[Operation] = []
    value = b
    while value.uses.get_length() == 1:
        op = value.owner
        if isinstance(op, TransposeOp):
            return op, chain[::-1]
        if isinstance(op, CastOp | UnaryOp):
            chain.append(op)
            value = op.operands[0]
        elif isinstance(op, BinaryOp) and _one_value(op.rhs) and not _one_value(op.lhs):
            chain.append(op)
            value = op.lhs
        elif isinstance(op, BinaryOp) and _one_value(op.lhs) and not _one_value(op.rhs):
            chain.append(op)
            value = op.rhs
        else:
            return None
    return None


def _swap_last(shape: list) -> list:
    return [*shape[:-2], shape[-1], shape[-2]]


class KMajorMatmulOperands(ModulePass):
    name = "kmajor-matmul-operands"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        for op in list(module.walk()):
            if not isinstance(op, MatMulOp) or op.prop("transpose_b", False):
                continue  # B read [..., N, K] already
            shape = shape_of(op.rhs)
            if shape is None or len(shape) < 2:
                continue
            found = _chain(op.rhs)
            if found is None:
                continue
            transpose, chain = found
            perm = list(transpose.prop("perm"))
            last = len(perm) - 1
            if perm[-1] == last or perm[-2] != last:
                continue  # already read along its last axis, or not made contiguous by a swap
            new_perm = _swap_last(perm)
            transpose.properties["perm"] = to_attribute(new_perm)
            set_result_types(transpose, transpose.infer())
            for e in chain:
                set_result_types(e, [like(e.results[0], _swap_last(list(shape_of(e.results[0]))))])
            op.properties["transpose_b"] = to_attribute(True)
            if new_perm == list(range(len(perm))):
                transpose.results[0].replace_all_uses_with(transpose.input)
                transpose.detach()
                transpose.erase()
