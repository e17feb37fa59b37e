"""Memory planning: activations share one arena by liveness.

Each activation lives from the step that writes it to the last step that reads it (a view keeps
its base alive). Offsets are assigned first-fit over the intervals, largest first, aligned, so two
activations share bytes only when their lifetimes do not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGNMENT = 256


@dataclass(frozen=True)
class Interval:
    key: int        # the buffer this is for
    start: int      # first step index that writes it
    end: int        # last step index that reads it (inclusive)
    nbytes: int


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_arena(intervals: list[Interval]) -> tuple[dict[int, int], int]:
    """Offsets by key and the arena size: no two overlapping lifetimes share a byte."""
    placed: list[tuple[int, int, Interval]] = []  # (offset, size, interval)
    offsets: dict[int, int] = {}
    for iv in sorted(intervals, key=lambda i: (-i.nbytes, i.start, i.key)):
        size = _align(max(iv.nbytes, 1))
        live = sorted((o, s) for o, s, other in placed
                      if not (other.end < iv.start or iv.end < other.start))
        offset = 0
        for o, s in live:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        offsets[iv.key] = offset
        placed.append((offset, size, iv))
    total = max((o + s for o, s, _ in placed), default=0)
    return offsets, total
