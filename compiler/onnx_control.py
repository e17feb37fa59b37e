"""Control flow the importer lowers before it imports a model: ONNX If and Loop nodes become
plain nodes where their behaviour is known when the model is built.

- An If whose condition is known (exporters and ONNX functions, AffineGrid for one, write `If`
  on values that are constants once the attributes are known: `align_corners == 0`, a rank
  test) becomes the branch it takes. The condition is computed from the model's constants
  (initializers, Constant nodes and what small nodes make of them, evaluated with
  onnx.reference; Shape and Size of tensors of static shape).
- A Loop with a known trip count whose condition stays true (PyTorch's `for i in
  range(x.size(0))` over a static dim: `cond` true, the body's `cond_out` the same) is
  unrolled: one copy of the body per iteration, the iteration number a constant, the
  loop-carried values chained, each scan output stacked along a new axis 0 (Unsqueeze, Concat).
- A Loop with a run-time trip count or condition whose scan outputs declare a static length
  (the model's output types, carried back through shape-keeping ops) is unrolled to that
  length, each iteration's condition the previous one's cond_out, with an ember Assert (domain
  `ember.internal`, imported as nn.assert) that it runs exactly that many iterations: the run
  fails, naming the Loop, where the data would make it run more or fewer.
- A Scan (opset 9 on) over scan inputs of static length is unrolled likewise: each step reads
  element t of every scan input (Gather along its axis, from the end for direction 1).
- An If on a run-time condition whose outputs have static shapes (both branches agree on them:
  ONNX's inference gives the If's outputs a shape only then) computes both branches and picks
  with Where (if-conversion). Both run: a branch that fails on data the condition excludes
  (an index out of range) fails the run, where the If would not have run it.

Branch and body nodes keep reading outer-scope tensors by name; their own tensors are renamed
under the node's name (`<If>::`, `<Loop>::<i>::`; the node's position joins a name that is
empty or not unique), and the tensors made here carry a `#` after that prefix
(`<Loop>::<i>#cond`), so no body tensor's new name can be one of them. A Loop with a run-time
trip count or condition and no declared scan length, a Loop of more than MAX_UNROLL
iterations, and an If on a run-time value whose output shapes are not static stay, and the
importer names them: control flow on run-time values is not supported yet, nor is opset 8's
Scan (batched, with sequence lengths).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, helper, numpy_helper

from ember.compiler import declared_shapes

_MAX_ELEMENTS = 1 << 16  # constants folded to decide conditions are small
# operators whose result is not a function of their inputs: never evaluated at build time
NOT_FOLDED = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
              "Multinomial", "Bernoulli", "Dropout")
_MAX_ROUNDS = 16  # nested control flow resolved one level per round
MAX_UNROLL = 1024  # iterations of one Loop unrolled at most
_MAX_UNROLLED_NODES = 100_000  # nodes one unrolled Loop may add


def lower_control_flow(model: ModelProto) -> ModelProto:
    """`model` (a copy) with its If and Loop nodes lowered as the module docstring says; the
    model itself when none is."""
    for _ in range(_MAX_ROUNDS):
        graph = model.graph
        if not any(_control(n) for n in graph.node):
            return model
        shapes = _static_shapes(model)
        known = constant_values(graph, shapes)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        copy = ModelProto()
        copy.CopyFrom(model)
        rewrite = _Rewrite(copy.graph, known, shapes, opset)
        nodes = [rewrite.constant_if(i, n) or rewrite.loop(i, n) or rewrite.scan(i, n) or [n]
                 for i, n in enumerate(copy.graph.node)]
        if not rewrite.changed:  # only then: a condition may become known after a rewrite
            nodes = [rewrite.select_if(i, n) or [n] for i, n in enumerate(copy.graph.node)]
        if not rewrite.changed:
            return model
        del copy.graph.node[:]
        copy.graph.node.extend(n for group in nodes for n in group)
        _import_internal_domain(copy)
        model = copy
    return model


def _import_internal_domain(model: ModelProto) -> None:
    """A model that holds ember's own Assert nodes imports their domain (as ONNX requires)."""
    from ember.compiler.onnx_importer import INTERNAL_DOMAIN

    if any(n.domain == INTERNAL_DOMAIN for n in model.graph.node) and not any(
            o.domain == INTERNAL_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(INTERNAL_DOMAIN, 1))


def _control(node: NodeProto) -> bool:
    return node.op_type in ("If", "Loop", "Scan") and node.domain in ("", "ai.onnx")


class _Rewrite:
    """One round's rewrites of a graph's control-flow nodes (each returns the nodes replacing
    one node, or None to keep it)."""

    def __init__(self, graph: GraphProto, known: dict[str, np.ndarray],
                 shapes: dict[str, list[int]], opset: int) -> None:
        self.graph, self.known, self.shapes, self.opset = graph, known, shapes, opset
        self.changed = False

    def _value(self, name: str) -> np.ndarray | None:
        value = self.known.get(name)
        return None if value is None or np.asarray(value).size != 1 else np.asarray(value)

    def constant_if(self, index: int, node: NodeProto) -> list[NodeProto] | None:
        if node.op_type != "If" or not _control(node) or not node.input:
            return None
        cond = self._value(node.input[0])
        if cond is None:
            return None
        self.changed = True
        branch = _graph_attr(node, "then_branch" if bool(cond.reshape(-1)[0]) else "else_branch")
        return _inline(branch, f"{_unique(node, index, self.graph)}::", self.graph, {},
                       list(node.output))

    def select_if(self, index: int, node: NodeProto) -> list[NodeProto] | None:
        """Both branches and a Where per output, where every output's shape is static."""
        if node.op_type != "If" or not _control(node) or not node.input or self.opset < 9:
            return None
        branches = [_graph_attr(node, b) for b in ("then_branch", "else_branch")]
        outputs = list(node.output)
        if not outputs or any(not o or o not in self.shapes for o in outputs) or any(
                len(b.output) != len(outputs) or any(
                    not vi.type.HasField("tensor_type") for vi in b.output) for b in branches):
            return None
        self.changed = True
        name = _unique(node, index, self.graph)
        prefix = f"{name}::"
        cond, shape = f"{name}#cond", f"{name}#scalar_shape"
        self.graph.initializer.append(numpy_helper.from_array(np.zeros(0, np.int64), shape))
        nodes = [helper.make_node("Reshape", [node.input[0], shape], [cond], name=cond)]
        picked = []
        for b, side in zip(branches, ("then", "else"), strict=True):
            targets = [f"{name}#{side}#{o}" for o in outputs]
            nodes += _inline(b, f"{prefix}{side}::", self.graph, {}, targets)
            picked.append(targets)
        nodes += [helper.make_node("Where", [cond, t, e], [o], name=f"{name}#select#{o}")
                  for o, t, e in zip(outputs, *picked, strict=True)]
        return nodes

    def loop(self, index: int, node: NodeProto) -> list[NodeProto] | None:
        """The Loop unrolled: where its trip count is known and its condition stays true, or
        else (a run-time trip count or condition) to the length its scan outputs declare, with
        an assertion that it runs exactly that many iterations."""
        if node.op_type != "Loop" or not _control(node) or len(node.input) < 2:
            return None
        body = _graph_attr(node, "body")
        carried = list(node.input[2:])
        if len(body.input) != 2 + len(carried) or len(body.output) < 1 + len(carried):
            return None
        trips = self._value(node.input[0]) if node.input[0] else None
        known = trips is not None and trips.dtype.kind in "iu"
        cond = self._value(node.input[1]) if node.input[1] else np.array(True)
        # the body's cond_out must be true whatever the iteration: known with cond_in true (and
        # the outer constants it may read: TorchScript's exporter writes Identity(outer true))
        seed = {**self.known, body.input[1].name: np.array(True)}
        out = constant_values(body, seed=seed).get(body.output[0].name)
        always = cond is not None and bool(cond.reshape(-1)[0]) and out is not None and \
            np.asarray(out).size == 1 and bool(np.asarray(out).reshape(-1)[0])
        if known and always:
            count, checked = int(trips.reshape(-1)[0]), False  # type: ignore[union-attr]
        else:
            count, checked = self._declared_iterations(node, len(carried)), True
            if count is None:
                return None
        if not 0 < count <= MAX_UNROLL or count * len(body.node) > _MAX_UNROLLED_NODES:
            return None
        self.changed = True
        name = _unique(node, index, self.graph)
        nodes: list[NodeProto] = []
        iter_type = body.input[0].type.tensor_type.elem_type or 7
        stacked: list[list[str]] = [[] for _ in body.output[1 + len(carried):]]
        truth = f"{name}#true"
        self.graph.initializer.append(numpy_helper.from_array(np.array(True), truth))
        # each iteration's condition in: the Loop's (true where absent), then the last cond_out
        conds = [node.input[1] if checked and node.input[1] else truth]
        for i in range(count):
            prefix = f"{name}::{i}::"  # the body's own tensors; what is made here: `#`
            number = f"{name}::{i}#iteration"
            self.graph.initializer.append(numpy_helper.from_array(
                np.array(i, helper.tensor_dtype_to_np_dtype(iter_type)), number))
            bind = {body.input[0].name: number, body.input[1].name: conds[-1],
                    **{vi.name: v for vi, v in zip(body.input[2:], carried, strict=True)}}
            targets = [f"{name}::{i}#out0" if checked else "",
                       *(f"{name}::{i}#out{k}" for k in range(1, len(body.output)))]
            nodes += _inline(body, prefix, self.graph, bind, targets)
            conds.append(targets[0] or truth)
            carried = targets[1:1 + len(carried)]
            for k, t in enumerate(targets[1 + len(carried):]):
                stacked[k].append(t)
        if checked:
            nodes += self._assert_iterations(name, node.input[0], conds, count)
        for value, target in zip(carried, node.output, strict=False):
            if target:
                nodes.append(helper.make_node("Identity", [value], [target],
                                              name=f"{name}#{target}"))
        for values, target in zip(stacked, node.output[len(carried):], strict=False):
            if target:
                nodes += self._stack(values, target, f"{name}#{target}")
        return nodes

    def _declared_iterations(self, node: NodeProto, carried: int) -> int | None:
        """The iterations a Loop runs as its scan outputs' declared (static) length says; None
        where it has none or they disagree."""
        lengths = {self.shapes[t][0] for t in node.output[carried:]
                   if t and self.shapes.get(t)}
        return lengths.pop() if len(lengths) == 1 else None

    def _assert_iterations(self, name: str, trips: str, conds: list[str],
                           count: int) -> list[NodeProto]:
        """An ember Assert that the Loop runs exactly `count` iterations: each iteration i <
        count has i < trip count (where given) and a true condition in; iteration `count` has
        not."""
        from ember.compiler.onnx_importer import INTERNAL_DOMAIN

        nodes: list[NodeProto] = []

        def runs(i: int) -> str:
            """Whether iteration i runs (a bool tensor)."""
            if not trips:
                return conds[i]
            number, below, both = (f"{name}#{i}#{s}" for s in ("number", "below", "runs"))
            self.graph.initializer.append(numpy_helper.from_array(np.array(i, np.int64),
                                                                  number))
            nodes.append(helper.make_node("Less", [number, trips], [below], name=below))
            nodes.append(helper.make_node("And", [below, conds[i]], [both], name=both))
            return both

        ok = runs(0)
        for i in range(1, count):
            step = f"{name}#{i}#ok"
            nodes.append(helper.make_node("And", [ok, runs(i)], [step], name=step))
            ok = step
        stop, done = f"{name}#stops", f"{name}#exact"
        nodes.append(helper.make_node("Not", [runs(count)], [stop], name=stop))
        nodes.append(helper.make_node("And", [ok, stop], [done], name=done))
        nodes.append(helper.make_node(
            "Assert", [done], [], name=f"{name}#assert", domain=INTERNAL_DOMAIN,
            message=f"Loop '{name}' must run exactly {count} iterations (its scan outputs' "
                    "declared length), as the plan was built for"))
        return nodes

    def scan(self, index: int, node: NodeProto) -> list[NodeProto] | None:
        """The Scan (opset 9 on) unrolled over its scan inputs' static length: step t reads
        element t of each (Gather along its axis; from the end where its direction is 1), the
        states chain, and each scan output is stacked along its axis (reversed where its
        direction is 1)."""
        if node.op_type != "Scan" or not _control(node) or self.opset < 9:
            return None
        body = _graph_attr(node, "body")
        attrs = {a.name: a for a in node.attribute}
        m = attrs["num_scan_inputs"].i if "num_scan_inputs" in attrs else 0
        states = list(node.input[:len(node.input) - m])
        scans = list(node.input[len(states):])

        def ints(name: str, count: int) -> list[int]:
            return list(attrs[name].ints) if name in attrs else [0] * count

        in_axes, in_dirs = ints("scan_input_axes", m), ints("scan_input_directions", m)
        k = len(body.output) - len(states)
        out_axes, out_dirs = ints("scan_output_axes", k), ints("scan_output_directions", k)
        lengths = set()
        for name, axis in zip(scans, in_axes, strict=True):
            shape = self.shapes.get(name)
            if shape is None:
                return None
            lengths.add(shape[axis])
        if m < 1 or len(lengths) != 1 or len(body.input) != len(states) + m:
            return None
        steps = lengths.pop()
        if not 0 < steps <= MAX_UNROLL or steps * len(body.node) > _MAX_UNROLLED_NODES:
            return None
        self.changed = True
        name = _unique(node, index, self.graph)
        nodes: list[NodeProto] = []
        stacked: list[list[str]] = [[] for _ in range(k)]
        for t in range(steps):
            prefix = f"{name}::{t}::"
            bind = dict(zip((vi.name for vi in body.input), states, strict=False))
            for j, (value, axis, backwards) in enumerate(zip(scans, in_axes, in_dirs,
                                                             strict=True)):
                at, element = f"{name}::{t}#at{j}", f"{name}::{t}#element{j}"
                self.graph.initializer.append(numpy_helper.from_array(
                    np.array(steps - 1 - t if backwards else t, np.int64), at))
                nodes.append(helper.make_node("Gather", [value, at], [element], name=element,
                                              axis=axis))
                bind[body.input[len(states) + j].name] = element
            targets = [f"{name}::{t}#out{i}" for i in range(len(body.output))]
            nodes += _inline(body, prefix, self.graph, bind, targets)
            states = targets[:len(states)]
            for i, value in enumerate(targets[len(states):]):
                stacked[i].append(value)
        for value, target in zip(states, node.output, strict=False):
            if target:
                nodes.append(helper.make_node("Identity", [value], [target],
                                              name=f"{name}#{target}"))
        for i, target in enumerate(node.output[len(states):]):
            if target:
                values = stacked[i][::-1] if out_dirs[i] else stacked[i]
                nodes += self._stack(values, target, f"{name}#{target}", out_axes[i])
        return nodes

    def _stack(self, values: list[str], target: str, prefix: str, axis: int = 0
               ) -> list[NodeProto]:
        """`values` stacked along a new axis `axis` into `target` (a Loop's or Scan's scan
        output)."""
        nodes, parts = [], []
        axes = f"{prefix}#axes"
        if self.opset >= 13:
            self.graph.initializer.append(numpy_helper.from_array(np.array([axis], np.int64),
                                                                  axes))
        for i, v in enumerate(values):
            part = f"{prefix}#{i}"
            nodes.append(helper.make_node("Unsqueeze", [v, axes], [part], name=part)
                         if self.opset >= 13 else
                         helper.make_node("Unsqueeze", [v], [part], name=part, axes=[axis]))
            parts.append(part)
        nodes.append(helper.make_node("Concat", parts, [target], name=prefix, axis=axis))
        return nodes


def _unique(node: NodeProto, index: int, graph: GraphProto) -> str:
    """The name the tensors made for a control-flow node go under: its name where no other
    node of the graph has it, else (and for an unnamed node) the name with its position."""
    if node.name and sum(n.name == node.name for n in graph.node) == 1:
        return node.name
    return f"{node.name or node.op_type}@{index}"


def _graph_attr(node: NodeProto, name: str) -> GraphProto:
    return next(a.g for a in node.attribute if a.name == name)


def _inline(body: GraphProto, prefix: str, graph: GraphProto, bind: dict[str, str],
            targets: list[str]) -> list[NodeProto]:
    """`body`'s nodes with its own tensors renamed under `prefix` and its inputs read from
    `bind`, its outputs written by Identity nodes to `targets` (an empty target: not written);
    its initializers added to `graph`."""
    local = {t.name for t in body.initializer} | {o for n in body.node for o in n.output}
    rename = {name: prefix + name for name in local if name}
    rename.update(bind)
    for t in body.initializer:
        copy = type(t)()
        copy.CopyFrom(t)
        copy.name = rename[t.name]
        graph.initializer.append(copy)
    out: list[NodeProto] = []
    for n in body.node:
        new = NodeProto()
        new.CopyFrom(n)
        new.name = prefix + (n.name or f"{n.op_type}_{len(out)}")
        new.input[:] = [rename.get(x, x) for x in n.input]
        new.output[:] = [rename.get(x, x) for x in n.output]
        for attr in new.attribute:  # nested graphs read the body's tensors by name too
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename_reads(sub, rename)
        out.append(new)
    for result, target in zip(body.output, targets, strict=False):
        if target:
            out.append(helper.make_node("Identity", [rename.get(result.name, result.name)],
                                        [target], name=f"{prefix}{target}"))
    return out


def _static_shapes(model: ModelProto) -> dict[str, list[int]]:
    """Tensor name -> its static shape, from the model's types (its outputs' too: a model
    promises them) and ONNX's inference."""
    import onnx

    from ember.compiler.onnx_importer import inference_is_safe

    try:  # data propagation: a Reshape to a Concat of Shape slices (function bodies) too
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph \
            if inference_is_safe(model.graph) else model.graph
    except Exception:  # noqa: BLE001 -- inference is a help: the declared types alone
        inferred = model.graph
    types = {}
    for vi in [*model.graph.input, *model.graph.value_info, *inferred.value_info,
               *inferred.input, *model.graph.output, *inferred.output]:
        t = vi.type.tensor_type
        static = t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim)
        if vi.type.HasField("tensor_type") and (vi.name not in types or static):
            types[vi.name] = vi.type
    declared_shapes.refine(model.graph, types)  # a declared output's shape, carried back
    return {name: [d.dim_value for d in tp.tensor_type.shape.dim] for name, tp in types.items()
            if tp.tensor_type.HasField("shape") and all(
                d.HasField("dim_value") for d in tp.tensor_type.shape.dim)}


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


def constant_values(graph: GraphProto, shapes: dict[str, list[int]] | None = None,
                    seed: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The values of the graph's small constants (at most 65536 elements): initializers,
    Constant nodes, Shape and Size of tensors of static `shapes`, and the nodes (not If, Loop,
    Scan, nor the random ones of NOT_FOLDED) whose inputs are all such, evaluated with
    onnx.reference; `seed`: values known besides (a Loop body's cond_in)."""
    shapes = shapes or {}
    from onnx.reference import ReferenceEvaluator

    inputs = {vi.name for vi in graph.input}
    known = {t.name: numpy_helper.to_array(t) for t in graph.initializer
             if t.name not in inputs and math.prod(t.dims) <= _MAX_ELEMENTS}
    known.update(seed or {})
    for node in graph.node:
        if node.op_type in ("If", "Loop", "Scan", *NOT_FOLDED) \
                or node.domain not in ("", "ai.onnx"):
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


__all__ = ["MAX_UNROLL", "NOT_FOLDED", "constant_values", "lower_control_flow"]
