"""The timing cache (codegen/timing_cache.py) as TensorRT's API has it and as `ember build
--timing-cache` uses it: serialize/combine/reset, the keying function, caches from another GPU
or version (a warning naming what differs, their entries kept and never used, the plan as
without them), corrupt caches (reported, read as empty), the flags DISABLE_TIMING_CACHE and
ERROR_ON_TIMING_CACHE_MISS, and atomic writes. The cache logic needs no GPU: builds here time
on a stand-in GPU (`stand_in_gpu`: compiling and launching are replaced, each candidate "takes"
a time fixed by its kernel's name); the `cuda` tests build on the GPU present.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import ember as trt
from ember.codegen import autotune, timing_cache
from ember.codegen.timing_cache import Environment, TimingCache, environment, kernel_key
from ember.compiler import builder
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.compiler.cli import main as cli
from ember.compiler.ort_compat import for_onnxruntime
from ember.errors import EmberError, TimingCacheError
from ember.runtime import cuda
from ember.runtime.cuda import cuda_available
from ember.runtime.plan import plan_bytes, read_plan

ARCH = "sm_90"


def _mlp(batch: int = 64, seed: int = 0) -> onnx.ModelProto:
    """fc1 -> relu -> fc2: two GEMMs with tactic choices, named."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((128, 96)).astype(np.float32)
    w2 = rng.standard_normal((64, 128)).astype(np.float32)
    nodes = [h.make_node("Gemm", ["x", "w1"], ["a"], transB=1, name="fc1"),
             h.make_node("Relu", ["a"], ["r"], name="relu"),
             h.make_node("Gemm", ["r", "w2"], ["y"], transB=1, name="fc2")]
    graph = h.make_graph(nodes, "mlp", [h.make_tensor_value_info("x", T.FLOAT, [batch, 96])],
                         [h.make_tensor_value_info("y", T.FLOAT, [batch, 64])],
                         [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


class StandIn:
    """What the stand-in GPU did: kernels compiled and timed."""

    def __init__(self) -> None:
        self.compiled: list[str] = []
        self.timed: list[str] = []


@pytest.fixture
def stand_in_gpu(tmp_path, monkeypatch):
    """An sm_90 "GPU" named FakeGPU: the autotuner compiles nothing and launches nothing, and a
    candidate's time is a fixed function of its kernel's name. The default timing cache lives
    in tmp_path."""
    return _stand_in(tmp_path, monkeypatch)


def _stand_in(tmp_path, monkeypatch) -> StandIn:
    done = StandIn()

    def compile_stub(kernels, arch, on_done=None):
        out = []
        for name, _ in kernels:
            done.compiled.append(name)
            out.append(SimpleNamespace(cubin=b"", ptx=""))
            if on_done is not None:
                on_done(name)
        return out

    def time_stub(spec, function, bufs, cuda_, stream, bound=None):
        done.timed.append(function)
        return 1.0 + zlib.crc32(function.encode()) % 1000 / 100

    loaded = SimpleNamespace(function=lambda name: name, unload=lambda: None)
    monkeypatch.setattr(autotune, "compile_many", compile_stub)
    monkeypatch.setattr(autotune, "_time", time_stub)
    monkeypatch.setattr(autotune, "_buffers", lambda step, cuda_, rng, stream: [])
    monkeypatch.setattr(autotune, "_scratch", lambda spec, cuda_, stream: [])
    monkeypatch.setattr(autotune, "_outputs", lambda step: [])
    monkeypatch.setattr(autotune, "_poison", lambda outputs, bufs, stream, rng=None: None)
    monkeypatch.setattr(autotune, "_result", lambda outputs, bufs, stream: np.ones(4))
    monkeypatch.setattr(cuda, "default_device", lambda: SimpleNamespace(name="FakeGPU"))
    monkeypatch.setattr(cuda, "Stream", lambda device: SimpleNamespace(synchronize=lambda: None))
    monkeypatch.setattr(cuda, "Module", SimpleNamespace(load=lambda *a, **k: loaded))
    monkeypatch.setattr(cuda, "gpu_arch", lambda: ARCH)
    monkeypatch.setattr(builder, "detect_arch", lambda: ARCH)
    monkeypatch.setattr(timing_cache, "here", lambda: environment("FakeGPU", ARCH))
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path / "default"))
    return done


def _config(**kwargs) -> BuilderConfig:
    return BuilderConfig(target_arch=ARCH, autotune=True, **kwargs)


def _build(config: BuilderConfig, model: onnx.ModelProto | None = None) -> tuple[dict, bytes]:
    """(manifest, the plan but for the autotuner's counts, which the manifest records)."""
    manifest, sections = build_model((model or _mlp()).SerializeToString(), config)
    return manifest, _plan(manifest, sections)


def _read(plan: bytes | Path) -> bytes:
    """A plan but for the autotuner's counts."""
    read = read_plan(plan if isinstance(plan, bytes) else plan.read_bytes())
    return _plan(read.manifest, {n: bytes(read.section(n)) for n in read.section_names})


def _plan(manifest: dict, sections: dict) -> bytes:
    return plan_bytes({k: v for k, v in manifest.items() if k not in ("autotune", "sections")},
                      sections)


# -- the cache itself (hand-made entries) ----------------------------------------------------------
HERE = Environment("H200", "9.0", "12.9", "0.1.0+abc")
THERE = Environment("A100", "8.0", "12.9", "0.1.0+abc")


def _hand_made() -> TimingCache:
    cache = TimingCache(HERE)
    cache.record(HERE, "k1", "conv float32[1, 3, 8, 8] -> float32[1, 4, 8, 8]",
                 {"tactic": {"tile": [64, 64, 16, 4, 4], "splits": 1}, "ms": 0.25})
    cache.record(HERE, "k2", "reformat", {"ms": 0.01})
    cache.record(THERE, "k1", "conv float32[1, 3, 8, 8] -> float32[1, 4, 8, 8]",
                 {"tactic": {"tile": [32, 32, 16, 2, 2], "splits": 1}, "ms": 0.5})
    return cache


def test_serialize_round_trip():
    cache = _hand_made()
    data = cache.serialize()
    assert isinstance(data, trt.IHostMemory) and data.nbytes == len(data)
    head = bytes(data).split(b"\n", 1)[0].decode()
    assert head.startswith(f"ember-timing-cache {timing_cache.FORMAT_VERSION} ")
    back = TimingCache.deserialize(data)
    assert back.environment == HERE
    assert sorted(back.items(), key=repr) == sorted(cache.items(), key=repr)
    assert back.lookup(HERE, "k1") == {"tactic": {"tile": [64, 64, 16, 4, 4], "splits": 1},
                                       "ms": 0.25}
    assert back.lookup(THERE, "k1")["ms"] == 0.5 and back.lookup(THERE, "k2") is None
    assert bytes(back.serialize()) == bytes(data)  # deterministic
    assert back.counts() == {HERE: 2, THERE: 1} and back.foreign(HERE) == {THERE: 1}


def test_create_timing_cache_from_bytes_and_set_it():
    config = trt.Builder().create_builder_config()
    empty = config.create_timing_cache(b"")
    assert isinstance(empty, trt.ITimingCache) and len(empty) == 0
    assert config.get_timing_cache() is None
    loaded = config.create_timing_cache(bytes(_hand_made().serialize()))
    assert len(loaded) == 3
    assert config.set_timing_cache(empty, ignore_mismatch=False) is True
    assert config.get_timing_cache() is empty


def test_combine_same_environment_and_reset():
    mine = TimingCache(HERE)
    mine.record(HERE, "k1", "mine", {"ms": 1.0})
    theirs = TimingCache(HERE)
    theirs.record(HERE, "k1", "theirs", {"ms": 2.0})
    theirs.record(HERE, "k3", "theirs", {"ms": 3.0})
    assert mine.combine(theirs, ignore_mismatch=False) is True
    assert mine.lookup(HERE, "k1") == {"ms": 1.0}  # an entry already there stays
    assert mine.lookup(HERE, "k3") == {"ms": 3.0}
    assert mine.reset() is True and len(mine) == 0 and mine.lookup(HERE, "k3") is None


def test_combine_across_environments_warns_and_needs_ignore_mismatch():
    mine, theirs = TimingCache(HERE), TimingCache(THERE)
    theirs.record(THERE, "k1", "x", {"ms": 2.0})
    with pytest.warns(UserWarning, match=r"GPU 'A100' \(here 'H200'\), compute capability "
                                         r"'8.0' \(here '9.0'\)"):
        assert mine.combine(theirs, ignore_mismatch=False) is False
    assert len(mine) == 0
    assert mine.combine(theirs, ignore_mismatch=True) is True
    # kept with their environment: a build in HERE never reads them
    assert mine.lookup(THERE, "k1") == {"ms": 2.0} and mine.lookup(HERE, "k1") is None


def test_combine_takes_a_timing_cache_only():
    with pytest.raises(EmberError, match="combine takes an ITimingCache"):
        TimingCache(HERE).combine(b"", True)


def test_editable_cache_methods_are_refused_by_name():
    for method in ("query", "update", "queryKeys"):
        with pytest.raises(trt.UnsupportedError, match="EDITABLE_TIMING_CACHE"):
            getattr(TimingCache(HERE), method)(None)


@pytest.mark.parametrize("mangle, why", [
    (lambda d: d[: len(d) // 2], "checksum does not match"),
    (lambda d: d[:-3] + bytes([d[-3] ^ 1]) + d[-2:], "checksum does not match"),
    (lambda d: b"not a cache at all", "not an ember timing cache"),
    (lambda d: d.replace(b"ember-timing-cache 1 ", b"ember-timing-cache 9 ", 1),
     "format version '9'"),
    (lambda d: b"", "not an ember timing cache"),
])
def test_a_corrupt_cache_is_reported(mangle, why):
    data = mangle(bytes(_hand_made().serialize()))
    with pytest.raises(TimingCacheError, match=why):
        TimingCache.deserialize(data)
    config = BuilderConfig()
    if data:  # b"" is an empty cache, not a corrupt one
        with pytest.warns(UserWarning, match=f"invalid timing cache.*{why}.*an empty one"):
            cache = config.create_timing_cache(data)
        assert len(cache) == 0


def test_a_well_formed_body_with_bad_entries_is_reported():
    import hashlib

    body = json.dumps({"environment": HERE.to_json(), "environments": [],
                       "entries": [[0, "k", "x", {}]]}).encode()
    data = f"ember-timing-cache 1 {hashlib.sha256(body).hexdigest()}\n".encode() + body
    with pytest.raises(TimingCacheError, match="malformed entry"):
        TimingCache.deserialize(data)


def test_load_reports_a_corrupt_file_and_reads_it_as_empty(tmp_path):
    path = tmp_path / "model.cache"
    path.write_bytes(b"garbage\n{")
    with pytest.warns(UserWarning, match=r"timing cache '.*model.cache': not an ember timing "
                                         r"cache.*ignored"):
        cache = timing_cache.load(path)
    assert len(cache) == 0
    assert len(timing_cache.load(tmp_path / "absent.cache")) == 0  # not there yet: no warning


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.cache"
    timing_cache.write(_hand_made(), path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TimingCacheError, match="cannot write it"):
        timing_cache.write(TimingCache(HERE), path)
    assert path.read_bytes() == before  # the old cache, whole
    assert [p.name for p in tmp_path.iterdir()] == ["model.cache"]  # no temporary left


def test_describe_timing_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(timing_cache, "here", lambda: HERE)
    path = tmp_path / "model.cache"
    timing_cache.write(_hand_made(), path)
    info = timing_cache.describe_timing_cache(path)
    assert info["format_version"] == 1 and info["bytes"] == path.stat().st_size
    assert info["written_in"]["gpu"] == "H200"
    assert [(e["gpu"], e["entries"]) for e in info["environments"]] == [("H200", 2),
                                                                         ("A100", 1)]
    assert info["environments"][1]["differences_from_here"] == [
        "GPU 'A100' (here 'H200')", "compute capability '8.0' (here '9.0')"]
    assert {(e["key"], e.get("ms")) for e in info["entries"]} == {("k1", 0.25), ("k2", 0.01),
                                                                  ("k1", 0.5)}
    path.write_bytes(b"junk")
    with pytest.raises(TimingCacheError, match="model.cache"):
        timing_cache.describe_timing_cache(path)


# -- the keying function ---------------------------------------------------------------------------
def test_keys_are_kernel_signatures():
    """Real steps: the key changes with the template's params (shape, precision) and the kind
    of measurement, never with the tactic."""
    steps = {}
    for name, model, flags in (("b64", _mlp(64), 0), ("b32", _mlp(32), 0),
                               ("fp16", _mlp(64), BuilderFlag.FP16)):
        manifest, _ = build_model(model.SerializeToString(), BuilderConfig(
            target_arch=ARCH, autotune=False, flags=flags))
        steps[name] = [s for s in manifest["steps"] if s["template"] == "matmul"][0]
    keys = {n: kernel_key("tactic", s["template"], s["params"]) for n, s in steps.items()}
    assert len(set(keys.values())) == 3
    step = steps["b64"]
    assert "tactic" in step["params"]
    untactic = {k: v for k, v in step["params"].items() if k != "tactic"}
    assert kernel_key("tactic", "matmul", untactic) == keys["b64"]
    assert kernel_key("time", "matmul", step["params"]) != keys["b64"]
    assert timing_cache.kernel_label("matmul", step["params"]).startswith(
        "matmul float32[64, 96]")
    with pytest.raises(EmberError, match="unknown measurement kind"):
        kernel_key("guess", "matmul", step["params"])
    # the constant ranges codegen reads (each layer's scales) are not part of the signature:
    # the autotuner's step (kernel_step(codegen=True)) and the plan's step share a key
    epilogue = {"ops": [{"fn": "div", "args": [0, 1], "dtype": "float32"}], "result": 2,
                "in_shapes": [[]], "in_dtypes": ["float32"]}
    plain = dict(step["params"], epilogue=epilogue)
    ranged = dict(step["params"], epilogue=dict(epilogue, constant_ranges={"1": [0.02, 0.02]}))
    assert kernel_key("tactic", "matmul", ranged) == kernel_key("tactic", "matmul", plain)
    region = {"region": {**epilogue, "constant_ranges": {"1": [0.5, 0.5]}}, "in_shapes": [[4]]}
    assert kernel_key("tactic", "elementwise", region) == kernel_key(
        "tactic", "elementwise", {"region": epilogue, "in_shapes": [[4]]})


def test_environments_name_what_differs():
    here = environment("H200", "sm_90")
    assert here.compute_capability == "9.0" and here.ember == timing_cache.ember_version()
    assert timing_cache.ember_version().startswith(trt.__version__ + "+")
    other = Environment("H200", "9.0", "12.4", "0.0.9+123")
    assert other.differences(here) == [f"NVRTC version '12.4' (here {here.nvrtc!r})",
                                       f"ember version '0.0.9+123' (here {here.ember!r})"]
    # unknown fields (no GPU here) match anything
    assert Environment(None, None, here.nvrtc, here.ember).matches(here)


# -- builds (a stand-in GPU) -----------------------------------------------------------------------
def test_a_warm_build_times_nothing_and_gives_the_same_plan(stand_in_gpu):
    config = _config()
    cache = config.create_timing_cache(b"")
    assert config.set_timing_cache(cache, ignore_mismatch=False)
    cold, cold_plan = _build(config)
    assert cold["autotune"]["timed"] > 0 and cold["autotune"]["cached"] == 0
    assert len(stand_in_gpu.timed) == cold["autotune"]["timed"]
    assert len(cache) == cold["autotune"]["steps"]
    # through bytes, as a user keeps it: a new config, a new cache object
    config = _config()
    assert config.set_timing_cache(config.create_timing_cache(bytes(cache.serialize())), False)
    stand_in_gpu.timed.clear()
    stand_in_gpu.compiled.clear()
    warm, warm_plan = _build(config)
    assert warm["autotune"]["timed"] == 0 and stand_in_gpu.timed == []
    assert stand_in_gpu.compiled == []
    assert warm["autotune"]["cached"] == cold["autotune"]["steps"]
    assert warm_plan == cold_plan


def _foreign(cache: TimingCache, gpu: str) -> TimingCache:
    """`cache`'s entries as measured on another GPU, each naming another candidate than the
    one chosen here."""
    env = environment(gpu, "sm_80")
    other = TimingCache(env)
    for _, key, kernel, _ in cache.items():
        other.record(env, key, kernel, {"tactic": {"splits": 7}, "ms": 0.001})
    return other


def test_a_cache_from_another_gpu_warns_and_the_plan_is_as_without_it(stand_in_gpu):
    config = _config()
    config.set_timing_cache(config.create_timing_cache(b""), False)
    _, want = _build(config)
    foreign = _foreign(config.get_timing_cache(), "A100-SXM4-80GB")
    config = _config()
    with pytest.warns(UserWarning, match=r"set_timing_cache: the cache was made elsewhere "
                                         r"\(.*GPU 'A100-SXM4-80GB' \(here 'FakeGPU'\).*not set"):
        assert config.set_timing_cache(foreign, ignore_mismatch=False) is False
    assert config.get_timing_cache() is None
    assert config.set_timing_cache(foreign, ignore_mismatch=True) is True
    logger = _Recording()
    network = trt.Builder(logger).create_network()
    assert trt.OnnxParser(network).parse(_mlp().SerializeToString())
    stand_in_gpu.timed.clear()
    plan = trt.Builder(logger).build_serialized_network(network, config)
    warned = [m for s, m in logger.messages if s == trt.ILogger.WARNING]
    assert any("2 entries measured with GPU 'A100-SXM4-80GB' (here 'FakeGPU'), compute "
               "capability '8.0' (here '9.0')" in m and "ignored" in m for m in warned), warned
    assert _read(bytes(plan)) == want and stand_in_gpu.timed  # timed, chose as without
    # the foreign entries are kept beside the new ones
    assert foreign.counts() == {environment("A100-SXM4-80GB", "sm_80"): 2,
                                environment("FakeGPU", ARCH): 2}


class _Recording(trt.ILogger):
    def __init__(self):
        trt.ILogger.__init__(self)
        self.messages = []

    def log(self, severity, msg):
        self.messages.append((severity, msg))


def test_error_on_timing_cache_miss_names_the_kernel(stand_in_gpu):
    config = _config(flags=BuilderFlag.ERROR_ON_TIMING_CACHE_MISS)
    config.set_timing_cache(config.create_timing_cache(b""), False)
    with pytest.raises(EmberError, match=r"timing cache miss for kernel 'matmul_\d+' \(matmul "
                                         r"float32\[64, 96\].*ONNX fc1, relu\).*"
                                         "ERROR_ON_TIMING_CACHE"):
        _build(config)
    assert stand_in_gpu.timed == []
    warm = _config()
    warm.set_timing_cache(config.get_timing_cache(), False)
    _build(warm)  # fills it
    manifest, _ = _build(config)  # now every kernel is answered
    assert manifest["autotune"]["timed"] == 0


def test_disable_timing_cache_reads_and_writes_nothing(stand_in_gpu, tmp_path):
    _build(_config())  # fills the default cache
    default = tmp_path / "default" / "timing.cache"
    before = default.read_bytes()
    stand_in_gpu.timed.clear()
    warm, _ = _build(_config())
    assert warm["autotune"]["timed"] == 0  # the default cache answers
    cold, _ = _build(_config(flags=BuilderFlag.DISABLE_TIMING_CACHE))
    assert cold["autotune"]["timed"] > 0 and cold["autotune"]["cached"] == 0
    assert default.read_bytes() == before
    os.remove(default)
    _build(_config(flags=BuilderFlag.DISABLE_TIMING_CACHE))
    assert not default.exists()


def test_disable_timing_cache_refuses_what_it_would_ignore():
    config = _config(flags=BuilderFlag.DISABLE_TIMING_CACHE)
    config.set_flag(BuilderFlag.ERROR_ON_TIMING_CACHE_MISS)
    with pytest.raises(EmberError, match="DISABLE_TIMING_CACHE with BuilderFlag.ERROR_ON_TIMING"):
        config.check()
    config = _config(flags=BuilderFlag.DISABLE_TIMING_CACHE)
    config.timing_cache = TimingCache(HERE)
    with pytest.raises(EmberError, match=r"DISABLE_TIMING_CACHE with a timing cache"):
        config.check()


def test_timing_cache_setting_takes_a_cache():
    with pytest.raises(EmberError, match="takes an ITimingCache"):
        BuilderConfig().timing_cache = b""
    with pytest.raises(EmberError, match="set_timing_cache takes an ITimingCache"):
        BuilderConfig().set_timing_cache(b"", True)
    with pytest.raises(EmberError, match="create_timing_cache takes bytes"):
        BuilderConfig().create_timing_cache("cache.bin")


def check_timing_cache_flag(flag: BuilderFlag) -> None:
    """That `flag` changes what a build does (for tests/api/test_never_ignored.py): on a
    stand-in GPU with a warm cache, DISABLE_TIMING_CACHE times again; with an empty one,
    ERROR_ON_TIMING_CACHE_MISS fails naming the kernel."""
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        gpu = _stand_in(Path(tmp), mp)
        warm = _config()
        warm.set_timing_cache(warm.create_timing_cache(b""), False)
        _build(warm)
        config = _config(flags=flag)
        if flag is BuilderFlag.DISABLE_TIMING_CACHE:
            gpu.timed.clear()
            manifest, _ = _build(config)
            assert manifest["autotune"]["timed"] > 0 and gpu.timed
        else:
            config.set_timing_cache(config.create_timing_cache(b""), False)
            with pytest.raises(EmberError, match="timing cache miss"):
                _build(config)


# -- the CLI ---------------------------------------------------------------------------------------
def test_ember_build_timing_cache_reads_and_extends_the_file(stand_in_gpu, tmp_path, capsys):
    onnx.save(_mlp(), tmp_path / "m.onnx")
    path = tmp_path / "m.cache"
    args = [str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.plan"), "--arch", ARCH,
            "--timing-cache", str(path)]
    assert cli(["build", *args]) == 0
    out = capsys.readouterr().out
    assert "2 kernel(s) timed" not in out and "0 from the timing cache" in out
    cold = _read(tmp_path / "m.plan")
    assert len(timing_cache.read(path)) == 2
    assert cli(["build", *args]) == 0
    assert "0 kernel(s) timed, 2 from the timing cache" in capsys.readouterr().out
    assert _read(tmp_path / "m.plan") == cold
    # trtexec's spelling; -q: nothing on stdout
    assert cli(["build", *args[:-2], "--timingCacheFile", str(path), "-q"]) == 0
    assert capsys.readouterr().out == ""


def test_ember_build_reports_a_corrupt_cache_and_rewrites_it(stand_in_gpu, tmp_path, capsys):
    onnx.save(_mlp(), tmp_path / "m.onnx")
    path = tmp_path / "m.cache"
    path.write_bytes(b"ember-timing-cache 1 0000\n{}")
    assert cli(["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.plan"), "--arch",
                ARCH, "--timing-cache", str(path)]) == 0
    err = capsys.readouterr().err
    assert "ember build: warning: timing cache" in err and "checksum does not match" in err
    assert len(timing_cache.read(path)) == 2  # rewritten, whole


def test_ember_build_with_a_foreign_cache_warns(stand_in_gpu, tmp_path, capsys):
    onnx.save(_mlp(), tmp_path / "m.onnx")
    config = _config()
    config.set_timing_cache(config.create_timing_cache(b""), False)
    _, want = _build(config)
    path = tmp_path / "m.cache"
    timing_cache.write(_foreign(config.get_timing_cache(), "A100"), path)
    assert cli(["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.plan"), "--arch",
                ARCH, "--noTF32", "--timing-cache", str(path)]) == 0  # _config's precision
    err = capsys.readouterr().err
    assert "warning: timing cache: 2 entries measured with GPU 'A100' (here 'FakeGPU')" in err
    assert _read(tmp_path / "m.plan") == want
    counts = timing_cache.read(path).counts()
    assert sorted(e.gpu for e in counts) == ["A100", "FakeGPU"]


def test_ember_bench_timing_cache_file(tmp_path, capsys):
    from ember.compiler.bench import main as bench

    onnx.save(_mlp(), tmp_path / "m.onnx")
    path = tmp_path / "m.cache"
    assert bench([f"--onnx={tmp_path / 'm.onnx'}", "--device=cpu", "--skipInference",
                  f"--timingCacheFile={path}"]) == 0
    assert f"Saved the timing cache to {path}" in capsys.readouterr().out
    assert len(timing_cache.read(path)) == 0  # a CPU build times nothing; the file is valid
    assert bench([f"--onnx={tmp_path / 'm.onnx'}", "--device=cpu", "--skipInference",
                  "--noBuilderCache", "--errorOnTimingCacheMiss"]) == 1
    assert "--noBuilderCache with --errorOnTimingCacheMiss" in capsys.readouterr().err


# -- on the GPU (the lead runs these on the H200) --------------------------------------------------
needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")


def _resnetish(batch: int = 8, channels: int = 64, size: int = 28) -> onnx.ModelProto:
    """A stem conv and two residual blocks (conv-relu-conv-add-relu), FP32."""
    rng = np.random.default_rng(3)
    inits, nodes = [], []

    def conv(x: str, out: str, cin: int, k: int, name: str) -> None:
        w = (rng.standard_normal((channels, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}_w"))
        nodes.append(h.make_node("Conv", [x, f"{name}_w"], [out], pads=[k // 2] * 4, name=name))

    conv("x", "s", 16, 3, "stem")
    nodes.append(h.make_node("Relu", ["s"], ["b0"], name="stem_relu"))
    for i in (1, 2):
        conv(f"b{i - 1}", f"c{i}a", channels, 3, f"block{i}_conv1")
        nodes.append(h.make_node("Relu", [f"c{i}a"], [f"r{i}"], name=f"block{i}_relu1"))
        conv(f"r{i}", f"c{i}b", channels, 3, f"block{i}_conv2")
        nodes.append(h.make_node("Add", [f"c{i}b", f"b{i - 1}"], [f"s{i}"], name=f"block{i}_add"))
        nodes.append(h.make_node("Relu", [f"s{i}"], [f"b{i}"], name=f"block{i}_relu2"))
    graph = h.make_graph(nodes, "resnetish",
                         [h.make_tensor_value_info("x", T.FLOAT, [batch, 16, size, size])],
                         [h.make_tensor_value_info("b2", T.FLOAT, None)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@needs_gpu
@pytest.mark.cuda
def test_a_warm_gpu_build_times_nothing_and_is_faster(tmp_path, monkeypatch):
    from ember.compiler.commands import build

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path / "default"))  # a cold NVRTC cache too
    arch = cuda.gpu_arch()
    onnx.save(_resnetish(), tmp_path / "r.onnx")
    path = tmp_path / "r.cache"
    seconds, manifests, launches = [], [], []
    real_time = autotune._time

    def counted(*args, **kwargs):  # every kernel timed: the autotuner's and choose-formats'
        launches[-1] += 1  # (time_kernels)
        return real_time(*args, **kwargs)

    monkeypatch.setattr(autotune, "_time", counted)
    for _ in range(2):
        launches.append(0)
        start = time.perf_counter()
        manifests.append(build(tmp_path / "r.onnx", tmp_path / "r.plan", arch=arch,
                               autotune=True, timing_cache=path, quiet=True))
        seconds.append(time.perf_counter() - start)
    cold, warm = (m["autotune"] for m in manifests)
    assert cold["timed"] > 0 and cold["cached"] == 0, cold
    assert warm["timed"] == 0 and warm["cached"] == cold["steps"], warm
    assert launches[0] >= cold["timed"] and launches[1] == 0, launches
    print(f"cold build {seconds[0]:.2f} s, warm {seconds[1]:.2f} s "
          f"({seconds[1] / seconds[0]:.2f} of cold)")
    assert seconds[1] < seconds[0]
    assert [s.get("params", {}).get("tactic") for s in manifests[0]["steps"]] == \
        [s.get("params", {}).get("tactic") for s in manifests[1]["steps"]]


@needs_gpu
@pytest.mark.cuda
def test_a_foreign_cache_on_the_gpu_warns_and_the_plan_is_correct(tmp_path, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path / "default"))
    model = _resnetish(batch=2)
    config = trt.Builder().create_builder_config()
    config.clear_flag(BuilderFlag.TF32)
    config.set_timing_cache(config.create_timing_cache(b""), False)
    build_model(model.SerializeToString(), config)
    foreign = _foreign(config.get_timing_cache(), "Some Other GPU")
    config = trt.Builder().create_builder_config()
    config.clear_flag(BuilderFlag.TF32)
    assert config.set_timing_cache(foreign, ignore_mismatch=True)
    with pytest.warns(UserWarning, match="GPU 'Some Other GPU'"):
        manifest, sections = build_model(model.SerializeToString(), config)
    engine = trt.Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    x = np.random.default_rng(4).standard_normal((2, 16, 28, 28)).astype(np.float32)
    got = engine.create_execution_context().execute({"x": x})["b2"]
    want = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


# -- TensorRT's flow: a timing cache file kept across builds (as Polygraphy's loaders keep it) ---
TRT_LOGGER = trt.Logger(trt.Logger.WARNING)


def build_engine_with_timing_cache(model_bytes, timing_cache_path):
    builder = trt.Builder(TRT_LOGGER)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, TRT_LOGGER)
    if not parser.parse(model_bytes):
        return None
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)
    try:
        with open(timing_cache_path, "rb") as f:
            cache = config.create_timing_cache(f.read())
    except FileNotFoundError:
        cache = config.create_timing_cache(b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine_bytes = builder.build_serialized_network(network, config)
    timing_cache = config.get_timing_cache()
    try:
        with open(timing_cache_path, "rb") as f:
            prev_cache = config.create_timing_cache(f.read())
    except FileNotFoundError:
        prev_cache = None
    if timing_cache:
        if prev_cache is not None:
            assert timing_cache.combine(prev_cache, ignore_mismatch=True)
        with timing_cache.serialize() as buffer, open(timing_cache_path, "wb") as f:
            f.write(buffer)
    return engine_bytes


def test_timing_cache_round_trip_port(stand_in_gpu, tmp_path):
    model = _mlp()
    path = str(tmp_path / "timing.cache")
    counts, plans = [], []
    for _ in range(2):
        engine_bytes = build_engine_with_timing_cache(model.SerializeToString(), path)
        counts.append(read_plan(bytes(engine_bytes)).manifest["autotune"])
        plans.append(_read(bytes(engine_bytes)))
    assert counts[0]["timed"] > 0 and counts[1]["timed"] == 0
    assert counts[1]["cached"] == counts[0]["steps"] and plans[0] == plans[1]
    # the sm_90 plan, run by the CPU executor, computes the model
    engine = trt.Runtime(TRT_LOGGER, device="cpu").deserialize_cuda_engine(engine_bytes)
    x = np.random.default_rng(6).standard_normal((64, 96)).astype(np.float32)
    got = engine.create_execution_context().execute({"x": x})["y"]
    w1, w2 = (numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer)
    np.testing.assert_allclose(got, (np.maximum(x @ w1.T, 0) @ w2.T), rtol=1e-4, atol=1e-4)


def test_ember_bench_reports_a_corrupt_timing_cache_file_as_a_warning_line(tmp_path, capsys):
    from ember.compiler.bench import main as bench

    onnx.save(_mlp(), tmp_path / "m.onnx")
    path = tmp_path / "m.cache"
    path.write_bytes(b"\x00\x01 not a cache")
    assert bench([f"--onnx={tmp_path / 'm.onnx'}", "--device=cpu", "--skipInference",
                  f"--timingCacheFile={path}"]) == 0
    out = capsys.readouterr().out
    assert "[W] timing cache" in out and "not an ember timing cache" in out
    assert len(timing_cache.read(path)) == 0  # rewritten as a valid (empty) cache


def test_steps_of_one_kernel_share_one_timing_so_a_warm_build_chooses_as_the_cold(
        stand_in_gpu, monkeypatch):
    """Two GEMMs of one shape are one kernel key: timed once in the cold build (noisy times
    would have them choose apart, and the cache would keep only the last), so the warm build,
    answered from the cache, gives the cold build's plan (the H200 showed a wgmma tile differ)."""
    # timed twice, the first candidate would win once and the last the second time
    times = iter([1.0, 2.0, 3.0, 4.0, 4.0, 3.0, 2.0, 1.0] + [5.0] * 100)
    monkeypatch.setattr(autotune, "_time", lambda *args, **kwargs: next(times))
    rng = np.random.default_rng(1)
    nodes = [h.make_node("Gemm", ["x", "w1"], ["a"], transB=1, name="fc1"),
             h.make_node("Gemm", ["a", "w2"], ["y"], transB=1, name="fc2")]
    graph = h.make_graph(
        nodes, "twins", [h.make_tensor_value_info("x", T.FLOAT, [64, 96])],
        [h.make_tensor_value_info("y", T.FLOAT, [64, 96])],
        [numpy_helper.from_array(rng.standard_normal((96, 96)).astype(np.float32), n)
         for n in ("w1", "w2")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    config = _config()
    config.set_timing_cache(config.create_timing_cache(b""), False)
    cold, _ = _build(config, model)
    warm, _ = _build(config, model)
    tactics = [[s["params"].get("tactic") for s in m["steps"] if s["template"] == "matmul"]
               for m in (cold, warm)]
    assert tactics[0][0] == tactics[0][1] and tactics[0] == tactics[1], tactics
    assert warm["autotune"]["cached"] == warm["autotune"]["steps"] == 2
    assert warm["autotune"]["timed"] == 0


def test_the_workspace_limit_steers_the_timed_choice_too(stand_in_gpu):
    """Under a WORKSPACE limit of 0 the autotuner times only tactics without split-K (a long-K
    GEMM whose cost model splits K), and the plan needs no workspace."""
    from ember.compiler.builder import MemoryPoolType
    from ember.runtime.engine import workspace_bytes

    w = np.random.default_rng(1).standard_normal((8192, 16)).astype(np.float32)
    graph = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [16, 8192])],
                         [h.make_tensor_value_info("y", T.FLOAT, [16, 16])],
                         [numpy_helper.from_array(w, "w")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    free, _ = _build(_config(), model)
    assert workspace_bytes(free["steps"]) > 0  # unlimited: the timing picks a split
    config = _config()
    config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, 0)
    limited, _ = _build(config, model)
    (step,) = limited["steps"]
    assert step["params"]["tactic"].get("splits", 1) == 1
    assert workspace_bytes(limited["steps"]) == 0
