"""tools/qdq_drift.py: ember's run of a small QDQ encoder against onnxruntime's, as a CPU plan
and (`--arch`) as a GPU target's plan on the CPU executor (its folded quantize scales)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "qdq_drift.py"


@pytest.mark.parametrize("arch", [None, "sm_90"])
def test_an_encoder_against_onnxruntime(arch):
    extra = ["--arch", arch] if arch else []
    done = subprocess.run([sys.executable, str(TOOL), "--layers", "1", "--hidden", "64",
                           "--heads", "2", "--seq", "16", *extra], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("ember CPU"))
    assert ("(sm_90 plan)" in line) == (arch is not None)
    ours, ref = (float(v) for v in re.findall(r": ([0-9.e+-]+)", line))
    ort = float(re.search(r"onnxruntime QDQ vs float: ([0-9.e+-]+)", done.stdout).group(1))
    # both INT8 runs are about as far from the float model; ember's from onnxruntime's by
    # no more than that (one layer: a few rounding-boundary steps at most)
    assert ours <= ort and abs(ref - ort) < 0.5 * ort
