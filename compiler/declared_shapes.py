"""Declared shapes carried backwards: a tensor whose shape ONNX's inference cannot know (it
depends on a run-time value: a Range's length, a Reduce's run-time axes) takes the shape the
model declares for a tensor computed from it by ops that keep shapes.

ONNX declares the shapes of graph outputs (and value_info), not of every intermediate tensor: in
`Range(0, n) -> Mul(., c) -> Cos -> y: float[10]` only y says 10. Walking the nodes from last to
first, a node that keeps its data input's shape passes its result's static shape back to that
input when the input's shape is unknown (no shape, or unknown dims where the result's are
static, known dims agreeing):

- unary elementwise ops, Cast / CastLike (input 0), Identity, Clip (input 0);
- binary elementwise ops whose other input is one element of no higher rank (a scalar
  multiplier or offset), so the result's shape is the data input's; and those whose inputs
  both have the result's rank: an unknown dim of either is taken to be the result's (a
  broadcast one would be a 1, which its run-time-checked producer then refuses).

Ops that take such a declared shape (nn.range, nn.reduce with run-time axes, ...) check it when
the plan runs: a run-time value that gives another shape is an error naming the step.
"""

from __future__ import annotations

from onnx import GraphProto, TypeProto

UNARY = frozenset({
    "Relu", "LeakyRelu", "Elu", "Celu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish",
    "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Shrink", "Tanh", "Exp", "Log", "Sqrt",
    "Reciprocal", "Abs", "Neg", "Sign", "Erf", "Floor", "Ceil", "Round", "Sin", "Cos", "Tan",
    "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Not", "BitwiseNot",
    "IsNaN", "IsInf", "Gelu", "Cast", "CastLike", "Identity", "Clip"})
BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "Greater",
                    "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "BitwiseAnd",
                    "BitwiseOr", "BitwiseXor", "Mod"})


def _dims(tp: TypeProto | None) -> list[int | None] | None:
    """A tensor type's dims (None for an unknown one); None without a shape."""
    if tp is None or tp.WhichOneof("value") != "tensor_type" or \
            not tp.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tp.tensor_type.shape.dim]


def _one_element(tp: TypeProto | None, rank: int) -> bool:
    dims = _dims(tp)
    return dims is not None and len(dims) <= rank and all(d == 1 for d in dims)


def refine(graph: GraphProto, types: dict[str, TypeProto]) -> list[str]:
    """Give tensors of unknown shape in `types` the static shape of a result computed from them
    by a shape-keeping node (in place); the names refined, in the order done. Graph inputs
    (whose unknown dims are the model's dynamic dims) and initializers are left alone."""
    fixed = {vi.name for vi in graph.input} | {t.name for t in graph.initializer}
    refined: list[str] = []
    for node in reversed(graph.node):
        if len(node.output) != 1 or not node.output[0]:
            continue
        out = _dims(types.get(node.output[0]))
        if out is None or any(d is None for d in out):
            continue
        if node.op_type in UNARY and node.input:
            candidates, unranked = [node.input[0]], True
        elif node.op_type in BINARY and len(node.input) == 2:
            a, b = node.input
            if _one_element(types.get(b), len(out)):
                candidates, unranked = [a], True
            elif _one_element(types.get(a), len(out)):
                candidates, unranked = [b], True
            else:  # both of the result's rank: each unknown dim is the result's
                candidates, unranked = [a, b], False
        else:
            continue
        for data in candidates:
            if data and data not in fixed and _refine(types, data, out, unranked):
                refined.append(data)
    return refined


def _refine(types: dict[str, TypeProto], name: str, out: list[int], unranked: bool) -> bool:
    """`name`'s unknown dims from `out` (a shapeless type too, where `unranked`); whether it
    changed. Known dims must agree with `out` (a known 1 under a larger dim is a broadcast:
    left alone)."""
    tp = types.get(name)
    if tp is None or tp.WhichOneof("value") != "tensor_type":
        return False
    dims = _dims(tp)
    if dims is None and not unranked:
        return False
    if dims is not None and (len(dims) != len(out) or None not in dims or any(
            d is not None and d != o for d, o in zip(dims, out, strict=True))):
        return False  # known already, another rank, or broadcast: nothing to add
    new = TypeProto()
    new.CopyFrom(tp)
    shape = new.tensor_type.shape
    del shape.dim[:]
    for d in out:
        shape.dim.add(dim_value=d)
    types[name] = new
    return True


__all__ = ["BINARY", "UNARY", "refine"]
