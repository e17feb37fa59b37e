"""`ember bench --plot OUT.png`: the per-layer profile as a chart (matplotlib, drawn off-screen):
each step's median time as a bar, the slowest first, labelled with its share of the medians' sum
and its ONNX nodes. Plans with hundreds of steps show the `top` slowest
and one bar for the rest."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ember.errors import EmberError
from ember.runtime.files import atomic_path

TOP = 40  # bars drawn; the other steps share one


def _label(row: dict[str, Any]) -> str:
    origin = ", ".join(row.get("origin") or [])
    if len(origin) > 40:
        origin = origin[:37] + "..."
    return f"{row['name']} ({origin})" if origin else row["name"]


def plot_profile(rows: Sequence[dict[str, Any]], count: int, path: str | os.PathLike,
                 title: str = "", top: int = TOP) -> None:
    """Draw `rows` (bench.profile_rows) of `count` iterations to `path` (its suffix picks the
    format: .png, .svg, .pdf); written whole or not at all."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # no pyplot: no display, no global state
    except ImportError:
        raise EmberError("--plot needs matplotlib (pip install matplotlib)") from None
    if not rows:
        raise EmberError("--plot: the profile has no steps to draw")
    suffix = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if suffix not in ("png", "svg", "pdf"):
        raise EmberError(f"--plot {os.fspath(path)!r}: give a .png, .svg or .pdf file")
    ordered = sorted(rows, key=lambda r: r["medianMs"], reverse=True)
    shown, rest = ordered[:top], ordered[top:]
    total = sum(r["medianMs"] for r in rows)
    bars = [(_label(r), r["medianMs"]) for r in shown]
    if rest:
        bars.append((f"{len(rest)} other steps", sum(r["medianMs"] for r in rest)))
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # an SVG's labels stay text
        _draw(Figure(figsize=(10, 1.2 + 0.28 * len(bars))), bars, total, len(rows), count,
              title, suffix, path, bool(rest))


def _draw(figure: Any, bars: list[tuple[str, float]], total: float, steps: int, count: int,
          title: str, suffix: str, path: str | os.PathLike, rest: bool) -> None:
    axes = figure.subplots()
    positions = range(len(bars))[::-1]
    colors = ["#d9480f"] * (len(bars) - rest) + ["#adb5bd"] * rest
    axes.barh(list(positions), [b[1] for b in bars], color=colors)
    axes.set_yticks(list(positions), [b[0] for b in bars], fontsize=7)
    for y, (_, ms) in zip(positions, bars, strict=True):  # the share of the medians' sum
        axes.annotate(f" {100 * ms / total if total else 0:.1f}%", (ms, y), va="center",
                      fontsize=7)
    axes.set_xlabel("median time per inference (ms)")
    axes.set_title((title + "\n" if title else "")
                   + f"{steps} steps, {total:.4g} ms in all (medians of {count} "
                   "iterations)", fontsize=9)
    axes.margins(x=0.12)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=suffix, dpi=120)
