"""tools/wgmma_rate.py: its probe kernels compile with NVRTC for sm_90a, each issuing the
wgmma of its type and width in gemm_wgmma's text; bad arguments and a machine without a GPU are
one-line errors."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ember.codegen.nvrtc import compile_many
from ember.runtime.cuda import cuda_available

TOOL = Path(__file__).resolve().parents[2] / "tools" / "wgmma_rate.py"
_spec = importlib.util.spec_from_file_location("wgmma_rate", TOOL)
wgmma_rate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wgmma_rate)


@pytest.mark.parametrize("a_registers", [False, True], ids=["A shared", "A registers"])
@pytest.mark.parametrize("dtype, bn, groups, instruction", [
    ("int8", 128, 2, rb"wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8"),
    ("int8", 256, 1, rb"wgmma.mma_async.sync.aligned.m64n256k32.s32.s8.s8"),
    ("float16", 64, 3, rb"wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16"),
    ("float8_e4m3fn", 192, 2, rb"wgmma.mma_async.sync.aligned.m64n192k32.f32.e4m3.e4m3")])
def test_each_probe_compiles_to_its_wgmma(dtype, bn, groups, instruction, a_registers):
    source = wgmma_rate.kernel_source("k", dtype, bn, groups, 1, 64, a_registers)
    # the register form names four A registers where the shared form names a descriptor
    assert ("wgmma_rs_" in source) is a_registers
    assert "wgmma_wait<1>();" in source and f"__launch_bounds__({128 * groups}, 1)" in source
    (kernel,) = compile_many([("k", source)], "sm_90", cache=False)
    found = len(re.findall(instruction, kernel.ptx))
    assert found >= 4 and found % 4 == 0  # the batch of four (the loop may unroll further)
    assert wgmma_rate.shared_bytes(groups, bn) == 4 * (64 * groups + bn) * 128 + 1024


@pytest.mark.parametrize("a_registers", [False, True], ids=["A shared", "A registers"])
def test_stepped_descriptors_are_made_before_the_timed_loop(a_registers):
    source = wgmma_rate.kernel_source("k", "int8", 128, 2, 1, 64, a_registers, True)
    loop = source[source.index("clock64()"):]
    assert "wgmma_desc(" not in loop and "db + ks * 2" in loop
    assert ("da + ks * 2" in loop) is not a_registers
    (kernel,) = compile_many([("k", source)], "sm_90", cache=False)
    # the same instructions, 16-byte steps: the descriptors' low bits count 16-byte units
    assert len(re.findall(rb"wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8", kernel.ptx)) >= 4


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="depth 9"):
        wgmma_rate.kernel_source("k", "int8", 128, 1, 9, 64)
    with pytest.raises(ValueError, match="m64n100"):
        wgmma_rate.kernel_source("k", "int8", 100, 1, 1, 64)
    with pytest.raises(ValueError, match="128 accumulator registers a thread, and 512 threads"):
        wgmma_rate.kernel_source("k", "int8", 256, 4, 1, 64)
    for argv, message in ((["--dtypes", "int4"], "--dtypes: int4"),
                          (["--columns", "100"], "m64n100"),
                          (["--a-from", "global"], "--a-from: global"),
                          (["--desc", "cached"], "--desc: cached"),
                          (["--k-tiles", "0"], "--k-tiles and --blocks")):
        with pytest.raises(SystemExit, match=message):
            wgmma_rate.main(argv)


@pytest.mark.skipif(cuda_available(), reason="checks the message on a machine without a GPU")
def test_without_a_gpu_it_says_so():
    run = subprocess.run([sys.executable, str(TOOL), "--columns", "128", "--warpgroups", "1"],
                         capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.strip() == "wgmma_rate: needs a GPU"
