"""The plan container: round trips, atomic writes, a clear PlanError for every bad plan."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import ember
from ember.errors import PlanError
from ember.runtime import plan as plan_module
from ember.runtime.plan import (
    CHECKSUM_SIZE,
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    SECTION_ALIGNMENT,
    Plan,
    check_target,
    checksum_of,
    plan_bytes,
    read_plan,
    write_plan,
)
from ember.runtime.plan_checksum import CHUNK

HEADER = struct.Struct("<8sHH32sQQI")

MANIFEST = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": ["N", 3, 224, 224], "format": "NCHW"}],
    "target": {"arch": "sm_90", "nvrtc": "12.4"},
    "steps": [{"kernel": "conv0", "grid": [1, 2, 3]}],
    "text": "naïve ünïcode ✓",
}


def sample_sections() -> dict[str, object]:
    return {
        "weights": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "half": np.linspace(-1, 1, 7).astype(np.float16),
        "cubin": b"\x7fELF" + bytes(range(256)) * 3,
        "ptx": bytearray(b".version 8.0\n.target sm_90\n"),
        "view": memoryview(b"0123456789")[2:7],
        "empty": b"",
        "empty_array": np.zeros((0, 5), dtype=np.int64),
        "transposed": np.arange(6, dtype=np.int32).reshape(2, 3).T,
    }


def checksum(data: bytes | bytearray) -> bytes:
    """The trailer for `data`, by the format version its header names."""
    return checksum_of(data, struct.unpack_from("<H", data, 8)[0] if len(data) >= 10 else 2)


def seal(body: bytes | bytearray) -> bytes:
    """Fix the total-length field and the checksum of a hand-edited plan."""
    data = bytearray(body[: len(body) - CHECKSUM_SIZE] if len(body) >= HEADER_SIZE else body)
    struct.pack_into("<Q", data, 52, len(data) + CHECKSUM_SIZE)
    return bytes(data) + checksum(data)


def forge(
    manifest: bytes,
    payload: bytes = b"",
    *,
    version: int = FORMAT_VERSION,
    flags: int = 0,
    ember_version: bytes = b"0.1.0",
    manifest_len: int | None = None,
    total: int | None = None,
) -> bytes:
    """A plan built by hand: `manifest` at HEADER_SIZE, then `payload` from offset 256."""
    head_len = HEADER_SIZE + len(manifest)
    data_start = max(SECTION_ALIGNMENT, -(-head_len // SECTION_ALIGNMENT) * SECTION_ALIGNMENT)
    mlen = len(manifest) if manifest_len is None else manifest_len
    size = data_start + len(payload) + CHECKSUM_SIZE
    header = HEADER.pack(MAGIC, version, flags, ember_version, mlen, total or size, 0)
    data = header + manifest + bytes(data_start - head_len) + payload
    return data + checksum(data)


def forge_json(obj: object, payload: bytes = b"") -> bytes:
    return forge(json.dumps(obj).encode(), payload)


# --------------------------------------------------------------------------------------------
# Round trips


@pytest.fixture
def plan_path(tmp_path):
    path = tmp_path / "model.plan"
    write_plan(path, MANIFEST, sample_sections())
    return path


def check_round_trip(plan: Plan) -> None:
    sections = sample_sections()
    assert plan.format_version == FORMAT_VERSION
    assert plan.ember_version == ember.__version__
    assert plan.section_names == tuple(sections)
    assert {k: v for k, v in plan.manifest.items() if k != "sections"} == MANIFEST
    for name, value in sections.items():
        expected = (
            np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray) else bytes(value)
        )
        view = plan.section(name)
        assert isinstance(view, memoryview) and view.readonly
        assert view.tobytes() == expected, name
        entry = plan.manifest["sections"][name]
        assert entry["offset"] % SECTION_ALIGNMENT == 0
        assert entry["size"] == len(expected)
    weights = plan.array("weights", 0, np.float32, (2, 3, 4))
    np.testing.assert_array_equal(weights, sections["weights"])
    assert not weights.flags.writeable
    with pytest.raises(ValueError):
        weights[0, 0, 0] = 1.0
    np.testing.assert_array_equal(plan.array("half", 0, "float16", 7), sections["half"])
    np.testing.assert_array_equal(
        plan.array("transposed", 0, np.int32, (3, 2)), sections["transposed"]
    )
    assert plan.array("empty_array", 0, np.int64, (0, 5)).shape == (0, 5)
    assert plan.array("empty", 0, np.float32, (0,)).size == 0
    tail = plan.array("weights", 16, np.float32, (2, 2))
    np.testing.assert_array_equal(tail, [[4, 5], [6, 7]])


def test_round_trip_from_bytes():
    data = plan_bytes(MANIFEST, sample_sections())
    with read_plan(data) as plan:
        check_round_trip(plan)


def test_round_trip_from_file(plan_path):
    with read_plan(plan_path) as plan:
        check_round_trip(plan)
    assert plan.closed
    assert plan_path.read_bytes() == plan_bytes(MANIFEST, sample_sections())


def test_round_trip_from_str_path_and_bytearray(plan_path):
    with read_plan(str(plan_path)) as plan:
        assert plan.section("ptx").tobytes().startswith(b".version")
    with read_plan(bytearray(plan_path.read_bytes())) as plan:
        assert plan.section("ptx").readonly


def test_file_sections_are_aligned_views_of_the_loaded_copy(plan_path):
    with read_plan(plan_path) as plan:
        weights = plan.array("weights", 0, np.float32, (2, 3, 4))
        offset = plan.manifest["sections"]["weights"]["offset"]
        # The array is a view of the plan read into memory, 256-aligned like its file offset.
        assert weights.ctypes.data % SECTION_ALIGNMENT == 0
        assert weights.base is not None and not weights.flags.writeable
        assert offset % SECTION_ALIGNMENT == 0


def test_byte_layout():
    data = plan_bytes({"k": "v"}, {"a": b"abc", "b": b"defg"})
    magic, version, flags, ember_version, mlen, total, reserved = HEADER.unpack(data[:HEADER_SIZE])
    assert magic == MAGIC == b"EMBERPLN"
    assert (version, flags, reserved) == (FORMAT_VERSION, 0, 0)
    assert ember_version.rstrip(b"\0").decode() == ember.__version__
    assert total == len(data)
    manifest = json.loads(data[HEADER_SIZE : HEADER_SIZE + mlen])
    assert manifest == {
        "k": "v",
        "sections": {"a": {"offset": 256, "size": 3}, "b": {"offset": 512, "size": 4}},
    }
    assert data[256:259] == b"abc" and data[512:516] == b"defg"
    body = data[:-CHECKSUM_SIZE]
    assert data[-CHECKSUM_SIZE:] == hashlib.sha256(hashlib.sha256(body).digest()).digest()


def test_no_sections_and_empty_manifest():
    with read_plan(plan_bytes({}, {})) as plan:
        assert plan.manifest == {"sections": {}}
        assert plan.section_names == ()


def test_large_manifest_pushes_sections_past_it():
    manifest = {"blob": "x" * 5000}
    sections = {f"section_{i:03d}_" + "n" * 40: bytes([i]) * i for i in range(60)}
    data = plan_bytes(manifest, sections)
    with read_plan(data) as plan:
        offsets = [plan.manifest["sections"][n]["offset"] for n in sections]
        assert min(offsets) >= HEADER_SIZE + 5000
        for name, value in sections.items():
            assert plan.section(name).tobytes() == value


@pytest.mark.parametrize(
    ("manifest", "sections", "reason"),
    [
        ({"sections": {}}, {}, "reserved"),
        ({"f": object()}, {}, "JSON"),
        ({"f": float("nan")}, {}, "JSON"),
        ([1, 2], {}, "dict"),
        ({}, {"w": [1, 2, 3]}, "section 'w'"),
        ({}, {"w": np.array([object()])}, "section 'w'"),
        ({}, {"": b"x"}, "non-empty"),
        ({}, {3: b"x"}, "non-empty"),
    ],
)
def test_write_rejects_bad_input(tmp_path, manifest, sections, reason):
    with pytest.raises(PlanError, match=reason):
        plan_bytes(manifest, sections)
    with pytest.raises(PlanError, match=reason):
        write_plan(tmp_path / "bad.plan", manifest, sections)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Atomic writes


def failing_emit(out, head, placed, total):
    out.write(head[: len(head) // 2])
    out.flush()
    raise OSError(28, "No space left on device")


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "_emit", failing_emit)
    target = tmp_path / "model.plan"
    with pytest.raises(PlanError, match="No space left") as info:
        write_plan(target, MANIFEST, sample_sections())
    assert str(target) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file(plan_path, monkeypatch):
    before = plan_path.read_bytes()
    monkeypatch.setattr(plan_module, "_emit", failing_emit)
    with pytest.raises(PlanError):
        write_plan(plan_path, {"other": True}, {"x": b"y"})
    assert plan_path.read_bytes() == before
    assert [p.name for p in plan_path.parent.iterdir()] == [plan_path.name]


def test_interrupted_write_cleans_up(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(plan_module, "_emit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_plan(tmp_path / "model.plan", MANIFEST, {})
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_cleans_up(tmp_path, monkeypatch):
    def no_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(plan_module.os, "replace", no_replace)
    with pytest.raises(PlanError, match="Permission denied"):
        write_plan(tmp_path / "model.plan", MANIFEST, {})
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_directory(tmp_path):
    with pytest.raises(PlanError, match="cannot write plan"):
        write_plan(tmp_path / "nowhere" / "model.plan", MANIFEST, {})


def test_overwrite_replaces_the_plan(plan_path):
    write_plan(plan_path, {"v": 2}, {"only": b"new"})
    with read_plan(plan_path) as plan:
        assert plan.manifest["v"] == 2 and plan.section_names == ("only",)


# --------------------------------------------------------------------------------------------
# Corruption


@pytest.fixture(scope="module")
def good() -> bytes:
    return plan_bytes(MANIFEST, sample_sections())


def test_truncation_at_every_length(good):
    for n in range(len(good)):
        with pytest.raises(PlanError) as info:
            read_plan(good[:n])
        assert "truncated" in str(info.value) or "bad magic" not in str(info.value), n
        if n >= len(MAGIC):
            assert "truncated" in str(info.value), n


@pytest.mark.parametrize("cut", [0, 1, 7, 8, 63, 64, 200, 256, 1000, -33, -1])
def test_truncated_file(tmp_path, good, cut):
    path = tmp_path / "cut.plan"
    path.write_bytes(good[:cut])
    with pytest.raises(PlanError, match="truncated|empty") as info:
        read_plan(path)
    assert str(path) in str(info.value)


def test_wrong_magic(good):
    with pytest.raises(PlanError, match="not an ember plan"):
        read_plan(b"GGUF" + good[4:])
    with pytest.raises(PlanError, match="not an ember plan"):
        read_plan(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(PlanError, match="not an ember plan"):
        read_plan(b"PK")


@pytest.mark.parametrize("reseal", [False, True])
def test_newer_format_version(good, reseal):
    data = bytearray(good)
    struct.pack_into("<H", data, 8, FORMAT_VERSION + 1)
    newer = rf"format version {FORMAT_VERSION + 1} is newer.*format version {FORMAT_VERSION}"
    with pytest.raises(PlanError, match=newer):
        read_plan(seal(data) if reseal else bytes(data))


def test_format_version_zero(good):
    data = bytearray(good)
    struct.pack_into("<H", data, 8, 0)
    with pytest.raises(PlanError, match="unknown plan format version 0"):
        read_plan(seal(data))


@pytest.mark.parametrize("position", [10, 60, 63])
def test_flags_and_reserved_must_be_zero(good, position):
    data = bytearray(good)
    data[position] = 1
    with pytest.raises(PlanError, match="corrupt header"):
        read_plan(seal(data))


def test_bad_ember_version_field(good):
    data = bytearray(good)
    data[12:44] = b"\xff" * 32
    with pytest.raises(PlanError, match="not ASCII"):
        read_plan(seal(data))
    data[12:44] = b"0.1\x000.2".ljust(32, b"\0")
    with pytest.raises(PlanError, match="malformed ember version"):
        read_plan(seal(data))


@pytest.mark.parametrize("where", ["manifest", "section", "padding", "checksum"])
def test_bad_checksum(good, where):
    with read_plan(good) as plan:
        cubin = plan.manifest["sections"]["cubin"]["offset"]
        weights = plan.manifest["sections"]["weights"]
    position = {
        "manifest": HEADER_SIZE + 3,
        "section": cubin + 10,
        "padding": weights["offset"] + weights["size"] + 1,
        "checksum": len(good) - 1,
    }[where]
    data = bytearray(good)
    data[position] ^= 0x10
    with pytest.raises(PlanError, match="corrupt: checksum mismatch"):
        read_plan(bytes(data))


def test_trailing_bytes(good):
    with pytest.raises(PlanError, match="unexpected bytes after"):
        read_plan(good + b"\0")


@pytest.fixture(scope="module")
def large() -> bytes:
    """A plan of several checksum pieces (its last one short), as a 100 MiB model has."""
    weights = np.random.default_rng(0).integers(0, 255, 2 * CHUNK + 12345, dtype=np.uint8)
    return plan_bytes(MANIFEST, {"weights": weights, "cubin": b"\x7fELF" * 100})


def test_the_checksum_is_the_sha256_of_its_pieces_sha256s(large):
    body = large[:-CHECKSUM_SIZE]
    pieces = [body[o : o + CHUNK] for o in range(0, len(body), CHUNK)]
    assert len(pieces) == 3 and len(pieces[-1]) < CHUNK
    tree = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in pieces)).digest()
    assert large[-CHECKSUM_SIZE:] == tree


@pytest.mark.parametrize("position", [HEADER_SIZE + 2, CHUNK - 1, CHUNK, 2 * CHUNK + 7, -33])
def test_damage_in_any_piece_is_refused_from_file_and_bytes(tmp_path, large, position):
    data = bytearray(large)
    data[position] ^= 0x01
    path = tmp_path / "damaged.plan"
    path.write_bytes(data)
    for source in (path, bytes(data)):
        with pytest.raises(PlanError, match="corrupt: checksum mismatch"):
            read_plan(source)


@pytest.mark.parametrize("cut", [CHUNK, CHUNK + 1, 2 * CHUNK, -33, -1])
def test_a_large_plan_cut_anywhere_is_truncated(tmp_path, large, cut):
    path = tmp_path / "cut.plan"
    path.write_bytes(large[:cut])
    with pytest.raises(PlanError, match="truncated"):
        read_plan(path)


def test_a_large_plan_reads_the_same_from_file_and_bytes(tmp_path, large):
    path = tmp_path / "large.plan"
    path.write_bytes(large)
    with read_plan(path) as from_file, read_plan(large) as from_bytes:
        assert from_file.section("weights") == from_bytes.section("weights")


def test_format_1_plans_still_load(tmp_path, large):
    """Format 1's checksum was the SHA-256 of every byte before it: such plans still load, and a
    damaged one is still refused."""
    old = bytearray(large[:-CHECKSUM_SIZE])
    struct.pack_into("<H", old, 8, 1)
    old = bytes(old) + hashlib.sha256(old).digest()
    path = tmp_path / "format1.plan"
    path.write_bytes(old)
    for source in (path, old):
        with read_plan(source) as plan:
            assert plan.format_version == 1
            assert plan.section("weights") == memoryview(large)[
                plan.manifest["sections"]["weights"]["offset"]:][:2 * CHUNK + 12345]
    damaged = bytearray(old)
    damaged[CHUNK + 5] ^= 0x80
    path.write_bytes(damaged)
    with pytest.raises(PlanError, match="checksum mismatch"):
        read_plan(path)


def test_huge_declared_lengths_do_not_allocate(good):
    for offset, value in [(44, 2**63), (44, 2**64 - 1), (52, 2**64 - 1)]:
        data = bytearray(good)
        struct.pack_into("<Q", data, offset, value)
        with pytest.raises(PlanError, match="truncated|does not fit"):
            read_plan(bytes(data))
    data = bytearray(good)
    struct.pack_into("<Q", data, 52, 10)  # smaller than a header
    with pytest.raises(PlanError, match="unexpected bytes|does not fit"):
        read_plan(bytes(data))


def test_total_too_small_for_header():
    raw = HEADER.pack(MAGIC, 1, 0, b"0.1.0", 0, 40, 0) + bytes(32)
    # The header claims 40 bytes but the data is longer: trailing data.
    with pytest.raises(PlanError):
        read_plan(raw)
    tiny = HEADER.pack(MAGIC, 1, 0, b"0.1.0", 0, HEADER_SIZE, 0)
    with pytest.raises(PlanError, match="does not fit"):
        read_plan(tiny)


@pytest.mark.parametrize(
    "text",
    [b"[1, 2, 3]", b'"a string"', b"42", b"null", b"true"],
)
def test_manifest_not_an_object(text):
    with pytest.raises(PlanError, match="expected a JSON object"):
        read_plan(forge(text))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"a": NaN, "sections": {}}', "not valid JSON"),
        (b'{"a": Infinity, "sections": {}}', "not valid JSON"),
        (b'{"sections": {}, "sections": {}}', "duplicate key"),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
        (b'{"a": 1' + b"0" * 5000 + b', "sections": {}}', "not valid JSON"),
    ],
)
def test_manifest_not_json(text, reason):
    with pytest.raises(PlanError, match=reason):
        read_plan(forge(text))


@pytest.mark.parametrize(
    ("sections", "reason"),
    [
        (None, "no 'sections' table"),
        ([], "no 'sections' table"),
        ({"w": 5}, "section 'w' is not an object"),
        ({"w": {"offset": 256}}, "integer 'offset' and 'size'"),
        ({"w": {"offset": 256, "size": -1}}, "integer 'offset' and 'size'"),
        ({"w": {"offset": "256", "size": 1}}, "integer 'offset' and 'size'"),
        ({"w": {"offset": 256.0, "size": 1}}, "integer 'offset' and 'size'"),
        ({"w": {"offset": True, "size": 1}}, "integer 'offset' and 'size'"),
        ({"w": {"offset": 300, "size": 1}}, "not 256-byte aligned"),
        ({"w": {"offset": 0, "size": 1}}, "outside the data area"),
        ({"w": {"offset": 256, "size": 10**6}}, "outside the data area"),
        ({"w": {"offset": 2**70, "size": 1}}, "outside the data area"),
        ({"w": {"offset": 256, "size": 300}, "v": {"offset": 512, "size": 1}}, "overlaps"),
    ],
)
def test_bad_section_table(sections, reason):
    manifest = {} if sections is None else {"sections": sections}
    with pytest.raises(PlanError, match=reason):
        read_plan(forge_json(manifest, bytes(600)))


def test_forged_plan_with_valid_table_reads():
    data = forge_json({"sections": {"w": {"offset": 256, "size": 4}}}, b"abcd")
    with read_plan(data) as plan:
        assert plan.section("w").tobytes() == b"abcd"


def test_read_plan_rejects_non_files(tmp_path):
    with pytest.raises(PlanError, match="No such file"):
        read_plan(tmp_path / "missing.plan")
    with pytest.raises(PlanError, match="not a regular file"):
        read_plan(tmp_path)
    (tmp_path / "empty.plan").write_bytes(b"")
    with pytest.raises(PlanError, match="empty"):
        read_plan(tmp_path / "empty.plan")
    with pytest.raises(PlanError, match="path or bytes"):
        read_plan(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Plan object


def test_missing_section_is_named(good):
    with read_plan(good) as plan, pytest.raises(PlanError, match="no section 'bias'"):
        plan.section("bias")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("weights", 0, np.float32, (100,)), "run past"),
        (("weights", 92, np.float32, (2,)), "run past"),
        (("weights", -4, np.float32, (1,)), "run past"),
        (("weights", 2, np.float32, (1,)), "not aligned"),
        (("weights", 0, np.float32, (-1,)), "invalid shape"),
        (("weights", 0, np.float32, (1,) * 65), "invalid shape"),
        (("weights", 0, np.float32, (10**30, 10**30)), "run past"),
        (("weights", 0, object, (1,)), "cannot be read"),
        (("weights", 0, "S", (1,)), "cannot be read"),
        (("weights", 0, "not-a-dtype", (1,)), "invalid dtype"),
        (("weights", 0, np.float32, (2.0,)), "integers"),
        (("weights", 0.0, np.float32, (2,)), "integers"),
        (("weights", 0, np.float32, (True,)), "booleans"),
        (("weights", 0, np.float32, "ab"), "integers"),
        (("nope", 0, np.float32, (1,)), "no section 'nope'"),
    ],
)
def test_array_rejects_bad_values(good, args, reason):
    with read_plan(good) as plan, pytest.raises(PlanError, match=reason):
        plan.array(*args)


def test_array_accepts_numpy_integers(good):
    with read_plan(good) as plan:
        a = plan.array("weights", np.int64(4), np.dtype("float32"), (np.int32(3),))
        np.testing.assert_array_equal(a, [1, 2, 3])


def test_close(plan_path):
    plan = read_plan(plan_path)
    kept = plan.array("weights", 0, np.float32, (24,))
    view = plan.section("cubin")
    plan.close()
    plan.close()
    assert plan.closed and "closed" in repr(plan)
    with pytest.raises(PlanError, match="closed"):
        plan.section("cubin")
    with pytest.raises(PlanError, match="closed"):
        plan.array("weights", 0, np.float32, (1,))
    # Views handed out before closing stay valid: the mapping lives while they do.
    assert kept[5] == 5.0 and view[:4] == b"\x7fELF"


def test_repr(good):
    with read_plan(good) as plan:
        assert f"format {FORMAT_VERSION}" in repr(plan) and "8 sections" in repr(plan)


# --------------------------------------------------------------------------------------------
# Target check


def test_check_target():
    assert check_target({"arch": "sm_90"}, "sm_90") is False
    assert check_target({"arch": "sm_90"}, "9.0") is False
    assert check_target({"arch": "90"}, "sm_90") is False
    assert check_target({"arch": "sm_90"}, "sm_80", allow_rejit=True) is True
    with pytest.raises(PlanError) as info:
        check_target({"arch": "sm_90"}, "sm_80")
    assert str(info.value) == (
        "plan built for sm_90, this GPU is sm_80; rebuild, or allow re-JIT from PTX"
    )
    with pytest.raises(PlanError, match="sm_90a, this GPU is sm_90"):
        check_target({"arch": "sm_90a"}, "sm_90")


@pytest.mark.parametrize(
    ("target", "device", "reason"),
    [
        ({}, "sm_90", "no target 'arch'"),
        ("sm_90", "sm_90", "no target 'arch'"),
        ({"arch": None}, "sm_90", "not a GPU architecture"),
        ({"arch": "gfx90a"}, "sm_90", "not a GPU architecture"),
        ({"arch": "sm_90"}, "", "not a GPU architecture"),
        ({"arch": "sm_90"}, "sm_9x0", "not a GPU architecture"),
    ],
)
def test_check_target_rejects_bad_arch(target, device, reason):
    with pytest.raises(PlanError, match=reason):
        check_target(target, device)


# --------------------------------------------------------------------------------------------
# The runtime stands alone


def test_reading_a_plan_imports_no_compiler(tmp_path):
    path = tmp_path / "model.plan"
    write_plan(path, MANIFEST, {"w": np.ones(4, np.float32)})
    code = (
        "import sys\n"
        "from ember.runtime.plan import read_plan\n"
        f"plan = read_plan({str(path)!r})\n"
        "assert plan.array('w', 0, 'float32', (4,)).sum() == 4\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('xdsl', 'onnx')]\n"
        "assert 'xdsl' not in sys.modules and 'onnx' not in sys.modules, bad\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert os.path.exists(path)


# --------------------------------------------------------------------------------------------
# A loaded plan does not depend on its file


_AFTER_LOAD = """
import sys
import numpy as np
from ember.errors import PlanError
from ember.runtime.engine import Runtime

path = sys.argv[1]
engine = Runtime("cpu").load(path)
x = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)
first = engine(x=x)["y"]
size = len(open(path, "rb").read())
with open(path, "r+b") as f:  # overwrite in place: every byte after the header
    f.seek(64)
    f.write(bytes([0x5A]) * (size - 64))
edited = engine(x=x)["y"]
with open(path, "r+b") as f:
    f.truncate(100)
truncated = engine(x=x)["y"]
try:
    Runtime("cpu").load(path)
except PlanError as e:
    reload = str(e)
print("same" if np.array_equal(first, edited) and np.array_equal(first, truncated) else "CHANGED")
print(reload)
"""


def test_a_loaded_plan_survives_its_file_being_overwritten_and_truncated(tmp_path):
    """The runtime reads a plan into memory and verifies that copy: editing or truncating the
    file afterwards changes nothing the engine computes (a memory-mapped plan died of SIGBUS
    here), and loading the damaged file again is a PlanError. In a subprocess: a SIGBUS would
    kill pytest."""
    import onnx
    from onnx import TensorProto, helper

    from ember.compiler.builder import build_model

    w = np.arange(64, dtype=np.float32).reshape(8, 8) / 64
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [onnx.numpy_helper.from_array(w, "w")])
    manifest, sections = build_model(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]))
    path = tmp_path / "m.plan"
    write_plan(path, manifest, sections)
    result = subprocess.run([sys.executable, "-c", _AFTER_LOAD, str(path)], capture_output=True,
                            text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    lines = result.stdout.splitlines()
    assert lines[0] == "same"
    assert "truncated" in lines[1], lines
