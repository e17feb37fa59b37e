"""`ember debug tactics`: rebuild with each tactic the build chose excluded in turn, run each plan
on the GPU, and name the tactic whose exclusion makes the outputs match the reference.

A tactic is a (template, tactic) pair as select-tactics sets it on conv/matmul kernel ops
(`tile`/`splits`, `mma`, `wgmma`, ...). Excluding one gives every kernel that had it the next
candidate of its template's tactic list (the cost model's order) that is not excluded. This
needs a GPU: the CPU executor runs one numpy kernel per template whatever its tactic, so no
tactic can be told apart there (`debug_tactics(..., runner=...)` takes another executor).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from xdsl.context import Context
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
    seeded_inputs,
    tolerance_from_args,
    with_static_shapes,
)
from ember.compiler.flag_groups import Tolerances
from ember.errors import EmberError

HELP = ("rebuild with each chosen conv/matmul tactic excluded in turn and name the tactic "
        "whose exclusion makes the outputs match the reference (runs on a GPU)")
ATOL, RTOL = 1e-4, 1e-3
NO_GPU = ("the CPU executor runs one numpy kernel per template whatever its tactic, so no "
          "tactic can be told apart there; run it on a machine with a CUDA GPU")


def tactic_key(template: str, tactic: Mapping[str, Any]) -> str:
    """A tactic's name in reports: `matmul tile 16x16x16x1x1`, `conv mma 64x64x32x2x2x4
    splits 2`."""
    from ember.runtime.profiler import tactic_text

    return f"{template} {tactic_text(tactic) or json.dumps(tactic, sort_keys=True)}"


@dataclass
class Use:
    """A kernel op's tactic: which ONNX nodes the kernel computes."""

    template: str
    tactic: dict[str, Any]
    nodes: list[str]


def _tunable_ops(module: ModuleOp):
    from ember.codegen.select_tactics import TUNABLE
    from ember.dialects.kernel import LaunchOp

    for op in module.walk():
        if isinstance(op, LaunchOp) and op.template.data in TUNABLE and op.tactic is not None:
            yield op


def tactic_uses(module: ModuleOp) -> list[Use]:
    from ember.dialects.attributes import attribute_value
    from ember.dialects.origin import origin_of

    return [Use(op.template.data, attribute_value(op.tactic), list(origin_of(op)))
            for op in _tunable_ops(module)]


@dataclass(frozen=True)
class ExcludeTactics(ModulePass):
    """Debugging instrument (not a registered pass): after select-tactics, every conv/matmul
    whose tactic is in `excluded` (tactic_key names) takes the first candidate of its
    template's tactic list that is not; `replaced` records what each got (None: it has no
    other candidate and keeps its tactic)."""

    name = "debug-exclude-tactics"

    excluded: frozenset[str] = frozenset()
    arch: str = ""
    sms: int = 0
    replaced: list = field(default_factory=list, compare=False, hash=False)

    def apply(self, ctx: Context, module: ModuleOp) -> None:
        from ember.codegen.templates import template_module
        from ember.dialects.attributes import attribute_value, to_attribute
        from ember.dialects.origin import origin_of

        for op in _tunable_ops(module):
            template = op.template.data
            if tactic_key(template, attribute_value(op.tactic)) not in self.excluded:
                continue
            options = template_module(template).tactics(attribute_value(op.params),
                                                        self.arch or None, self.sms)
            other = next((o for o in options if tactic_key(template, o) not in self.excluded),
                         None)
            self.replaced.append((list(origin_of(op)), None if other is None
                                  else tactic_key(template, other)))
            if other is not None:
                op.properties["tactic"] = to_attribute(other)


@dataclass
class TacticTrial:
    tactic: str
    kernels: list[list[str]]          # the ONNX nodes of each kernel that had it
    replaced_by: list[str | None]
    passed: bool
    errors: list[OutputError] = field(default_factory=list)
    note: str = ""

    def text(self) -> str:
        into = sorted({r or "(no other tactic)" for r in self.replaced_by})
        what = errors_text(self.errors) if self.errors else self.note
        return (f"  {'pass' if self.passed else 'FAIL'}  without {self.tactic} "
                f"({len(self.kernels)} kernel(s) -> {', '.join(into)}): {what}")


@dataclass
class TacticsResult:
    uses: list[Use]
    baseline: list[OutputError]
    trials: list[TacticTrial]
    reference: str
    tolerance: Tolerances
    target_arch: str
    bad: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        """0: the build passes, or a bad tactic was found; 1: it fails and no exclusion of
        one tactic fixes it."""
        return 0 if passed(self.baseline) or self.bad else 1

    def report(self) -> Report:
        distinct = sorted({tactic_key(u.template, u.tactic) for u in self.uses})
        lines = [f"build for {self.target_arch}: {len(self.uses)} kernel(s) with a tactic, "
                 f"{len(distinct)} distinct; reference {self.reference}; tolerance "
                 f"{self.tolerance.text()}",
                 f"  {'pass' if passed(self.baseline) else 'FAIL'}  as built: "
                 f"{errors_text(self.baseline)}"]
        lines += [t.text() for t in self.trials]
        if passed(self.baseline):
            lines.append("PASSED: the build's outputs match the reference; no tactic is at "
                         "fault")
        elif self.bad:
            for key in self.bad:
                trial = next(t for t in self.trials if t.tactic == key)
                nodes = "; ".join(", ".join(k) for k in trial.kernels)
                lines.append(f"bad tactic: {key} (kernels of {nodes})")
        else:
            lines.append("FAILED: the outputs are wrong and excluding no single tactic fixes "
                         "them (try `ember debug bisect`)")
        data = {"status": "passed" if passed(self.baseline) else
                ("found" if self.bad else "failed"),
                "bad_tactics": self.bad, "target_arch": self.target_arch,
                "reference": self.reference, "tolerance": self.tolerance,
                "kernels": self.uses, "baseline": self.baseline, "trials": self.trials}
        return Report(self.status, "\n".join(lines), data)


def debug_tactics(model: str | onnx.ModelProto, *, target_arch: str,
                  feeds: Mapping[str, np.ndarray] | None = None,
                  tolerance: Tolerances | None = None, reference: str = "auto",
                  runner: Runner | None = None, autotune: bool | None = None,
                  **precision: Any) -> TacticsResult:
    """Build `model` for `target_arch` (with `precision`: fp16, bf16, tf32 as `ember.compile`;
    `autotune` as BuilderConfig's), run it and, where it misses the tolerance, rebuild with
    each distinct tactic excluded in turn. `runner(plan, feeds)`: the executor (default: the
    GPU's, which must be present)."""
    from ember.codegen.select_tactics import SelectTactics
    from ember.compiler.builder import BuilderConfig, build_model, pipeline_for, precision_config
    from ember.runtime.cuda import cuda_available
    from ember.runtime.plan import plan_bytes

    if runner is None:
        if not cuda_available():
            raise EmberError(f"ember debug tactics needs a GPU: {NO_GPU} (no CUDA GPU is "
                             "visible)")
        runner = engine_runner("cuda")
    proto = load_onnx(model)
    tolerance = tolerance or Tolerances(ATOL, RTOL)
    feeds = seeded_inputs(proto, 0) if feeds is None else feeds
    proto = with_static_shapes(proto, {k: v.shape for k, v in feeds.items()})
    want, used = reference_outputs(proto, feeds, reference)
    config = precision_config(BuilderConfig(target_arch=target_arch, autotune=autotune),
                              **precision)
    passes = pipeline_for(config)
    select = next((i for i, p in enumerate(passes) if isinstance(p, SelectTactics)), None)
    if select is None:
        raise EmberError("the build runs no select-tactics: no tactic to exclude")
    chooser = passes[select]
    uses: list[Use] = []

    def build_and_run(excluded: frozenset[str]) -> tuple[list[OutputError], ExcludeTactics]:
        exclude = ExcludeTactics(excluded, chooser.arch, chooser.sms)

        def read_tactics(index: int, p: ModulePass, module: ModuleOp) -> None:
            if p is exclude and not excluded:
                uses.extend(tactic_uses(module))

        manifest, sections = build_model(
            proto, config, passes=[*passes[:select + 1], exclude, *passes[select + 1:]],
            after_pass=read_tactics)
        with np.errstate(all="ignore"):
            got = runner(plan_bytes(manifest, sections), feeds)
        return output_errors(got, want, tolerance), exclude

    baseline, _ = build_and_run(frozenset())
    result = TacticsResult(uses, baseline, [], used, tolerance, target_arch)
    if passed(baseline):
        return result
    for key in dict.fromkeys(tactic_key(u.template, u.tactic) for u in uses):
        try:
            errors, exclude = build_and_run(frozenset({key}))
        except EmberError as e:
            result.trials.append(TacticTrial(key, [], [], False,
                                             note=f"build failed: {' '.join(str(e).split())}"))
            continue
        kernels = [nodes for nodes, _ in exclude.replaced]
        replaced = [other for _, other in exclude.replaced]
        if all(r is None for r in replaced):
            result.trials.append(TacticTrial(key, kernels, replaced, False,
                                             note="no kernel has another tactic to take"))
            continue
        trial = TacticTrial(key, kernels, replaced, passed(errors), errors)
        result.trials.append(trial)
        if trial.passed:
            result.bad.append(key)
    return result


def add_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("the build")
    group.add_argument("--arch", help="build for this GPU (default: the GPU here)")
    group.add_argument("--autotune", choices=["auto", "on", "off"], default="auto",
                       help="time tactics on the GPU (auto: as `ember build`; off: the cost "
                            "model's choices, the autotuner's check of each candidate against "
                            "the reference tactic out of the way)")


def run(args: argparse.Namespace) -> Report:
    from ember.compiler.builder import detect_arch
    from ember.compiler.flag_groups import build_options
    from ember.runtime.arch import parse_arch

    present = detect_arch()
    if present is None:
        raise EmberError(f"needs a GPU: {NO_GPU} (no CUDA GPU is visible)")
    arch = args.arch or present
    if parse_arch(arch) != parse_arch(present):
        raise EmberError(f"--arch {arch}: the plans run on the GPU here, a {present}")
    tolerance = tolerance_from_args(args, ATOL, RTOL)
    model = load_onnx(args.model)
    feeds = inputs_from_args(args, model)
    result = debug_tactics(model, target_arch=arch, feeds=feeds, tolerance=tolerance,
                           reference=args.reference, **build_options(args),
                           autotune={"auto": None, "on": True, "off": False}[args.autotune])
    return result.report()
