"""The pass driver: run a named pipeline or a pass list over a module, with hooks between passes.

`lower(module, "default")` is the entry point for compilers that embed ember's lowering.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.arg_spec import parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError, VerifyException

from ember.dialects import ember_context
from ember.errors import PassError, PipelineError
from ember.passes import available_passes, make_pass, pass_names, pipeline_names

# called after each pass with (index, pass, module); index counts from 1
AfterPass = Callable[[int, ModulePass, ModuleOp], None]


@dataclass
class PassTiming:
    name: str
    seconds: float


@dataclass
class PipelineRun:
    """What a run did: the passes run, in order, with their times."""

    passes: list[str]
    timings: list[PassTiming] = field(default_factory=list)


def resolve_passes(pipeline: str | Sequence[str] | None = None,
                   passes: str | None = None) -> list[str]:
    """Pass names from a pipeline name, a list of pass names, or a comma-separated spec."""
    if passes is not None and pipeline is not None:
        raise PipelineError("give a pipeline or a pass list, not both")
    if passes is not None:
        return pass_names(passes)
    if pipeline is None:
        return pipeline_names("default")
    if isinstance(pipeline, str):
        return pipeline_names(pipeline)
    return pass_names(",".join(pipeline))


def pipeline_text(passes: Sequence[ModulePass]) -> str:
    """A pass list in `ember-opt -p` (xDSL) syntax, every option spelled out:
    `fold-constants,assign-layouts{io_formats="NCHW" conv_nhwc=false packed=false}`."""
    return ",".join(str(p.pipeline_pass_spec(include_default=True)) for p in passes)


def parse_pipeline_text(text: str) -> list[ModulePass]:
    """The passes of a `pipeline_text` (or any `-p` spec of ember's passes), with options."""
    known = available_passes()
    try:
        specs = list(parse_pipeline(text))
    except ArgSpecParseError as e:  # a BaseException in xDSL 0.74; its message spans lines
        reason = str(e).strip().splitlines()[-1].strip()
        raise PipelineError(f"cannot parse the pass pipeline {text!r}: {reason}") from None
    unknown = [s.name for s in specs if s.name not in known]
    if unknown:
        raise PipelineError(f"unknown pass(es): {', '.join(unknown)}; "
                            f"available: {', '.join(sorted(known))}")
    try:
        return [known[s.name]().from_pass_spec(s) for s in specs]
    except Exception as e:  # a wrong option name or value
        raise PipelineError(f"bad pass options in {text!r}: {e}") from None


def run_passes(module: ModuleOp, names: Sequence[str | ModulePass], *,
               ctx: Context | None = None, stop_after: str | None = None,
               after_pass: AfterPass | None = None, verify: bool | str = True) -> PipelineRun:
    """Run `names` (pass names, or passes with their options) in order over `module` (in
    place), verifying after each pass (`verify=True`, as mlir-opt does), after the last one
    only (`"last"`: the builder's, verification being most of a build's time), or never."""
    if verify not in (True, False, "last"):
        raise PipelineError(f"verify must be True, False or 'last', not {verify!r}")
    ctx = ctx or ember_context()
    passes = [make_pass(n) if isinstance(n, str) else n for n in names]
    names = [p.name for p in passes]
    if stop_after is not None:
        if stop_after not in names:
            raise PipelineError(f"--stop-after={stop_after}: that pass is not in the pipeline "
                                f"({', '.join(names)})")
        passes = passes[: names.index(stop_after) + 1]
        names = names[: len(passes)]
    run = PipelineRun(list(names))
    for i, (name, p) in enumerate(zip(names, passes, strict=True), 1):
        start = time.perf_counter()
        p.apply(ctx, module)
        run.timings.append(PassTiming(name, time.perf_counter() - start))
        if verify is True or verify == "last" and i == len(passes):
            try:
                module.verify()
            except VerifyException as e:
                where = name if verify is True else (
                    f"the pipeline (its last pass: {name}; `ember opt` verifies after each "
                    "pass, to find the one at fault)")
                raise PassError(f"the IR does not verify after {where}: {e}") from None
        if after_pass is not None:
            after_pass(i, p, module)
    return run


def lower(module: ModuleOp, pipeline: str | Sequence[str] = "default", *,
          ctx: Context | None = None) -> ModuleOp:
    """Run a named pipeline (or a list of pass names) over `module`, in place; return it."""
    run_passes(module, resolve_passes(pipeline), ctx=ctx)
    return module
