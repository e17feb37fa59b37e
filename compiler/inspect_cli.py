"""The `ember inspect` command: a model, a plan or a timing cache, told apart by its first bytes
(a plan's `EMBERPLN` magic, a timing cache's header or JSON; anything else is read as ONNX).
A thin shell over `inspect_model`, `inspect_plan` and `inspect_cache`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from ember.errors import EmberError

PLAN_MAGIC = b"EMBERPLN"


def file_kind(path: str | os.PathLike) -> str:
    """"plan", "cache" or "model" (the ONNX importer says if it is not one)."""
    from ember.compiler.inspect_cache import is_timing_cache

    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise EmberError(f"cannot read {path}: {e.strerror or e}") from None
    if head.startswith(PLAN_MAGIC):
        return "plan"
    if is_timing_cache(head) or head.lstrip()[:1] == b"{":
        return "cache"
    return "model"


def add_parser(sub, add_precision_flags, add_plugin_flags) -> None:
    """Register `ember inspect` (the CLI's shared precision and plugin flag groups: plugins
    registered by --plugins files are loaded by `ember`'s main before any command runs)."""
    p = sub.add_parser(
        "inspect", help="inspect an ONNX model, a plan or a timing cache",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="An ONNX model: I/O, opsets, op histogram, parameters and every node ember "
                    "cannot compile yet. A plan: versions, target, I/O, memory and each layer "
                    "(ONNX nodes, kernel, formats, precision, tactic, arena offsets). A timing "
                    "cache: its entries. An ONNX model given --layer, --explain, --graph, "
                    "--build, --arch or precision flags is built first and inspected as a plan.",
        epilog="examples:\n"
               "  ember inspect model.onnx         # I/O, ops, and all ember cannot compile yet\n"
               "  ember inspect model.plan --json\n"
               "  ember inspect model.plan --explain conv_3       # or a layer index / ONNX node\n"
               "  ember inspect model.plan --graph layers.svg     # also writes layers.dot\n"
               "  ember inspect ~/.cache/ember/timing.cache\n"
               "  ember inspect model.onnx --arch sm_90 --fp16 --layer 3")
    p.add_argument("model", help="an ONNX model, a plan file or a timing cache")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--format", choices=["text", "json"], default=None,
                   help="text or json (--json is --format json)")
    group = p.add_argument_group("plans")
    group.add_argument("--layer", type=int, metavar="INDEX", help="only this layer (step)")
    group.add_argument("--explain", metavar="LAYER",
                       help="why this layer (an index, a layer name like conv_3, or an ONNX "
                            "node fused into it) is fused, laid out, typed and tuned as it is, "
                            "and what each choice beat, with the build's estimated or measured "
                            "times")
    group.add_argument("--graph", metavar="OUT",
                       help="draw the fused layer graph: OUT.dot always; .svg/.png/.pdf "
                            "rendered with graphviz's `dot` where it is installed")
    group.add_argument("--build", action="store_true",
                       help="an ONNX model: build it and inspect the plan")
    group.add_argument("--arch", help="building an ONNX model: CUDA kernels for this GPU "
                                      "(e.g. sm_90); default: a CPU plan")
    add_precision_flags(p, tf32=True)
    add_plugin_flags(p)
    p.set_defaults(run=run)


def _precision_given(args: argparse.Namespace) -> list[str]:
    flags = {"--fp16": args.fp16, "--bf16": args.bf16, "--layer-precisions": args.layer_precisions,
             "--layer-output-types": args.layer_output_types,
             "--precision-constraints": args.precision_constraints,
             "--tf32/--noTF32": args.tf32 is not None}
    return [k for k, v in flags.items() if v]


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    as_json = args.json or args.format == "json"
    if args.json and args.format == "text":
        raise EmberError("--json and --format text disagree: give one")
    kind = file_kind(args.model)
    plan_options = [f for f, v in (("--layer", args.layer is not None),
                                   ("--explain", args.explain), ("--graph", args.graph)) if v]
    build_options = [f for f, v in (("--build", args.build), ("--arch", args.arch)) if v] \
        + _precision_given(args)
    if kind == "cache":
        given = plan_options + build_options
        if given:
            raise EmberError(f"{args.model} is a timing cache: {', '.join(given)} apply to "
                             "plans and models")
        from ember.compiler import inspect_cache

        info = inspect_cache.describe(args.model)
        out.write(json.dumps(info, indent=1) + "\n" if as_json else inspect_cache.text(info))
        return 0
    if kind == "model" and not plan_options and not build_options:
        from ember.compiler.inspect_model import inspect_model

        report = inspect_model(args.model)
        out.write(json.dumps(report.to_json(), indent=1) + "\n" if as_json else report.text())
        return 0
    if kind == "plan" and build_options:
        raise EmberError(f"{args.model} is a plan, built already: {', '.join(build_options)} "
                         "apply when building an ONNX model")
    report = _plan_report(args) if kind == "model" else _read_plan(args.model)
    if args.graph:
        written = report.write_graph(args.graph)
        out.write(f"wrote {' and '.join(map(str, written))}\n")
        if args.explain is None and args.layer is None:
            return 0
    if args.explain is not None:
        if as_json:
            out.write(json.dumps(report.explain(args.explain), indent=1) + "\n")
        else:
            out.write(report.explain_text(args.explain))
        return 0
    if as_json:
        out.write(json.dumps(report.to_json(args.layer), indent=1) + "\n")
    else:
        out.write(report.text(args.layer))
    return 0


def _read_plan(path: str):
    from ember.compiler.inspect_plan import PlanReport

    return PlanReport(path)


def _plan_report(args: argparse.Namespace):
    """An ONNX model built (a CPU plan, or for --arch) and read back as a plan."""
    from ember.compiler.builder import BuilderConfig, build_model, precision_config
    from ember.compiler.inspect_plan import PlanReport
    from ember.runtime.plan import plan_bytes

    precision = {"fp16": args.fp16, "bf16": args.bf16,
                 "layer_precisions": args.layer_precisions,
                 "layer_output_types": args.layer_output_types,
                 "precision_constraints": args.precision_constraints,
                 "tf32": True if args.tf32 is None else args.tf32}
    config = precision_config(BuilderConfig(target_arch=args.arch), **precision)
    manifest, sections = build_model(args.model, config)
    return PlanReport(plan_bytes(manifest, sections), name=f"{Path(args.model).name} (built)")


__all__ = ["add_parser", "file_kind", "run"]
