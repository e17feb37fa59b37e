"""The plan file container: a fixed header, a JSON manifest, 256-byte-aligned binary sections and a
checksum trailer. The compiler writes it with `write_plan`; the runtime reads it with `read_plan`.
This layer treats the manifest as opaque data except for the `sections` table it maintains, and
never evaluates, unpickles or imports anything a plan names: a plan is data.

Byte layout (all integers little-endian; offsets are absolute, from the start of the file):

    0   8  magic            b"EMBERPLN"
    8   2  format version   u16, FORMAT_VERSION
    10  2  flags            u16, must be 0
    12  32 ember version    ASCII, NUL-padded
    44  8  manifest length  u64, bytes of UTF-8 JSON at HEADER_SIZE
    52  8  total length     u64, bytes of the whole file, trailer included
    60  4  reserved         must be 0
    64  …  manifest         a JSON object; manifest["sections"] = {name: {"offset", "size"}}
    …      sections         each at an offset that is a multiple of SECTION_ALIGNMENT; zero padding
    -32 32 checksum         of every byte before it: format 2, the SHA-256 of the SHA-256s of its
                            4 MiB pieces (runtime/plan_checksum.py, hashed on threads as the file
                            is read); format 1, still read, the SHA-256 of them all
"""

from __future__ import annotations

import hashlib
import io
import json
import operator
import os
import secrets
import stat
import struct
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

import numpy as np

import ember
from ember.errors import PlanError
from ember.runtime.arch import normalize_arch, parse_arch
from ember.runtime.plan_checksum import CHUNK, ChunkedSha256, ParallelChecksum, plan_checksum

MAGIC = b"EMBERPLN"
FORMAT_VERSION = 2  # 2: the checksum of 4 MiB pieces (plan_checksum.py); 1 is still read
SECTION_ALIGNMENT = 256
CHECKSUM_SIZE = 32
SECTIONS_KEY = "sections"

_HEADER = struct.Struct("<8sHH32sQQI")
HEADER_SIZE = _HEADER.size  # 64
_VERSION_FIELD = 32
_MAX_NDIM = 64
MAX_DEPTH = 32  # the manifest's JSON nesting; ember writes 8 levels

SectionData = bytes | bytearray | memoryview | np.ndarray


def _align(n: int) -> int:
    return -(-n // SECTION_ALIGNMENT) * SECTION_ALIGNMENT


# ---------------------------------------------------------------------------------------------
# Writing


def _as_bytes_view(name: str, value: object) -> memoryview:
    """A flat, C-contiguous byte view of one section's payload, without copying where possible."""
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise PlanError(f"section '{name}': arrays of Python objects cannot go into a plan")
        flat = np.ascontiguousarray(value).reshape(-1)
        return memoryview(flat.view(np.uint8))
    if isinstance(value, bytes | bytearray | memoryview):
        view = memoryview(value)
        if view.c_contiguous:
            try:
                return view.cast("B")
            except (TypeError, ValueError):
                pass
        return memoryview(view.tobytes())
    raise PlanError(
        f"section '{name}': expected bytes, bytearray, memoryview or numpy array, "
        f"got {type(value).__name__}"
    )


def _layout(
    manifest: Mapping[str, Any], sections: Mapping[str, SectionData]
) -> tuple[bytes, list[tuple[int, memoryview]], int]:
    """Header + manifest bytes, the (offset, payload) list and the total length of the plan."""
    if not isinstance(manifest, Mapping):
        raise PlanError(f"the manifest must be a dict, got {type(manifest).__name__}")
    if SECTIONS_KEY in manifest:
        raise PlanError(
            f"manifest key '{SECTIONS_KEY}' is reserved: the plan writer fills it with the "
            "section table"
        )
    if not isinstance(sections, Mapping):
        raise PlanError(f"sections must be a dict of name -> bytes, got {type(sections).__name__}")
    payloads: list[tuple[str, memoryview]] = []
    for name, value in sections.items():
        if not isinstance(name, str) or not name:
            raise PlanError(f"section names must be non-empty strings, got {name!r}")
        payloads.append((name, _as_bytes_view(name, value)))

    version = ember.__version__.encode("ascii", "replace")
    if len(version) > _VERSION_FIELD:
        raise PlanError(f"ember version {ember.__version__!r} does not fit the plan header")

    # Section offsets depend on the manifest's length, which depends on the offsets it records:
    # grow the data start until the serialized manifest fits in front of it.
    data_start = _align(HEADER_SIZE + 2)
    while True:
        table: dict[str, dict[str, int]] = {}
        placed: list[tuple[int, memoryview]] = []
        cursor = data_start
        for name, payload in payloads:
            table[name] = {"offset": cursor, "size": payload.nbytes}
            placed.append((cursor, payload))
            cursor = _align(cursor + payload.nbytes)
        try:
            text = json.dumps(
                {**manifest, SECTIONS_KEY: table}, ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as e:
            raise PlanError(f"the manifest is not JSON-serializable: {e}") from e
        if _align(HEADER_SIZE + len(text)) <= data_start:
            break
        data_start = _align(HEADER_SIZE + len(text))

    data_end = max([HEADER_SIZE + len(text)] + [off + p.nbytes for off, p in placed])
    total = data_end + CHECKSUM_SIZE
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, 0, version, len(text), total, 0)
    return header + text, placed, total


def _emit(out: BinaryIO, head: bytes, placed: list[tuple[int, memoryview]], total: int) -> None:
    """Write the plan to `out`, padding between pieces and hashing as it goes."""
    digest = ChunkedSha256()

    def put(chunk: bytes | memoryview) -> None:
        digest.update(chunk)
        out.write(chunk)

    position = 0
    for offset, piece in [(0, memoryview(head)), *placed]:
        if offset > position:
            put(bytes(offset - position))
        put(piece)
        position = offset + piece.nbytes
    if total - CHECKSUM_SIZE > position:
        put(bytes(total - CHECKSUM_SIZE - position))
    out.write(digest.digest())


def plan_bytes(manifest: Mapping[str, Any], sections: Mapping[str, SectionData]) -> bytes:
    """The plan for `manifest` and `sections` as one bytes object."""
    head, placed, total = _layout(manifest, sections)
    out = io.BytesIO()
    _emit(out, head, placed, total)
    return out.getvalue()


def write_plan(
    path: str | os.PathLike[str],
    manifest: Mapping[str, Any],
    sections: Mapping[str, SectionData],
) -> None:
    """Write a plan file atomically: a failure at any point leaves `path` as it was."""
    head, placed, total = _layout(manifest, sections)
    path = os.fspath(path)
    directory, base = os.path.split(os.path.abspath(path))
    temp = ""
    try:
        while True:
            temp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                continue
        with open(fd, "wb") as out:
            _emit(out, head, placed, total)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
        temp = ""
    except OSError as e:
        raise PlanError(f"cannot write plan '{path}': {e}") from e
    finally:
        if temp:
            try:
                os.unlink(temp)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# Reading


class Plan:
    """A validated plan: its manifest and read-only views of its sections (no copies)."""

    def __init__(
        self,
        view: memoryview,
        where: str,
        format_version: int,
        ember_version: str,
        manifest: dict[str, Any],
        table: dict[str, tuple[int, int]],
    ) -> None:
        self._view: memoryview | None = view
        self._where = where
        self._table = table
        self.format_version = format_version
        self.ember_version = ember_version
        self.manifest = manifest

    @property
    def section_names(self) -> tuple[str, ...]:
        return tuple(self._table)

    @property
    def closed(self) -> bool:
        return self._view is None

    def _require_open(self) -> memoryview:
        if self._view is None:
            raise PlanError(f"{self._where}: the plan is closed")
        return self._view

    def section(self, name: str) -> memoryview:
        """The bytes of section `name`, read-only and without a copy."""
        view = self._require_open()
        if name not in self._table:
            known = ", ".join(repr(n) for n in self._table) or "none"
            raise PlanError(f"{self._where}: no section '{name}' (sections: {known})")
        offset, size = self._table[name]
        return view[offset : offset + size]

    def array(
        self, section: str, offset: int, dtype: Any, shape: int | Iterable[int]
    ) -> np.ndarray:
        """A read-only numpy view of `shape` elements of `dtype` at `offset` within `section`."""
        where = f"{self._where}: section '{section}'"
        data = self.section(section)
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError) as e:
            raise PlanError(f"{where}: invalid dtype {dtype!r}") from e
        if dt.hasobject or dt.itemsize == 0:
            raise PlanError(f"{where}: dtype {dt} cannot be read from a plan")
        raw_dims = [shape] if not isinstance(shape, Iterable) else list(shape)
        if isinstance(offset, bool) or any(isinstance(d, bool) for d in raw_dims):
            raise PlanError(f"{where}: shape and offset must be integers, not booleans")
        try:
            dims = tuple(operator.index(d) for d in raw_dims)
            offset = operator.index(offset)
        except TypeError as e:
            raise PlanError(f"{where}: shape and offset must be integers ({e})") from e
        if len(dims) > _MAX_NDIM or any(d < 0 for d in dims):
            raise PlanError(f"{where}: invalid shape {dims}")
        count = 1
        for d in dims:
            count *= d
        nbytes = count * dt.itemsize
        if offset < 0 or offset + nbytes > data.nbytes:
            raise PlanError(
                f"{where}: {nbytes} bytes at offset {offset} run past the section's "
                f"{data.nbytes} bytes"
            )
        if offset % dt.alignment:
            raise PlanError(
                f"{where}: offset {offset} is not aligned to {dt.alignment} bytes for {dt}"
            )
        array = np.frombuffer(data[offset : offset + nbytes], dtype=dt).reshape(dims)
        array.flags.writeable = False
        return array

    def close(self) -> None:
        """Release the plan's memory; it goes once no returned section or array still uses it."""
        if self._view is None:
            return
        view, self._view = self._view, None
        try:
            view.release()
        except BufferError:
            pass  # sections or arrays handed out still point into it; it is freed after them

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._table)} sections"
        return (
            f"<Plan {self._where}: format {self.format_version}, "
            f"ember {self.ember_version}, {state}>"
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def checksum_of(body: bytes | bytearray | memoryview, version: int = FORMAT_VERSION) -> bytes:
    """The trailer a plan of format `version` has after `body`, every byte before the trailer."""
    return hashlib.sha256(body).digest() if version == 1 else plan_checksum(body)


def _parse(view: memoryview, where: str, checksum: ParallelChecksum | None = None) -> Plan:
    """Validate `view`; `checksum`: the reader's hashing of it, begun as it was read."""
    size = view.nbytes
    if size < len(MAGIC) and MAGIC.startswith(view.tobytes()):
        raise PlanError(
            f"{where}: truncated: {size} bytes, less than the {HEADER_SIZE}-byte header"
        )
    if view[: len(MAGIC)] != MAGIC:
        raise PlanError(f"{where}: not an ember plan (bad magic bytes)")
    if size < HEADER_SIZE:
        raise PlanError(
            f"{where}: truncated: {size} bytes, less than the {HEADER_SIZE}-byte header"
        )
    _, version, flags, raw_ember, manifest_len, total, reserved = _HEADER.unpack(view[:HEADER_SIZE])
    if version > FORMAT_VERSION:
        raise PlanError(
            f"{where}: plan format version {version} is newer than this ember supports "
            f"(format version {FORMAT_VERSION}, ember {ember.__version__}); upgrade ember or "
            "rebuild the plan with this version"
        )
    if version < 1:
        raise PlanError(f"{where}: unknown plan format version {version}")
    if flags or reserved:
        raise PlanError(f"{where}: corrupt header (unknown flags or reserved bytes set)")
    if total > size:
        raise PlanError(f"{where}: truncated: the header says {total} bytes, there are {size}")
    if total < size:
        raise PlanError(
            f"{where}: corrupt: {size - total} unexpected bytes after the {total}-byte plan"
        )
    if total < HEADER_SIZE + CHECKSUM_SIZE or manifest_len > total - HEADER_SIZE - CHECKSUM_SIZE:
        raise PlanError(
            f"{where}: corrupt: a {manifest_len}-byte manifest does not fit a {total}-byte plan"
        )
    data_end = total - CHECKSUM_SIZE
    if version > 1 and checksum is not None and checksum.end == data_end:
        actual = checksum.digest()
    else:
        actual = checksum_of(view[:data_end], version)
    if actual != view[data_end:]:
        raise PlanError(f"{where}: corrupt: checksum mismatch (the file was damaged or altered)")

    try:
        ember_version = raw_ember.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError as e:
        raise PlanError(f"{where}: corrupt header: ember version is not ASCII") from e
    if "\0" in ember_version:
        raise PlanError(f"{where}: corrupt header: malformed ember version")

    manifest_end = HEADER_SIZE + manifest_len
    try:
        manifest = json.loads(
            bytes(view[HEADER_SIZE:manifest_end]).decode("utf-8"),
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PlanError(f"{where}: corrupt manifest: not valid JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise PlanError(
            f"{where}: corrupt manifest: expected a JSON object, got {type(manifest).__name__}"
        )
    _check_depth(manifest, where)
    table = _section_table(manifest, where, manifest_end, data_end)
    return Plan(view, where, version, ember_version, manifest, table)


def _check_depth(manifest: dict[str, Any], where: str) -> None:
    """Refuse a manifest nested deeper than MAX_DEPTH: whatever walks it recursively afterwards
    (decoding, copying, symbolic substitution) stays far from Python's recursion limit."""
    level: list[Any] = [manifest]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise PlanError(f"{where}: corrupt manifest: nested deeper than {MAX_DEPTH} levels")
        level = [child for value in level
                 for child in (value.values() if isinstance(value, dict) else value)
                 if isinstance(child, dict | list)]


def _section_table(
    manifest: dict[str, Any], where: str, data_start: int, data_end: int
) -> dict[str, tuple[int, int]]:
    """Check the manifest's section table against the file and return name -> (offset, size)."""
    entries = manifest.get(SECTIONS_KEY)
    if not isinstance(entries, dict):
        raise PlanError(f"{where}: corrupt manifest: no '{SECTIONS_KEY}' table")
    table: dict[str, tuple[int, int]] = {}
    for name, entry in entries.items():
        bad = f"{where}: corrupt section table: section '{name}'"
        if not isinstance(entry, dict):
            raise PlanError(f"{bad} is not an object")
        offset, size = entry.get("offset"), entry.get("size")
        if not all(type(v) is int and v >= 0 for v in (offset, size)):
            raise PlanError(f"{bad} needs non-negative integer 'offset' and 'size'")
        if offset % SECTION_ALIGNMENT:
            raise PlanError(f"{bad} at offset {offset} is not {SECTION_ALIGNMENT}-byte aligned")
        if offset < data_start or offset + size > data_end:
            raise PlanError(
                f"{bad} ({size} bytes at offset {offset}) lies outside the data area "
                f"[{data_start}, {data_end})"
            )
        table[name] = (offset, size)
    spans = sorted((off, off + size, name) for name, (off, size) in table.items() if size)
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise PlanError(f"{where}: corrupt section table: '{first}' overlaps '{second}'")
    return table


def read_plan(source: str | os.PathLike[str] | bytes | bytearray | memoryview) -> Plan:
    """Validate a plan and return it. A path is read into memory once, 256-byte aligned like the
    file's sections, and verified there: a memory-mapped file would crash the process (SIGBUS)
    when truncated after load, and an edit in place would reach the executors unverified.

    Any malformed, truncated, foreign or altered plan raises `PlanError` saying what is wrong.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        if not view.c_contiguous or view.format != "B" or view.ndim != 1:
            view = memoryview(view.tobytes())
        return _parse(view.toreadonly(), "plan <bytes>")
    if not isinstance(source, str | os.PathLike):
        raise PlanError(f"read_plan expects a path or bytes, got {type(source).__name__}")
    path = os.fspath(source)
    where = f"plan '{path}'"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before open: a FIFO would block it
            raise PlanError(f"{where}: not a regular file")
        with open(path, "rb") as f:
            data, checksum = _read_file(f, where)
    except (OSError, ValueError) as e:
        raise PlanError(f"cannot read {where}: {e}") from e
    with checksum:
        return _parse(memoryview(data).toreadonly(), where, checksum)


def _read_file(f: BinaryIO, where: str) -> tuple[np.ndarray, ParallelChecksum]:
    """The whole of an open plan file, in memory whose start is SECTION_ALIGNMENT-aligned, and
    its checksum, hashed piece by piece on threads while the rest is read (taken as that of a
    format-2 plan of the file's size; `_parse` decides whether it is)."""
    info = os.fstat(f.fileno())
    if not stat.S_ISREG(info.st_mode):
        raise PlanError(f"{where}: not a regular file")
    if info.st_size == 0:
        raise PlanError(f"{where}: the file is empty")
    try:
        raw = np.empty(info.st_size + SECTION_ALIGNMENT, dtype=np.uint8)
    except MemoryError:
        raise PlanError(f"{where}: {info.st_size} bytes do not fit in memory") from None
    start = -raw.ctypes.data % SECTION_ALIGNMENT
    data = raw[start : start + info.st_size]
    target = memoryview(data)
    checksum = ParallelChecksum(target, max(info.st_size - CHECKSUM_SIZE, 0))
    filled = 0
    try:
        while filled < info.st_size:
            n = f.readinto(target[filled : filled + CHUNK])
            if not n:  # the file shrank while being read: what was read is checked as it is
                return data[:filled], checksum
            filled += n
            if target[8:10] != b"\x01\x00":  # format 1's checksum is one SHA-256, after the read
                checksum.ready(filled)
    except BaseException:
        checksum.close()
        raise
    return data, checksum


# ---------------------------------------------------------------------------------------------
# Target check


def _arch(value: object, what: str) -> str:
    """Normalize 'sm_90', 'sm_90a', '90' or '9.0' to 'sm_90' / 'sm_90a'."""
    try:
        return normalize_arch(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        raise PlanError(f"{what} {value!r} is not a GPU architecture like 'sm_90'") from None


def check_target(
    manifest_target: Mapping[str, Any], device_arch: str, allow_rejit: bool = False
) -> bool:
    """Refuse a plan built for another GPU arch unless re-JIT from PTX is allowed, or the plan
    is hardware-compatible ("ampere+": any GPU from sm_80 up).

    Returns True when the arch differs and the caller must re-JIT, False when the CUBIN fits.
    """
    if not isinstance(manifest_target, Mapping) or "arch" not in manifest_target:
        raise PlanError("the plan's manifest has no target 'arch'")
    built = _arch(manifest_target["arch"], "the plan's target arch")
    device = _arch(device_arch, "the device arch")
    if built == device:
        return False
    if manifest_target.get("compatibility") == "ampere+":
        if parse_arch(device) < (8, 0):
            raise PlanError(f"plan built for ampere+ (sm_80 and newer), this GPU is {device}")
        return True
    if allow_rejit:
        return True
    raise PlanError(
        f"plan built for {built}, this GPU is {device}; rebuild, or allow re-JIT from PTX"
    )
