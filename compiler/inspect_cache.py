"""`ember inspect CACHE`: what a timing cache holds. Two kinds, told apart by their first bytes:
the timing cache file (`ember-timing-cache <version> <sha256>` header, written by
`codegen/timing_cache.py`, which describes itself: `describe_timing_cache`) and the older
`tactics.json` of codegen/autotune.py (a JSON object: key -> the chosen tactic, or {"ms": t}
for a kernel choose-formats timed; keys are hashes of GPU, template and params).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from ember.errors import EmberError

TIMING_CACHE_MAGIC = b"ember-timing-cache"


def is_timing_cache(head: bytes) -> bool:
    return head.startswith(TIMING_CACHE_MAGIC)


def _family(tactic: dict[str, Any]) -> str:
    for key, name in (("wgmma", "wgmma"), ("mma", "mma.sync"), ("tile", "FP32 tile")):
        if key in tactic:
            return name
    return "other"


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """A timing cache as JSON data: its kind, entries and counts."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EmberError(f"cannot read {path}: {e.strerror or e}") from None
    if is_timing_cache(data[:64]):
        try:  # the timing cache module describes its own format
            from ember.codegen.timing_cache import describe_timing_cache
        except ImportError:
            raise EmberError(f"{path} is an ember timing cache, which this ember cannot read "
                             "(no codegen/timing_cache.py)") from None
        return {"kind": "timing cache", **describe_timing_cache(path)}
    try:
        doc = json.loads(data)
    except ValueError:
        raise EmberError(f"{path} is not an ONNX model, a plan or a timing cache") from None
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise EmberError(f"{path} is JSON but not a tactics cache (key -> tactic objects)")
    entries = []
    for key, value in sorted(doc.items()):
        if set(value) == {"ms"}:
            entries.append({"key": key, "kind": "time", "ms": value["ms"]})
        else:
            entries.append({"key": key, "kind": "tactic", "family": _family(value),
                            "tactic": value})
    return {"kind": "tactics.json", "path": str(path), "bytes": len(data),
            "entries": entries,
            "counts": dict(Counter(e.get("family", "kernel times") for e in entries))}


def text(info: dict[str, Any]) -> str:
    """`describe`'s data as lines."""
    from ember.runtime.inspector import tactic_text

    lines = [f"{info['kind']} {info['path']}: {len(info['entries'])} entr"
             f"{'y' if len(info['entries']) == 1 else 'ies'}, {info['bytes']} bytes"]
    if info["kind"] == "tactics.json":
        lines.append("counts: " + (", ".join(f"{k} {v}" for k, v in info["counts"].items())
                                   or "none"))
        lines.append("(keys hash the GPU, template and params: the older cache does not keep "
                     "the kernel's signature)")
        for e in info["entries"]:
            what = (f"{e['ms'] * 1e3:.2f} us" if e["kind"] == "time"
                    else f"{e['family']:9} {tactic_text(e['tactic'])}")
            lines.append(f"  {e['key']}  {e['kind']:6} {what}")
        return "\n".join(lines) + "\n"
    written = info.get("written_in") or {}
    lines.append(f"format version {info.get('format_version')}, written by "
                 + ", ".join(f"{k} {v}" for k, v in written.items() if v))
    for i, env in enumerate(info.get("environments", [])):
        diff = env.get("differences_from_here") or []
        where = "this machine's" if not diff else "differs here: " + "; ".join(map(str, diff))
        desc = ", ".join(f"{k} {env[k]}" for k in ("gpu", "compute_capability", "nvrtc", "ember")
                         if env.get(k))
        lines.append(f"environment #{i}: {desc}: {env.get('entries')} entries ({where})")
    for e in info["entries"]:
        parts = [f"env #{e.get('environment')}", e.get("kernel", e.get("key", "?"))]
        if "tactic" in e:
            parts.append(f"tactic {tactic_text(e['tactic'])}")
        if "ms" in e:
            parts.append(f"{e['ms'] * 1e3:.2f} us")
        lines.append("  " + "  ".join(parts))
    return "\n".join(lines) + "\n"


__all__ = ["describe", "is_timing_cache", "text"]
