"""`ember surgeon`: edit ONNX models before they are built, as Polygraphy's `surgeon` does —
`extract` a subgraph between named tensors (onnx.utils' Extractor), `fold` constants into
initializers (onnx-graphsurgeon's `fold_constants`, which evaluates with onnxruntime) and
`sanitize` (toposort, drop unused nodes and initializers, name unnamed nodes; onnx-graphsurgeon).
Every result is shape-inferred, checked with onnx.checker and written atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import onnx

from ember.compiler.onnx_importer import load_model
from ember.errors import EmberError
from ember.runtime.files import write_atomic

_PROTOBUF_LIMIT = 2**31 - 1  # a ModelProto serialized larger than this needs external data


@dataclass(frozen=True)
class Edited:
    """What an edit did: the model written and its node/initializer counts before and after."""

    model: onnx.ModelProto
    nodes: tuple[int, int]
    initializers: tuple[int, int]

    def summary(self, what: str, path: str | os.PathLike) -> str:
        return (f"{what} {path}: {self.nodes[0]} -> {self.nodes[1]} node(s), "
                f"{self.initializers[0]} -> {self.initializers[1]} initializer(s)")


def _load(model: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    proto, _ = load_model(model)
    if not proto.graph.node and not proto.graph.output:
        raise EmberError(f"{model}: not an ONNX model (no graph)")
    return proto


def _tensor_names(graph: onnx.GraphProto) -> set[str]:
    return ({vi.name for vi in graph.input} | {t.name for t in graph.initializer}
            | {o for n in graph.node for o in n.output if o})


def _names(spec: str | Sequence[str], flag: str) -> list[str]:
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names:
        raise EmberError(f"{flag}: give at least one tensor name")
    return names


def _finish(model: onnx.ModelProto, what: str) -> onnx.ModelProto:
    """Shapes inferred (strictly where ONNX can), then onnx.checker's verdict. The edits keep
    initializers out of the graph inputs, which IR versions before 4 require: such a model is
    written as IR 4 (its opsets unchanged)."""
    model.ir_version = max(model.ir_version, 4)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as e:  # onnx raises its own InferenceError types
        raise EmberError(f"{what}: shape inference failed on the result: {_one_line(e)}") \
            from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise EmberError(f"{what}: the result is not valid ONNX: {_one_line(e)}") from None
    return model


def _one_line(e: BaseException) -> str:
    """An error's message on one line (a multi-line one joined with "; ")."""
    lines = [line.strip(" -") for line in str(e).strip().splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(e).__name__


def save_model(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write a model atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    data = model.SerializeToString()
    if len(data) > _PROTOBUF_LIMIT:
        raise EmberError(f"{path}: the model is over 2 GiB, which ONNX stores only with "
                         "external data (not supported by ember surgeon yet)")
    write_atomic(path, data)


def extract(model: onnx.ModelProto | str | os.PathLike, inputs: str | Sequence[str],
            outputs: str | Sequence[str]) -> Edited:
    """The subgraph that computes `outputs` from `inputs` (tensor names), with the shapes ONNX
    infers for its new inputs and outputs. Every name must be a tensor of the model, and the
    inputs must cut the outputs off from the rest of the graph."""
    proto = _load(model)
    ins, outs = _names(inputs, "--inputs"), _names(outputs, "--outputs")
    known = _tensor_names(proto.graph)
    unknown = [n for n in dict.fromkeys(ins + outs) if n not in known]
    if unknown:
        raise EmberError(f"no tensor named {', '.join(repr(n) for n in unknown)} in the model")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # inference helps with types; the declared ones may do
        inferred = proto
    graph = inferred.graph
    typed = {vi.name for vi in [*graph.input, *graph.output, *graph.value_info]}
    untyped = [n for n in ins + outs if n not in typed]
    if untyped:
        raise EmberError(f"ONNX shape inference gives no type for {', '.join(map(repr, untyped))}"
                         ": cannot make it an input or output of the subgraph")
    sub = onnx.utils.Extractor(inferred).extract_model(ins, outs)
    produced = set(ins) | {t.name for t in sub.graph.initializer} \
        | {o for n in sub.graph.node for o in n.output}
    needed = [i for n in sub.graph.node for i in n.input if i and i not in produced]
    if needed:
        raise EmberError(f"the subgraph also reads {', '.join(map(repr, dict.fromkeys(needed)))}"
                         ", which --inputs do not cut off: add to --inputs")
    sub = _finish(sub, "extract")
    return Edited(sub, (len(proto.graph.node), len(sub.graph.node)),
                  (len(proto.graph.initializer), len(sub.graph.initializer)))


def _graphsurgeon():
    try:
        import onnx_graphsurgeon as gs
    except ImportError:
        raise EmberError("ember surgeon needs onnx-graphsurgeon: pip install onnx-graphsurgeon") \
            from None
    return gs


def _name_nodes(graph) -> int:
    """Name every unnamed node of a graphsurgeon graph; returns how many it named."""
    return name_unnamed(graph.nodes, lambda node: node.op)


def name_unnamed(nodes: Sequence[Any], op_type: Callable[[Any], str]) -> int:
    """Name every unnamed node (ONNX NodeProtos or graphsurgeon nodes) `<op_type>_<index>`,
    suffixed `_<k>` where that is taken; returns how many it named."""
    taken = {node.name for node in nodes if node.name}
    named = 0
    for i, node in enumerate(nodes):
        if node.name:
            continue
        name, k = f"{op_type(node)}_{i}", 0
        while name in taken:
            k += 1
            name = f"{op_type(node)}_{i}_{k}"
        node.name = name
        taken.add(name)
        named += 1
    return named


def _export(gs, graph, proto: onnx.ModelProto, what: str) -> onnx.ModelProto:
    try:
        out = gs.export_onnx(graph)
    except Exception as e:
        raise EmberError(f"{what}: onnx-graphsurgeon cannot export the result: "
                         f"{_one_line(e)}") from None
    out.ir_version = proto.ir_version
    out.producer_name, out.producer_version = proto.producer_name, proto.producer_version
    del out.metadata_props[:]
    out.metadata_props.extend(proto.metadata_props)  # (graphsurgeon drops the model's metadata)
    return out


def fold(model: onnx.ModelProto | str | os.PathLike, *,
         size_threshold: int | None = None) -> Edited:
    """Constant folding written back as ONNX: every node whose inputs are all constant is
    evaluated (onnx-graphsurgeon's `fold_constants`, with onnxruntime) and replaced by an
    initializer; Shape-derived subgraphs fold where the shapes are static. `size_threshold`:
    tensors over this many bytes stay computed (keeps the file small where big weights are made
    by ops, e.g. ConstantOfShape). The graph is then cleaned up and toposorted."""
    gs = _graphsurgeon()
    proto = _load(model)
    try:
        import onnxruntime  # noqa: F401 (graphsurgeon folds with it)
    except ImportError:
        raise EmberError("ember surgeon fold evaluates constants with onnxruntime: pip install "
                         "onnxruntime") from None
    if size_threshold is not None and size_threshold < 0:
        raise EmberError(f"--size-threshold must be ≥ 0 bytes, not {size_threshold}")
    graph = gs.import_onnx(proto)
    try:
        graph.fold_constants(size_threshold=size_threshold, error_ok=False)
    except Exception as e:
        raise EmberError(f"fold: {_one_line(e)}") from None
    graph.cleanup().toposort()
    out = _finish(_export(gs, graph, proto, "fold"), "fold")
    return Edited(out, (len(proto.graph.node), len(out.graph.node)),
                  (len(proto.graph.initializer), len(out.graph.initializer)))


def sanitize(model: onnx.ModelProto | str | os.PathLike) -> Edited:
    """Nodes in topological order, nodes and initializers that reach no output dropped (graph
    inputs are kept: they are the model's interface), unnamed nodes named `<op>_<index>`."""
    gs = _graphsurgeon()
    proto = _load(model)
    graph = gs.import_onnx(proto)
    graph.cleanup(remove_unused_graph_inputs=False)
    try:
        graph.toposort()
    except Exception as e:  # a cycle
        raise EmberError(f"sanitize: cannot sort the graph: {_one_line(e)}") from None
    _name_nodes(graph)
    out = _finish(_export(gs, graph, proto, "sanitize"), "sanitize")
    return Edited(out, (len(proto.graph.node), len(out.graph.node)),
                  (len(proto.graph.initializer), len(out.graph.initializer)))


# -- the command --------------------------------------------------------------------------------

def add_parser(sub) -> None:
    """Register `ember surgeon` and its subcommands."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("surgeon", help="edit ONNX models: extract a subgraph, fold constants, "
                       "sanitize", formatter_class=fmt,
                       epilog="examples:\n"
                              "  ember surgeon extract model.onnx --inputs a,b --outputs c "
                              "-o sub.onnx\n"
                              "  ember surgeon fold model.onnx -o folded.onnx\n"
                              "  ember surgeon sanitize model.onnx -o clean.onnx")
    tools = p.add_subparsers(dest="surgeon_command", required=True, metavar="TOOL")

    e = tools.add_parser("extract", formatter_class=fmt,
                         help="the subgraph between named tensors (onnx.utils' Extractor)",
                         epilog="example (two residual blocks of ONNX's light_resnet50):\n"
                                "  ember surgeon extract light_resnet50.onnx --inputs r35 "
                                "--outputs r57 -o block.onnx\n\nThe subgraph computes --outputs "
                                "from --inputs; their shapes and types are ONNX's shape "
                                "inference's.")
    e.add_argument("model", help="an ONNX model")
    e.add_argument("--inputs", required=True, metavar="NAMES",
                   help="comma-separated tensor names: the subgraph's inputs")
    e.add_argument("--outputs", required=True, metavar="NAMES",
                   help="comma-separated tensor names: the subgraph's outputs")
    e.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    e.set_defaults(run=_run, tool=_extract)

    f = tools.add_parser("fold", formatter_class=fmt,
                         help="fold constant subgraphs into initializers (onnx-graphsurgeon, "
                              "evaluated by onnxruntime)",
                         epilog="example:\n  ember surgeon fold model.onnx -o folded.onnx "
                                "--size-threshold 1048576")
    f.add_argument("model", help="an ONNX model")
    f.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    f.add_argument("--size-threshold", type=int, metavar="BYTES",
                   help="leave tensors over this many bytes computed, not stored (default: "
                        "fold everything)")
    f.set_defaults(run=_run, tool=_fold)

    s = tools.add_parser("sanitize", formatter_class=fmt,
                         help="toposort, drop unused nodes and initializers, name unnamed nodes",
                         epilog="example:\n  ember surgeon sanitize model.onnx -o clean.onnx")
    s.add_argument("model", help="an ONNX model")
    s.add_argument("-o", "--output", required=True, help="the ONNX file to write")
    s.set_defaults(run=_run, tool=_sanitize)


def _extract(args: argparse.Namespace) -> tuple[str, Edited]:
    return "extracted", extract(args.model, args.inputs, args.outputs)


def _fold(args: argparse.Namespace) -> tuple[str, Edited]:
    return "folded", fold(args.model, size_threshold=args.size_threshold)


def _sanitize(args: argparse.Namespace) -> tuple[str, Edited]:
    return "sanitized", sanitize(args.model)


def _run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one tool; a bad input is one line on stderr and exit status 2 (as argparse's)."""
    out = out or sys.stdout
    try:
        what, edited = args.tool(args)
        save_model(edited.model, args.output)
    except EmberError as e:
        print(f"ember surgeon {args.surgeon_command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    out.write(edited.summary(what, args.output) + "\n")
    return 0


__all__ = ["Edited", "add_parser", "extract", "fold", "sanitize", "save_model"]
