"""The timing cache: what the autotuner measured, so that a rebuild times nothing twice.

An entry is one kernel's measurement (the tactic it chose and its time, or a kernel's time for
choose-formats), keyed by the kernel's signature (the kind of measurement, the template and its
typed params without the tactic: precision and shapes are params) and by the environment it was
measured in (GPU name, compute capability, NVRTC version, ember version: `Environment`). A cache
may hold entries of several environments (`combine` caches of several GPUs); only those of the
environment a build runs in are ever used, the others are kept, and an explicitly given cache
that holds any is reported with a warning naming what differs (TensorRT makes that a hard error:
NVIDIA/TensorRT#2144). A corrupt cache is reported and read as empty, never a failed build.

`TimingCache` is TensorRT's ITimingCache (`serialize`, `combine`, `reset`); `using(...)` makes
one the cache of a build (the builder sets it from its config), `Session` is how the autotuner
reads and extends it; without one, builds use the default cache file (`default_path`).

Serialized form: a header line `ember-timing-cache <format version> <sha256 of the rest>`, then
JSON: the writer's environment, the environments of the entries, and the entries as
[environment index, key, kernel, value] (the kernel's readable signature beside its key).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ember.errors import CompileError, EmberError, TimingCacheError, UnsupportedError
from ember.runtime.arch import parse_arch
from ember.runtime.trt_types import HostMemory

FORMAT_VERSION = 1
MAGIC = "ember-timing-cache"
# what an entry measured: a tunable step's tactic (and its time), the same for the static kernel
# timed at a symbolic step's profile points (its candidates are those the symbolic kernel takes),
# and a whole kernel's time (choose-formats)
KINDS = ("tactic", "tactic-symbolic", "time")


@dataclass(frozen=True)
class Environment:
    """Where measurements were made; a field None is unknown (no GPU here) and matches any."""

    gpu: str | None
    compute_capability: str | None  # "9.0"
    nvrtc: str | None               # "12.9"
    ember: str | None               # ember's version + a fingerprint of its kernel generators

    _WHAT = (("gpu", "GPU"), ("compute_capability", "compute capability"),
             ("nvrtc", "NVRTC version"), ("ember", "ember version"))

    def differences(self, here: Environment) -> list[str]:
        """What differs from `here`, each as "GPU 'A100' (here 'H200')"."""
        out = []
        for name, what in self._WHAT:
            mine, theirs = getattr(self, name), getattr(here, name)
            if mine is not None and theirs is not None and mine != theirs:
                out.append(f"{what} {mine!r} (here {theirs!r})")
        return out

    def matches(self, here: Environment) -> bool:
        return not self.differences(here)

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Environment:
        if not isinstance(data, dict) or set(data) != {n for n, _ in cls._WHAT} or not all(
                v is None or isinstance(v, str) for v in data.values()):
            names = ", ".join(n for n, _ in cls._WHAT)
            raise TimingCacheError(f"an environment must be an object of {names} (strings or "
                                   f"null), not {data!r}")
        return cls(**data)


@lru_cache(maxsize=1)
def ember_version() -> str:
    """ember's version and a fingerprint of the kernel generators (codegen/), whose output a
    measured tactic is only valid for."""
    from ember import __version__

    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def _nvrtc() -> str | None:
    from ember.codegen.nvrtc import nvrtc_version

    try:
        return "{}.{}".format(*nvrtc_version())
    except CompileError:  # no NVRTC here: unknown
        return None


def environment(gpu: str, arch: str) -> Environment:
    """The environment of a GPU named `gpu` of arch `arch` ("sm_90"), with this NVRTC and ember."""
    major, minor = parse_arch(arch)
    return Environment(gpu, f"{major}.{minor}", _nvrtc(), ember_version())


def here() -> Environment:
    """This machine's environment (GPU 0's; without a GPU, GPU and compute capability unknown)."""
    from ember.runtime.cuda import cuda_available, default_device

    if cuda_available():
        device = default_device()
        return environment(device.name, device.arch)
    return Environment(None, None, _nvrtc(), ember_version())


def kernel_key(kind: str, template: str, params: dict[str, Any]) -> str:
    """A kernel's signature as a cache key: the kind of measurement, the template and its params
    (dtypes and shapes included) as its plan step keeps them: without the tactic, and without
    the `constant_ranges` codegen reads (they vary with each layer's scales, whose kernels
    share one source and one timing; a scale outside `quantize_c.SAFE_DIVISOR` gives another
    source that shares the timing too: its divisions keep a branch, barely slower)."""
    if kind not in KINDS:
        raise EmberError(f"timing cache: unknown measurement kind {kind!r} (one of {KINDS})")
    params = {k: v for k, v in params.items() if k not in ("tactic", "tactic_small")}
    for region in ("region", "epilogue"):
        if isinstance(params.get(region), dict) and "constant_ranges" in params[region]:
            params[region] = {k: v for k, v in params[region].items() if k != "constant_ranges"}
    text = json.dumps([kind, template, params], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def kernel_label(template: str, params: dict[str, Any]) -> str:
    """A kernel's signature as a person reads it: template, input dtypes and shapes -> outputs."""
    def tensors(shapes: Any, dtypes: Any) -> str:
        if not isinstance(shapes, list) or not isinstance(dtypes, list):
            return "?"
        return ", ".join(f"{d}{list(s) if isinstance(s, list) else s}"
                         for s, d in zip(shapes, dtypes, strict=False))

    return (f"{template} {tensors(params.get('in_shapes'), params.get('in_dtypes'))} -> "
            f"{tensors(params.get('out_shapes'), params.get('out_dtypes'))}")


@dataclass
class _Entry:
    kernel: str             # kernel_label
    value: dict[str, Any]   # {"tactic": {...}, "ms": t} or {"ms": t}


class TimingCache:
    """TensorRT's ITimingCache: measurements by environment and kernel signature.
    `config.create_timing_cache(bytes)` makes one (b"": empty), `serialize()` gives its bytes,
    `combine(other, ignore_mismatch)` adds another's entries, `reset()` empties it. Its
    `environment` is the one it was made in (here's, or the serialized header's)."""

    def __init__(self, environment: Environment | None = None) -> None:
        self.environment = environment if environment is not None else here()
        self._entries: dict[Environment, dict[str, _Entry]] = {}

    # -- TensorRT's ITimingCache ---------------------------------------------------------------
    def serialize(self) -> HostMemory:
        envs = list(self._entries)
        body = json.dumps({
            "environment": self.environment.to_json(),
            "environments": [e.to_json() for e in envs],
            "entries": [[i, key, entry.kernel, entry.value]
                        for i, env in enumerate(envs)
                        for key, entry in sorted(self._entries[env].items())],
        }, sort_keys=True, separators=(",", ":")).encode()
        header = f"{MAGIC} {FORMAT_VERSION} {hashlib.sha256(body).hexdigest()}\n".encode()
        return HostMemory(header + body)

    def combine(self, input_cache: TimingCache, ignore_mismatch: bool) -> bool:
        """Add `input_cache`'s entries (an entry this cache has already stays). If it was made
        in another environment than this cache, nothing is added (False, with a warning naming
        what differs) unless `ignore_mismatch`: its entries then keep their environments, and
        only builds in those environments use them."""
        if not isinstance(input_cache, TimingCache):
            raise EmberError(f"ITimingCache.combine takes an ITimingCache, not "
                             f"{type(input_cache).__name__}")
        differs = input_cache.environment.differences(self.environment)
        if differs and not ignore_mismatch:
            warnings.warn(f"timing cache: not combined, the input cache was made elsewhere: "
                          f"{', '.join(differs)} (ignore_mismatch=True combines it; its entries "
                          "are used only where they were measured)", stacklevel=2)
            return False
        for env, entries in input_cache._entries.items():
            mine = self._entries.setdefault(env, {})
            for key, entry in entries.items():
                mine.setdefault(key, entry)
        return True

    def reset(self) -> bool:
        self._entries.clear()
        return True

    def query(self, *args: Any) -> Any:
        raise UnsupportedError("ITimingCache.query is not implemented (editable timing caches, "
                               "BuilderFlag.EDITABLE_TIMING_CACHE: ember's entries are keyed by "
                               "kernel signature, not TensorRT's TimingCacheKey)")

    update = query
    queryKeys = query

    # -- ember's use ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(e) for e in self._entries.values())

    def __bool__(self) -> bool:  # a cache object, empty or not (TensorRT code tests `if cache:`)
        return True

    def lookup(self, env: Environment, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(env, {}).get(key)
        return None if entry is None else entry.value

    def record(self, env: Environment, key: str, kernel: str, value: dict[str, Any]) -> None:
        self._entries.setdefault(env, {})[key] = _Entry(kernel, value)

    def counts(self) -> dict[Environment, int]:
        """Entries per environment."""
        return {env: len(entries) for env, entries in self._entries.items() if entries}

    def foreign(self, env: Environment) -> dict[Environment, int]:
        """Entries per environment other than `env` (never used by a build in `env`)."""
        return {e: n for e, n in self.counts().items() if e != env}

    def items(self) -> Iterator[tuple[Environment, str, str, dict[str, Any]]]:
        for env, entries in self._entries.items():
            for key, entry in entries.items():
                yield env, key, entry.kernel, entry.value

    @classmethod
    def deserialize(cls, data: bytes | bytearray | memoryview) -> TimingCache:
        """A cache from `serialize()`'s bytes; TimingCacheError saying what is wrong."""
        data = bytes(data)
        head, newline, body = data.partition(b"\n")
        parts = head.decode("ascii", errors="replace").split(" ")
        if not newline or len(parts) != 3 or parts[0] != MAGIC:
            raise TimingCacheError(f"not an ember timing cache (no '{MAGIC}' header)")
        if parts[1] != str(FORMAT_VERSION):
            raise TimingCacheError(f"timing cache format version {parts[1]!r}; this ember "
                                   f"reads version {FORMAT_VERSION}")
        if hashlib.sha256(body).hexdigest() != parts[2]:
            raise TimingCacheError("the checksum does not match: the cache is truncated or "
                                   "corrupt")
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise TimingCacheError(f"its body is not JSON ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list) \
                or not isinstance(doc.get("environments"), list):
            raise TimingCacheError("its body lacks 'environments' and 'entries' lists")
        cache = cls(Environment.from_json(doc.get("environment")))
        envs = [Environment.from_json(e) for e in doc["environments"]]
        for item in doc["entries"]:
            if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], int)
                    and 0 <= item[0] < len(envs) and isinstance(item[1], str)
                    and isinstance(item[2], str) and isinstance(item[3], dict)):
                raise TimingCacheError(f"malformed entry {str(item)[:120]}")
            cache.record(envs[item[0]], item[1], item[2], item[3])
        return cache


# -- files ---------------------------------------------------------------------------------------
def default_path() -> Path | None:
    """The cache builds use when given none: `$EMBER_CACHE_DIR/timing.cache` (default
    ~/.cache/ember; EMBER_CACHE_DIR=off: none, as for NVRTC's cache)."""
    root = os.environ.get("EMBER_CACHE_DIR")
    if root is not None and root.strip().lower() in ("", "0", "off", "none", "false"):
        return None
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "ember"
    return base / "timing.cache"


def read(path: str | os.PathLike) -> TimingCache:
    """The cache in `path`; TimingCacheError naming the file and what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TimingCacheError(f"timing cache {str(path)!r}: cannot read it ({e.strerror})"
                               ) from None
    try:
        return TimingCache.deserialize(data)
    except TimingCacheError as e:
        raise TimingCacheError(f"timing cache {str(path)!r}: {e}") from None


def load(path: str | os.PathLike) -> TimingCache:
    """The cache in `path` for a build to read and extend: an empty one where the file does not
    exist yet, or (with a warning naming the file and the problem) cannot be read."""
    if not Path(path).exists():
        return TimingCache()
    try:
        return read(path)
    except TimingCacheError as e:
        warnings.warn(f"{e}; it is ignored (the build times what it needs and rewrites it)",
                      stacklevel=2)
        return TimingCache()


def write(cache: TimingCache, path: str | os.PathLike) -> None:
    """Write `cache` to `path` atomically (a temporary file beside it, then renamed over it:
    a reader sees the old cache or the new one, never half of one)."""
    path = Path(path)
    data = bytes(cache.serialize())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, mode)  # mkstemp's 0600 is for the temporary, not the cache
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise TimingCacheError(f"timing cache {str(path)!r}: cannot write it ({e.strerror})"
                               ) from None


def update_file(cache: TimingCache, path: str | os.PathLike) -> None:
    """Write `cache` to `path` with the entries another build wrote there meanwhile (as
    trtexec's --timingCacheFile does; `cache`'s own entries win), atomically."""
    if Path(path).exists():
        try:
            cache.combine(read(path), ignore_mismatch=True)
        except TimingCacheError:  # reported when it was loaded; rewritten whole
            pass
    write(cache, path)


def describe_timing_cache(path: str | os.PathLike) -> dict[str, Any]:
    """What a cache file holds, for `ember inspect CACHE`: its format version and size, the
    environment that wrote it, each environment's entry count (and whether it is this
    machine's), and every entry (kernel, kind of measurement, tactic, time). A file that
    cannot be read is a TimingCacheError naming it."""
    cache = read(path)
    local = here()
    envs = list(cache.counts())
    entries = []
    for env, key, kernel, value in cache.items():
        entries.append({"environment": envs.index(env), "key": key, "kernel": kernel,
                        **({"tactic": value["tactic"]} if "tactic" in value else {}),
                        **({"ms": value["ms"]} if "ms" in value else {})})
    return {
        "path": str(path),
        "format_version": FORMAT_VERSION,
        "bytes": Path(path).stat().st_size,
        "written_in": cache.environment.to_json(),
        "environments": [{**env.to_json(), "entries": n,
                          "differences_from_here": env.differences(local)}
                         for env, n in cache.counts().items()],
        "entries": entries,
    }


# -- the build's cache ---------------------------------------------------------------------------
@dataclass
class CacheUse:
    """How a build uses a timing cache: `cache` (None: DISABLE_TIMING_CACHE, nothing read or
    written), `error_on_miss` (ERROR_ON_TIMING_CACHE_MISS), `path` (write the cache back there
    after each use: the default cache), `explicit` (given by the user: its foreign entries are
    reported), and the environments already reported."""

    cache: TimingCache | None
    error_on_miss: bool = False
    path: Path | None = None
    explicit: bool = True
    reported: set[Environment] = field(default_factory=set)


_ACTIVE: ContextVar[CacheUse | None] = ContextVar("ember_timing_cache", default=None)


@contextmanager
def using(cache: TimingCache | None, *, disabled: bool = False,
          error_on_miss: bool = False) -> Iterator[CacheUse]:
    """Inside the block the autotuner reads and extends `cache` (None: the default cache file,
    loaded when first needed; `disabled`: no cache at all)."""
    if disabled:
        use = CacheUse(None, error_on_miss)
    elif cache is None:
        use = CacheUse(None, error_on_miss, default_path(), explicit=False)
    else:
        use = CacheUse(cache, error_on_miss)
    token = _ACTIVE.set(use)
    try:
        yield use
    finally:
        _ACTIVE.reset(token)


class Session:
    """The autotuner's view of the build's cache in one environment: `get` / `put` by step,
    `close` writes a default cache back. Outside `using`, the default cache file."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        use = _ACTIVE.get()
        if use is None:
            use = CacheUse(None, path=default_path(), explicit=False)
        if use.cache is None and use.path is not None:  # the default cache, loaded once
            use.cache = load(use.path)
        self.use = use
        self.changed = False
        cache = use.cache
        foreign = {} if cache is None or not use.explicit else {
            e: n for e, n in cache.foreign(env).items() if e not in use.reported}
        if foreign:
            use.reported.update(foreign)
            warnings.warn("timing cache: " + "; ".join(
                f"{n} entr{'y' if n == 1 else 'ies'} measured with "
                f"{', '.join(e.differences(env)) or 'another environment'}"
                for e, n in foreign.items()) + ": ignored (this build uses only entries "
                "measured here, and keeps the others in the cache)", stacklevel=3)

    def get(self, kind: str, step: dict[str, Any]) -> dict[str, Any] | None:
        """The cached value for a step, None where there is none."""
        cache = self.use.cache
        return None if cache is None else cache.lookup(
            self.env, kernel_key(kind, step["template"], step["params"]))

    def miss(self, step: dict[str, Any]) -> None:
        """A step the cache could not answer is about to be timed: an error naming its kernel
        with ERROR_ON_TIMING_CACHE_MISS."""
        if self.use.error_on_miss:
            origin = step.get("origin")
            raise EmberError(
                f"timing cache miss for kernel {step.get('name', step['template'])!r} "
                f"({kernel_label(step['template'], step['params'])}"
                + (f", ONNX {', '.join(origin)}" if origin else "") + ") with "
                "BuilderFlag.ERROR_ON_TIMING_CACHE_MISS set: build once without the flag to "
                "fill the cache")

    def put(self, kind: str, step: dict[str, Any], value: dict[str, Any]) -> None:
        if self.use.cache is not None:
            self.use.cache.record(self.env, kernel_key(kind, step["template"], step["params"]),
                                  kernel_label(step["template"], step["params"]), value)
            self.changed = True

    def close(self) -> None:
        """Write a default cache back, with what other builds wrote there meanwhile (an
        unwritable one only costs time later)."""
        if self.changed and self.use.path is not None and self.use.cache is not None:
            try:
                update_file(self.use.cache, self.use.path)
            except TimingCacheError as e:
                warnings.warn(f"the timing cache was not saved ({e}): the next build times "
                              "these kernels again", stacklevel=2)
