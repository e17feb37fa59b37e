"""NVRTC compilation (no GPU needed): CUBIN/PTX, errors, the compile cache, parallel builds."""

from __future__ import annotations

import pytest

from ember.codegen import nvrtc
from ember.codegen.nvrtc import CompileError, compile_cuda, compile_many
from ember.errors import EmberError

AXPY = r"""
extern "C" __global__ void axpy(float* y, const float* x, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
"""

HALF = r"""
#include <cuda_fp16.h>
extern "C" __global__ void hscale(half* y, const half* x, float s, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half(__half2float(x[i]) * s);
}
"""

BROKEN = """extern "C" __global__ void broken(float* y) {
    int i = threadIdx.x;
    y[i] = undefined_thing + ;
}
"""


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path / "cache"))
    nvrtc.clear_memory_cache()
    yield tmp_path / "cache" / "nvrtc"
    nvrtc.clear_memory_cache()


def test_version_and_arch_helpers():
    major, minor = nvrtc.nvrtc_version()
    assert major >= 12 and minor >= 0
    assert nvrtc.parse_arch("sm_90") == (9, 0)
    assert nvrtc.parse_arch("sm_90a") == (9, 0)
    assert nvrtc.parse_arch("compute_86") == (8, 6)
    assert nvrtc.parse_arch("sm_120") == (12, 0)
    assert nvrtc.parse_arch("9.0") == (9, 0)
    assert nvrtc.parse_arch(80) == (8, 0)
    assert nvrtc.parse_arch((8, 9)) == (8, 9)
    assert nvrtc.arch_string(9, 0) == "sm_90"
    assert nvrtc.ptx_arch("sm_90a") == "compute_90a"
    with pytest.raises(ValueError):
        nvrtc.parse_arch("hopper")
    assert 90 in nvrtc.supported_archs()


def test_elementwise_to_cubin_and_ptx():
    k = compile_cuda(AXPY, name="axpy", arch="sm_90")
    assert k.cubin.startswith(b"\x7fELF")
    assert k.ptx is not None and b".entry axpy" in k.ptx
    assert b".target sm_90" in k.ptx
    assert k.arch == "sm_90" and k.name == "axpy"


def test_empty_log_does_not_corrupt_interned_bytes():
    # NVRTC writes a NUL into a 1-byte log buffer: it must not be CPython's shared b" "
    k = compile_cuda('extern "C" __global__ void nothing() {}', name="nothing", cache=False)
    assert k.log == ""
    assert b" " == bytes([32]) and b" ".decode() == " "
    assert k.ptx is not None and not k.ptx.endswith(b"\x00")


def test_without_ptx():
    k = compile_cuda(AXPY, name="axpy", arch="sm_80", want_ptx=False)
    assert k.cubin.startswith(b"\x7fELF") and k.ptx is None and k.arch == "sm_80"


def test_half_kernel_with_cuda_fp16():
    inc = nvrtc.fp16_include_dir()
    if inc is None:
        pytest.skip(
            "no folder holding cuda_fp16.h (looked in $EMBER_CUDA_INCLUDE, nvidia/cu*/include, "
            "nvidia/cuda_runtime/include, $CUDA_HOME, /usr/local/cuda*/include)"
        )
    k = compile_cuda(HALF, name="hscale", arch="sm_90")
    assert k.cubin.startswith(b"\x7fELF")
    assert b".entry hscale" in k.ptx


def test_syntax_error_raises_compile_error_with_log():
    with pytest.raises(CompileError) as info:
        compile_cuda(BROKEN, name="broken_kernel", arch="sm_90")
    err = info.value
    assert isinstance(err, EmberError)
    msg = str(err)
    assert "broken_kernel" in msg
    assert "broken_kernel.cu(3)" in msg  # NVRTC's log, with the line number
    assert "error" in err.log
    assert "undefined_thing" in msg


def test_unsupported_arch_is_a_compile_error():
    with pytest.raises(CompileError, match="sm_11"):
        compile_cuda(AXPY, name="axpy", arch="sm_11")


def test_cache_hits_skip_nvrtc(fresh_cache):
    src = AXPY.replace("a * x[i]", "a * x[i] + 1.0f")
    before = nvrtc.nvrtc_calls()
    first = compile_cuda(src, name="axpy")
    assert nvrtc.nvrtc_calls() == before + 2  # CUBIN + PTX
    second = compile_cuda(src, name="axpy")
    assert nvrtc.nvrtc_calls() == before + 2  # memory hit
    assert second.cubin == first.cubin and second.ptx == first.ptx
    files = list(fresh_cache.glob("*.bin"))
    assert len(files) == 1 and files[0].stem == first.key

    nvrtc.clear_memory_cache()
    third = compile_cuda(src, name="axpy")  # disk hit
    assert nvrtc.nvrtc_calls() == before + 2
    assert third.cubin == first.cubin and third.ptx == first.ptx

    # other options, other arch: other keys
    compile_cuda(src, name="axpy", options=["-DFOO=1"], want_ptx=False)
    compile_cuda(src, name="axpy", arch="sm_80", want_ptx=False)
    assert nvrtc.nvrtc_calls() == before + 4


def test_corrupt_cache_entry_is_recompiled(fresh_cache):
    src = AXPY.replace("a * x[i]", "a * x[i] + 2.0f")
    first = compile_cuda(src, name="axpy")
    path = fresh_cache / f"{first.key}.bin"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip a byte in the body: checksum fails
    path.write_bytes(bytes(data))
    nvrtc.clear_memory_cache()
    before = nvrtc.nvrtc_calls()
    again = compile_cuda(src, name="axpy")
    assert nvrtc.nvrtc_calls() == before + 2
    assert again.cubin == first.cubin
    # the entry was rewritten whole and now hits
    nvrtc.clear_memory_cache()
    compile_cuda(src, name="axpy")
    assert nvrtc.nvrtc_calls() == before + 2
    # garbage and truncated files are ignored too
    path.write_bytes(b"not a cache entry")
    nvrtc.clear_memory_cache()
    assert compile_cuda(src, name="axpy").cubin == first.cubin
    assert not list(fresh_cache.glob("*.tmp"))


def test_disk_cache_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE_DIR", "off")
    assert nvrtc.cache_dir() is None
    compile_cuda(AXPY.replace("y[i];", "y[i] * 3.0f;"), name="axpy", want_ptx=False)


def test_compile_many_in_parallel():
    kernels = [
        (f"scale{i}", AXPY.replace("axpy", f"scale{i}").replace("a * x[i]", f"{i}.0f * x[i]"))
        for i in range(6)
    ]
    kernels.append(("scale0_again", kernels[0][1]))  # duplicate source: compiled once
    before = nvrtc.nvrtc_calls()
    out = compile_many(kernels, arch="sm_90", max_workers=4)
    assert [k.name for k in out] == [name for name, _ in kernels]
    assert nvrtc.nvrtc_calls() == before + 12
    for (name, _), k in zip(kernels[:6], out[:6], strict=True):
        assert k.cubin.startswith(b"\x7fELF")
        assert f".entry {name}".encode() in k.ptx
    assert out[6].cubin == out[0].cubin


def test_compile_many_reports_every_failure():
    kernels = [
        ("good", AXPY),
        ("bad_one", BROKEN),
        ("bad_two", BROKEN.replace("broken", "broken2").replace("+ ;", "* ;")),
    ]
    with pytest.raises(CompileError) as info:
        compile_many(kernels, max_workers=3)
    msg = str(info.value)
    assert "2 of 3" in msg and "bad_one" in msg and "bad_two" in msg
