"""If nodes whose condition is known when the model is built, replaced by the branch they take.

ONNX functions (AffineGrid, for one) and exporters write `If` on values that are constants once
the attributes are known: `align_corners == 0`, a rank test. Such a condition is computed here
from the model's constants (initializers, Constant nodes and what small nodes make of them,
evaluated with onnx.reference), and the If becomes its branch: the branch's nodes, renamed
under the If node's name, with its outputs bound to the If's. Branch nodes read outer-scope
tensors by name, as they did. An If whose condition depends on inputs stays (the importer then
names it: control flow on run-time values is not supported yet).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, helper, numpy_helper

_MAX_ELEMENTS = 1 << 16  # constants folded to decide conditions are small
_MAX_ROUNDS = 16  # nested Ifs resolved one level per round


def resolve_constant_ifs(model: ModelProto) -> ModelProto:
    """`model` (a copy) with every If of a constant condition replaced by its branch; the model
    itself when there is none."""
    for _ in range(_MAX_ROUNDS):
        graph = model.graph
        if not any(n.op_type == "If" and n.domain in ("", "ai.onnx") for n in graph.node):
            return model
        known = _constants(graph, _static_shapes(model))
        decided = {i: bool(np.asarray(known[n.input[0]]).reshape(-1)[0])
                   for i, n in enumerate(graph.node)
                   if n.op_type == "If" and n.domain in ("", "ai.onnx") and n.input
                   and n.input[0] in known and np.asarray(known[n.input[0]]).size == 1}
        if not decided:
            return model
        copy = ModelProto()
        copy.CopyFrom(model)
        nodes: list[NodeProto] = []
        for i, node in enumerate(copy.graph.node):
            if i not in decided:
                nodes.append(node)
                continue
            branch = next(a.g for a in node.attribute
                          if a.name == ("then_branch" if decided[i] else "else_branch"))
            nodes += _inlined(branch, node, i, copy.graph)
        del copy.graph.node[:]
        copy.graph.node.extend(nodes)
        model = copy
    return model


def _inlined(branch: GraphProto, node: NodeProto, index: int, graph: GraphProto
             ) -> list[NodeProto]:
    """The branch's nodes with its own tensors renamed under the If's name and its outputs
    written by Identity nodes to the If's outputs; its initializers added to `graph`."""
    prefix = f"{node.name or f'If_{index}'}::"
    local = {t.name for t in branch.initializer} | {o for n in branch.node for o in n.output}
    rename = {name: prefix + name for name in local if name}
    for t in branch.initializer:
        copy = type(t)()
        copy.CopyFrom(t)
        copy.name = rename[t.name]
        graph.initializer.append(copy)
    out: list[NodeProto] = []
    for n in branch.node:
        new = NodeProto()
        new.CopyFrom(n)
        new.name = prefix + (n.name or f"{n.op_type}_{len(out)}")
        new.input[:] = [rename.get(x, x) for x in n.input]
        new.output[:] = [rename.get(x, x) for x in n.output]
        for attr in new.attribute:  # nested graphs read the branch's tensors by name too
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_reads(sub, rename)
        out.append(new)
    for result, target in zip(branch.output, node.output, strict=False):
        if target:
            out.append(helper.make_node("Identity", [rename.get(result.name, result.name)],
                                        [target], name=f"{prefix}{target}"))
    return out


def _static_shapes(model: ModelProto) -> dict[str, list[int]]:
    """Tensor name -> its static shape, from the model's types and ONNX's inference."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 -- inference is a help: the declared types alone
        inferred = model.graph
    shapes = {}
    for vi in [*model.graph.input, *model.graph.value_info, *inferred.value_info,
               *inferred.input]:
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape") and all(
                d.HasField("dim_value") for d in t.shape.dim):
            shapes[vi.name] = [d.dim_value for d in t.shape.dim]
    return shapes


def _rename_reads(graph: GraphProto, rename: dict[str, str]) -> None:
    """In a nested graph, the reads of outer tensors renamed by `rename` (names the graph
    defines itself shadow them)."""
    own = ({vi.name for vi in graph.input} | {t.name for t in graph.initializer}
           | {o for n in graph.node for o in n.output})
    outer = {k: v for k, v in rename.items() if k not in own}
    for node in graph.node:
        node.input[:] = [outer.get(x, x) for x in node.input]
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_reads(sub, outer)
    for vi in graph.output:  # an output may be an outer tensor itself
        if vi.name in outer:
            vi.name = outer[vi.name]


def _constants(graph: GraphProto, shapes: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """The values of the graph's small constants: initializers, Constant nodes, Shape and Size
    of tensors of static shape, and the nodes (not If, Loop, Scan) whose inputs are all such,
    evaluated with onnx.reference."""
    from onnx.reference import ReferenceEvaluator

    inputs = {vi.name for vi in graph.input}
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer
             if t.name not in inputs and math.prod(t.dims) <= _MAX_ELEMENTS}
    for node in graph.node:
        if node.op_type in ("If", "Loop", "Scan") or node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type in ("Shape", "Size") and node.input and node.input[0] in shapes:
            dims = shapes[node.input[0]]
            if node.op_type == "Size":
                known[node.output[0]] = np.array(math.prod(dims), np.int64)
                continue
            attrs = {a.name: a.i for a in node.attribute}
            start, end = attrs.get("start", 0), attrs.get("end", len(dims))
            known[node.output[0]] = np.array(dims[slice(start, end)], np.int64)
            continue
        names = [x for x in node.input if x]
        if not all(x in known for x in names):
            continue
        try:
            outs = ReferenceEvaluator(node).run(None, {x: known[x] for x in names})
        except Exception:  # noqa: BLE001, S112 -- not evaluable here: its outputs stay unknown
            continue
        for name, value in zip(node.output, outs, strict=False):
            value = np.asarray(value)
            if name and value.size <= _MAX_ELEMENTS:
                known[name] = value
    return known


__all__ = ["resolve_constant_ifs"]
