"""`ember inspect CACHE`: a timing cache's entries, the file kind told by its first bytes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ember.compiler.cli import main
from ember.compiler.inspect_cache import describe
from ember.compiler.inspect_cli import file_kind
from ember.errors import EmberError

# codegen/autotune.py's tactics.json: key -> the chosen tactic, or a kernel's time
TACTICS = {"0a1b2c3d4e5f60718293a4b5": {"tile": [64, 64, 16, 8, 4], "splits": 2},
           "1a1b2c3d4e5f60718293a4b5": {"mma": [128, 64, 32, 2, 2, 4], "splits": 1},
           "2a1b2c3d4e5f60718293a4b5": {"wgmma": [128, 64, 4]},
           "3a1b2c3d4e5f60718293a4b5": {"ms": 0.0125}}


def test_tactics_json(tmp_path):
    path = tmp_path / "tactics.json"
    path.write_text(json.dumps(TACTICS))
    assert file_kind(path) == "cache"
    info = describe(path)
    assert info["kind"] == "tactics.json" and len(info["entries"]) == 4
    assert info["counts"] == {"FP32 tile": 1, "mma.sync": 1, "wgmma": 1, "kernel times": 1}
    by_key = {e["key"]: e for e in info["entries"]}
    assert by_key["3a1b2c3d4e5f60718293a4b5"] == {"key": "3a1b2c3d4e5f60718293a4b5",
                                                  "kind": "time", "ms": 0.0125}
    assert by_key["2a1b2c3d4e5f60718293a4b5"]["tactic"] == {"wgmma": [128, 64, 4]}


def test_cli_cache_text_and_json(tmp_path, capsys):
    path = tmp_path / "tactics.json"
    path.write_text(json.dumps(TACTICS))
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"tactics.json {path}: 4 entries")
    assert "  3a1b2c3d4e5f60718293a4b5  time   12.50 us" in text
    assert "  0a1b2c3d4e5f60718293a4b5  tactic FP32 tile tile=64x64x16x8x4,splits=2" in text
    assert main(["inspect", str(path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["entries"]) == 4
    assert main(["inspect", str(path), "--explain", "0"]) == 1
    assert "is a timing cache: --explain apply to plans and models" in capsys.readouterr().err


def test_not_a_cache(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1}')
    with pytest.raises(EmberError, match="not a tactics cache"):
        describe(path)
    path.write_text("{not json")
    with pytest.raises(EmberError, match="not an ONNX model, a plan or a timing cache"):
        describe(path)


def test_timing_cache_file(tmp_path):
    """The timing cache module's own file (header `ember-timing-cache`), where it is present."""
    from ember.codegen import timing_cache
    env = timing_cache.Environment("NVIDIA H200", "9.0", "12.9", "0.1.0+abc")
    cache = timing_cache.TimingCache(env)
    cache.record(env, "k1", "matmul f32[64x96] f32[96x128]",
                 {"tactic": {"tile": [64, 64, 16, 8, 4], "splits": 2}, "ms": 0.02})
    path = tmp_path / "timing.cache"
    path.write_bytes(bytes(cache.serialize()))
    assert file_kind(path) == "cache"
    info = describe(path)
    assert info["kind"] == "timing cache" and len(info["entries"]) == 1
    assert info["entries"][0]["tactic"] == {"tile": [64, 64, 16, 8, 4], "splits": 2}


def test_inspect_cache_as_a_user_runs_it(tmp_path):
    path = tmp_path / "tactics.json"
    path.write_text(json.dumps(TACTICS))
    done = subprocess.run([sys.executable, "-m", "ember.compiler.cli", "inspect", str(path),
                           "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "tactics.json"
