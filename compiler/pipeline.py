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
from xdsl.utils.exceptions import VerifyException

from ember.dialects import ember_context
from ember.errors import PassError, PipelineError
from ember.passes import make_pass, pass_names, pipeline_names

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


def run_passes(module: ModuleOp, names: Sequence[str], *, ctx: Context | None = None,
               stop_after: str | None = None, after_pass: AfterPass | None = None,
               verify: bool = True) -> PipelineRun:
    """Run `names` in order over `module` (in place), verifying after each pass."""
    ctx = ctx or ember_context()
    if stop_after is not None:
        if stop_after not in names:
            raise PipelineError(f"--stop-after={stop_after}: that pass is not in the pipeline "
                                f"({', '.join(names)})")
        names = list(names[: list(names).index(stop_after) + 1])
    run = PipelineRun(list(names))
    for i, name in enumerate(names, 1):
        p = make_pass(name)
        start = time.perf_counter()
        p.apply(ctx, module)
        run.timings.append(PassTiming(name, time.perf_counter() - start))
        if verify:
            try:
                module.verify()
            except VerifyException as e:
                raise PassError(f"the IR does not verify after {name}: {e}") from None
        if after_pass is not None:
            after_pass(i, p, module)
    return run


def lower(module: ModuleOp, pipeline: str | Sequence[str] = "default", *,
          ctx: Context | None = None) -> ModuleOp:
    """Run a named pipeline (or a list of pass names) over `module`, in place; return it."""
    run_passes(module, resolve_passes(pipeline), ctx=ctx)
    return module
