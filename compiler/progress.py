"""Build progress for people: TensorRT's `IProgressMonitor` (set on `config.progress_monitor`;
the builder reports its phases to it through `codegen/progress.py`) and `ProgressBars`, the
monitor the CLI shows on a terminal (rich progress bars, one per open phase).

A build's phases, outermost first (each a child of the one above it):
"Building plan" (2 steps) > "Calibrating" (an INT8 build's calibration, a step per batch;
announced as 0 steps where the calibrator does not say how many), then "Running passes" (a step
per pass) > "Timing kernels" (choose-formats' measured formats: a step per kernel timed) and
"Compiling candidate kernels" / "Timing tactics" (the autotuner: a step per candidate compiled /
timed); then "Packing plan" (1 step) > "Compiling kernels" (NVRTC: a step per distinct kernel).
Only phases with work start. `PhaseTimes` records where the time went (`ember build --verbose`).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ember.errors import EmberError

PHASE_METHODS = ("phase_start", "step_complete", "phase_finish")


class IProgressMonitor:
    """TensorRT's IProgressMonitor: subclass it and define `phase_start(phase_name,
    parent_phase, num_steps)` (parent_phase None for a top-level phase), `step_complete(
    phase_name, step) -> bool` (False cancels the build: `build_serialized_network` then
    returns None) and `phase_finish(phase_name)`. Phases nest and finish innermost first, also
    when the build stops (an error or a cancellation)."""

    def __init__(self) -> None:
        pass

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        _undefined(self, "phase_start(phase_name, parent_phase, num_steps)")

    def step_complete(self, phase_name: str, step: int) -> bool:
        _undefined(self, "step_complete(phase_name, step) -> bool")
        return False

    def phase_finish(self, phase_name: str) -> None:
        _undefined(self, "phase_finish(phase_name)")


def _undefined(monitor: object, method: str) -> None:
    raise EmberError(f"{type(monitor).__name__} must define {method} (an IProgressMonitor "
                     "subclass is told of each build phase there)")


def check_monitor(monitor: Any) -> Any:
    """`monitor` if it can be a build's progress monitor (None: no monitor); else an error."""
    if monitor is None:
        return None
    missing = [m for m in PHASE_METHODS if not callable(getattr(monitor, m, None))]
    if missing:
        raise EmberError(f"config.progress_monitor must be an IProgressMonitor (with "
                         f"{', '.join(PHASE_METHODS)}); {type(monitor).__name__} lacks "
                         f"{', '.join(missing)}")
    overridden = [m for m in PHASE_METHODS if isinstance(monitor, IProgressMonitor)
                  and getattr(type(monitor), m) is getattr(IProgressMonitor, m)]
    if overridden:
        raise EmberError(f"{type(monitor).__name__} must define {', '.join(overridden)} "
                         "(IProgressMonitor's own are abstract)")
    return monitor


class ProgressBars(IProgressMonitor):
    """A progress bar per open phase (rich), indented under its parent, on `stream` (stderr),
    gone when the phase finishes. Never cancels."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bars = Progress(TextColumn("{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TimeElapsedColumn(),
                              console=Console(file=stream or sys.stderr), transient=True)
        self._tasks: dict[str, Any] = {}
        self._depth: dict[str, int] = {}

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        if not self._tasks:
            self._bars.start()
        depth = self._depth.get(parent_phase, -1) + 1 if parent_phase is not None else 0
        self._depth[phase_name] = depth
        self._tasks[phase_name] = self._bars.add_task("  " * depth + phase_name,
                                                      total=max(num_steps, 1))

    def step_complete(self, phase_name: str, step: int) -> bool:
        self._bars.update(self._tasks[phase_name], completed=step)
        return True

    def phase_finish(self, phase_name: str) -> None:
        self._bars.remove_task(self._tasks.pop(phase_name))
        self._depth.pop(phase_name, None)
        if not self._tasks:
            self._bars.stop()


class PhaseTimes(IProgressMonitor):
    """Where a build's time went: each phase's wall time, summed over the times it ran (the
    autotuner's phases run once per pass that times kernels), and the time of each of its steps
    (for "Running passes": of each pass). Forwards everything to `inner` (e.g. the terminal's
    bars), whose answer cancels as its own would."""

    def __init__(self, inner: Any | None = None) -> None:
        super().__init__()
        self.inner = check_monitor(inner)
        self.totals: dict[str, float] = {}
        self.runs: dict[str, int] = {}
        self.steps: dict[str, list[float]] = {}
        self._started: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        now = time.perf_counter()
        self._started[phase_name] = self._last[phase_name] = now
        self.steps[phase_name] = []
        self.totals.setdefault(phase_name, 0.0)  # reported in the order phases first start
        if self.inner is not None:
            self.inner.phase_start(phase_name, parent_phase, num_steps)

    def step_complete(self, phase_name: str, step: int) -> bool:
        now = time.perf_counter()
        self.steps[phase_name].append(now - self._last[phase_name])
        self._last[phase_name] = now
        return True if self.inner is None else self.inner.step_complete(phase_name, step)

    def phase_finish(self, phase_name: str) -> None:
        elapsed = time.perf_counter() - self._started.pop(phase_name)
        self.totals[phase_name] += elapsed
        self.runs[phase_name] = self.runs.get(phase_name, 0) + 1
        if self.inner is not None:
            self.inner.phase_finish(phase_name)

    def report(self, pass_names: list[str] | None = None, slowest: int = 3) -> str:
        """One line: each phase's seconds in the order they first ran (xN: it ran N times),
        and with `pass_names` (the pipeline's, in order) the `slowest` passes."""
        parts = [f"{name} {seconds:.1f} s" + (f" (x{self.runs[name]})"
                                               if self.runs[name] > 1 else "")
                 for name, seconds in self.totals.items()]
        line = "phases: " + ", ".join(parts)
        times = self.steps.get("Running passes") or []
        if pass_names and len(times) == len(pass_names):
            top = sorted(zip(times, pass_names, strict=True), reverse=True)[:slowest]
            line += "; slowest passes: " + ", ".join(f"{n} {t:.1f} s" for t, n in top)
        return line


def terminal_bars(quiet: bool = False) -> ProgressBars | None:
    """The CLI's monitor: bars when stderr is a terminal and not `quiet`, else none."""
    if quiet or not sys.stderr.isatty():
        return None
    return ProgressBars()
