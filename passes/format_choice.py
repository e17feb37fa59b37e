"""The format-choice problem that `choose-formats` solves and `assign-layouts` applies.

A `FormatGraph` holds kernels (nodes), each with the formats it may run in and its cost in each
(seconds), and the activations between them (values), each with its producer, its consumers and
the cost of reformatting it from one format to another. An assignment gives each node a format;
its cost is every node's kernel cost in its format plus, for each value, one reformat per
distinct format its consumers run in other than its producer's (assign-layouts converts a value
once per format and shares the copy). `solve` finds a cheap assignment by dynamic programming
over the graph in topological order, as TensorRT's builder does (see `solve` for where it is
exact). The IR records the choice with the attributes named here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, StringAttr
from xdsl.ir import Operation, SSAValue

# a kernel op's chosen format (choose-formats writes it, assign-layouts applies it) and its cost
# in each candidate format (microseconds); the function's summary (source, totals, the formats
# of its arguments)
FORMAT_ATTR = "format"
FORMAT_COSTS_ATTR = "format_costs"
SUMMARY_ATTR = "formats"
# costs closer than this (relative) are ties: the earlier candidate (NCHW first) keeps them
TIE = 1e-9


@dataclass
class Node:
    """A kernel (or a graph input/output): its candidate formats with their costs, first the one
    ties go to."""

    name: str
    costs: dict[str, float]
    inputs: list[int] = field(default_factory=list)   # value ids it reads (distinct)
    outputs: list[int] = field(default_factory=list)  # value ids it produces


@dataclass
class Value:
    """An activation: produced by one node, read by others; `reformat(src, dst)` in seconds
    (asked only for src != dst)."""

    name: str
    producer: int
    consumers: list[int]
    reformat: Callable[[str, str], float]

    def cost(self, src: str, dst: str) -> float:
        return 0.0 if src == dst else self.reformat(src, dst)


class FormatGraph:
    """Nodes added in topological order (a node's inputs come from earlier nodes)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.values: list[Value] = []

    def add_node(self, name: str, costs: dict[str, float]) -> int:
        if not costs:
            raise ValueError(f"node {name!r} has no candidate format")
        self.nodes.append(Node(name, dict(costs)))
        return len(self.nodes) - 1

    def add_value(self, name: str, producer: int, consumers: Sequence[int],
                  reformat: Callable[[str, str], float]) -> int:
        consumers = list(dict.fromkeys(consumers))
        if any(c <= producer for c in consumers):
            raise ValueError(f"value {name!r}: a consumer precedes its producer (nodes must be "
                             "added in topological order)")
        self.values.append(Value(name, producer, consumers, reformat))
        index = len(self.values) - 1
        self.nodes[producer].outputs.append(index)
        for c in consumers:
            self.nodes[c].inputs.append(index)
        return index

    # -- costs of an assignment -------------------------------------------------------------------

    def value_cost(self, v: int, assignment: Sequence[str]) -> float:
        """The reformats of value `v`: one per distinct consumer format other than the
        producer's."""
        value = self.values[v]
        src = assignment[value.producer]
        wanted = dict.fromkeys(assignment[c] for c in value.consumers)
        return sum(value.reformat(src, dst) for dst in wanted if dst != src)

    def total_cost(self, assignment: Sequence[str]) -> float:
        return (sum(n.costs[f] for n, f in zip(self.nodes, assignment, strict=True))
                + sum(self.value_cost(v, assignment) for v in range(len(self.values))))

    def reformats(self, assignment: Sequence[str]) -> list[tuple[str, str, str]]:
        """(value, from, to) of every reformat the assignment needs."""
        out = []
        for value in self.values:
            src = assignment[value.producer]
            for dst in dict.fromkeys(assignment[c] for c in value.consumers):
                if dst != src and value.reformat(src, dst) > 0:
                    out.append((value.name, src, dst))
        return out

    def _local_cost(self, n: int, fmt: str, assignment: list[str]) -> float:
        """The cost terms that depend on node `n`'s format, with `n` in `fmt`."""
        old, assignment[n] = assignment[n], fmt
        node = self.nodes[n]
        cost = node.costs[fmt] + sum(self.value_cost(v, assignment)
                                     for v in (*node.inputs, *node.outputs))
        assignment[n] = old
        return cost


def _better(a: float, b: float) -> bool:
    return a < b - TIE * max(abs(a), abs(b), 1e-30)


def solve(graph: FormatGraph) -> list[str]:
    """The format of each node, by dynamic programming in topological order with each
    producer's format as the state (TensorRT's builder):

    - forward: `best[n][f]` = node n's cost in f plus, for each value it reads, the cheapest
      over the producer's formats g of `best[producer][g]` (split evenly among the values its
      consumers read) plus the reformat g -> f;
    - backward, in reverse topological order: each node takes the format that minimizes
      `best[n][f]` plus the reformats its consumers (already decided) need of its outputs,
      counting one reformat per distinct format, as assign-layouts inserts them;
    - then local improvement: each node in turn moves to the format that lowers the exact total
      with its neighbours fixed, until none does (never worse than the DP's answer); the same
      from every single-format start (each node in that format where it can run in it), and
      the cheapest of these answers wins, so the result is never worse than running the graph
      in one format.

    Exact on chains and on trees where every value has one consumer (the forward pass is then
    the textbook DP and the backward pass its backtracking). With fan-out the forward pass is
    an approximation: a value read by k consumers passes each of them 1/k of its producer's
    cost, and branches that join again (a residual add) may each assume a different format for
    their common ancestor; the backward pass settles the ancestor's format once, against all
    its consumers' formats, and reformats shared by consumers of one format are counted once
    there (the forward pass counts them per consumer).
    """
    nodes, values = graph.nodes, graph.values
    best: list[dict[str, float]] = []
    for node in nodes:
        row = {}
        for f, cost in node.costs.items():
            total = cost
            for v in node.inputs:
                value = values[v]
                share = sum(len(values[o].consumers) for o in nodes[value.producer].outputs)
                total += min(best[value.producer][g] / share + value.cost(g, f)
                             for g in nodes[value.producer].costs)
            row[f] = total
        best.append(row)
    assignment: list[str] = [""] * len(nodes)
    for n in range(len(nodes) - 1, -1, -1):
        node = nodes[n]
        choice, low = "", 0.0
        for f in node.costs:
            cost = best[n][f]
            for v in node.outputs:
                wanted = dict.fromkeys(assignment[c] for c in values[v].consumers)
                cost += sum(values[v].cost(f, dst) for dst in wanted)
            if not choice or _better(cost, low):
                choice, low = f, cost
        assignment[n] = choice
    best_assignment = _improve(graph, assignment)
    best_cost = graph.total_cost(best_assignment)
    for fmt in dict.fromkeys(f for node in nodes for f in node.costs):
        uniform = _improve(graph, [fmt if fmt in node.costs else next(iter(node.costs))
                                   for node in nodes])
        cost = graph.total_cost(uniform)
        if _better(cost, best_cost):
            best_assignment, best_cost = uniform, cost
    return best_assignment


def _improve(graph: FormatGraph, assignment: list[str]) -> list[str]:
    """Local improvement: each node in turn moves to the format that lowers the total with its
    neighbours fixed, until none does."""
    assignment = list(assignment)
    for _ in range(len(graph.nodes) + 1):
        changed = False
        for n, node in enumerate(graph.nodes):
            current = graph._local_cost(n, assignment[n], assignment)
            for f in node.costs:
                cost = graph._local_cost(n, f, assignment)
                if _better(cost, current):
                    assignment[n], current, changed = f, cost, True
        if not changed:
            break
    return assignment


# -- the attributes in the IR ---------------------------------------------------------------------

def chosen_formats(fn: func.FuncOp) -> dict[Operation | SSAValue, str] | None:
    """The formats choose-formats recorded in `fn` (kernel ops' `format` attributes and the
    function's argument formats), or None where it did not run."""
    summary = fn.attributes.get(SUMMARY_ATTR)
    if not isinstance(summary, DictionaryAttr):
        return None
    chosen: dict[Operation | SSAValue, str] = {}
    args = summary.data.get("args")
    if isinstance(args, ArrayAttr):
        for arg, fmt in zip(fn.body.block.args, args.data, strict=False):
            if isinstance(fmt, StringAttr) and fmt.data:
                chosen[arg] = fmt.data
    for op in fn.body.block.ops:
        fmt = op.attributes.get(FORMAT_ATTR)
        if isinstance(fmt, StringAttr):
            chosen[op] = fmt.data
    return chosen


__all__ = ["FORMAT_ATTR", "FORMAT_COSTS_ATTR", "SUMMARY_ATTR", "FormatGraph", "chosen_formats",
           "solve"]
