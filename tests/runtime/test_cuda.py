"""The CUDA driver layer. GPU tests carry the `cuda` marker and skip where no GPU is visible;
the argument packing and status checking are tested everywhere."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ember.errors import CudaError, EmberError
from ember.runtime import cuda as rt

AXPY = r"""
extern "C" __global__ void axpy(float* y, const float* x, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void add_i64(long long* y, long long k, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += k;
}
"""

gpu = pytest.mark.skipif(not rt.cuda_available(), reason="no CUDA driver or GPU visible")


# ---------------------------------------------------------------- everywhere (no GPU needed)


def test_cuda_available_never_raises():
    assert rt.cuda_available() in (True, False)


def test_pack_args_layout():
    packed = rt.pack_args([("ptr", 0x7F0000001000), ("i32", 7), ("f32", 2.5), ("i64", -3)])
    assert len(packed) == 4
    assert packed.values[0].dtype == np.uint64 and packed.values[0][0] == 0x7F0000001000
    assert packed.values[1].dtype == np.int32 and packed.values[1][0] == 7
    assert packed.values[2].dtype == np.float32 and packed.values[2][0] == 2.5
    assert packed.values[3].dtype == np.int64 and packed.values[3][0] == -3
    assert packed.argv.dtype == np.uint64
    assert [int(a) for a in packed.argv] == [v.ctypes.data for v in packed.values]
    assert packed.address == packed.argv.ctypes.data
    address = packed.address
    packed.set(1, 9)  # in place: the addresses stay
    assert packed.values[1][0] == 9 and packed.address == address
    with pytest.raises(CudaError, match="unknown kind"):
        rt.pack_args([("float", 1.0)])


def test_check_names_the_step():
    if rt.cu is None:
        pytest.skip("cuda.bindings is not installed")
    assert rt.check((rt.cu.CUresult.CUDA_SUCCESS, 5), "x") == 5
    assert rt.check((rt.cu.CUresult.CUDA_SUCCESS,), "x") is None
    with pytest.raises(CudaError) as info:
        rt.check((rt.cu.CUresult.CUDA_ERROR_INVALID_VALUE,), "launch of step 3 (conv_0)")
    assert isinstance(info.value, EmberError)
    assert "launch of step 3 (conv_0)" in str(info.value)
    assert "CUDA_ERROR_INVALID_VALUE" in str(info.value)


# ---------------------------------------------------------------- on a GPU


@pytest.fixture(scope="module")
def device():
    return rt.default_device()


@pytest.fixture(scope="module")
def module(device):
    from ember.codegen.nvrtc import compile_cuda

    k = compile_cuda(AXPY, name="axpy_test", arch=device.arch)
    return rt.Module.load(k.cubin, k.ptx, device=device, name="axpy_test")


@pytest.mark.cuda
@gpu
def test_device(device):
    assert device.arch.startswith("sm_") and device.name
    assert device.compute_capability[0] >= 5
    free, total = device.mem_info()
    assert 0 < free <= total


@pytest.mark.cuda
@gpu
def test_axpy_matches_numpy(module):
    n = 100_003
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.standard_normal(n, dtype=np.float32)
    fn = module.function("axpy")
    with rt.DeviceBuffer(x.nbytes) as dx, rt.DeviceBuffer(y.nbytes) as dy:
        rt.copy_htod(dx.ptr, x)
        rt.copy_htod(dy.ptr, y)
        args = rt.pack_args([("ptr", dy.ptr), ("ptr", dx.ptr), ("f32", 2.0), ("i32", n)])
        rt.launch(fn, (n + 255) // 256, 256, 0, None, args)
        out = np.empty_like(y)
        rt.copy_dtoh(out, dy.ptr)
    np.testing.assert_allclose(out, 2.0 * x + y, rtol=1e-6, atol=1e-6)


@pytest.mark.cuda
@gpu
def test_async_copies_and_i64_args(module):
    n = 4096
    y = np.arange(n, dtype=np.int64)
    fn = module.function("add_i64")
    stream = rt.Stream()
    try:
        buf = rt.DeviceBuffer(y.nbytes)
        rt.copy_htod(buf.ptr, y, stream)
        y[:] = -1  # the staging copy was taken: the source may change at once
        args = rt.pack_args([("ptr", buf), ("i64", 1 << 40), ("i32", n)])
        rt.launch(fn, (n + 127) // 128, 128, 0, stream, args)
        out = np.zeros(n, np.int64)
        rt.copy_dtoh(out, buf.ptr, stream)
        stream.synchronize()
        np.testing.assert_array_equal(out, np.arange(n, dtype=np.int64) + (1 << 40))
        buf.free()
    finally:
        stream.close()


@pytest.mark.cuda
@gpu
def test_events_time_work(module):
    n = 1 << 20
    fn = module.function("axpy")
    stream = rt.Stream()
    with rt.DeviceBuffer(4 * n) as dx, rt.DeviceBuffer(4 * n) as dy:
        dx.zero(stream)
        dy.zero(stream)
        args = rt.pack_args([("ptr", dy.ptr), ("ptr", dx.ptr), ("f32", 1.0), ("i32", n)])
        start, end = rt.Event(), rt.Event()
        start.record(stream)
        for _ in range(20):
            rt.launch(fn, n // 256, 256, 0, stream, args)
        end.record(stream)
        ms = start.elapsed_ms(end)
        assert end.query()
        assert 0.0 < ms < 10_000.0
        assert rt.elapsed_ms(start, end) == ms
        stream.synchronize()
    stream.close()


@pytest.mark.cuda
@gpu
def test_graph_capture_replay(module):
    n = 10_000
    fn = module.function("axpy")
    x = np.ones(n, np.float32)
    stream = rt.Stream()
    with rt.DeviceBuffer(x.nbytes) as dx, rt.DeviceBuffer(x.nbytes) as dy:
        rt.copy_htod(dx.ptr, x)
        dy.zero()
        args = rt.pack_args([("ptr", dy.ptr), ("ptr", dx.ptr), ("f32", 0.5), ("i32", n)])
        rt.begin_capture(stream)
        for _ in range(4):
            rt.launch(fn, (n + 255) // 256, 256, 0, stream, args)
        graph = rt.end_capture(stream)
        out = np.empty(n, np.float32)
        rt.copy_dtoh(out, dy.ptr)
        assert not out.any()  # capturing runs nothing
        for _ in range(3):
            graph.launch(stream)
        stream.synchronize()
        rt.copy_dtoh(out, dy.ptr)
        np.testing.assert_allclose(out, np.full(n, 0.5 * 4 * 3, np.float32))

        with rt.capture(stream) as g:
            rt.launch(fn, (n + 255) // 256, 256, 0, stream, args)
        g.exec.launch(stream)
        stream.synchronize()
        rt.copy_dtoh(out, dy.ptr)
        np.testing.assert_allclose(out, np.full(n, 6.5, np.float32))
        graph.close()
        g.exec.close()
    stream.close()


@pytest.mark.cuda
@gpu
def test_bad_launch_names_the_step(module):
    fn = module.function("axpy")
    args = rt.pack_args([("ptr", 0), ("ptr", 0), ("f32", 1.0), ("i32", 0)])
    with pytest.raises(CudaError) as info:
        rt.launch(fn, (0, 1, 1), 256, 0, None, args, what="step 3 (conv_0)")
    assert "launch of step 3 (conv_0)" in str(info.value)
    assert "CUDA_ERROR_INVALID_VALUE" in str(info.value)
    with pytest.raises(CudaError, match="step 4"):
        rt.launch(fn, 1, 4096, 0, None, args, what="step 4 (gemm_1)")
    # the context is still usable afterwards
    rt.default_device().synchronize()


@pytest.mark.cuda
@gpu
def test_missing_kernel_and_bad_image(module):
    with pytest.raises(CudaError, match="nope"):
        module.function("nope")
    with pytest.raises(CudaError):
        rt.Module.load(b"\x7fELF this is not a cubin", None, name="garbage")


@pytest.mark.cuda
@gpu
def test_ptx_fallback_when_cubin_is_for_another_arch(device):
    from ember.codegen.nvrtc import compile_cuda, nvrtc_version

    other = "sm_80" if device.compute_capability[0] != 8 else "sm_75"  # another major: no SASS
    k = compile_cuda(AXPY, name="axpy_other", arch=device.arch)
    foreign = compile_cuda(AXPY, name="axpy_other", arch=other, want_ptx=False)
    try:
        mod = rt.Module.load(foreign.cubin, k.ptx, device=device, name="axpy_other")
    except CudaError as e:  # PTX from an NVRTC newer than the driver cannot be JIT-ed
        pytest.skip(f"driver cannot JIT PTX of NVRTC {nvrtc_version()}: {e}")
    assert mod.jitted
    mod.function("axpy")


@pytest.mark.cuda
@gpu
def test_use_from_another_thread(module):
    fn = module.function("axpy")
    errors: list[BaseException] = []
    out = np.empty(256, np.float32)

    def work():
        try:
            with rt.DeviceBuffer(1024) as dx, rt.DeviceBuffer(1024) as dy:
                rt.copy_htod(dx.ptr, np.ones(256, np.float32))
                dy.zero()
                args = rt.pack_args([("ptr", dy.ptr), ("ptr", dx.ptr), ("f32", 3.0), ("i32", 256)])
                rt.launch(fn, 1, 256, 0, None, args)
                rt.copy_dtoh(out, dy.ptr)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert not errors, errors
    np.testing.assert_allclose(out, 3.0)
