"""Nsight Compute's per-kernel figures for a plan, by plan step: what limits each kernel.

On the GPU host (ncu reads the counters on the Firecracker H100s; give it `--clock-control
none`), profile one run of a plan and save the step table beside it:

    ncu --clock-control none --csv --page details --section SpeedOfLight \\
        --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis \\
        --section WarpStateStats ember run model.plan --device cuda > model.ncu.csv
    ember inspect model.plan > model.inspect.txt

Then, anywhere:

    python tools/ncu_steps.py model.ncu.csv model.inspect.txt [--top 30] [--by-kernel]

prints each launch (or, with --by-kernel, each CUDA kernel summed over its launches) slowest
first: microseconds, DRAM and SM throughput (% of peak), issue slots busy, achieved /
theoretical occupancy, registers, dynamic shared memory, grid, block and warp cycles per issued
instruction, with the plan step (name, tactic, ONNX nodes) that launches it. Kernels are matched
to steps by their CUDA names (`ember inspect`'s "cuda kernel" column); steps sharing a kernel
show the first.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from collections import defaultdict
from pathlib import Path

COLUMNS = (  # (heading, section, metric)
    ("dram%", "GPU Speed Of Light Throughput", "DRAM Throughput"),
    ("sm%", "GPU Speed Of Light Throughput", "Compute (SM) Throughput"),
    ("issue%", "Compute Workload Analysis", "Issue Slots Busy"),
    ("occ%", "Occupancy", "Achieved Occupancy"),
    ("th%", "Occupancy", "Theoretical Occupancy"),
    ("regs", "Launch Statistics", "Registers Per Thread"),
    ("smem", "Launch Statistics", "Dynamic Shared Memory Per Block"),
    ("grid", "Launch Statistics", "Grid Size"),
    ("block", "Launch Statistics", "Block Size"),
    ("cpi", "Warp State Statistics", "Warp Cycles Per Issued Instruction"),
)
DURATION = ("GPU Speed Of Light Throughput", "Duration")
_MICROSECONDS = {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}
_STEP = re.compile(r"\s+(\w+)\s+\w+\s+.*?\s(?:gpu|cpu)\s+(\w+) <<<[^>]*>>>\s*(\[[^\]]*\])?\s*(.*)")


def launches(text: str) -> list[tuple[str, dict[tuple[str, str], tuple[str, str]]]]:
    """(kernel name, {(section, metric): (value, unit)}) per profiled launch, in order, from
    ncu's `--csv --page details` output (its own lines before the table are skipped)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        raise SystemExit("no ncu table (a line starting with \"ID\") in the CSV")
    found: dict[str, tuple[str, dict]] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        _, metrics = found.setdefault(row["ID"], (row["Kernel Name"], {}))
        metrics[(row["Section Name"], row["Metric Name"])] = (row["Metric Value"],
                                                               row["Metric Unit"])
    return list(found.values())


def microseconds(metrics: dict) -> float:
    value, unit = metrics[DURATION]
    if unit not in _MICROSECONDS:
        raise SystemExit(f"duration unit {unit!r} is not one of {sorted(_MICROSECONDS)}")
    return float(value.replace(",", "")) * _MICROSECONDS[unit]


def steps(inspect_text: str) -> dict[str, str]:
    """CUDA kernel name -> "step [tactic] onnx nodes" of the first step launching it."""
    out: dict[str, str] = {}
    for line in inspect_text.splitlines():
        m = _STEP.match(line)
        if m:
            out.setdefault(m.group(2), " ".join(x for x in (m.group(1), m.group(3) or "",
                                                           m.group(4)[:80]) if x))
    return out


def table(launched: list, named: dict[str, str], top: int, by_kernel: bool) -> list[str]:
    rows: list[tuple[float, int, str, dict]] = []
    if by_kernel:
        totals: dict[str, list] = defaultdict(lambda: [0.0, 0, {}])
        for name, metrics in launched:
            entry = totals[name]
            entry[0] += microseconds(metrics)
            entry[1] += 1
            entry[2] = entry[2] or metrics
        rows = [(us, n, name, metrics) for name, (us, n, metrics) in totals.items()]
    else:
        rows = [(microseconds(metrics), 1, name, metrics) for name, metrics in launched]
    rows.sort(key=lambda r: -r[0])
    total = sum(r[0] for r in rows)
    out = [f"total {total:.1f} us over {sum(r[1] for r in rows)} launch(es) of "
           f"{len({r[2] for r in rows})} kernel(s)",
           f"{'us':>8} {'n':>3} " + " ".join(f"{h:>7}" for h, _, _ in COLUMNS) + "  step"]
    for us, n, name, metrics in rows[:top]:
        cells = [metrics.get((s, m), ("-", ""))[0] for _, s, m in COLUMNS]
        out.append(f"{us:8.1f} {n:3d} " + " ".join(f"{c:>7}" for c in cells)
                   + f"  {named.get(name, name)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="ncu --csv --page details output")
    parser.add_argument("inspect", type=Path, nargs="?",
                        help="`ember inspect` of the profiled plan (steps by kernel name)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--by-kernel", action="store_true",
                        help="one row per CUDA kernel, summed over its launches")
    args = parser.parse_args(argv)
    try:
        launched = launches(args.csv.read_text())
        named = steps(args.inspect.read_text()) if args.inspect else {}
    except OSError as e:
        print(f"ncu_steps: {e}", file=sys.stderr)
        return 2
    print("\n".join(table(launched, named, args.top, args.by_kernel)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
