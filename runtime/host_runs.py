"""The runs of consecutive host steps in a GPU plan (layers placed on the CPU, and those without
a CUDA kernel) and the copies each makes. Between its steps a run passes tensors on the host;
a tensor it reads that it did not make comes from the device once, before the first step that
reads it (nothing writes the device during a run, so that is its value at the run's start;
weights need no copy: the host reads the plan's own), and a tensor it makes goes back to the
device once, after its last step, only where a later step or the plan's outputs read it. The
CUDA executor makes exactly these copies; the layer table counts them. Buffers are counted by
the buffer they view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HostRun:
    steps: tuple[int, ...]   # consecutive step indices
    reads: tuple[int, ...]   # root buffers copied device -> host, in the order first read
    writes: tuple[int, ...]  # root buffers copied host -> device after the run's last step


def root(buffers: Sequence[Mapping[str, Any]], index: int) -> int:
    """The buffer whose bytes buffer `index` sees (a view's base, to the end)."""
    while buffers[index]["kind"] == "view":
        index = buffers[index]["base"]
    return index


def host_runs(steps: Sequence[Mapping[str, Any]], buffers: Sequence[Mapping[str, Any]],
              outputs: Sequence[int]) -> list[HostRun]:
    """The host runs of a plan's steps; `outputs`: the buffers of the plan's outputs."""
    def on_host(k: int) -> bool:
        return steps[k].get("device") == "cpu"

    runs: list[HostRun] = []
    k = 0
    while k < len(steps):
        if not on_host(k):
            k += 1
            continue
        start = k
        while k < len(steps) and on_host(k):
            k += 1
        made: dict[int, None] = {}   # ordered sets
        reads: dict[int, None] = {}
        for step in steps[start:k]:
            for j in step["inputs"]:
                r = root(buffers, j)
                if r not in made and buffers[r]["kind"] != "weight":
                    reads.setdefault(r)
            for j in step["outputs"]:
                made.setdefault(root(buffers, j))
        later = {root(buffers, j) for step in steps[k:] for j in step["inputs"]}
        later.update(root(buffers, j) for j in outputs)
        runs.append(HostRun(tuple(range(start, k)), tuple(reads),
                            tuple(r for r in made if r in later)))
    return runs
