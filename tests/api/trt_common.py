"""The helpers TensorRT's Python samples import from their `common.py` / `common_runtime.py`,
written for these tests with the same names and call shapes: GiB, HostDeviceMem,
allocate_buffers, do_inference, free_buffers, CudaStreamContext.

TensorRT's helpers move data between pinned host memory and device memory with cuda-python's
cudart. Here each helper comes in two backends: `cuda` (cudart, as the samples do: device
buffers, a stream, cudaMemcpyAsync) and `cpu` (the "device" memory is a second host buffer, the
copies are memmoves and the stream is 0), so the same sample flow runs on ember's CPU executor.
Everything an engine is asked goes through TensorRT's API names, imported as `trt`.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

import ember as trt


def GiB(val: int) -> int:  # noqa: N802 (the samples' name)
    return val * 1 << 30


class _HostBuffer:
    """Host memory as a flat numpy array (the samples' pinned host memory)."""

    def __init__(self, size: int, dtype: np.dtype) -> None:
        self.array = np.zeros(size, dtype)

    @property
    def ptr(self) -> int:
        return self.array.ctypes.data


class CpuBackend:
    """Host buffers standing in for device memory: the CPU executor reads host addresses."""

    name = "cpu"

    def malloc(self, nbytes: int) -> Any:
        return _HostBuffer(max(nbytes, 1), np.dtype(np.uint8))

    def device_ptr(self, mem: Any) -> int:
        return mem.ptr

    def free(self, mem: Any) -> None:
        mem.array = None

    def memcpy_htod_async(self, dst: int, src: np.ndarray, nbytes: int, stream: Any) -> None:
        ctypes.memmove(dst, src.ctypes.data, nbytes)

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, nbytes: int, stream: Any) -> None:
        ctypes.memmove(dst.ctypes.data, src, nbytes)

    def stream_create(self) -> int:
        return 0

    def stream_synchronize(self, stream: Any) -> None:
        pass

    def stream_destroy(self, stream: Any) -> None:
        pass


def cuda_call(call: tuple) -> Any:
    """A cudart call's result, raising on an error status (the samples' `cuda_call`)."""
    from cuda.bindings import runtime as cudart

    err, *rest = call
    if err != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"CUDA error {err}: {cudart.cudaGetErrorName(err)[1]}")
    return rest[0] if len(rest) == 1 else (None if not rest else rest)


class CudaBackend:
    """cudart device memory and streams, as TensorRT's samples allocate them."""

    name = "cuda"

    def __init__(self) -> None:
        from cuda.bindings import runtime as cudart

        self.cudart = cudart

    def malloc(self, nbytes: int) -> Any:
        return cuda_call(self.cudart.cudaMalloc(max(nbytes, 1)))

    def device_ptr(self, mem: Any) -> int:
        return int(mem)

    def free(self, mem: Any) -> None:
        cuda_call(self.cudart.cudaFree(mem))

    def memcpy_htod_async(self, dst: int, src: np.ndarray, nbytes: int, stream: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda_call(self.cudart.cudaMemcpyAsync(dst, src.ctypes.data, nbytes, kind, stream))

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, nbytes: int, stream: Any) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_call(self.cudart.cudaMemcpyAsync(dst.ctypes.data, src, nbytes, kind, stream))

    def stream_create(self) -> Any:
        return cuda_call(self.cudart.cudaStreamCreate())

    def stream_synchronize(self, stream: Any) -> None:
        cuda_call(self.cudart.cudaStreamSynchronize(stream))

    def stream_destroy(self, stream: Any) -> None:
        cuda_call(self.cudart.cudaStreamDestroy(stream))


BACKEND: Any = CpuBackend()


def use_backend(backend: Any) -> None:
    global BACKEND
    BACKEND = backend


class HostDeviceMem:
    """A host array and the device buffer it is copied to and from."""

    def __init__(self, size: int, dtype: np.dtype | None = None) -> None:
        dtype = np.dtype(np.uint8 if dtype is None else dtype)
        self._host = np.zeros(size, dtype)
        self._device = BACKEND.malloc(size * dtype.itemsize)
        self.nbytes = size * dtype.itemsize

    @property
    def host(self) -> np.ndarray:
        return self._host

    @host.setter
    def host(self, data: np.ndarray) -> None:
        np.copyto(self._host[:data.size], data.flat, casting="safe")

    @property
    def device_ptr(self) -> int:
        return BACKEND.device_ptr(self._device)

    def free(self) -> None:
        if self._device is not None:
            BACKEND.free(self._device)
            self._device = None


class CudaStreamContext:
    def __enter__(self) -> CudaStreamContext:
        self.stream = BACKEND.stream_create()
        return self

    def __exit__(self, *exc: object) -> None:
        BACKEND.stream_destroy(self.stream)


def allocate_buffers(engine: Any, profile_idx: int | None = None, context: Any = None):
    """Host and device buffers for every I/O tensor: shapes from `context` when it knows them
    all, else from profile `profile_idx`'s max shapes (through a context of its own), else the
    engine's static shapes."""
    inputs, outputs, bindings = [], [], []
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]

    def is_input(name: str) -> bool:
        return engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT

    shape_ctx = context if context is not None and not context.infer_shapes() else None
    if shape_ctx is None and profile_idx is not None:
        shape_ctx = engine.create_execution_context()
        if engine.num_optimization_profiles > 1:
            stream = BACKEND.stream_create()
            shape_ctx.set_optimization_profile_async(profile_idx, stream)
            BACKEND.stream_synchronize(stream)
            BACKEND.stream_destroy(stream)
        for name in names:
            if is_input(name):
                assert shape_ctx.set_input_shape(
                    name, engine.get_tensor_profile_shape(name, profile_idx)[-1])
        if shape_ctx.infer_shapes():
            raise RuntimeError("infer_shapes failed; cannot size output buffers")
    for name in names:
        shape = tuple(shape_ctx.get_tensor_shape(name) if shape_ctx is not None
                      else engine.get_tensor_shape(name))
        if any(s < 0 for s in shape):
            raise ValueError(f"Binding {name} has dynamic shape, but no profile was specified.")
        size = trt.volume(shape)
        trt_type = engine.get_tensor_dtype(name)
        try:
            mem = HostDeviceMem(size, np.dtype(trt.nptype(trt_type)))
        except TypeError:  # no numpy type (BF16, FP8): bytes
            mem = HostDeviceMem(int(size * trt_type.itemsize))
        bindings.append(int(mem.device_ptr))
        (inputs if is_input(name) else outputs).append(mem)
    return inputs, outputs, bindings


def free_buffers(inputs: list[HostDeviceMem], outputs: list[HostDeviceMem]) -> None:
    for mem in inputs + outputs:
        mem.free()


def do_inference(context: Any, engine: Any, bindings: list[int], inputs: list[HostDeviceMem],
                 outputs: list[HostDeviceMem], stream: CudaStreamContext) -> list[np.ndarray]:
    """Bind every I/O tensor's device address, copy the inputs in, run on the stream, copy the
    outputs back and wait: the samples' `do_inference`."""
    handle = stream.stream
    for i in range(engine.num_io_tensors):
        context.set_tensor_address(engine.get_tensor_name(i), bindings[i])
    for inp in inputs:
        BACKEND.memcpy_htod_async(inp.device_ptr, inp.host, inp.nbytes, handle)
    context.execute_async_v3(stream_handle=handle)
    for out in outputs:
        BACKEND.memcpy_dtoh_async(out.host, out.device_ptr, out.nbytes, handle)
    BACKEND.stream_synchronize(handle)
    return [out.host.copy() for out in outputs]
