"""tools/pass_ab.py: a model built with its whole pipeline and without named passes, both run on
the same inputs (here sm_90 plans on the CPU executor: a QDQ attention with and without
fuse-attention-kernels gives the same bits, seven kernels fewer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.codegen.test_attention_chain import _attention
from tests.passes.test_fold_qdq import _quantized

TOOL = Path(__file__).resolve().parents[2] / "tools" / "pass_ab.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          timeout=300)


def test_with_and_without_a_pass(tmp_path):
    _, qdq, _ = _quantized(tmp_path, _attention(2, 64, 2, 64), symmetric=True)
    done = _run(qdq, "--without", "fuse-attention-kernels", "--int8", "--fp16", "--device",
                "cpu", "--arch", "sm_90", "--repeats", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("with: ") and "attention_chain 1" in lines[0]
    assert lines[1].startswith("without fuse-attention-kernels: ") and "softmax 1" in lines[1]
    assert "attention_chain" not in lines[1]
    assert lines[2] == "output y: rel-L2 between the two plans 0, 100.0000% of values equal"


def test_a_pass_the_build_does_not_run_is_named(tmp_path):
    _, qdq, _ = _quantized(tmp_path, _attention(2, 64, 2, 64), symmetric=True)
    done = _run(qdq, "--without", "fuse-attention-kernels", "--device", "cpu")
    assert done.returncode == 2
    assert "not in this build's pipeline: fuse-attention-kernels" in done.stderr
    assert "fold-qdq" in done.stderr  # the passes it does run are listed
