"""A thin, checked layer over the CUDA driver API (``cuda.bindings.driver``).

Every driver call's status is checked; a failure raises :class:`ember.errors.CudaError` naming
what was being done (``"launch of step 3 (conv_0)"``) and the CUresult's name. Works with
cuda-bindings 12.x and 13.x (and falls back to ``cuda.cuda`` of older cuda-python).

Contexts: a :class:`Device` retains its primary context (shared with the CUDA runtime, PyTorch,
CuPy, ...) and makes it current in each calling thread on first use; every object here that calls
the driver does that for its device, so buffers, modules and streams can be used from any thread.

Imports: numpy, cuda.bindings, the standard library and ``ember.errors`` only (DESIGN §5).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ember.errors import CudaError
from ember.runtime.arch import arch_string

try:
    from cuda.bindings import driver as cu
except ImportError:  # pragma: no cover - older cuda-python
    try:
        from cuda import cuda as cu  # type: ignore[no-redef]
    except ImportError:
        cu = None

__all__ = [
    "Device",
    "DeviceBuffer",
    "Event",
    "Function",
    "GraphExec",
    "Module",
    "PackedArgs",
    "PinnedBuffer",
    "Stream",
    "begin_capture",
    "capture",
    "check",
    "copy_dtoh",
    "copy_htod",
    "cuda_available",
    "default_device",
    "elapsed_ms",
    "end_capture",
    "launch",
    "pack_args",
]


# --------------------------------------------------------------------------------------------
# status checking


def _status_name(err) -> str:
    name = getattr(err, "name", None)
    if not name and cu is not None:
        try:
            st, s = cu.cuGetErrorName(err)
            if int(st) == 0 and s:
                name = s.decode() if isinstance(s, bytes) else str(s)
        except Exception:
            pass
    return name or f"CUresult {int(err)}"


def _status_desc(err) -> str:
    if cu is None:
        return ""
    try:
        st, s = cu.cuGetErrorString(err)
        if int(st) == 0 and s:
            return s.decode() if isinstance(s, bytes) else str(s)
    except Exception:
        pass
    return ""


def check(result, what: str):
    """Unpack a driver call's ``(status, *values)``; raise CudaError naming ``what`` on failure.

    Returns None, the one value, or a tuple of the values."""
    err, *rest = result
    code = int(err)
    if code != 0:
        desc = _status_desc(err)
        exc = CudaError(f"{what}: {_status_name(err)} ({code})" + (f": {desc}" if desc else ""))
        exc.status = code  # type: ignore[attr-defined]
        exc.what = what  # type: ignore[attr-defined]
        raise exc
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


def _addr(obj) -> int:
    """The integer address held by a driver handle or pointer object (or an int)."""
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    return int(obj)


def _require_driver() -> None:
    if cu is None:
        raise CudaError("CUDA is not available: cuda-python (cuda.bindings) is not installed")


_init_lock = threading.Lock()
_initialized = False


def _init() -> None:
    global _initialized
    if _initialized:
        return
    _require_driver()
    with _init_lock:
        if _initialized:
            return
        try:
            res = cu.cuInit(0)
        except Exception as e:  # the bindings raise when libcuda cannot be loaded
            raise CudaError(f"cuInit: no CUDA driver could be loaded ({e})") from e
        check(res, "cuInit")
        _initialized = True


def cuda_available() -> bool:
    """True when a CUDA driver and at least one GPU are usable; never raises."""
    try:
        _init()
        n = check(cu.cuDeviceGetCount(), "cuDeviceGetCount")
        return int(n) > 0
    except BaseException:  # noqa: BLE001 - by contract this never raises
        return False



def gpu_arch() -> str | None:
    """The arch of GPU 0 ("sm_90"), None where there is none."""
    return Device(0).arch if cuda_available() else None


# --------------------------------------------------------------------------------------------
# device and context

_tls = threading.local()


class Device:
    """One GPU; retains its primary context and makes it current in each calling thread."""

    def __init__(self, index: int = 0) -> None:
        _init()
        count = int(check(cu.cuDeviceGetCount(), "cuDeviceGetCount"))
        if not 0 <= index < count:
            raise CudaError(f"device {index}: no such GPU ({count} visible)")
        self.index = index
        self.handle = check(cu.cuDeviceGet(index), f"cuDeviceGet({index})")
        raw = check(cu.cuDeviceGetName(256, self.handle), f"cuDeviceGetName({index})")
        self.name: str = raw.split(b"\x00", 1)[0].decode(errors="replace")
        attr = cu.CUdevice_attribute
        self.compute_capability: tuple[int, int] = (
            self.attribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            self.attribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
        )
        self.multiprocessor_count = self.attribute(attr.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        self.total_memory = int(check(cu.cuDeviceTotalMem(self.handle), "cuDeviceTotalMem"))
        self.context = check(cu.cuDevicePrimaryCtxRetain(self.handle), "cuDevicePrimaryCtxRetain")
        self._ctx_addr = _addr(self.context)
        self._released = False
        self.set_current()

    @property
    def arch(self) -> str:
        """ "sm_90" for a compute capability 9.0 GPU."""
        return arch_string(*self.compute_capability)

    def attribute(self, attr) -> int:
        res = cu.cuDeviceGetAttribute(attr, self.handle)
        return int(check(res, f"cuDeviceGetAttribute({attr})"))

    def set_current(self) -> None:
        """Make this device's primary context current in the calling thread (cheap if it is)."""
        if getattr(_tls, "ctx", None) == self._ctx_addr:
            return
        if self._released:
            raise CudaError(f"device {self.index}: used after close()")
        check(cu.cuCtxSetCurrent(self.context), f"cuCtxSetCurrent(device {self.index})")
        _tls.ctx = self._ctx_addr

    def synchronize(self) -> None:
        self.set_current()
        check(cu.cuCtxSynchronize(), f"synchronize device {self.index}")

    def mem_info(self) -> tuple[int, int]:
        """(free, total) bytes."""
        self.set_current()
        free, total = check(cu.cuMemGetInfo(), "cuMemGetInfo")
        return int(free), int(total)

    def close(self) -> None:
        """Release the primary context (only when nothing allocated through it is still used)."""
        if self._released:
            return
        self._released = True
        if getattr(_tls, "ctx", None) == self._ctx_addr:
            _tls.ctx = None
        check(cu.cuDevicePrimaryCtxRelease(self.handle), "cuDevicePrimaryCtxRelease")

    def __repr__(self) -> str:
        return f"Device({self.index}, {self.name!r}, {self.arch})"


_default_lock = threading.Lock()
_default_devices: dict[int, Device] = {}


def default_device(index: int = 0) -> Device:
    """A process-wide Device for ``index`` (created on first use)."""
    dev = _default_devices.get(index)
    if dev is None:
        with _default_lock:
            dev = _default_devices.get(index)
            if dev is None:
                dev = Device(index)
                _default_devices[index] = dev
    return dev


def _any_context() -> None:
    """Make sure some context is current in this thread (the default device's if none)."""
    if getattr(_tls, "ctx", None) is None:
        default_device().set_current()


def _dev(device: Device | None) -> Device:
    d = device if device is not None else default_device()
    d.set_current()
    return d


# --------------------------------------------------------------------------------------------
# modules and functions

_ARCH_MISMATCH = {
    "CUDA_ERROR_NO_BINARY_FOR_GPU",
    "CUDA_ERROR_INVALID_IMAGE",
    "CUDA_ERROR_INVALID_SOURCE",
    "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
}


class Function:
    """A kernel of a loaded Module."""

    def __init__(self, module: Module, name: str, handle) -> None:
        self.module = module
        self.name = name
        self.handle = handle
        self.device = module.device

    def attribute(self, attr) -> int:
        self.device.set_current()
        return int(check(cu.cuFuncGetAttribute(attr, self.handle), f"attribute of {self.name}"))

    @property
    def num_regs(self) -> int:
        return self.attribute(cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS)

    @property
    def max_threads_per_block(self) -> int:
        return self.attribute(cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)

    def set_max_dynamic_shared(self, nbytes: int) -> None:
        """Allow more than 48 KB of dynamic shared memory."""
        self.device.set_current()
        check(
            cu.cuFuncSetAttribute(
                self.handle,
                cu.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                int(nbytes),
            ),
            f"set max dynamic shared memory of {self.name} to {nbytes}",
        )

    def __repr__(self) -> str:
        return f"Function({self.name!r})"


class Module:
    """A loaded CUBIN (or PTX, JIT-ed by the driver)."""

    def __init__(self, handle, device: Device, name: str, jitted: bool) -> None:
        self.handle = handle
        self.device = device
        self.name = name
        self.jitted = jitted  # True when the PTX was JIT-ed because the CUBIN did not load
        self._functions: dict[str, Function] = {}

    @classmethod
    def load(
        cls,
        cubin: bytes | None,
        ptx: bytes | None = None,
        *,
        device: Device | None = None,
        name: str = "module",
    ) -> Module:
        """Load ``cubin``; if it does not fit this GPU (arch mismatch) and ``ptx`` is given,
        JIT the PTX instead."""
        dev = _dev(device)
        first_error: CudaError | None = None
        if cubin:
            try:
                handle = check(cu.cuModuleLoadData(bytes(cubin)), f"load CUBIN of {name}")
                return cls(handle, dev, name, jitted=False)
            except CudaError as e:
                first_error = e
                if ptx is None or not any(s in str(e) for s in _ARCH_MISMATCH):
                    raise CudaError(
                        f"{e} (CUBIN for another arch? this GPU is {dev.arch}; no PTX to JIT)"
                        if ptx is None
                        else str(e)
                    ) from None
        if ptx is None:
            raise CudaError(f"load {name}: neither CUBIN nor PTX given")
        image = bytes(ptx)
        if not image.endswith(b"\x00"):
            image += b"\x00"
        try:
            handle = check(cu.cuModuleLoadData(image), f"JIT PTX of {name} for {dev.arch}")
        except CudaError as e:
            if first_error is not None:
                raise CudaError(f"{first_error}; then {e}") from None
            raise
        return cls(handle, dev, name, jitted=True)

    def function(self, name: str) -> Function:
        f = self._functions.get(name)
        if f is None:
            self.device.set_current()
            h = check(
                cu.cuModuleGetFunction(self.handle, name.encode()),
                f"find kernel '{name}' in {self.name}",
            )
            f = self._functions[name] = Function(self, name, h)
        return f

    def unload(self) -> None:
        if self.handle is not None:
            self.device.set_current()
            handle, self.handle = self.handle, None
            self._functions.clear()
            check(cu.cuModuleUnload(handle), f"unload {self.name}")


# --------------------------------------------------------------------------------------------
# memory


class DeviceBuffer:
    """``nbytes`` of device memory (cuMemAlloc); ``.ptr`` is its address as an int.
    Freed by ``free()``, by leaving a ``with`` block, or when collected."""

    def __init__(self, nbytes: int, device: Device | None = None) -> None:
        self.device = _dev(device)
        self.nbytes = int(nbytes)
        if self.nbytes < 0:
            raise CudaError(f"cuMemAlloc: negative size {nbytes}")
        self._handle = None
        self.ptr = 0
        if self.nbytes:
            self._handle = check(cu.cuMemAlloc(self.nbytes), f"cuMemAlloc({self.nbytes} bytes)")
            self.ptr = _addr(self._handle)

    def free(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            self.ptr = 0
            self.device.set_current()
            check(cu.cuMemFree(handle), "cuMemFree")

    def __enter__(self) -> DeviceBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.free()

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:
            pass

    def __int__(self) -> int:
        return self.ptr

    def upload(self, array: np.ndarray, stream: Stream | None = None) -> None:
        if np.asarray(array).nbytes > self.nbytes:
            raise CudaError(f"upload of {array.nbytes} bytes into a {self.nbytes}-byte buffer")
        copy_htod(self.ptr, array, stream)

    def download(self, array: np.ndarray, stream: Stream | None = None) -> np.ndarray:
        if array.nbytes > self.nbytes:
            raise CudaError(f"download of {array.nbytes} bytes from a {self.nbytes}-byte buffer")
        copy_dtoh(array, self.ptr, stream)
        return array

    def zero(self, stream: Stream | None = None) -> None:
        self.device.set_current()
        if not self.nbytes:
            return
        if stream is None:
            check(cu.cuMemsetD8(self.ptr, 0, self.nbytes), "cuMemsetD8")
        else:
            check(cu.cuMemsetD8Async(self.ptr, 0, self.nbytes, stream.handle), "cuMemsetD8Async")

    def __repr__(self) -> str:
        return f"DeviceBuffer(0x{self.ptr:x}, {self.nbytes} bytes)"


class PinnedBuffer:
    """Page-locked host memory (cuMemHostAlloc); ``.array(dtype, shape)`` views it."""

    def __init__(self, nbytes: int, device: Device | None = None) -> None:
        self.device = _dev(device)
        self.nbytes = max(int(nbytes), 1)
        self.ptr = _addr(check(cu.cuMemHostAlloc(self.nbytes, 0), f"cuMemHostAlloc({nbytes})"))
        self._view = np.frombuffer((ctypes.c_char * self.nbytes).from_address(self.ptr), np.uint8)

    def array(self, dtype=np.uint8, shape: Sequence[int] | None = None) -> np.ndarray:
        dt = np.dtype(dtype)
        n = int(np.prod(shape)) if shape is not None else self.nbytes // dt.itemsize
        a = self._view[: n * dt.itemsize].view(dt)
        return a.reshape(shape) if shape is not None else a

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            self._view = None
            self.device.set_current()
            check(cu.cuMemFreeHost(ptr), "cuMemFreeHost")

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:
            pass


def _contiguous(array: np.ndarray) -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(array).__name__}")
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def copy_htod(ptr: int, array: np.ndarray, stream: Stream | None = None) -> None:
    """Copy a host array to device address ``ptr``. Without a stream: synchronous (finished on
    return, for every stream). With one:
    the array is first copied into pinned staging memory owned by the stream (so the caller may
    reuse ``array`` at once), then copied asynchronously."""
    src = _contiguous(array)
    n = src.nbytes
    if n == 0:
        return
    dst = _addr(ptr)
    if stream is None:
        _any_context()
        check(cu.cuMemcpyHtoD(dst, src.ctypes.data, n), f"copy {n} bytes to device")
        # from pageable memory the DMA may still be in flight on return, and non-blocking
        # streams do not wait for the legacy stream: finish it before anything reads it
        check(cu.cuCtxSynchronize(), f"copy {n} bytes to device")
        return
    stream.device.set_current()
    staging = stream._staging(n)
    staging.array(np.uint8, (n,))[:] = src.reshape(-1).view(np.uint8)
    check(
        cu.cuMemcpyHtoDAsync(dst, staging.ptr, n, stream.handle), f"async copy {n} bytes to device"
    )


def copy_dtoh(array: np.ndarray, ptr: int, stream: Stream | None = None) -> np.ndarray:
    """Copy from device address ``ptr`` into a host array (C-contiguous). Without a stream:
    synchronous. With one: asynchronous through pinned staging; ``array`` holds the data after
    ``stream.synchronize()`` (which finishes the copy into it)."""
    if not (isinstance(array, np.ndarray) and array.flags.c_contiguous and array.flags.writeable):
        raise CudaError("copy from device: the destination must be a writable C-contiguous array")
    n = array.nbytes
    if n == 0:
        return array
    src = _addr(ptr)
    if stream is None:
        _any_context()
        check(cu.cuMemcpyDtoH(array.ctypes.data, src, n), f"copy {n} bytes from device")
        return array
    stream.device.set_current()
    staging = stream._staging(n)
    check(
        cu.cuMemcpyDtoHAsync(staging.ptr, src, n, stream.handle),
        f"async copy {n} bytes from device",
    )
    flat = array.reshape(-1).view(np.uint8)
    stream._on_sync.append(lambda: flat.__setitem__(slice(None), staging.array(np.uint8, (n,))))
    return array


# --------------------------------------------------------------------------------------------
# streams and events


class Stream:
    """A CUDA stream (non-blocking with respect to the legacy default stream by default)."""

    def __init__(self, device: Device | None = None, *, non_blocking: bool = True) -> None:
        self.device = _dev(device)
        flags = int(cu.CUstream_flags.CU_STREAM_NON_BLOCKING) if non_blocking else 0
        self.handle = check(cu.cuStreamCreate(flags), "cuStreamCreate")
        self._free: list[PinnedBuffer] = []  # staging buffers no pending copy uses
        self._busy: list[PinnedBuffer] = []  # staging buffers used since the last synchronize
        self._on_sync: list = []  # host-side completions (pinned -> user array)

    def _staging(self, nbytes: int) -> PinnedBuffer:
        for i, b in enumerate(self._free):
            if b.nbytes >= nbytes:
                buf = self._free.pop(i)
                break
        else:
            buf = PinnedBuffer(max(nbytes, 1 << 16), self.device)
        self._busy.append(buf)
        return buf

    def synchronize(self) -> None:
        """Wait for the stream; then finish pending copies into host arrays."""
        self.device.set_current()
        check(cu.cuStreamSynchronize(self.handle), "cuStreamSynchronize")
        pending, self._on_sync = self._on_sync, []
        for fn in pending:
            fn()
        self._free.extend(self._busy)
        self._busy.clear()

    def wait_event(self, event: Event) -> None:
        self.device.set_current()
        check(cu.cuStreamWaitEvent(self.handle, event.handle, 0), "cuStreamWaitEvent")

    def close(self) -> None:
        if self.handle is not None:
            self.synchronize()
            self.device.set_current()
            handle, self.handle = self.handle, None
            check(cu.cuStreamDestroy(handle), "cuStreamDestroy")
            for b in self._free:
                b.free()
            self._free.clear()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Event:
    """A CUDA event; ``start.elapsed_ms(end)`` times the work between two recorded events."""

    def __init__(self, device: Device | None = None, *, timing: bool = True) -> None:
        self.device = _dev(device)
        flags = 0 if timing else int(cu.CUevent_flags.CU_EVENT_DISABLE_TIMING)
        self.handle = check(cu.cuEventCreate(flags), "cuEventCreate")

    def record(self, stream: Stream | None = None) -> Event:
        self.device.set_current()
        check(cu.cuEventRecord(self.handle, stream.handle if stream else 0), "cuEventRecord")
        return self

    def synchronize(self) -> None:
        self.device.set_current()
        check(cu.cuEventSynchronize(self.handle), "cuEventSynchronize")

    def query(self) -> bool:
        """True when the work before the event has completed."""
        self.device.set_current()
        err = cu.cuEventQuery(self.handle)[0]
        if int(err) == int(cu.CUresult.CUDA_ERROR_NOT_READY):
            return False
        check((err,), "cuEventQuery")
        return True

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to ``end`` (waits for ``end``)."""
        end.synchronize()
        return float(check(cu.cuEventElapsedTime(self.handle, end.handle), "cuEventElapsedTime"))

    def close(self) -> None:
        if self.handle is not None:
            self.device.set_current()
            handle, self.handle = self.handle, None
            check(cu.cuEventDestroy(handle), "cuEventDestroy")


def elapsed_ms(start: Event, end: Event) -> float:
    """Milliseconds between two recorded events."""
    return start.elapsed_ms(end)


# --------------------------------------------------------------------------------------------
# kernel arguments and launches

_ARG_DTYPES = {
    "ptr": np.uint64,
    "u64": np.uint64,
    "i64": np.int64,
    "i32": np.int32,
    "u32": np.uint32,
    "f32": np.float32,
    "f64": np.float64,
    "f16": np.float16,
    "i16": np.int16,
    "u16": np.uint16,
    "i8": np.int8,
    "u8": np.uint8,
}


class PackedArgs:
    """Kernel arguments packed once: one numpy scalar array per argument and the array of their
    addresses that cuLaunchKernel reads. Keep the object alive while launches may use it."""

    __slots__ = ("kinds", "values", "argv", "address")

    def __init__(self, specs: Sequence[tuple[str, object]]) -> None:
        self.kinds: list[str] = []
        self.values: list[np.ndarray] = []
        for i, (kind, value) in enumerate(specs):
            if kind == "tmap":  # a tensor map by value: 128 bytes, 64-byte aligned
                self.kinds.append(kind)
                self.values.append(self._tensor_map(value, i))
                continue
            dt = _ARG_DTYPES.get(kind)
            if dt is None:
                raise CudaError(
                    f"kernel argument {i}: unknown kind {kind!r} (one of "
                    f"{', '.join(_ARG_DTYPES)}, tmap)"
                )
            self.kinds.append(kind)
            self.values.append(np.array([self._coerce(kind, value)], dtype=dt))
        self.argv = np.array([v.ctypes.data for v in self.values], dtype=np.uint64)
        self.address = int(self.argv.ctypes.data) if self.values else 0

    @staticmethod
    def _coerce(kind: str, value):
        if kind == "ptr":
            return _addr(value.ptr if isinstance(value, DeviceBuffer) else value)
        return value

    @staticmethod
    def _tensor_map(value, index: int) -> np.ndarray:
        words = np.asarray(value, dtype=np.uint64).reshape(-1)
        if words.size != 16:
            raise CudaError(f"kernel argument {index}: a tensor map is 16 uint64 words, got "
                            f"{words.size}")
        room = np.zeros(24, dtype=np.uint64)  # 64-byte aligned within: the map's alignment
        start = (-room.ctypes.data % 64) // 8
        aligned = room[start:start + 16]
        aligned[:] = words
        return aligned

    def set(self, index: int, value) -> None:
        """Change argument ``index`` in place (its address, and so the packing, stays)."""
        if self.kinds[index] == "tmap":
            self.values[index][:] = np.asarray(value, dtype=np.uint64).reshape(16)
            return
        self.values[index][0] = self._coerce(self.kinds[index], value)

    def __len__(self) -> int:
        return len(self.values)


def pack_args(specs: Sequence[tuple[str, object]]) -> PackedArgs:
    """``pack_args([("ptr", buf.ptr), ("i32", n), ("f32", 2.0), ("i64", m)])``; kinds: ptr,
    i8/u8/i16/u16/f16, i32/u32/f32, i64/u64/f64, and tmap (a tensor map's 16 uint64 words,
    `ember.runtime.tensor_maps.encode`)."""
    return PackedArgs(specs)


def _dim3(d, what: str) -> tuple[int, int, int]:
    if isinstance(d, (int, np.integer)):
        return int(d), 1, 1
    t = tuple(int(x) for x in d)
    if not 1 <= len(t) <= 3:
        raise CudaError(f"{what}: launch dimensions must have 1 to 3 entries, got {d!r}")
    return t + (1,) * (3 - len(t))  # type: ignore[return-value]


# launch configurations of programmatic launches, by (grid, block, shared bytes, stream): made
# once each (building one takes microseconds of Python)
_PROGRAMMATIC: dict[tuple, Any] = {}


def _programmatic_config(dims: tuple[int, ...], shared: int, stream) -> Any:
    key = (*dims, shared, int(stream) if stream is not None else 0)
    config = _PROGRAMMATIC.get(key)
    if config is None:
        attr = cu.CUlaunchAttribute()
        attr.id = cu.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
        attr.value.programmaticStreamSerializationAllowed = 1
        config = cu.CUlaunchConfig()
        (config.gridDimX, config.gridDimY, config.gridDimZ,
         config.blockDimX, config.blockDimY, config.blockDimZ) = dims
        config.sharedMemBytes = shared
        config.hStream = stream if stream is not None else cu.CUstream(0)
        config.attrs = [attr]
        config.numAttrs = 1
        if len(_PROGRAMMATIC) >= 4096:
            _PROGRAMMATIC.clear()
        _PROGRAMMATIC[key] = config
    return config


def launch(
    function: Function,
    grid,
    block,
    shared_bytes: int,
    stream: Stream | None,
    args: PackedArgs,
    *,
    what: str | None = None,
    programmatic: bool = False,
) -> None:
    """cuLaunchKernel. ``grid``/``block``: int or 1-3 ints. ``what`` names the step in errors
    (e.g. ``"step 3 (conv_0)"``); the message then reads ``launch of step 3 (conv_0): ...``.
    ``programmatic``: cuLaunchKernelEx with programmatic stream serialization (sm_90+): the
    kernel may start before the kernel ahead of it in the stream has finished, so it must wait
    for it itself (``griddepcontrol.wait``, as ember's kernels do: codegen/templates)."""
    gx, gy, gz = _dim3(grid, what or function.name)
    bx, by, bz = _dim3(block, what or function.name)
    function.device.set_current()
    handle = stream.handle if stream is not None else None
    if programmatic:
        config = _programmatic_config((gx, gy, gz, bx, by, bz), int(shared_bytes), handle)
        result = cu.cuLaunchKernelEx(config, function.handle, args.address, 0)
    else:
        result = cu.cuLaunchKernel(function.handle, gx, gy, gz, bx, by, bz, int(shared_bytes),
                                   handle if handle is not None else 0, args.address, 0)
    if int(result[0]) != 0:
        check(
            result,
            f"launch of {what or 'kernel ' + repr(function.name)} "
            f"(grid {(gx, gy, gz)}, block {(bx, by, bz)}, shared {shared_bytes} B)",
        )


# --------------------------------------------------------------------------------------------
# CUDA graphs

_CAPTURE_MODES = {
    "global": "CU_STREAM_CAPTURE_MODE_GLOBAL",
    "thread_local": "CU_STREAM_CAPTURE_MODE_THREAD_LOCAL",
    "relaxed": "CU_STREAM_CAPTURE_MODE_RELAXED",
}


class GraphExec:
    """An instantiated CUDA graph: ``launch(stream)`` replays the captured work."""

    def __init__(self, handle, graph, device: Device) -> None:
        self.handle = handle
        self.graph = graph
        self.device = device

    def launch(self, stream: Stream | None = None) -> None:
        self.device.set_current()
        check(
            cu.cuGraphLaunch(self.handle, stream.handle if stream is not None else 0),
            "cuGraphLaunch",
        )

    def close(self) -> None:
        if self.handle is not None:
            self.device.set_current()
            handle, self.handle = self.handle, None
            check(cu.cuGraphExecDestroy(handle), "cuGraphExecDestroy")
            graph, self.graph = self.graph, None
            if graph is not None:
                check(cu.cuGraphDestroy(graph), "cuGraphDestroy")

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def begin_capture(stream: Stream, mode: str = "thread_local") -> None:
    """Start recording the work enqueued on ``stream`` into a graph."""
    stream.device.set_current()
    m = getattr(cu.CUstreamCaptureMode, _CAPTURE_MODES[mode])
    try:
        res = cu.cuStreamBeginCapture(stream.handle, m)
    except TypeError:  # pragma: no cover - bindings that only expose the _v2 name with a mode
        res = cu.cuStreamBeginCapture_v2(stream.handle, m)
    check(res, "cuStreamBeginCapture")


def end_capture(stream: Stream) -> GraphExec:
    """Stop recording and instantiate the graph."""
    stream.device.set_current()
    graph = check(cu.cuStreamEndCapture(stream.handle), "cuStreamEndCapture (graph capture)")
    try:
        try:
            exe = check(cu.cuGraphInstantiate(graph, 0), "cuGraphInstantiate")
        except TypeError:  # pragma: no cover - older bindings: (graph, logBuffer, size)
            exe = check(cu.cuGraphInstantiateWithFlags(graph, 0), "cuGraphInstantiateWithFlags")
    except BaseException:
        cu.cuGraphDestroy(graph)
        raise
    return GraphExec(exe, graph, stream.device)


@dataclass
class _Capture:
    exec: GraphExec | None = None


@contextmanager
def capture(stream: Stream, mode: str = "thread_local") -> Iterator[_Capture]:
    """``with capture(s) as g: launch(...)`` then ``g.exec.launch(s)``. On an error inside the
    block the capture is ended and discarded."""
    holder = _Capture()
    begin_capture(stream, mode)
    try:
        yield holder
    except BaseException:
        try:
            res = cu.cuStreamEndCapture(stream.handle)
            if int(res[0]) == 0 and res[1] is not None:
                cu.cuGraphDestroy(res[1])
        except Exception:
            pass
        raise
    holder.exec = end_capture(stream)
