"""`ember debug precision`: the smallest set of ONNX nodes that must stay FP32 for an FP16 (or
BF16) build to meet a tolerance.

Each trial is a build with FP16 allowed and the set pinned to FP32 by per-layer precisions
under OBEY_PRECISION_CONSTRAINTS (`--layer-precisions N:fp32 --precision-constraints obey`),
run on the GPU (`--arch` of the GPU present) or on the CPU executor, which computes FP16 layers
with numpy float16 storage and float32 accumulation, as the GPU kernels do: an FP16 overflow
shows on both. The search is delta debugging (Zeller's ddmin) over the float nodes in graph
order: the set it returns meets the tolerance and is 1-minimal — taking any one node out of it
fails the tolerance — which for the usual case (a few overflowing layers) is the smallest.
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from ember.compiler.debug import (
    OutputError,
    Report,
    Runner,
    engine_runner,
    errors_text,
    inputs_from_args,
    load_onnx,
    output_errors,
    passed,
    reference_outputs,
    refuse_build_flags,
    seeded_inputs,
    tolerance_from_args,
    with_static_shapes,
)
from ember.compiler.flag_groups import FlagError, Tolerances
from ember.errors import EmberError

HELP = ("find the smallest set of ONNX nodes that must stay FP32 for an --fp16 / --bf16 build "
        "to meet the tolerance (per-layer precisions, obeyed; bisection over the nodes)")
ATOL, RTOL = 1e-3, 1e-3


@dataclass
class Trial:
    """One build: the nodes pinned to FP32 and how its outputs compare."""

    fp32: list[str]
    passed: bool
    errors: list[OutputError] = field(default_factory=list)
    note: str = ""

    def text(self) -> str:
        what = errors_text(self.errors) if self.errors else self.note
        nodes = ", ".join(self.fp32) if len(self.fp32) <= 6 else (
            f"{', '.join(self.fp32[:5])}, ... ({len(self.fp32)} nodes)")
        return f"  {'pass' if self.passed else 'FAIL'}  fp32 [{nodes}]: {what}"


@dataclass
class PrecisionResult:
    precision: str
    candidates: list[str]
    trials: list[Trial]
    reference: str
    tolerance: Tolerances
    device: str
    fp32: list[str] | None = None     # the set found; None: even all-FP32 fails
    unnamed: int = 0                  # float nodes without a name (cannot be pinned)

    @property
    def status(self) -> int:
        return 0 if self.fp32 is not None else 1

    def report(self) -> Report:
        lines = [f"{self.precision} build, {len(self.candidates)} float node(s) to choose "
                 f"from; reference {self.reference}; tolerance {self.tolerance.text()}; run on "
                 f"{self.device}",
                 f"{len(self.trials)} build(s):"]
        lines += [t.text() for t in self.trials]
        if self.unnamed:
            lines.append(f"note: {self.unnamed} float node(s) have no name and cannot be pinned "
                         "(`ember surgeon sanitize` names them)")
        if self.fp32 is None:
            lines.append(f"FAILED: even with every named float node in FP32 the {self.precision} "
                         "build misses the tolerance")
        elif not self.fp32:
            lines.append(f"PASSED: the {self.precision} build meets the tolerance with no layer "
                         "pinned to FP32")
        else:
            spec = ",".join(f"{n}:fp32" for n in self.fp32)
            lines.append(f"keep {len(self.fp32)} layer(s) in FP32: {', '.join(self.fp32)}")
            lines.append(f"build with: --{self.precision} --layer-precisions {spec} "
                         "--precision-constraints obey")
        data = {"status": "failed" if self.fp32 is None else "found", "fp32": self.fp32,
                "layer_precisions": None if self.fp32 is None
                else ",".join(f"{n}:fp32" for n in self.fp32),
                "precision": self.precision, "candidates": self.candidates,
                "reference": self.reference, "tolerance": self.tolerance,
                "device": self.device, "trials": self.trials, "unnamed": self.unnamed}
        return Report(self.status, "\n".join(lines), data)


def float_nodes(model: onnx.ModelProto) -> tuple[list[str], int]:
    """Names of the nodes with a floating-point output, in graph order (the ones a precision
    can apply to), and how many such nodes have no name."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
              onnx.TensorProto.DOUBLE}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # onnx's inference raises its own error types
        raise EmberError(f"ONNX shape inference failed on the model: {e}") from None
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (
        *inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)}
    names, unnamed = [], 0
    for node in model.graph.node:
        # a node whose output type is unknown may be float: keep it a candidate
        if any(types.get(o, onnx.TensorProto.FLOAT) in floats for o in node.output if o):
            if node.name:
                names.append(node.name)
            else:
                unnamed += 1
    return list(dict.fromkeys(names)), unnamed


def ddmin(items: Sequence[str], test: Callable[[list[str]], bool]) -> list[str]:
    """A 1-minimal subset of `items` (which passes `test`) that still passes (Zeller and
    Hildebrandt's delta debugging, for a passing set to shrink)."""
    items = list(items)
    n = 2
    while len(items) >= 2:
        size = math.ceil(len(items) / n)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        for chunk in chunks:  # a small chunk alone suffices: the usual case
            if test(chunk):
                items, n = chunk, 2
                break
        else:
            for chunk in chunks:
                rest = [x for x in items if x not in chunk]
                if test(rest):
                    items, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(items):
                    break
                n = min(len(items), 2 * n)
    return items


def debug_precision(model: str | onnx.ModelProto, *, precision: str = "fp16",
                    feeds: Mapping[str, np.ndarray] | None = None,
                    tolerance: Tolerances | None = None, reference: str = "auto",
                    target_arch: str | None = None, runner: Runner | None = None,
                    device: str = "cpu", candidates: Sequence[str] | None = None,
                    tf32: bool = False) -> PrecisionResult:
    """Find the FP32 set for a `precision` ("fp16" or "bf16") build of `model`: trials built
    for `target_arch` (None: CPU plans) and run by `runner` (default: the engine on `device`)
    on `feeds` (seeded random inputs by default); `tf32`: TF32 allowed for the FP32 layers."""
    from ember.compiler.builder import BuilderConfig, build_model, precision_config
    from ember.runtime.plan import plan_bytes

    if precision not in ("fp16", "bf16"):
        raise EmberError(f"precision must be fp16 or bf16, not {precision!r}")
    proto = load_onnx(model)
    tolerance = tolerance or Tolerances(ATOL, RTOL)
    feeds = seeded_inputs(proto, 0) if feeds is None else feeds
    proto = with_static_shapes(proto, {k: v.shape for k, v in feeds.items()})
    want, used = reference_outputs(proto, feeds, reference)
    names, unnamed = float_nodes(proto)
    if candidates is not None:
        unknown = [c for c in candidates if c not in names]
        if unknown:
            raise EmberError(f"--nodes names {', '.join(unknown)}, which is not a named float "
                             "node of the model")
        names = list(candidates)
    runner = runner or engine_runner(device)
    result = PrecisionResult(precision, names, [], used, tolerance, device, unnamed=unnamed)
    tried: dict[frozenset[str], bool] = {}

    def test(fp32: list[str]) -> bool:
        key = frozenset(fp32)
        if key in tried:
            return tried[key]
        config = precision_config(
            BuilderConfig(target_arch=target_arch), **{precision: True}, tf32=tf32,
            layer_precisions={n: "fp32" for n in fp32} or None,
            precision_constraints="obey" if fp32 else None)
        ordered = [n for n in names if n in key]
        try:
            # weights that overflow FP16 when cast are what the search is for, not news
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                manifest, sections = build_model(proto, config)
                got = runner(plan_bytes(manifest, sections), feeds)
        except EmberError as e:  # a pin the build cannot obey: this set is no answer
            trial = Trial(ordered, False, note=f"build failed: {' '.join(str(e).split())}")
        else:
            errors = output_errors(got, want, tolerance)
            trial = Trial(ordered, passed(errors), errors)
        result.trials.append(trial)
        tried[key] = trial.passed
        return trial.passed

    if test([]):
        result.fp32 = []
    elif test(names):
        result.fp32 = [n for n in names if n in set(ddmin(names, test))]
    return result


def add_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("the build (--fp16 or --bf16: the build to fix)")
    group.add_argument("--arch", help="build for this GPU (e.g. sm_90); the plans run on it "
                                      "when it is the GPU here, else on the CPU executor")
    group.add_argument("--nodes", metavar="N1,N2",
                       help="choose among these ONNX nodes only (default: every named node "
                            "with a float output)")


def run(args: argparse.Namespace) -> Report:
    from ember.compiler.builder import detect_arch
    from ember.runtime.arch import parse_arch

    if args.fp16 == args.bf16:
        raise FlagError("give --fp16 or --bf16 (one): the build whose layers to keep in FP32")
    refuse_build_flags(args, "ember debug precision chooses the per-layer precisions itself",
                       ("layer_precisions", "layer_output_types", "precision_constraints"))
    tolerance = tolerance_from_args(args, ATOL, RTOL)
    model = load_onnx(args.model)
    feeds = inputs_from_args(args, model)
    present = detect_arch()
    device = "cuda" if args.arch and present and parse_arch(present) == parse_arch(args.arch) \
        else "cpu"
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()] if args.nodes else None
    result = debug_precision(model, precision="fp16" if args.fp16 else "bf16", feeds=feeds,
                             tolerance=tolerance, reference=args.reference,
                             target_arch=args.arch, device=device, candidates=nodes,
                             tf32=bool(args.tf32))
    return result.report()
