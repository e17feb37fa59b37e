"""CUDA C -> CUBIN (+ PTX) with NVRTC, through ``cuda.bindings.nvrtc``, with a compile cache.

- CUBIN is compiled with ``--gpu-architecture=sm_XX`` (machine code, loads on that arch with any
  driver new enough); PTX with ``--gpu-architecture=compute_XX`` (kept so a plan can be re-JIT-ed).
- ``cuda_fp16.h`` is not built into NVRTC: the folder holding it is discovered (see
  :func:`cuda_include_dirs`) and passed with ``-I``; a kernel that includes nothing compiles
  without any include folder.
- Results are cached by ``sha256(source, options, arch, NVRTC version)``: in memory and on disk
  (``$EMBER_CACHE_DIR/nvrtc``, default ``~/.cache/ember/nvrtc``). Disk entries are written
  atomically and carry a checksum; a corrupt entry is ignored and recompiled. Entries are plain
  bytes, never pickles.
- :func:`compile_many` compiles independent kernels in parallel threads (NVRTC is thread-safe per
  program; cuda-bindings 13 releases the GIL around NVRTC calls).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import site
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from ember.errors import CompileError
from ember.runtime.arch import arch_string, normalize_arch, parse_arch, ptx_arch

try:  # cuda-python >= 12.x
    from cuda.bindings import nvrtc as _nvrtc
except ImportError:  # pragma: no cover - older cuda-python (11.x / early 12.x)
    try:
        from cuda import nvrtc as _nvrtc  # type: ignore[no-redef]
    except ImportError:
        _nvrtc = None

__all__ = [
    "CompileError",
    "CompiledKernel",
    "arch_string",
    "cache_dir",
    "clear_memory_cache",
    "compile_cuda",
    "compile_many",
    "cuda_include_dirs",
    "fp16_include_dir",
    "nvrtc_calls",
    "nvrtc_version",
    "parse_arch",
    "ptx_arch",
    "supported_archs",
]


@dataclass(frozen=True)
class CompiledKernel:
    """What NVRTC made of one source: CUBIN for ``arch``, PTX for ``compute_XX`` (or None)."""

    cubin: bytes
    ptx: bytes | None
    log: str
    arch: str
    name: str = ""
    key: str = ""


# --------------------------------------------------------------------------------------------
# NVRTC basics


def _require_nvrtc():
    if _nvrtc is None:
        raise CompileError(
            "NVRTC is not available: install cuda-python (cuda-bindings) and "
            "nvidia-cuda-nvrtc-cu12 (or the cu13 wheels)"
        )
    return _nvrtc


def _check(result, what: str):
    """Unpack an NVRTC call's ``(status, *values)`` tuple; raise CompileError on failure."""
    err, *rest = result
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        try:
            s = _nvrtc.nvrtcGetErrorString(err)
            desc = s[1].decode() if isinstance(s, tuple) and len(s) > 1 else ""
        except Exception:  # pragma: no cover
            desc = ""
        raise CompileError(f"NVRTC {what} failed: {name} {desc}".rstrip())
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


@lru_cache(maxsize=1)
def nvrtc_version() -> tuple[int, int]:
    """NVRTC's (major, minor), e.g. (12, 9)."""
    nv = _require_nvrtc()
    major, minor = _check(nv.nvrtcVersion(), "nvrtcVersion")
    return int(major), int(minor)


@lru_cache(maxsize=1)
def supported_archs() -> tuple[int, ...]:
    """Compute capabilities NVRTC can target, as ints (e.g. 75, 80, 86, 89, 90, ...)."""
    nv = _require_nvrtc()
    try:
        archs = _check(nv.nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs")
    except (AttributeError, CompileError):  # pragma: no cover - very old NVRTC
        return ()
    return tuple(int(a) for a in archs)


# --------------------------------------------------------------------------------------------
# include folders


def _header_version(folder: str) -> int | None:
    """CUDA_VERSION (e.g. 12090) of the headers in ``folder`` when it can be read."""
    for fname, macro in (("cuda.h", "CUDA_VERSION"), ("cuda_runtime_api.h", "CUDART_VERSION")):
        path = os.path.join(folder, fname)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read(400_000)
        except OSError:
            continue
        m = re.search(rf"#\s*define\s+{macro}\s+(\d+)", text)
        if m:
            return int(m.group(1))
    return None


def _site_dirs() -> list[str]:
    dirs: list[str] = []
    try:
        dirs += site.getsitepackages()
    except Exception:  # pragma: no cover - virtualenvs without getsitepackages
        pass
    try:
        dirs.append(site.getusersitepackages())
    except Exception:  # pragma: no cover
        pass
    dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    out: list[str] = []
    for d in dirs:
        if d and d not in out:
            out.append(d)
    return out


@lru_cache(maxsize=1)
def cuda_include_dirs() -> tuple[str, ...]:
    """Folders that hold ``cuda_fp16.h``, best first.

    Looked at, in order: ``$EMBER_CUDA_INCLUDE`` (os.pathsep-separated), the wheels'
    ``nvidia/cu<NVRTC major>/include``, ``nvidia/cu13/include``, ``nvidia/cu12/include``,
    ``nvidia/cuda_runtime/include``, cuda.pathfinder's cudart header folder, ``$CUDA_HOME`` /
    ``$CUDA_PATH``, ``/usr/local/cuda/include`` and ``/usr/local/cuda-*/include``. Folders whose
    headers' major CUDA version matches NVRTC's come first (the order above otherwise holds).
    """
    try:
        nv_major = nvrtc_version()[0]
    except Exception:
        nv_major = 0
    candidates: list[str] = []
    env = os.environ.get("EMBER_CUDA_INCLUDE", "")
    candidates += [p for p in env.split(os.pathsep) if p]
    for sp in _site_dirs():
        for sub in (f"cu{nv_major}", "cu13", "cu12"):
            candidates.append(os.path.join(sp, "nvidia", sub, "include"))
        candidates.append(os.path.join(sp, "nvidia", "cuda_runtime", "include"))
    try:  # cuda-pathfinder ships with cuda-bindings >= 12.9 / 13
        from cuda import pathfinder  # type: ignore[attr-defined]

        found = pathfinder.find_nvidia_header_directory("cudart")
        if found:
            candidates.append(str(found))
    except Exception:
        pass
    for var in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "include"))
    candidates.append("/usr/local/cuda/include")
    candidates += sorted(glob.glob("/usr/local/cuda-*/include"), reverse=True)

    seen: set[str] = set()
    found_dirs: list[str] = []
    for c in candidates:
        try:
            real = os.path.realpath(c)
        except OSError:  # pragma: no cover
            continue
        if real in seen or not os.path.isfile(os.path.join(real, "cuda_fp16.h")):
            continue
        seen.add(real)
        found_dirs.append(real)

    def rank(folder: str) -> int:
        v = _header_version(folder)
        return 0 if (v is not None and v // 1000 == nv_major) else 1

    # env override always first; the rest sorted (stably) by version match
    n_env = sum(
        1 for p in env.split(os.pathsep) if p and os.path.isfile(os.path.join(p, "cuda_fp16.h"))
    )
    head, tail = found_dirs[:n_env], found_dirs[n_env:]
    return tuple(head + sorted(tail, key=rank))


def fp16_include_dir() -> str | None:
    """The folder passed with ``-I`` (the best of :func:`cuda_include_dirs`), or None."""
    dirs = cuda_include_dirs()
    return dirs[0] if dirs else None


# --------------------------------------------------------------------------------------------
# cache

_MAGIC = b"EMBER-NVRTC-CACHE 1\n"
_mem_cache: dict[str, CompiledKernel] = {}
_mem_lock = threading.Lock()
_calls_lock = threading.Lock()
_nvrtc_calls = 0


def nvrtc_calls() -> int:
    """How many NVRTC programs this process has compiled (cache hits do not count)."""
    return _nvrtc_calls


def clear_memory_cache() -> None:
    """Forget the in-memory cache (the disk cache stays)."""
    with _mem_lock:
        _mem_cache.clear()


def cache_dir() -> Path | None:
    """The disk cache folder: ``$EMBER_CACHE_DIR/nvrtc`` or ``~/.cache/ember/nvrtc``.
    ``EMBER_CACHE_DIR=off`` (or ``0``/``none``) turns the disk cache off (None)."""
    root = os.environ.get("EMBER_CACHE_DIR")
    if root is not None and root.strip().lower() in ("", "0", "off", "none", "false"):
        return None
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "ember"
    return base / "nvrtc"


def _cache_key(source: str, options: Sequence[str], arch: str) -> str:
    h = hashlib.sha256()
    blob = json.dumps(
        {"source": source, "options": list(options), "arch": arch, "nvrtc": nvrtc_version()},
        sort_keys=True,
    ).encode()
    h.update(blob)
    return h.hexdigest()


def _disk_read(key: str) -> CompiledKernel | None:
    folder = cache_dir()
    if folder is None:
        return None
    path = folder / f"{key}.bin"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(_MAGIC):
            raise ValueError("bad magic")
        rest = data[len(_MAGIC) :]
        nl = rest.index(b"\n")
        header = json.loads(rest[:nl].decode())
        body = rest[nl + 1 :]
        n_cubin, n_ptx, n_log = int(header["cubin"]), int(header["ptx"]), int(header["log"])
        if header.get("key") != key or len(body) != n_cubin + max(n_ptx, 0) + n_log:
            raise ValueError("bad sizes")
        if hashlib.sha256(body).hexdigest() != header["sha256"]:
            raise ValueError("bad checksum")
        cubin = body[:n_cubin]
        ptx = body[n_cubin : n_cubin + n_ptx] if n_ptx >= 0 else None
        log = body[n_cubin + max(n_ptx, 0) :].decode("utf-8", errors="replace")
        if not cubin.startswith(b"\x7fELF"):
            raise ValueError("not an ELF CUBIN")
        arch, name = str(header["arch"]), str(header.get("name", ""))
        return CompiledKernel(cubin, ptx, log, arch, name, key)
    except Exception:
        return None  # corrupt or foreign entry: ignored, recompiled and overwritten


def _disk_write(entry: CompiledKernel) -> None:
    folder = cache_dir()
    if folder is None:
        return
    log = entry.log.encode()
    ptx = entry.ptx
    body = entry.cubin + (ptx or b"") + log
    header = {
        "key": entry.key,
        "name": entry.name,
        "arch": entry.arch,
        "cubin": len(entry.cubin),
        "ptx": -1 if ptx is None else len(ptx),
        "log": len(log),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    data = _MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + body
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{entry.key[:16]}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, folder / f"{entry.key}.bin")
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError:
        pass  # an unwritable cache never fails a build


# --------------------------------------------------------------------------------------------
# compile


def _log_with_source(log: str, source: str, program: str) -> str:
    """NVRTC's log, then the source lines it complains about, numbered."""
    lines = source.splitlines()
    wanted: list[int] = []
    for m in re.finditer(rf"{re.escape(program)}\((\d+)\)", log):
        n = int(m.group(1))
        if n not in wanted and 1 <= n <= len(lines):
            wanted.append(n)
    if not wanted:
        return log
    shown = [f"  {n:4d} | {lines[n - 1]}" for n in wanted[:10]]
    return log.rstrip() + "\nsource lines:\n" + "\n".join(shown)


def _read_into(getter, prog, size: int, what: str) -> bytes:
    """Call an NVRTC getter that fills a caller-provided buffer of ``size`` bytes.

    The buffer is a fresh bytearray: the common recipe ``b" " * size`` hands NVRTC CPython's
    shared one-byte ``b" "`` object when size is 1 (an empty log), and NVRTC's NUL would then
    corrupt every b" " in the process."""
    buf = bytearray(size)
    try:
        _check(getter(prog, buf), what)
    except TypeError:  # pragma: no cover - bindings that accept only bytes
        raw = bytes(size + 2)  # a new, private object (never a cached one- or zero-byte bytes)
        _check(getter(prog, raw), what)
        return raw[:size]
    return bytes(buf)


def _run_nvrtc(source: str, program: str, options: Sequence[str], want: str) -> tuple[bytes, str]:
    """One NVRTC compile; ``want`` is "cubin" or "ptx". Returns (binary, log)."""
    global _nvrtc_calls
    nv = _require_nvrtc()
    with _calls_lock:
        _nvrtc_calls += 1
    prog = _check(
        nv.nvrtcCreateProgram(source.encode(), program.encode(), 0, [], []), "nvrtcCreateProgram"
    )
    try:
        opts = [o.encode() for o in options]
        status, *_ = nv.nvrtcCompileProgram(prog, len(opts), opts)
        size = _check(nv.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
        log_buf = _read_into(nv.nvrtcGetProgramLog, prog, int(size), "nvrtcGetProgramLog")
        log = log_buf.rstrip(b"\x00 ").decode("utf-8", errors="replace")
        if int(status) != 0:
            name = program[:-3] if program.endswith(".cu") else program
            target = next(
                (o.split("=", 1)[1] for o in options if o.startswith("--gpu-architecture=")), "?"
            )
            raise CompileError(
                f"NVRTC could not compile kernel '{name}' for {target}"
                f" ({getattr(status, 'name', status)}):\n{_log_with_source(log, source, program)}",
                kernel=name,
                log=log,
            )
        if want == "cubin":
            n = _check(nv.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
            buf = _read_into(nv.nvrtcGetCUBIN, prog, int(n), "nvrtcGetCUBIN")
        else:
            n = _check(nv.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
            buf = _read_into(nv.nvrtcGetPTX, prog, int(n), "nvrtcGetPTX").rstrip(b"\x00")
        return buf, log
    finally:
        try:
            nv.nvrtcDestroyProgram(prog)
        except Exception:  # pragma: no cover
            pass


def _base_options(source: str, options: Iterable[str]) -> list[str]:
    opts = list(options)
    if not any(o.startswith(("-std=", "--std=")) for o in opts):
        opts.insert(0, "-std=c++17")
    inc = fp16_include_dir()
    if inc is not None and "#include" in source:
        opts.append(f"-I{inc}")
    return opts


def compile_cuda(
    source: str,
    *,
    name: str,
    arch: str = "sm_90",
    options: Iterable[str] = (),
    want_ptx: bool = True,
    cache: bool = True,
) -> CompiledKernel:
    """Compile one CUDA C source with NVRTC: CUBIN for ``arch`` and (``want_ptx``) PTX for the
    matching ``compute_XX``. ``name`` names the kernel in errors and the NVRTC program
    (``<name>.cu``). Raises :class:`CompileError` with NVRTC's log on failure."""
    arch_n = normalize_arch(arch)
    supported = supported_archs()
    major, minor = parse_arch(arch_n)
    if supported and major * 10 + minor not in supported:
        raise CompileError(
            f"kernel '{name}': NVRTC {'.'.join(map(str, nvrtc_version()))} cannot target {arch_n} "
            f"(it supports {', '.join(f'sm_{a}' for a in supported)})",
            kernel=name,
        )
    opts = _base_options(source, options)
    key = _cache_key(source, opts, arch_n)
    if cache:
        with _mem_lock:
            hit = _mem_cache.get(key)
        if hit is None:
            hit = _disk_read(key)
            if hit is not None and not (want_ptx and hit.ptx is None):
                with _mem_lock:
                    _mem_cache[key] = hit
        if hit is not None and not (want_ptx and hit.ptx is None):
            hit = replace(hit, name=name)
            return hit if want_ptx else replace(hit, ptx=None)

    program = f"{name}.cu"
    if "#include <cuda_fp16.h>" in source and fp16_include_dir() is None:
        hint = (
            "\n(no folder holding cuda_fp16.h was found: set EMBER_CUDA_INCLUDE, or install "
            "nvidia-cuda-runtime-cu12 / the CUDA toolkit)"
        )
    else:
        hint = ""
    try:
        cubin, log = _run_nvrtc(source, program, [f"--gpu-architecture={arch_n}", *opts], "cubin")
        ptx = None
        if want_ptx:
            ptx, plog = _run_nvrtc(
                source, program, [f"--gpu-architecture={ptx_arch(arch_n)}", *opts], "ptx"
            )
            if plog and plog != log:
                log = (log + "\n" + plog).strip()
    except CompileError as e:
        if hint:
            raise CompileError(str(e) + hint, kernel=e.kernel, log=e.log) from None
        raise
    entry = CompiledKernel(cubin, ptx, log, arch_n, name, key)
    if cache:
        with _mem_lock:
            _mem_cache[key] = entry
        _disk_write(entry)
    return entry


# a kernel whose source carries this line uses sm_90a-only instructions (wgmma): it compiles for
# the arch-specific target of an sm_90 build and for no other arch
ARCH_SPECIFIC_SM90A = "// target: sm_90a (wgmma)"


def kernel_arch(name: str, source: str, arch: str) -> str:
    """The target one kernel compiles for in a build for `arch`: `arch` itself, or "sm_90a"
    for a kernel marked `ARCH_SPECIFIC_SM90A` in an sm_90 build (CompileError elsewhere)."""
    if ARCH_SPECIFIC_SM90A not in source:
        return arch
    if parse_arch(arch) != (9, 0):
        raise CompileError(f"kernel '{name}' uses sm_90a instructions (wgmma) but the build "
                           f"targets {arch}", kernel=name)
    return "sm_90a"


def compile_many(
    kernels: Sequence[tuple[str, str]],
    arch: str = "sm_90",
    max_workers: int | None = None,
    *,
    options: Iterable[str] = (),
    want_ptx: bool = True,
    cache: bool = True,
    on_done: Callable[[str], None] | None = None,
) -> list[CompiledKernel]:
    """Compile ``[(name, source), ...]`` in parallel threads; results in the input order.
    Identical sources compile once. If any fail, one CompileError lists every failure.
    ``on_done(name)``: called in the calling thread as each distinct source is done (the build's
    progress); an exception it raises stops the compilation (kernels not started are not)."""
    opts = tuple(options)
    if not kernels:
        return []
    workers = max_workers or min(len(kernels), os.cpu_count() or 1, 16)

    def one(item: tuple[str, str]) -> CompiledKernel | CompileError:
        name, source = item
        try:
            return compile_cuda(
                source, name=name, arch=kernel_arch(name, source, arch), options=opts,
                want_ptx=want_ptx, cache=cache
            )
        except CompileError as e:
            return e

    # deduplicate identical sources so that two threads never compile the same program
    first: dict[str, int] = {}
    unique: list[tuple[str, str]] = []
    slot: list[int] = []
    for name, source in kernels:
        if source not in first:
            first[source] = len(unique)
            unique.append((name, source))
        slot.append(first[source])
    if workers <= 1 or len(unique) == 1:
        done = []
        for k in unique:
            done.append(one(k))
            if on_done is not None:
                on_done(k[0])
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ember-nvrtc") as pool:
            futures = {pool.submit(one, k): i for i, k in enumerate(unique)}
            results: list[CompiledKernel | CompileError | None] = [None] * len(unique)
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    if on_done is not None:
                        on_done(unique[futures[future]][0])
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            done = results
    errors = [r for r in done if isinstance(r, CompileError)]
    if errors:
        names = ", ".join(f"'{e.kernel}'" for e in errors)
        body = "\n\n".join(str(e) for e in errors)
        raise CompileError(
            f"{len(errors)} of {len(unique)} kernel(s) failed to compile ({names}):\n\n{body}",
            kernel=errors[0].kernel,
            log=errors[0].log,
        )
    out: list[CompiledKernel] = []
    for (name, _), idx in zip(kernels, slot, strict=True):
        r = done[idx]
        assert isinstance(r, CompiledKernel)
        out.append(r if r.name == name else replace(r, name=name))
    return out
