"""tools/ncu_steps.py: Nsight Compute's CSV read back by plan step (synthetic ncu output in the
shape `ncu --csv --page details` writes, and an `ember inspect` table)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "ncu_steps.py"

HEAD = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream",'
        '"Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit",'
        '"Metric Value"')


def _row(launch: int, kernel: str, section: str, metric: str, unit: str, value: str) -> str:
    return (f'"{launch}","1","python3","h","{kernel}","1","7","(128, 1, 1)","(4, 1, 1)","0",'
            f'"9.0","{section}","{metric}","{unit}","{value}"')


def _csv() -> str:
    lines = ["==PROF== Connected to process 1", HEAD]
    for launch, kernel, duration, unit, dram in ((0, "conv_aaa", "55,800", "ns", "24.5"),
                                                 (1, "pool_bbb", "14.3", "us", "60.1"),
                                                 (2, "conv_aaa", "55,600", "ns", "24.6")):
        lines += [_row(launch, kernel, "GPU Speed Of Light Throughput", "Duration", unit,
                       duration),
                  _row(launch, kernel, "GPU Speed Of Light Throughput", "DRAM Throughput", "%",
                       dram),
                  _row(launch, kernel, "Launch Statistics", "Registers Per Thread",
                       "register/thread", "108")]
    return "\n".join(lines) + "\n"


INSPECT = "\n".join([  # `ember inspect`'s step rows (columns shortened)
    "  kernel  template in out prec on cuda kernel <<<grid, block>>> [tactic] onnx nodes",
    "  conv_7  conv NHWC 32x56x56x256 NHWC int32 gpu  conv_aaa <<<4x784, 128>>> "
    "[mma=128x64x32x2x2x4,splits=1]  /layer1/conv3/Conv",
    "  conv_10 conv NHWC 32x56x56x256 NHWC int32 gpu  conv_aaa <<<4x784, 128>>> "
    "[mma=128x64x32x2x2x4,splits=1]  /layer1.1/conv3/Conv",
    "  pool_3  pool NHWC 32x56x56x64 NHWC int8 gpu  pool_bbb <<<3136, 256>>>       "
    "/maxpool/MaxPool"])


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "p.csv").write_text(_csv())
    (tmp_path / "p.txt").write_text(INSPECT)
    return subprocess.run([sys.executable, str(TOOL), str(tmp_path / "p.csv"),
                           str(tmp_path / "p.txt"), *args], capture_output=True, text=True)


def test_launches_are_listed_slowest_first_with_their_steps(tmp_path):
    run = _run(tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "total 125.7 us over 3 launch(es) of 2 kernel(s)"
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["55.8", "55.6", "14.3"]  # ns and us both read as us
    assert rows[0][2] == "24.5" and rows[0][7] == "108" and rows[0][-3] == "conv_7"
    assert rows[2][-2:] == ["pool_3", "/maxpool/MaxPool"]


def test_by_kernel_sums_the_launches_of_one_kernel(tmp_path):
    rows = [line.split() for line in _run(tmp_path, "--by-kernel").stdout.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("111.4", "2"), ("14.3", "1")]
    assert "[mma=128x64x32x2x2x4,splits=1]" in rows[0]


def test_a_file_without_ncus_table_is_refused(tmp_path):
    (tmp_path / "bad.csv").write_text("==PROF== nothing profiled\n")
    run = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "bad.csv")],
                         capture_output=True, text=True)
    assert run.returncode != 0 and "no ncu table" in run.stderr
