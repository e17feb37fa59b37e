"""Per-layer profiling (TensorRT's IProfiler): `context.profiler = ember.Profiler()` times every
step of each run — CUDA events around each launch on the GPU, perf_counter on the CPU — and
`report()` lists the steps by time with their template and ONNX nodes. Off (None) it costs one
check per run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class IProfiler(Protocol):
    """What a context's profiler must have: TensorRT's one callback, once per layer per run."""

    def report_layer_time(self, layer_name: str, ms: float) -> None: ...


@dataclass
class LayerTime:
    """One step's accumulated time over the profiled runs."""

    name: str
    template: str = ""
    origin: tuple[str, ...] = ()
    tactic: str = ""
    total_ms: float = 0.0
    count: int = 0

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0


# why a run's per-step times are not what an unprofiled run does
GRAPH_NOTE = ("CUDA-graph context: profiled runs launch the steps one by one (per-step events "
              "cannot be recorded inside a replayed graph), so launch overhead is included")


class Profiler:
    """Accumulates per-step times; subclass and override `report_layer_time` for TensorRT's
    IProfiler behaviour, or read `layers()` / `report()` after the runs."""

    def __init__(self) -> None:
        self._layers: dict[str, LayerTime] = {}
        self._lock = threading.Lock()
        self.runs = 0
        self.notes: list[str] = []

    # -- TensorRT's callback -----------------------------------------------------------------------
    def report_layer_time(self, layer_name: str, ms: float) -> None:
        with self._lock:
            entry = self._layers.get(layer_name)
            if entry is None:
                entry = self._layers[layer_name] = LayerTime(layer_name)
            entry.total_ms += ms
            entry.count += 1

    # -- what an ExecutionContext calls after a profiled run -----------------------------------
    def report_run(self, steps: Sequence[Mapping[str, Any]], times_ms: Sequence[float],
                   note: str | None = None) -> None:
        """One run's times, in step order: records each step's template and ONNX origin, then
        reports each time through `report_layer_time`."""
        with self._lock:
            self.runs += 1
            if note and note not in self.notes:
                self.notes.append(note)
            for step in steps:
                name = step["name"]
                if name not in self._layers:
                    self._layers[name] = LayerTime(
                        name, str(step.get("template", "")), tuple(step.get("origin", ())),
                        tactic_text(step.get("params", {}).get("tactic")))
        for step, ms in zip(steps, times_ms, strict=True):
            self.report_layer_time(step["name"], ms)

    # -- results -------------------------------------------------------------------------------
    def layers(self) -> list[LayerTime]:
        """Every timed step, the most total time first."""
        with self._lock:
            timed = [LayerTime(e.name, e.template, e.origin, e.tactic, e.total_ms, e.count)
                     for e in self._layers.values() if e.count]
        return sorted(timed, key=lambda e: e.total_ms, reverse=True)

    def total_ms(self) -> float:
        """The sum of the steps' mean times: one run's kernel time."""
        return sum(e.mean_ms for e in self.layers())

    def reset(self) -> None:
        with self._lock:
            self._layers.clear()
            self.runs = 0
            self.notes.clear()

    def report(self, top: int | None = None) -> str:
        """The steps sorted by time (mean ms per run, share of the run), with template, tactic
        and ONNX nodes; `top` keeps the slowest N."""
        layers = self.layers()
        total = sum(e.mean_ms for e in layers)
        lines = [f"  {'kernel':28} {'template':14} {'ms/run':>9} {'%':>6}  {'tactic':22} "
                 "onnx nodes"]
        for e in layers[:top] if top is not None else layers:
            share = 100.0 * e.mean_ms / total if total else 0.0
            lines.append(f"  {e.name:28} {e.template:14} {e.mean_ms:9.4f} {share:5.1f}%  "
                         f"{e.tactic or '-':22} {short_origin(e.origin)}")
        shown = len(layers) if top is None else min(top, len(layers))
        lines.append(f"total: {total:.4f} ms per run over {len(layers)} step(s), "
                     f"{self.runs} run(s) profiled" + ("" if shown == len(layers)
                                                        else f"; slowest {shown} shown"))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def tactic_text(tactic: Any) -> str:
    """A step's `tactic` param in a few characters: `wgmma 128x256x4`, `mma 64x64x32x2x2x4
    splits 2` (no `splits 1`); "" without one."""
    if not isinstance(tactic, Mapping):
        return ""
    parts = []
    for key, value in tactic.items():
        if isinstance(value, (list, tuple)):
            parts.append(f"{key} {'x'.join(str(v) for v in value)}")
        elif not (key == "splits" and value == 1):
            parts.append(f"{key} {value}")
    return " ".join(parts)


def short_origin(origin: Sequence[str], width: int = 90) -> str:
    """ONNX node names, their common path said once: `/enc/l0/{q/MatMul, q/Add}`; cut to about
    `width` characters with the node count."""
    if not origin:
        return "-"
    prefix = ""
    if len(origin) > 1:
        common = os.path.commonprefix(list(origin))
        prefix = common[:common.rfind("/") + 1]
    rest = [name[len(prefix):] for name in origin]
    text = prefix + ("{" + ", ".join(rest) + "}" if prefix else ", ".join(rest))
    if len(text) > width:
        cut = text[:width].rsplit(", ", 1)[0] if len(origin) > 1 else text[:width]
        text = cut + f", ... ({len(origin)} nodes)" if len(origin) > 1 else cut + "..."
    return text


def deliver(profiler: Any, steps: Sequence[Mapping[str, Any]], times_ms: Sequence[float],
            note: str | None = None) -> None:
    """Hand one run's per-step times to a profiler: ember's Profiler (or anything with
    `report_run`) gets them with the steps; a plain IProfiler gets `report_layer_time` calls."""
    report_run = getattr(profiler, "report_run", None)
    if report_run is not None:
        report_run(steps, times_ms, note)
        return
    for step, ms in zip(steps, times_ms, strict=True):
        profiler.report_layer_time(step["name"], ms)


__all__ = ["GRAPH_NOTE", "IProfiler", "LayerTime", "Profiler", "deliver", "short_origin"]
