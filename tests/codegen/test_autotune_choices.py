"""The autotuner returns its choices, which select-tactics sets on the kernel ops (so the IR
shows them and emit-cuda emits them): checked on the CPU through the timing cache (a cached
choice is answered without a GPU), down to the packed plan's kernel."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

import ember.compiler.builder as builder
from ember.codegen import autotune as tuner
from ember.codegen import timing_cache
from ember.codegen.emit_cuda import emit_step
from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model, pipeline_for
from ember.compiler.pipeline import pipeline_text
from ember.dialects.attributes import to_attribute
from ember.runtime import cuda
from tests.runtime.test_gemm_tactics import _matmul_model

ARCH = "sm_90"


@pytest.fixture
def fake_gpu(tmp_path, monkeypatch):
    """A "GPU" named FakeGPU whose (default) timing cache lives in tmp_path; no kernel is ever
    timed."""
    monkeypatch.setattr(cuda, "default_device", lambda: SimpleNamespace(name="FakeGPU"))
    monkeypatch.setattr(cuda, "gpu_arch", lambda: ARCH)
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    return tmp_path / "timing.cache"


def _cached(entries: dict[str, tuple[dict, dict]], path) -> None:
    """Write a timing cache of FakeGPU's entries: kind -> (timed step, tactic)."""
    cache = timing_cache.TimingCache(timing_cache.environment("FakeGPU", ARCH))
    for kind, (step, tactic) in entries:
        cache.record(cache.environment, timing_cache.kernel_key(kind, step["template"],
                                                                step["params"]),
                     "", {"tactic": tactic})
    timing_cache.write(cache, path)


def _cache_the_last_candidates(manifest: dict, path) -> dict[int, dict]:
    """Put each tunable step's last candidate (not the cost model's first) in the cache."""
    entries, chosen = [], {}
    for index, step in enumerate(manifest["steps"]):
        for timed, slot in tuner._timing_points(step, manifest.get("symbols") or {}):
            options = tuner._tactics(timed, ARCH)
            if len(options) >= 2 and slot == ("tactic",):
                entries.append(("tactic", (timed, options[-1])))
                chosen[index] = options[-1]
    _cached(entries, path)
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


def test_select_tactics_sets_the_tuned_tactics_and_the_plan_runs_them(fake_gpu, monkeypatch):
    model = _matmul_model([64, 96], [96, 128], True, True, 3).SerializeToString()
    untuned, _ = build_model(model, BuilderConfig(target_arch=ARCH, autotune=False))
    chosen = _cache_the_last_candidates(untuned, fake_gpu)
    monkeypatch.setattr(builder, "_should_autotune", lambda config: True)
    config = BuilderConfig(target_arch=ARCH, autotune=True)
    spec = 'select-tactics{arch="sm_90" sms=132 tile="" autotune=true workspace=-1}'
    assert spec in pipeline_text(pipeline_for(config))
    stages = {}
    tuned, sections = build_model(model, config, after_pass=lambda i, p, m: stages.setdefault(
        p.name, str(m)))
    # the IR after select-tactics shows the tuned tactics and the counts
    counts = ", ".join(f"{k} = {v} : i64" for k, v in (
        ("steps", len(chosen)), ("timed", 0), ("cached", len(chosen)), ("failed", 0),
        ("rejected", 0)))
    assert f"ember.autotune = {{{counts}}}" in stages["select-tactics"]
    for tactic in chosen.values():
        assert _tactic_text(tactic) in stages["select-tactics"]
    assert tuned["autotune"] == {"steps": len(chosen), "timed": 0, "cached": len(chosen),
                                 "failed": 0, "rejected": 0}
    assert list(tuned).index("autotune") == list(tuned).index("kernels") - 1
    for i, tactic in chosen.items():
        assert tuned["steps"][i]["params"]["tactic"] == tactic
        # the tuned tactic's kernel is the one compiled and launched
        assert tuned["steps"][i]["cuda"]["kernel"] != untuned["steps"][i]["cuda"]["kernel"]
        assert tuned["steps"][i]["cuda"]["kernel"] in {k["name"] for k in tuned["kernels"]}


def _tactic_text(tactic: dict) -> str:
    """A tactic as the IR prints it (the properties' dictionary)."""
    return f"tactic = {to_attribute(tactic)}"


def test_a_symbolic_kernel_gets_its_tuned_tactic_and_small_tactics(fake_gpu, monkeypatch):
    """A matmul over a symbolic batch: timed at the profile's opt (its `tactic`) and at the
    batch's min (`small_tactics`, for the small-shape kernel), both shown in the IR and run by
    the plan's kernel and its variant."""
    model = _matmul_model(["N", 96], [96, 128], True, True, 3).SerializeToString()
    profile = OptimizationProfile()
    profile.set_shape("x", (1, 96), (64, 96), (256, 96))
    untuned, _ = build_model(model, BuilderConfig(target_arch=ARCH, autotune=False,
                                                  profiles=[profile]))
    (step,) = [s for s in untuned["steps"] if s["template"] == "matmul"]
    assert "tactic" not in step["params"]  # codegen picks at opt
    symbols = untuned["symbols"]
    entries, chosen = [], {}
    for timed, slot in tuner._timing_points(step, symbols):
        options = [t for t in tuner._tactics(timed, ARCH) if tuner._emits(step, t, symbols)]
        assert len(options) >= 2
        # not the cost model's first candidate; a different one for each slot
        chosen[slot] = options[-1] if slot == ("tactic",) else options[-2]
        entries.append(("tactic-symbolic", (timed, chosen[slot])))
    assert set(chosen) == {("tactic",), ("tactic_small", "N")}
    _cached(entries, fake_gpu)
    monkeypatch.setattr(builder, "_should_autotune", lambda config: True)
    stages = {}
    tuned, _ = build_model(model, BuilderConfig(target_arch=ARCH, autotune=True,
                                                profiles=[profile]),
                           after_pass=lambda i, p, m: stages.setdefault(p.name, str(m)))
    shown = stages["select-tactics"]
    assert _tactic_text(chosen[("tactic",)]) in shown
    assert f'small_tactics = {{N = {to_attribute(chosen[("tactic_small", "N")])}}}' in shown
    (step,) = [s for s in tuned["steps"] if s["template"] == "matmul"]
    assert step["params"]["tactic"] == chosen[("tactic",)]
    assert step["params"]["tactic_small"] == {"N": chosen[("tactic_small", "N")]}
    # the plan runs the kernels emit-cuda emitted for those tactics
    want = emit_step(dict(step, params={k: v for k, v in step["params"].items()
                                        if k != "tactic_small"}),
                     {k: tuple(v) for k, v in symbols.items()})[0]
    assert step["cuda"]["kernel"] == want
    (variant,) = step["cuda"]["variants"]
    assert variant["when"] == {"N": 8}  # ⌊√(1 · 64)⌋
    assert variant["kernel"] != step["cuda"]["kernel"]
    assert "cuda_fallback" not in stages["emit-cuda"]
    assert stages["emit-cuda"].count('kernel.cuda "matmul_') == 2
    assert 'when {N = 8 : i64}' in stages["emit-cuda"]


def test_a_short_k_gemm_also_times_a_tile_two_blocks_share():
    """A 1x1 conv over 64 channels (ResNet-50's downsample: M = 100352, N = 256, K = 64) is bound
    by its loads and stores, which the cost model (tensor-core work only) does not count: its
    candidates include the best wgmma tile of which two blocks fit a multiprocessor, so one
    block's epilogue can overlap the other's loads; a long-K GEMM's list does not grow."""
    from ember.codegen.templates import gemm_mma
    from ember.codegen.templates.gemm_wgmma import SHORT_K, WgmmaTile

    def pairs(tactics):
        return [t for t in tactics if "wgmma" in t and "copy" not in t
                and WgmmaTile(*t["wgmma"]).resident == 2]

    short = gemm_mma.candidates(100352, 256, SHORT_K // 2, 1, wgmma=True, tma=True, top=4)
    assert pairs(short) and pairs(short)[0] not in short[:4], short  # appended to the 4
    long_k = gemm_mma.candidates(100352, 256, 4 * SHORT_K, 1, wgmma=True, tma=True)
    assert not pairs(long_k), long_k
    # and the small mma.sync tiles (more blocks a multiprocessor), with or without wgmma
    small = [{"mma": t.as_list(), "splits": 1} for t in gemm_mma.SHORT_K_TILES]
    for wgmma in (True, False):
        found = gemm_mma.candidates(100352, 256, SHORT_K // 2, 1, wgmma=wgmma, top=4)
        assert all(t in found for t in small), found
        assert not any(t in gemm_mma.candidates(100352, 256, 4 * SHORT_K, 1, wgmma=wgmma)
                       for t in small)
