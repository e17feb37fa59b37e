"""merge-parallel-matmuls: matmuls that read the same input with constant weights become one
matmul over the weights side by side (a transformer's Q, K and V projections: one GEMM, N = 3·H·D).

After this pass no two `nn.matmul` of one block share their left operand while each has a constant
2-D right operand (no transposes) of the same K and element type, and a float result (integer
results: see below). Each such group becomes one matmul with the weights concatenated along N,
followed, where any member was followed by the `nn.binary "add"` of a constant bias along N
(its only user), by one add of the concatenated biases (zeros for members without one); each
member's value becomes an `nn.slice` of its columns. fuse-attention reads such slices as column
offsets into the packed tensor.

fold-qdq's integer matmuls (int8 operands, int32 sums) merge too, with their elementwise tails:
the members' dequantize / bias / requantize chains, where they are the same ops to their ends
(constants that differ only in value), become one chain on the merged matmul, its constants the
members' side by side along N (`parallel_chains.py`), so each column keeps its member's scales
and bias and fuse-epilogues fuses the whole tail into one GEMM; each member's chain end becomes
a slice of the merged chain's result. Groups whose tails differ, or that have no dequantize (a
float value) in them, are not merged: each member keeps the GEMM its tail fuses into.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerType, ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from ember.dialects.nn.base import build
from ember.dialects.nn.elementwise import BinaryOp
from ember.dialects.nn.linear import MatMulOp
from ember.dialects.nn.movement import SliceOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, shape_of, static_shape
from ember.dialects.weights import WeightStore, weights_of
from ember.passes.convert_onnx_to_nn.builder import make_constant, traced_value, weight_name
from ember.passes.parallel_chains import common_chains, merged_chain
from ember.runtime.refit_recipes import Recipe, apply, node, value


@dataclass
class _Member:
    matmul: MatMulOp
    weight: np.ndarray
    bias_add: BinaryOp | None
    bias: np.ndarray | None
    # refit recipes of weight and bias (a REFIT build's)
    weight_recipe: Recipe | None = None
    bias_recipe: Recipe | None = None

    @property
    def value(self) -> SSAValue:
        """What the member's users read: the bias add's result, else the matmul's."""
        return (self.bias_add or self.matmul).results[0]


def _bias(matmul: MatMulOp, store: WeightStore
          ) -> tuple[BinaryOp, np.ndarray, Recipe | None] | None:
    """The add of a constant [N] bias that is the matmul's only user, the bias and its
    recipe."""
    if matmul.output.uses.get_length() != 1:
        return None
    add = next(iter(matmul.output.uses)).operation
    if not isinstance(add, BinaryOp) or add.fn.data != "add" or add.lhs is add.rhs \
            or add.output.type != matmul.output.type:
        return None
    other = add.rhs if add.lhs is matmul.output else add.lhs
    bias, recipe = traced_value(other, store)
    n = shape_of(matmul.output)[-1]
    if bias is None or element_type_of(other) != element_type_of(matmul.output) \
            or bias.size != n or any(d != 1 for d in bias.shape[:-1]):
        return None
    return add, bias.reshape(-1), node("reshape", [recipe], shape=[-1])


def _member(op: Operation, store: WeightStore) -> _Member | None:
    if not isinstance(op, MatMulOp) or op.prop("transpose_a") or op.prop("transpose_b"):
        return None
    a, out = shape_of(op.lhs), shape_of(op.output)
    weight, recipe = traced_value(op.rhs, store)
    if a is None or len(a) < 2 or out is None or weight is None or weight.ndim != 2 \
            or element_type_of(op.rhs) != element_type_of(op.lhs):
        return None
    if isinstance(element_type_of(op.output), IntegerType):
        return _Member(op, weight, None, None, recipe)
    add, bias, bias_recipe = _bias(op, store) or (None, None, None)
    return _Member(op, weight, add, bias, recipe, bias_recipe)


def _groups(block: Block, store: WeightStore) -> list[list[_Member]]:
    """Members by (left operand, K, element type), in program order; groups of two or more."""
    groups: dict[tuple, list[_Member]] = {}
    for op in block.ops:
        m = _member(op, store)
        if m is not None:
            key = (m.matmul.lhs, m.weight.shape[0], element_type_of(m.matmul.lhs))
            groups.setdefault(key, []).append(m)
    return [g for g in groups.values() if len(g) > 1]


def _erase_if_unused(ops: list[Operation]) -> None:
    for op in ops:
        if op.parent is not None and all(r.uses.get_length() == 0 for r in op.results):
            Rewriter.erase_op(op)


def _merged_matmul(group: list[_Member], store: WeightStore) -> tuple[MatMulOp, str]:
    """The matmul over the members' weights side by side, inserted before the first member,
    and the tag its constants are named by."""
    first = group[0].matmul
    weight = apply("concat", [m.weight for m in group], axis=1)
    tag = "+".join(weight_name(m.matmul.rhs) for m in group)
    w_op = make_constant(weight, store, tag,
                         node("concat", [m.weight_recipe for m in group], axis=1))
    Rewriter.insert_op(w_op, InsertPoint.before(first))
    matmul = build(MatMulOp, [first.lhs, w_op.results[0]])
    set_origin(matmul, [n for m in group for n in origin_of(m.matmul)])
    Rewriter.insert_op(matmul, InsertPoint.before(first))
    return matmul, tag


def _slices(packed: SSAValue, after: Operation, widths: list[int],
            origins: list[Operation]) -> list[SliceOp]:
    """Each member's columns of `packed`, inserted after `after` in member order."""
    dims = static_shape(packed)
    rank = len(shape_of(packed))
    offset, last, pieces = 0, after, []
    for n, origin_op in zip(widths, origins, strict=True):
        ends = [d if isinstance(d, int) else 2**62 for d in (dims or shape_of(packed))]
        ends[-1] = offset + n
        piece = build(SliceOp, [packed], {"starts": [0] * (rank - 1) + [offset], "ends": ends,
                                          "steps": [1] * rank})
        set_origin(piece, origin_of(origin_op))
        Rewriter.insert_op(piece, InsertPoint.after(last))
        pieces.append(piece)
        last, offset = piece, offset + n
    return pieces


def _merge_integer(group: list[_Member], store: WeightStore) -> None:
    """An int8 group: the merged matmul and its merged tail up to the last common step."""
    steps = common_chains([m.matmul.output for m in group], store)
    if not steps or not any(not isinstance(element_type_of(links[0].op.results[0]), IntegerType)
                            for links in steps):
        return  # tails that differ, or slices of int32 sums: each keeps its own kernel
    matmul, tag = _merged_matmul(group, store)
    widths = [m.weight.shape[1] for m in group]
    tail = merged_chain(matmul.output, steps, widths, store, tag)
    Rewriter.insert_op(tail, InsertPoint.after(matmul))
    per_member = list(zip(*steps, strict=True))  # each member's links, in order
    pieces = _slices(tail[-1].results[0], tail[-1], widths,
                     [links[-1].op for links in per_member])
    for m, links, piece in zip(group, per_member, pieces, strict=True):
        links[-1].op.results[0].replace_all_uses_with(piece.output)
        ops = [link.op for link in reversed(links)] + [m.matmul]
        constants = [v.owner for op in ops for v in op.operands
                     if isinstance(v.owner, Operation) and not v.owner.operands]
        _erase_if_unused(ops + constants)


def _merge(group: list[_Member], store: WeightStore) -> None:
    matmul, tag = _merged_matmul(group, store)
    weight_dtype = group[0].weight.dtype
    packed, last = matmul.output, matmul
    if any(m.bias_add is not None for m in group):
        parts = [(m.bias, m.bias_recipe) if m.bias is not None else (
            zeros := np.zeros(m.weight.shape[1], weight_dtype), value(zeros)) for m in group]
        bias = apply("concat", [b for b, _ in parts], axis=0)
        b_op = make_constant(bias.astype(weight_dtype), store, f"{tag}.bias", node(
            "cast", [node("concat", [r for _, r in parts], axis=0)], dtype=weight_dtype.name))
        add = build(BinaryOp, [matmul.output, b_op.results[0]], {"fn": "add"})
        set_origin(add, [n for m in group if m.bias_add for n in origin_of(m.bias_add)])
        Rewriter.insert_op([b_op, add], InsertPoint.after(matmul))
        packed, last = add.output, add
    pieces = _slices(packed, last, [m.weight.shape[1] for m in group], [m.matmul for m in group])
    for m, piece in zip(group, pieces, strict=True):
        m.value.replace_all_uses_with(piece.output)
        constants = [v.owner for v in (m.matmul.rhs, *(m.bias_add.operands if m.bias_add else ()))
                     if isinstance(v.owner, Operation) and not v.owner.operands]
        _erase_if_unused([op for op in (m.bias_add, m.matmul, *constants) if op is not None])


class MergeParallelMatmuls(ModulePass):
    name = "merge-parallel-matmuls"

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        store = weights_of(module)
        blocks = {op.parent_block() for op in module.walk() if isinstance(op, MatMulOp)}
        for block in blocks:
            if block is None:
                continue
            for group in _groups(block, store):
                if isinstance(element_type_of(group[0].matmul.output), IntegerType):
                    _merge_integer(group, store)
                else:
                    _merge(group, store)
