"""ONNX sequences and optionals the importer lowers before it imports a model: where a
sequence's length (an optional's presence) is known when the model is built, each becomes a
Python-side list of tensor names while lowering, and the nodes that use it become ordinary
tensor nodes.

- SequenceConstruct, SequenceEmpty, SequenceInsert and SequenceErase make a new list (no node);
  SequenceAt is an Identity of the element; SequenceLength a Constant.
- SplitToSequence is a Split (sizes from a constant `split`, or from the input's static dim along
  the axis), each part Squeezed where `keepdims` is 0 and no `split` is given;
  ConcatFromSequence is a Concat (each element Unsqueezed first where `new_axis` is 1).
- SequenceMap inlines its body once per element (the i-th element of each sequence input, the
  tensor inputs as they are); each body output makes one output sequence.
- Optional holds its input (or nothing); OptionalHasElement is a Constant; OptionalGetElement an
  Identity of what it holds (a plain tensor or sequence input: itself, as ONNX allows).
- Identity of a sequence or optional is the same list.

Positions, `split` and the like must be constants when the model is built (initializers,
Constant nodes and what small nodes make of them: onnx_control.constant_values). Lowering
alternates with onnx_control's (a Loop whose trip count is a SequenceLength unrolls once that
length is a constant; an unrolled body's SequenceInsert chain is lowered next round; a list
that an If or Loop not lowered yet reads is rebuilt for it, a SequenceConstruct). The
tensors made here are named after the node, with a `#` (`<node>#part<i>`), and the nodes of an
inlined SequenceMap body go under `<node>::<i>::`.

What cannot be lowered is refused, every case at once, as a ModelImportError: a graph input or
output that is a sequence or an optional (a plan's inputs and outputs are tensors), a position
or split given at run time, a position out of range, an empty optional read, a sequence whose
length depends on a node that stays (a Loop with a run-time trip count), and a node other than
these that reads a sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, TensorProto, helper, numpy_helper

from ember.compiler.onnx_control import (
    _graph_attr,
    _inline,
    _static_shapes,
    _unique,
    constant_values,
)
from ember.errors import ModelImportError, NodeProblem

SEQUENCE_OPS = frozenset({
    "SequenceConstruct", "SequenceEmpty", "SequenceInsert", "SequenceErase", "SequenceAt",
    "SequenceLength", "SplitToSequence", "ConcatFromSequence", "SequenceMap", "Optional",
    "OptionalHasElement", "OptionalGetElement"})
_CONTROL = ("If", "Loop", "Scan")
# the sequence and optional operators whose result is a tensor (the others': a list)
_TENSOR_RESULTS = ("SequenceAt", "SequenceLength", "ConcatFromSequence", "OptionalHasElement")
_DEFAULT_DOMAINS = ("", "ai.onnx")
_MAX_ROUNDS = 32  # sequence lowering and control-flow lowering alternate at most this often
_MAX_ELEMENTS = 1 << 16  # the initializers read to find constant positions are small


@dataclass(frozen=True)
class _Seq:
    """A sequence known at build time: its elements' tensor names."""

    elements: tuple[str, ...]
    dtype: int = TensorProto.FLOAT  # an empty one's element type (SequenceEmpty's)


@dataclass(frozen=True)
class _Opt:
    """An optional known at build time: what it holds (None: nothing)."""

    value: str | _Seq | None
    dtype: int = TensorProto.FLOAT  # an empty one's element type (Optional's `type`)


class _Blocked(Exception):  # noqa: N818 -- a reason, not an error: the node stays
    """A node that cannot be lowered (yet): the reason."""


def has_sequences(model: ModelProto) -> bool:
    """Whether the model's graph (or a subgraph) holds a sequence or optional operator, or
    its graph has an input or output that is not a tensor."""
    graph = model.graph
    return any(vi.type.WhichOneof("value") not in (None, "tensor_type")
               for vi in (*graph.input, *graph.output)) or _holds_sequence_ops(graph)


def _holds_sequence_ops(graph: GraphProto) -> bool:
    for node in graph.node:
        if _is_sequence_op(node):
            return True
        for attr in node.attribute:
            if any(_holds_sequence_ops(g) for g in [attr.g] if attr.HasField("g")) or any(
                    _holds_sequence_ops(g) for g in attr.graphs):
                return True
    return False


def _is_sequence_op(node: NodeProto) -> bool:
    return node.op_type in SEQUENCE_OPS and node.domain in _DEFAULT_DOMAINS


def lower_sequences(model: ModelProto, control: Callable[[ModelProto], ModelProto],
                    source: str = "model") -> ModelProto:
    """`model` (a copy) with its sequences and optionals lowered into tensors, as the module
    docstring says, alternating with `control` (onnx_control's lowering of If, Loop and Scan);
    a ModelImportError naming every tensor and node that cannot be."""
    for _ in range(_MAX_ROUNDS):
        lowered, problems = _Lowering(model).run()
        after = control(lowered)
        if lowered is model and after is model:
            break
        model = after
    else:
        _, problems = _Lowering(model).run()
    if problems:
        raise ModelImportError(problems, source)
    return model


class _Lowering:
    """One round: the graph's sequence and optional nodes lowered where their inputs are known;
    the others stay, with the reason."""

    def __init__(self, model: ModelProto) -> None:
        self.model = model
        graph = model.graph
        self.opset = next((o.version for o in model.opset_import
                           if o.domain in _DEFAULT_DOMAINS), 1)
        self.shapes = _static_shapes(model)
        self.known = constant_values(_without_sequence_ops(graph), self.shapes)

    def run(self) -> tuple[ModelProto, list[NodeProblem]]:
        """(the lowered model, or `model` itself where nothing is lowered; the problems)."""
        graph = self.model.graph
        walk = _Walk(self)
        walk.run(graph)
        problems = walk.io_problems(graph) + walk.problems
        nodes = walk.nodes()
        if not walk.lowered or (len(nodes) == len(graph.node) and all(
                a.SerializeToString() == b.SerializeToString()
                for a, b in zip(nodes, graph.node, strict=True))):
            return self.model, problems  # nothing, or only lists rebuilt as they were
        copy = ModelProto()
        copy.CopyFrom(self.model)
        del copy.graph.node[:]
        copy.graph.node.extend(nodes)
        copy.graph.initializer.extend(walk.initializers)
        keep = [vi for vi in copy.graph.value_info if vi.name not in walk.values]
        del copy.graph.value_info[:]
        copy.graph.value_info.extend(keep)  # a lowered sequence's declared type goes with it
        return copy, problems


class _Walk:
    """The graph's nodes in order, each lowered or kept. A node that stays (an If or Loop not
    lowered yet) and reads a known list gets it rebuilt from its elements just before it
    (SequenceConstruct, Optional): lowered again next round, after the If or Loop is."""

    def __init__(self, lowering: _Lowering) -> None:
        self.lowering = lowering
        self.known, self.shapes, self.opset = lowering.known, lowering.shapes, lowering.opset
        self.values: dict[str, _Seq | _Opt] = {}  # sequences and optionals known here
        self.unknown: dict[str, str] = {}  # possibly a sequence or optional: why not known
        self.slots: list[list[NodeProto]] = []  # per node of the graph: what stands for it
        self.initializers: list[TensorProto] = []
        self.problems: list[NodeProblem] = []
        self.lowered: list[int] = []  # positions of the nodes lowered
        self.rebuilt: set[str] = set()  # known lists rebuilt for a node that stays

    # -- the walk ------------------------------------------------------------------------------
    def run(self, graph: GraphProto) -> None:
        self.graph = graph
        for vi in graph.input:
            kind = vi.type.WhichOneof("value")
            if kind not in (None, "tensor_type"):
                self.unknown[vi.name] = f"the graph input '{vi.name}', {_kind_text(kind)}"
        for index, node in enumerate(graph.node):
            try:
                new = self._lower(index, node)
            except _Blocked as why:
                self._keep(node, str(why))
                continue
            if new is None:
                self._keep(node, None)
                continue
            self.lowered.append(index)
            self.slots.append(new)

    def nodes(self) -> list[NodeProto]:
        return [n for slot in self.slots for n in slot]

    def _keep(self, node: NodeProto, reason: str | None) -> None:
        reads = dict.fromkeys(x for x in (*node.input, *_subgraph_reads(node))
                              if x in self.values and x not in self.rebuilt)
        self.slots.append([n for x in reads for n in self._rebuild(x, self.values[x])] + [node])
        self.rebuilt.update(reads)
        owner = f"node '{node.name or node.op_type}' ({node.op_type})"
        if reason is not None:
            self.problems.append(NodeProblem(node.name, node.op_type, reason))
            if node.op_type not in _TENSOR_RESULTS:
                for out in node.output:
                    if out:
                        self.unknown[out] = f"made by {owner}, which is not lowered"
            return
        reads = [x for x in node.input if x in self.values or x in self.unknown]
        if reads and node.op_type not in _CONTROL:
            self.problems.append(NodeProblem(node.name, node.op_type, (
                f"reads '{reads[0]}', a sequence or optional: only the sequence and optional "
                f"operators, Identity, {', '.join(_CONTROL)} may")))
        if node.op_type in _CONTROL:  # its outputs may be sequences or optionals
            for out, kind in zip(node.output, _control_output_kinds(node), strict=False):
                if out and kind not in (None, "tensor_type"):
                    self.unknown[out] = f"made by {owner}, which is not lowered"

    def _rebuild(self, name: str, value: _Seq | _Opt) -> list[NodeProto]:
        """Nodes that make `name` again, an ONNX sequence or optional, from its elements."""
        made = f"{name}#rebuilt"
        if isinstance(value, _Opt):
            held = value.value
            if held is None:
                return [helper.make_node("Optional", [], [name], name=made,
                                         type=helper.make_tensor_type_proto(value.dtype, None))]
            nodes = []
            if isinstance(held, _Seq):
                nodes, held = self._rebuild(made, held), made
            return [*nodes, helper.make_node("Optional", [held], [name], name=f"{made}#optional")]
        if not value.elements:
            return [helper.make_node("SequenceEmpty", [], [name], name=made, dtype=value.dtype)]
        return [helper.make_node("SequenceConstruct", list(value.elements), [name], name=made)]

    def io_problems(self, graph: GraphProto) -> list[NodeProblem]:
        problems = []
        for vi, what in [*((vi, "input") for vi in graph.input),
                         *((vi, "output") for vi in graph.output)]:
            kind = vi.type.WhichOneof("value")
            value = self.values.get(vi.name)
            if kind in (None, "tensor_type") and value is None:
                continue
            text = _kind_text(kind) if kind not in (None, "tensor_type") else \
                ("a sequence" if isinstance(value, _Seq) else "an optional")
            problems.append(NodeProblem(vi.name, f"graph {what}", (
                f"is {text}: a plan's inputs and outputs are tensors (ember lowers sequences "
                "and optionals inside a model only, where their length or presence is known "
                "when it is built)")))
        return problems

    # -- one node ------------------------------------------------------------------------------
    def _lower(self, index: int, node: NodeProto) -> list[NodeProto] | None:
        """The nodes replacing `node`, or None where it is not a sequence's concern."""
        if node.op_type == "Identity" and node.domain in _DEFAULT_DOMAINS and node.input \
                and (node.input[0] in self.values or node.input[0] in self.unknown):
            self.values[node.output[0]] = self._known(node.input[0])
            return []
        if not _is_sequence_op(node):
            return None
        handler = getattr(self, f"_{node.op_type}")
        return handler(_unique(node, index, self.lowering.model.graph), node)

    def _known(self, name: str) -> _Seq | _Opt:
        if name in self.values:
            return self.values[name]
        if name in self.unknown:
            raise _Blocked(f"its input '{name}' is not known when the model is built "
                           f"({self.unknown[name]})")
        raise _Blocked(f"its input '{name}' is a tensor, not a sequence")

    def _seq(self, name: str) -> tuple[str, ...]:
        return self._list(name).elements

    def _list(self, name: str) -> _Seq:
        value = self._known(name)
        if isinstance(value, _Opt):
            if not isinstance(value.value, _Seq):
                raise _Blocked(f"its input '{name}' is an optional that holds no sequence")
            return value.value
        return value

    def _int(self, node: NodeProto, name: str, what: str) -> int:
        value = self.known.get(name)
        if value is None or np.asarray(value).size != 1 or np.asarray(value).dtype.kind not in "iu":
            raise _Blocked(f"its {what} '{name}' is a run-time value: run-time parameters of "
                           "sequence operators are not supported (it must be a constant when "
                           "the model is built)")
        return int(np.asarray(value).reshape(-1)[0])

    def _position(self, node: NodeProto, count: int, default: int, inserting: bool) -> int:
        given = len(node.input) > (2 if node.op_type == "SequenceInsert" else 1) and \
            node.input[-1]
        at = self._int(node, node.input[-1], "position") if given else default
        high = count if inserting else count - 1
        if not -count <= at <= high:
            raise _Blocked(f"position {at} is out of range for a sequence of {count} "
                           f"element(s) (allowed: {-count} to {high})")
        return at + count if at < 0 else at

    def _constant(self, out: str, value: np.ndarray, name: str) -> list[NodeProto]:
        return [helper.make_node("Constant", [], [out], name=name,
                                 value=numpy_helper.from_array(value, f"{name}#value"))]

    def _ints_init(self, name: str, values: list[int]) -> str:
        self.initializers.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    # -- the operators (each: the node's unique name, the node) ----------------------------------
    def _SequenceConstruct(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        self.values[node.output[0]] = _Seq(tuple(node.input))
        return []

    def _SequenceEmpty(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        dtype = next((a.i for a in node.attribute if a.name == "dtype"), TensorProto.FLOAT)
        self.values[node.output[0]] = _Seq((), dtype)
        return []

    def _SequenceInsert(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        seq = self._list(node.input[0])
        elements = seq.elements
        at = self._position(node, len(elements), len(elements), inserting=True)
        self.values[node.output[0]] = _Seq((*elements[:at], node.input[1], *elements[at:]),
                                           seq.dtype)
        return []

    def _SequenceErase(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        seq = self._list(node.input[0])
        elements = seq.elements
        if not elements:
            raise _Blocked("erases from an empty sequence")
        at = self._position(node, len(elements), -1, inserting=False)
        self.values[node.output[0]] = _Seq((*elements[:at], *elements[at + 1:]), seq.dtype)
        return []

    def _SequenceAt(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        elements = self._seq(node.input[0])
        if len(node.input) < 2 or not node.input[1]:
            raise _Blocked("its position input is missing")
        if not elements:
            raise _Blocked("reads an element of an empty sequence")
        at = self._position(node, len(elements), 0, inserting=False)
        return [helper.make_node("Identity", [elements[at]], [node.output[0]], name=name)]

    def _SequenceLength(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        elements = self._seq(node.input[0])
        return self._constant(node.output[0], np.array(len(elements), np.int64), name)

    def _ConcatFromSequence(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        elements = self._seq(node.input[0])
        attrs = {a.name: a.i for a in node.attribute}
        if "axis" not in attrs:
            raise _Blocked("its required attribute 'axis' is missing")
        if not elements:
            raise _Blocked("concatenates an empty sequence")
        axis, new_axis = attrs["axis"], attrs.get("new_axis", 0)
        nodes, parts = [], list(elements)
        if new_axis:
            axes = self._ints_init(f"{name}#axes", [axis]) if self.opset >= 13 else None
            parts = []
            for i, element in enumerate(elements):
                part = f"{name}#part{i}"
                nodes.append(helper.make_node("Unsqueeze", [element, axes], [part], name=part)
                             if axes else
                             helper.make_node("Unsqueeze", [element], [part], name=part,
                                              axes=[axis]))
                parts.append(part)
        nodes.append(helper.make_node("Concat", parts, [node.output[0]], name=name, axis=axis))
        return nodes

    def _SplitToSequence(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        attrs = {a.name: a.i for a in node.attribute}
        axis, keepdims = attrs.get("axis", 0), attrs.get("keepdims", 1)
        x = node.input[0]
        split = node.input[1] if len(node.input) > 1 and node.input[1] else None
        value = None if split is None else self.known.get(split)
        if split is not None and value is None:
            raise _Blocked(f"its split '{split}' is a run-time value: run-time parameters of "
                           "sequence operators are not supported (it must be a constant when "
                           "the model is built)")
        if value is not None and np.asarray(value).ndim > 0:
            sizes = [int(s) for s in np.asarray(value).reshape(-1)]
            shape = self.shapes.get(x)
            dim = shape[axis] if shape is not None and -len(shape) <= axis < len(shape) \
                else None
            if any(s < 0 for s in sizes) or (isinstance(dim, int) and sum(sizes) != dim):
                raise _Blocked(f"its split '{split}' {sizes} does not split the {dim} "
                               f"elements of '{x}' along axis {axis}")
        else:  # chunks of 1 (no split) or of a scalar split: the length is the dim's
            shape = self.shapes.get(x)
            if shape is None or not -len(shape) <= axis < len(shape):
                raise _Blocked(f"its input '{x}' has no static shape along axis {axis}: the "
                               "sequence's length would be a run-time value")
            dim = shape[axis]
            chunk = 1 if value is None else int(np.asarray(value))
            if chunk <= 0:
                raise _Blocked(f"its split '{split}' is {chunk}: a chunk size must be > 0")
            sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
        squeeze = split is None and not keepdims
        if not sizes:
            self.values[node.output[0]] = _Seq(())
            return []
        parts = [f"{name}#part{i}" for i in range(len(sizes))]
        if self.opset >= 13:
            nodes = [helper.make_node("Split", [x, self._ints_init(f"{name}#split", sizes)],
                                      parts, name=name, axis=axis)]
        else:
            nodes = [helper.make_node("Split", [x], parts, name=name, axis=axis, split=sizes)]
        elements = parts
        if squeeze:
            axes = self._ints_init(f"{name}#axes", [axis]) if self.opset >= 13 else None
            elements = [f"{p}#squeezed" for p in parts]
            nodes += [helper.make_node("Squeeze", [p, axes], [e], name=e) if axes else
                      helper.make_node("Squeeze", [p], [e], name=e, axes=[axis])
                      for p, e in zip(parts, elements, strict=True)]
        self.values[node.output[0]] = _Seq(tuple(elements))
        return nodes

    def _SequenceMap(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        body = _graph_attr(node, "body")
        if len(body.input) != len(node.input) or len(body.output) != len(node.output):
            raise _Blocked(f"its body has {len(body.input)} input(s) and {len(body.output)} "
                           f"output(s) for {len(node.input)} and {len(node.output)}")
        sources: list[tuple[str, ...] | str] = [self._seq(node.input[0])]
        for x in node.input[1:]:  # a sequence: element i; a tensor: itself
            sources.append(self._seq(x) if x in self.values or x in self.unknown else x)
        lengths = {len(s) for s in sources if isinstance(s, tuple)}
        if len(lengths) != 1:
            raise _Blocked(f"its input sequences differ in length ({sorted(lengths)})")
        count = lengths.pop()
        nodes: list[NodeProto] = []
        made: list[list[str]] = [[] for _ in node.output]
        for i in range(count):
            bind = {vi.name: (s[i] if isinstance(s, tuple) else s)
                    for vi, s in zip(body.input, sources, strict=True)}
            targets = [f"{name}#{i}#out{k}" for k in range(len(body.output))]
            scratch = GraphProto()  # where _inline puts the body's initializers
            nodes += _inline(body, f"{name}::{i}::", scratch, bind, targets)
            self.initializers.extend(scratch.initializer)
            for k, t in enumerate(targets):
                made[k].append(t)
        for out, elements in zip(node.output, made, strict=True):
            if out:
                self.values[out] = _Seq(tuple(elements))
        return nodes

    def _Optional(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        x = node.input[0] if node.input and node.input[0] else None
        if x is None:
            kind = next((a.tp for a in node.attribute if a.name == "type"), None)
            dtype = kind.tensor_type.elem_type if kind is not None and kind.HasField(
                "tensor_type") else TensorProto.FLOAT
            self.values[node.output[0]] = _Opt(None, dtype)
        elif x in self.values or x in self.unknown:
            held = self._known(x)
            if isinstance(held, _Opt):
                raise _Blocked(f"its input '{x}' is an optional (an optional holds a tensor or "
                               "a sequence)")
            self.values[node.output[0]] = _Opt(held)
        else:
            self.values[node.output[0]] = _Opt(x)
        return []

    def _OptionalHasElement(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        x = node.input[0] if node.input and node.input[0] else None
        if x is None:
            has = False
        elif x in self.values or x in self.unknown:
            held = self._known(x)
            has = not isinstance(held, _Opt) or held.value is not None
        else:
            has = True  # a tensor (opset 18 on)
        return self._constant(node.output[0], np.array(has), name)

    def _OptionalGetElement(self, name: str, node: NodeProto) -> list[NodeProto]:  # noqa: N802
        x = node.input[0]
        if x not in self.values and x not in self.unknown:  # a tensor: itself (opset 18 on)
            return [helper.make_node("Identity", [x], [node.output[0]], name=name)]
        held = self._known(x)
        if isinstance(held, _Opt):
            if held.value is None:
                raise _Blocked(f"its input '{x}' is an empty optional")
            held = held.value
        if isinstance(held, _Seq):
            self.values[node.output[0]] = held
            return []
        return [helper.make_node("Identity", [held], [node.output[0]], name=name)]


def _kind_text(kind: str | None) -> str:
    return {"sequence_type": "a sequence", "optional_type": "an optional",
            "map_type": "a map", "sparse_tensor_type": "a sparse tensor"}.get(
        kind or "", f"a {kind or 'untyped'} value")


def _control_output_kinds(node: NodeProto) -> list[str | None]:
    """The kinds (tensor_type, sequence_type, ...) of an If's, Loop's or Scan's outputs, from
    its subgraphs' declared outputs."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "If" and "then_branch" in attrs:
        return [vi.type.WhichOneof("value") for vi in attrs["then_branch"].g.output]
    if node.op_type == "Loop" and "body" in attrs:
        return [vi.type.WhichOneof("value") for vi in attrs["body"].g.output[1:]]
    return ["tensor_type"] * len(node.output)


def _subgraph_reads(node: NodeProto) -> set[str]:
    """The names a node's subgraphs (an If's branches, a Loop's body) read, at any depth: outer
    tensors among them (a name a subgraph defines itself too: it is only kept the longer)."""
    names: set[str] = set()
    for attr in node.attribute:
        for graph in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for inner in graph.node:
                names.update(inner.input)
                names |= _subgraph_reads(inner)
            names.update(vi.name for vi in graph.output)
    return names


def _without_sequence_ops(graph: GraphProto) -> GraphProto:
    """The graph's small initializers, inputs and nodes but its sequence and optional ones
    (constant_values is asked for positions only: never to evaluate a sequence). An
    initializer that is a graph input too is a constant, as the importer makes it one."""
    light = GraphProto()
    initialized = {t.name for t in graph.initializer}
    light.input.extend(vi for vi in graph.input if vi.name not in initialized)
    light.initializer.extend(t for t in graph.initializer
                             if int(np.prod(t.dims)) <= _MAX_ELEMENTS)
    light.node.extend(n for n in graph.node if not _is_sequence_op(n))
    return light


__all__ = ["SEQUENCE_OPS", "has_sequences", "lower_sequences"]
