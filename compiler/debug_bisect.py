"""`ember debug bisect`: run a build's pipeline pass by pass, execute the IR after each pass and
name the first pass whose outputs leave the reference's tolerance — a pass, where Polygraphy can
only name a layer of the finished engine.

nn-level stages run on the reference interpreter (`compiler/interpret.py`, each op's numpy
semantics); kernel-level stages are packed as they stand (plan-memory first if they have no
memory plan yet) into a CPU plan and run on the CPU executor. The imported ONNX stage is the
reference itself. With a device runner (the CLI's `--device cuda`) the finished plan also runs
on the GPU, so a difference that only the CUDA kernels make is told apart from one a pass
makes.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

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
    tolerance_from_args,
    with_static_shapes,
)
from ember.compiler.flag_groups import Tolerances
from ember.errors import EmberError

HELP = ("run the build pass by pass, execute the IR after each pass, and name the first pass "
        "whose outputs diverge from the reference")
ATOL, RTOL = 1e-4, 1e-3
LOOSE = 1e-2  # both, with --fp16 / --bf16
TOLERANCE_NOTE = f"; {LOOSE:g} with --fp16 or --bf16"


@dataclass
class Stage:
    """The IR after one pass (index 0: the imported model) and how its outputs compare."""

    index: int
    name: str
    level: str                 # onnx | nn | kernel | plan (the finished plan on the device)
    status: str                # match | diverges | fails | not run
    errors: list[OutputError] = field(default_factory=list)
    note: str = ""

    def text(self) -> str:
        what = errors_text(self.errors) if self.errors else self.note
        return f"{self.index:3d}  {self.name:24} {self.level:6} {self.status:9} {what}"


@dataclass
class BisectResult:
    stages: list[Stage]
    reference: str
    tolerance: Tolerances
    pipeline: str
    first_divergence: Stage | None = None

    @property
    def status(self) -> int:
        """0: a pass was named, or nothing diverges; 1: the outputs are wrong but no pass
        diverges (only the device's plan does)."""
        last = self.stages[-1] if self.stages else None
        return 1 if self.first_divergence is None and last is not None \
            and last.status in ("diverges", "fails") else 0

    def report(self) -> Report:
        lines = [f"pipeline: {self.pipeline}",
                 f"reference: {self.reference}; tolerance {self.tolerance.text()}",
                 f"{'#':>3}  {'pass':24} {'level':6} {'result':9} errors"]
        lines += [s.text() for s in self.stages]
        first = self.first_divergence
        if first is not None:
            lines.append(f"first diverging pass: {first.name} (#{first.index}): "
                         f"{errors_text(first.errors) or first.note}")
        elif self.status:
            lines.append("no pass diverges, but the plan on the device does: the difference is "
                         "in the CUDA kernels (try `ember debug tactics`)")
        else:
            lines.append("PASSED: every stage matches the reference")
        data = {"status": "diverges" if first else ("fails" if self.status else "passed"),
                "first_diverging_pass": first.name if first else None,
                "first_diverging_index": first.index if first else None,
                "reference": self.reference, "tolerance": self.tolerance,
                "pipeline": self.pipeline, "stages": self.stages}
        return Report(self.status, "\n".join(lines), data)


def level_of(module: ModuleOp) -> str:
    dialects = {op.name.split(".", 1)[0] for op in module.walk()}
    for level in ("onnx", "kernel"):
        if level in dialects:
            return level
    return "nn"


def execute_stage(module: ModuleOp, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the IR of one stage: nn on the interpreter; kernel packed (on a copy, given a
    memory plan if it has none) and run on the CPU executor."""
    from ember.compiler.interpret import interpret, main_function
    from ember.compiler.pack import pack
    from ember.compiler.pipeline import run_passes
    from ember.dialects.weights import WeightStore, attach_weights, weights_of
    from ember.passes.plan_memory import ARENA_BYTES, PlanMemory

    if level_of(module) == "nn":
        with np.errstate(all="ignore"):
            return interpret(module, feeds)
    copy = module.clone()
    store, weights = WeightStore(), weights_of(module)
    for name in weights.names():
        store.add(name, weights[name])
    attach_weights(copy, store)
    if ARENA_BYTES not in main_function(copy).attributes:
        run_passes(copy, [PlanMemory()], verify=False)
    return engine_runner("cpu")(pack(copy).plan_bytes(), feeds)


def bisect(model: str | onnx.ModelProto, passes: Sequence[ModulePass], *,
           feeds: Mapping[str, np.ndarray] | None = None, tolerance: Tolerances | None = None,
           reference: str = "auto", seed: int = 0, device_runner: Runner | None = None,
           target_arch: str | None = None) -> BisectResult:
    """Run `passes` over the imported `model` one at a time, run each stage's IR on `feeds`
    (seeded random inputs by default) and compare with the reference. `device_runner(plan,
    feeds)`: also run the finished plan, packed for `target_arch`, with it (e.g. the GPU's
    engine) where every stage matched."""
    from ember.compiler.debug import seeded_inputs
    from ember.compiler.onnx_importer import import_onnx
    from ember.compiler.pipeline import pipeline_text, run_passes

    proto = load_onnx(model)
    tolerance = tolerance or Tolerances(ATOL, RTOL)
    if feeds is None:
        feeds = seeded_inputs(proto, seed)
    proto = with_static_shapes(proto, {k: v.shape for k, v in feeds.items()})
    want, used = reference_outputs(proto, feeds, reference)
    passes = list(passes)
    result = BisectResult([], used, tolerance, pipeline_text(passes))

    def record(index: int, name: str, module: ModuleOp) -> None:
        level = level_of(module)
        if level == "onnx":
            stage = Stage(index, name, level, "not run", note="the ONNX level: the reference "
                          "computes it")
        else:
            try:
                got = execute_stage(module, feeds)
            except Exception as e:  # a stage that does not run is what a bisect looks for
                stage = Stage(index, name, level, "fails", note=_one_line(e))
            else:
                errors = output_errors(got, want, tolerance)
                stage = Stage(index, name, level, "match" if passed(errors) else "diverges",
                              errors)
        result.stages.append(stage)
        if stage.status in ("diverges", "fails") and result.first_divergence is None \
                and index > 0:
            result.first_divergence = stage

    module = import_onnx(proto)
    record(0, "import", module)
    try:
        run_passes(module, passes, verify=True,
                   after_pass=lambda i, p, m: record(i, p.name, m))
    except Exception as e:  # a pass that raises (or leaves IR that does not verify) is named
        failed = len(result.stages)  # the pass after the last stage recorded
        stage = Stage(failed, passes[failed - 1].name, "-", "fails", note=_one_line(e))
        result.stages.append(stage)
        if result.first_divergence is None:
            result.first_divergence = stage
        return result
    if device_runner is not None and result.first_divergence is None:
        from ember.compiler.pack import pack

        with np.errstate(all="ignore"):
            got = device_runner(pack(module, target_arch=target_arch).plan_bytes(), feeds)
        errors = output_errors(got, want, tolerance)
        result.stages.append(Stage(len(passes) + 1, f"plan on {target_arch or 'the CPU'}",
                                   "plan",
                                   "match" if passed(errors) else "diverges", errors))
    return result


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if not isinstance(e, EmberError) else text


def add_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("the build to bisect")
    which = group.add_mutually_exclusive_group()
    which.add_argument("--pipeline", help="a named pipeline, completed as `ember build` "
                       "completes it (default: default)")
    which.add_argument("--passes", help="exactly these passes, comma-separated (a,b,c)")
    which.add_argument("-p", "--pass-pipeline", metavar="TEXT",
                       help="exactly these passes with their options, in ember-opt -p syntax "
                            "(a build's pipeline.txt)")
    group.add_argument("--arch", help="build for this GPU (e.g. sm_90): its passes run and "
                                      "each stage still runs on the CPU")
    group.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                       help="cuda: also run the finished plan on the GPU (needs --arch)")


def build_passes(args: argparse.Namespace) -> list[ModulePass]:
    """The passes the flags name: a full build's (`pipeline_for`) for --pipeline (and by
    default), or exactly the list given."""
    from ember.compiler.builder import BuilderConfig, pipeline_for, precision_config
    from ember.compiler.flag_groups import build_options
    from ember.compiler.pipeline import parse_pipeline_text
    from ember.passes import make_pass, pass_names

    if args.passes is not None or args.pass_pipeline is not None:
        why = ("choose a build's pipeline; with --passes / -p the passes are exactly those "
               "given (spell their options there)")
        if args.arch:
            raise EmberError(f"--arch {why}")
        refuse_build_flags(args, why)
        if args.passes is not None:
            return [make_pass(n) for n in pass_names(args.passes)]
        return parse_pipeline_text(args.pass_pipeline)
    config = precision_config(BuilderConfig(pipeline=args.pipeline or "default",
                                            target_arch=args.arch), **build_options(args))
    return pipeline_for(config)


def run(args: argparse.Namespace) -> Report:
    from ember.runtime.cuda import cuda_available

    if args.device == "cuda":
        if not args.arch:
            raise EmberError("--device cuda runs the finished plan on the GPU: give --arch")
        if not cuda_available():
            raise EmberError("--device cuda: no CUDA GPU is visible")
    loose = args.fp16 or args.bf16
    tolerance = tolerance_from_args(args, LOOSE if loose else ATOL, LOOSE if loose else RTOL)
    model = load_onnx(args.model)
    feeds = inputs_from_args(args, model)
    result = bisect(model, build_passes(args), feeds=feeds, tolerance=tolerance,
                    reference=args.reference, target_arch=args.arch,
                    device_runner=engine_runner("cuda") if args.device == "cuda" else None)
    return result.report()
