"""The autotuner returns its choices to the packer instead of writing into a manifest: checked
on the CPU through the timing cache (a cached choice is answered without a GPU), down to the
packed plan's kernel."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest

import ember.compiler.builder as builder
from ember.codegen import autotune as tuner
from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime import cuda
from tests.runtime.test_gemm_tactics import _matmul_model

ARCH = "sm_90"


@pytest.fixture
def fake_gpu(tmp_path, monkeypatch):
    """A "GPU" named FakeGPU whose timing cache lives in tmp_path; no kernel is ever timed."""
    monkeypatch.setattr(cuda, "default_device", lambda: SimpleNamespace(name="FakeGPU"))
    monkeypatch.setattr(tuner, "cache_path", lambda: tmp_path / "tactics.json")
    return tmp_path / "tactics.json"


def _cache_the_last_candidates(manifest: dict, path) -> dict[int, dict]:
    """Put each tunable step's last candidate (not the cost model's first) in the cache."""
    cache, chosen = {}, {}
    for index, step in enumerate(manifest["steps"]):
        for timed, slot in tuner._timing_points(step, manifest.get("symbols") or {}):
            options = tuner._tactics(timed, ARCH)
            if len(options) >= 2 and slot == ("tactic",):
                cache[tuner._key(f"FakeGPU/{ARCH}", timed)] = options[-1]
                chosen[index] = options[-1]
    path.write_text(json.dumps(cache))
    return chosen


def test_autotune_returns_choices_and_writes_no_manifest(fake_gpu):
    model = _matmul_model([64, 96], [96, 128], True, True, 3).SerializeToString()
    manifest, _ = build_model(model, BuilderConfig(target_arch=ARCH, autotune=False))
    chosen = _cache_the_last_candidates(manifest, fake_gpu)
    assert chosen and all(manifest["steps"][i]["params"].get("tactic") != t
                          for i, t in chosen.items())
    before = copy.deepcopy(manifest)
    tuning = tuner.autotune(manifest, ARCH)
    assert manifest == before
    assert tuning.stats == {"steps": len(chosen), "timed": 0, "cached": len(chosen), "failed": 0,
                            "rejected": 0}
    assert tuning.choices == [(i, ("tactic",), t) for i, t in chosen.items()]
    steps = tuning.apply(manifest["steps"])
    assert manifest == before
    for i, step in enumerate(steps):
        want = chosen.get(i, manifest["steps"][i]["params"].get("tactic"))
        assert step["params"].get("tactic") == want


def test_the_packer_puts_the_tuned_tactics_into_the_plan(fake_gpu, monkeypatch):
    model = _matmul_model([64, 96], [96, 128], True, True, 3).SerializeToString()
    untuned, _ = build_model(model, BuilderConfig(target_arch=ARCH, autotune=False))
    chosen = _cache_the_last_candidates(untuned, fake_gpu)
    monkeypatch.setattr(builder, "_should_autotune", lambda config: True)
    tuned, sections = build_model(model, BuilderConfig(target_arch=ARCH, autotune=True))
    assert tuned["autotune"] == {"steps": len(chosen), "timed": 0, "cached": len(chosen),
                                 "failed": 0, "rejected": 0}
    assert list(tuned).index("autotune") == list(tuned).index("kernels") - 1
    for i, tactic in chosen.items():
        assert tuned["steps"][i]["params"]["tactic"] == tactic
        # the tuned tactic's kernel is the one compiled and launched
        assert tuned["steps"][i]["cuda"]["kernel"] != untuned["steps"][i]["cuda"]["kernel"]
        assert tuned["steps"][i]["cuda"]["kernel"] in {k["name"] for k in tuned["kernels"]}
