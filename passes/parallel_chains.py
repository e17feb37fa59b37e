"""The elementwise tails of parallel matmuls, walked in step: what merge-parallel-matmuls carries
over to the merged matmul of fold-qdq's integer matmuls.

An int8 matmul's int32 sums are dequantized, biased and requantized by a chain of elementwise
ops (`nn.cast`, `nn.unary`, `nn.binary` with a constant), each the only user of the one before.
Q, K and V projections have chains of the same ops whose constants differ (their weight scales
per column, their output scales per tensor, their biases). Walked in step, chains that match
to their ends become one chain on the merged matmul whose constants are the members'
constants laid side by side along N (a scalar repeated over its member's columns), so every
column gets exactly its member's arithmetic (mul, add, max and min may have their constant on
either side); fuse-epilogues then fuses it into the merged GEMM,
which stores the requantized int8 values once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.ir import Operation, SSAValue

from ember.dialects.nn.base import set_result_types
from ember.dialects.nn.elementwise import BinaryOp, CastOp, UnaryOp
from ember.dialects.origin import origin_of, set_origin
from ember.dialects.tensor_types import element_type_of, shape_of
from ember.dialects.weights import WeightStore
from ember.passes.convert_onnx_to_nn.builder import make_constant, traced_value
from ember.runtime.refit_recipes import Recipe, apply, node

_CHAIN_OPS = (CastOp, UnaryOp, BinaryOp)
_COMMUTATIVE = frozenset({"add", "mul", "max", "min"})


@dataclass
class Link:
    """One op of a member's chain: the op, and for a binary its constant operand (its value,
    its refit recipe and which side it is on)."""

    op: Operation
    constant: np.ndarray | None = None
    recipe: Recipe | None = None
    constant_is_lhs: bool = False


def _link(value: SSAValue, store: WeightStore) -> Link | None:
    """The elementwise op that is `value`'s only user, if it keeps `value`'s shape and (a
    binary) combines it with a constant that varies along the last axis at most."""
    if value.uses.get_length() != 1 or shape_of(value) is None:
        return None
    op = next(iter(value.uses)).operation
    if not isinstance(op, _CHAIN_OPS) or shape_of(op.results[0]) != shape_of(value):
        return None
    if not isinstance(op, BinaryOp):
        return Link(op)
    if op.lhs is op.rhs:
        return None
    other = op.lhs if op.rhs is value else op.rhs
    array, recipe = traced_value(other, store)
    rank = len(shape_of(value))
    if array is None or array.ndim > rank or any(d != 1 for d in array.shape[:-1]):
        return None
    if array.ndim and array.shape[-1] not in (1, shape_of(value)[-1]):
        return None
    return Link(op, array, recipe, other is op.lhs)


def _same(links: Sequence[Link]) -> bool:
    """Whether the members' ops at one step are the same op up to their constants."""
    first = links[0]
    commutative = isinstance(first.op, BinaryOp) and first.op.fn.data in _COMMUTATIVE
    for link in links[1:]:
        if type(link.op) is not type(first.op) \
                or (link.constant_is_lhs != first.constant_is_lhs and not commutative) \
                or link.op.properties != first.op.properties \
                or link.op.attributes != first.op.attributes \
                or element_type_of(link.op.results[0]) != element_type_of(first.op.results[0]):
            return False
        if (link.constant is None) != (first.constant is None):
            return False
        if link.constant is not None and link.constant.dtype != first.constant.dtype:
            return False
    return True


def common_chains(values: Sequence[SSAValue], store: WeightStore) -> list[list[Link]] | None:
    """The members' chains (from each of `values`) step by step, one list of per-member links
    per step, where they match to their ends; None where one member's chain goes on past the
    steps they share (its rest would lose the kernel it fuses into)."""
    steps: list[list[Link]] = []
    current = list(values)
    while True:
        links = [_link(v, store) for v in current]
        if all(link is None for link in links):
            return steps
        if any(link is None for link in links) or not _same(links):
            return None
        steps.append(links)
        current = [link.op.results[0] for link in links]


def _side_by_side(links: Sequence[Link], widths: Sequence[int], rank: int,
                  store: WeightStore, tag: str) -> Operation:
    """One constant: each member's constant over its `widths` columns, along N; a scalar
    when every member's is the same single value made the same way (equal refit recipes)."""
    arrays = [link.constant for link in links]
    dtype = arrays[0].dtype
    same = len({a.reshape(-1)[0].tobytes() for a in arrays}) == 1 and all(
        link.recipe == links[0].recipe for link in links)  # a refit must keep them equal
    if all(a.size == 1 for a in arrays) and same:
        return make_constant(arrays[0].reshape(()), store, tag,
                             node("reshape", [links[0].recipe], shape=[]))
    parts = [apply("channel_vector", [a], rank=rank, n=n) for a, n in zip(arrays, widths,
                                                                            strict=True)]
    merged = apply("cast", [apply("concat", parts, axis=0)], dtype=dtype.name)
    recipe = node("cast", [node("concat", [
        node("channel_vector", [link.recipe], rank=rank, n=n)
        for link, n in zip(links, widths, strict=True)], axis=0)], dtype=dtype.name)
    return make_constant(merged, store, tag, recipe)


def merged_chain(source: SSAValue, steps: Sequence[Sequence[Link]], widths: Sequence[int],
                 store: WeightStore, tag: str) -> list[Operation]:
    """The ops of one chain on `source` (the merged matmul's result) doing each step of
    `steps` with the members' constants side by side; the caller inserts them in order."""
    ops: list[Operation] = []
    rank = len(shape_of(source))
    value = source
    for i, links in enumerate(steps):
        first = links[0].op
        operands: list[SSAValue] = [value]
        if links[0].constant is not None:
            const = _side_by_side(links, widths, rank, store, f"{tag}.{i}")
            ops.append(const)
            operands = [const.results[0], value] if links[0].constant_is_lhs \
                else [value, const.results[0]]
        op = type(first).create(operands=operands, properties=dict(first.properties),
                                attributes=dict(first.attributes),
                                result_types=[first.results[0].type])
        set_result_types(op, op.infer())
        set_origin(op, [n for link in links for n in origin_of(link.op)])
        ops.append(op)
        value = op.results[0]
    return ops
