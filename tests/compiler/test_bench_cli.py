"""`ember bench` / `ember-trtexec`: trtexec command lines (from TensorRT's documentation) run as a
user runs them, in a subprocess, their summary parsed with the regular expressions scripts use."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from ember.runtime import cuda
from tests.dynamic_models import cnn

NUMBER = r"([0-9.]+(?:e[-+]?[0-9]+)?)"
STATS = ("min", "max", "mean", "median", r"percentile\(90%\)", r"percentile\(95%\)",
         r"percentile\(99%\)")


def bench(*args: str, module: str = "ember.compiler.cli", check: bool = True
          ) -> subprocess.CompletedProcess:
    """`python -m ember.compiler.cli bench ARGS` (or the ember-trtexec module) as a user runs it."""
    argv = [sys.executable, "-m", module, *(["bench"] if module.endswith("cli") else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    return done


def summary(stdout: str) -> dict[str, dict[str, float]]:
    """The performance summary as scripts grep it: each timed line's statistics."""
    out = {}
    for name in ("Latency", "Enqueue Time", "H2D Latency", "GPU Compute Time", "D2H Latency"):
        line = re.search(rf"\] \[I\] {name}: (.*)$", stdout, re.M)
        assert line, f"no '{name}:' line in\n{stdout}"
        if line.group(1).startswith("n/a"):
            continue
        out[name] = {re.sub(r"\W", "", s): float(re.search(rf"{s} = {NUMBER} ms",
                                                             line.group(1)).group(1))
                     for s in STATS}
    return out


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type.lower()}{i}"
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bench")
    onnx.save(_named(cnn(2)), d / "static.onnx")
    onnx.save(_named(cnn("N")), d / "dynamic.onnx")
    return d


def _ort(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed),
                    strict=True))


def _outputs(path: Path) -> dict[str, np.ndarray]:
    data = json.loads(path.read_text())
    return {o["name"]: np.array(o["values"]).reshape([int(d) for d in o["dimensions"].split("x")])
            for o in data}


# -- trtexec's documented command lines ------------------------------------------------------------
def test_build_then_benchmark_loaded_engine(models, tmp_path):
    """`trtexec --onnx=model.onnx --saveEngine=g1.trt --skipInference`, then
    `trtexec --loadEngine=g1.trt --iterations=20 --warmUp=0` (with --duration=0, so the count
    is 20)."""
    plan = tmp_path / "g1.trt"
    built = bench(f"--onnx={models / 'static.onnx'}", f"--saveEngine={plan}", "--skipInference",
                  "--device=cpu")
    assert plan.stat().st_size > 0
    assert "=== Performance summary ===" not in built.stdout
    assert "&&&& PASSED" in built.stdout
    ran = bench(f"--loadEngine={plan}", "--iterations=20", "--warmUp=0", "--duration=0",
                "--device=cpu")
    out = ran.stdout
    assert re.search(r"Timing trace has 20 queries over", out)
    p99 = re.search(rf"Latency:.*percentile\(99%\) = {NUMBER} ms", out)
    assert p99 and float(p99.group(1)) > 0
    gpu = re.search(rf"GPU Compute Time: min = {NUMBER} ms, max = {NUMBER} ms, mean = {NUMBER}",
                    out)
    assert gpu and 0 < float(gpu.group(1)) <= float(gpu.group(3)) <= float(gpu.group(2))
    stats = summary(out)
    for s in stats.values():
        assert s["min"] <= s["median"] <= s["max"]
        assert s["min"] <= s["percentile90"] <= s["percentile95"] <= s["percentile99"] <= s["max"]
    assert "H2D Latency" not in stats and "D2H Latency" not in stats  # n/a on the CPU
    assert re.search(r"H2D Latency: n/a", out)
    qps = float(re.search(rf"Throughput: {NUMBER} qps", out).group(1))
    wall = float(re.search(rf"Total Host Walltime: {NUMBER} s", out).group(1))
    assert qps == pytest.approx(20 / wall, rel=1e-3)
    total = float(re.search(rf"Total GPU Compute Time: {NUMBER} s", out).group(1))
    assert total == pytest.approx(stats["GPU Compute Time"]["mean"] * 20 / 1e3, rel=1e-3)
    assert re.search(r"^\[\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d\] \[I\] === Performance summary ===$",
                     out, re.M)


def test_dynamic_shape_build_runs_at_shapes(models, tmp_path):
    """`trtexec --onnx=model.onnx --minShapes=input:1x3x244x244 --optShapes=input:16x3x244x244
    --maxShapes=input:32x3x244x244 --shapes=input:5x3x244x244` (on a small CNN)."""
    x = tmp_path / "x.bin"
    data = np.random.default_rng(1).standard_normal((5, 3, 8, 8)).astype(np.float32)
    data.tofile(x)
    ran = bench(f"--onnx={models / 'dynamic.onnx'}", "--minShapes=x:1x3x8x8",
                "--optShapes=x:4x3x8x8", "--maxShapes=x:8x3x8x8", "--shapes=x:5x3x8x8",
                f"--loadInputs=x:{x}", f"--exportOutput={tmp_path / 'out.json'}",
                "--iterations=3", "--warmUp=0", "--duration=0", "--device=cpu")
    assert "Input shapes: x: 5x3x8x8" in ran.stdout
    got = _outputs(tmp_path / "out.json")
    np.testing.assert_allclose(got["y"], _ort(models / "dynamic.onnx", {"x": data})["y"],
                               rtol=1e-4, atol=1e-6)
    # without --shapes the runs take the profile's opt shape
    opt = bench(f"--onnx={models / 'dynamic.onnx'}", "--minShapes=x:1x3x8x8",
                "--optShapes=x:4x3x8x8", "--maxShapes=x:8x3x8x8", "--iterations=1",
                "--warmUp=0", "--duration=0", "--device=cpu",
                f"--exportOutput={tmp_path / 'opt.json'}")
    assert "Input shapes: x: 4x3x8x8" in opt.stdout
    assert _outputs(tmp_path / "opt.json")["y"].shape == (4, 10)
    wide = bench(f"--onnx={models / 'dynamic.onnx'}", "--minShapes=x:1x3x8x8",
                 "--optShapes=x:4x3x8x8", "--maxShapes=x:8x3x8x8", "--shapes=x:9x3x8x8",
                 "--device=cpu", check=False)
    assert wide.returncode == 1 and "outside" in wide.stderr


def test_light_resnet50_output_matches_onnxruntime(tmp_path):
    """A real model: light ResNet-50 on given inputs, --exportOutput against onnxruntime."""
    from ember.compiler.models import light_model_case

    path, feed, _ = light_model_case("resnet50")
    (name, x), = feed.items()
    x.tofile(tmp_path / "data.bin")
    bench(f"--onnx={path}", f"--loadInputs={name}:{tmp_path / 'data.bin'}", "--iterations=1",
          "--warmUp=0", "--duration=0", "--device=cpu", "--noTF32",
          f"--exportOutput={tmp_path / 'out.json'}")
    got = _outputs(tmp_path / "out.json")
    want = _ort(path, feed)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)


def test_ember_trtexec_entry_point_and_flag_value_forms(models, tmp_path):
    """The console script's module, with `--flag value` as well as `--flag=value`."""
    assert 'ember-trtexec = "ember.compiler.bench:main"' in (
        Path(__file__).parents[2] / "pyproject.toml").read_text()
    ran = bench("--onnx", str(models / "static.onnx"), "--iterations", "4", "--warmUp", "0",
                "--duration", "0", "--device", "cpu", module="ember.compiler.bench")
    assert "Timing trace has 4 queries" in ran.stdout
    assert "&&&& PASSED ember.trtexec # ember-trtexec --onnx" in ran.stdout


# -- each flag takes effect ------------------------------------------------------------------------
def test_inference_flags_take_effect(models, tmp_path):
    ran = bench(f"--onnx={models / 'static.onnx'}", "--iterations=12", "--avgRuns=4",
                "--warmUp=30", "--duration=0.3", "--infStreams=2", "--device=cpu",
                f"--exportTimes={tmp_path / 't.json'}", "--verbose")
    out = ran.stdout
    warm = re.search(rf"Warmup completed (\d+) queries over {NUMBER} ms", out)
    assert int(warm.group(1)) >= 2 and float(warm.group(2)) >= 30  # two streams warm up
    queries = int(re.search(r"Timing trace has (\d+) queries", out).group(1))
    assert queries >= 12
    assert float(re.search(rf"Total Host Walltime: {NUMBER} s", out).group(1)) >= 0.3
    assert len(re.findall(r"Average on 4 runs - GPU latency: [0-9.e-]+ ms - Host latency:", out)) \
        == queries // 4
    assert "Multiple inference streams are used" in out
    assert "[V] === Explanations of the performance metrics ===" in out
    assert "[V] Pipeline:" in out
    # trtexec's --percentile: the summary's percentiles, in trtexec's nearest-rank manner
    picked = bench(f"--onnx={models / 'static.onnx'}", "--iterations=10", "--warmUp=0",
                   "--duration=0", "--device=cpu", "--percentile=50,100",
                   f"--exportTimes={tmp_path / 'p.json'}", "--dumpLayerInfo")
    line = re.search(r"GPU Compute Time: (.*)$", picked.stdout, re.M).group(1)
    computes = sorted(t["computeMs"] for t in json.loads((tmp_path / "p.json").read_text()))
    assert "percentile(90%)" not in line
    assert float(re.search(rf"percentile\(50%\) = {NUMBER} ms", line).group(1)) == \
        pytest.approx(computes[4], rel=1e-5)  # int(0.5 * 10) = 5 values above it
    assert float(re.search(rf"percentile\(100%\) = {NUMBER} ms", line).group(1)) == \
        pytest.approx(computes[-1], rel=1e-5)
    assert "[I] Layer Information:" in picked.stdout
    assert re.search(r"\[I\] kernels: \d+$", picked.stdout, re.M)
    times = json.loads((tmp_path / "t.json").read_text())
    assert len(times) == queries
    for t in times:
        assert t["h2dMs"] is None and t["d2hMs"] is None
        assert t["computeMs"] == pytest.approx(t["endComputeMs"] - t["startComputeMs"])
        assert t["latencyMs"] == pytest.approx(t["computeMs"])


def test_verbose_pipeline_is_the_one_the_build_ran(models):
    """--verbose prints the passes the build ran, a wildcard in --layerPrecisions expanded to
    the node names it matched, as text `ember-opt -p` parses again."""
    from ember.compiler.pipeline import parse_pipeline_text

    out = bench(f"--onnx={models / 'static.onnx'}", "--device=cpu", "--fp16",
                "--layerPrecisions=*:fp32", "--iterations=1", "--warmUp=0", "--duration=0",
                "--verbose").stdout
    text = re.search(r"\[V\] Pipeline: (.*)$", out, re.M).group(1)
    precision = next(p for p in parse_pipeline_text(text) if p.name == "assign-precision")
    assert "conv0:fp32" in precision.layer_precisions and "*" not in precision.layer_precisions


def test_dump_profile_with_roofline(models, tmp_path):
    ran = bench(f"--onnx={models / 'static.onnx'}", "--iterations=5", "--warmUp=0",
                "--duration=0", "--device=cpu", "--dumpProfile", "--separateProfileRun",
                "--peakTflops=0.5", "--peakBandwidth=20",
                f"--exportProfile={tmp_path / 'p.json'}",
                f"--exportLayerInfo={tmp_path / 'l.json'}")
    out = ran.stdout
    assert "=== Profile (5 iterations ) ===" in out
    layers = json.loads((tmp_path / "l.json").read_text())["Layers"]
    profile = json.loads((tmp_path / "p.json").read_text())
    assert profile[0] == {"count": 5}
    rows = profile[1:]
    assert [r["name"] for r in rows] == [layer["Name"] for layer in layers]
    assert sum(r["percentage"] for r in rows) == pytest.approx(100)
    conv = next(r for r in rows if r["template"] == "conv")
    # x [2,3,8,8] * w [16,3,3,3] (pad 1): 2*16*8*8 outputs of 27 MACs, then the ReLU epilogue
    # (fused into the conv or a step of its own)
    epilogue = 2 * 16 * 8 * 8 if conv["flops"] != 2 * 2048 * 27 else 0
    assert conv["flops"] == 2 * 2048 * 27 + epilogue
    assert conv["bytes"] == 4 * (2 * 3 * 8 * 8 + 16 * 27 + 16 + 2 * 16 * 8 * 8)
    for r in rows:
        seconds = r["averageMs"] / 1e3
        assert r["gbps"] == pytest.approx(r["bytes"] / seconds / 1e9)
        bound = max(r["flops"] / 0.5e12, r["bytes"] / 20e9)
        assert r["rooflinePercent"] == pytest.approx(100 * bound / seconds)
        line = re.search(rf"^.*\[I\] .* {re.escape(r['name'])}$", out, re.M)
        assert line, r["name"]
    assert re.search(r"\[I\] +[0-9.]+ +[0-9.]+ +[0-9.]+ +100\.0 +Total$", out, re.M)
    # profiled during the timed runs (warm-up included) vs in runs of its own
    shared = bench(f"--onnx={models / 'static.onnx'}", "--iterations=5", "--warmUp=40",
                   "--duration=0", "--device=cpu", f"--exportProfile={tmp_path / 'q.json'}")
    warmups = int(re.search(r"Warmup completed (\d+)", shared.stdout).group(1))
    assert json.loads((tmp_path / "q.json").read_text())[0] == {"count": 5 + warmups}
    # no peaks on the CPU unless given: n/a, never invented
    plain = bench(f"--onnx={models / 'static.onnx'}", "--iterations=2", "--warmUp=0",
                  "--duration=0", "--device=cpu", "--dumpProfile")
    assert "roofline: n/a" in plain.stdout


def test_plot_draws_the_profile(models, tmp_path):
    """--plot profiles the run and draws each step's median time: an SVG keeps its labels as
    text, the slowest step first; a PNG is a PNG."""
    ran = bench(f"--onnx={models / 'static.onnx'}", "--iterations=3", "--warmUp=0",
                "--duration=0", "--device=cpu", f"--plot={tmp_path / 'p.svg'}",
                f"--exportProfile={tmp_path / 'p.json'}")
    assert f"Per-step profile drawn to {tmp_path / 'p.svg'}" in ran.stdout
    rows = json.loads((tmp_path / "p.json").read_text())[1:]
    svg = (tmp_path / "p.svg").read_text()
    assert f"{len(rows)} steps" in svg and "medians of 3 iterations" in svg
    slowest = max(rows, key=lambda r: r["medianMs"])
    labels = re.findall(r">([a-z_]+_\d+)(?: \(|<)", svg)
    assert labels and labels[0] == slowest["name"]
    assert sorted(labels) == sorted(r["name"] for r in rows)
    bench(f"--onnx={models / 'static.onnx'}", "--iterations=2", "--warmUp=0", "--duration=0",
          "--device=cpu", f"--plot={tmp_path / 'p.png'}")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_flags_take_effect(models, tmp_path):
    def precisions(*flags: str) -> dict[str, str]:
        bench(f"--onnx={models / 'static.onnx'}", "--skipInference", "--device=cpu",
              f"--exportLayerInfo={tmp_path / 'l.json'}", *flags)
        layers = json.loads((tmp_path / "l.json").read_text())["Layers"]
        return {layer["LayerType"]: layer["Precision"] for layer in layers}

    assert precisions()["conv"] == "tf32"  # trtexec allows TF32 by default
    assert precisions("--noTF32")["conv"] == "fp32"
    assert precisions("--fp16")["conv"] == "fp16"
    assert precisions("--bf16")["matmul"] == "bf16"
    pinned = precisions("--fp16", "--layerPrecisions=conv0:fp32", "--precisionConstraints=obey")
    assert pinned["conv"] in ("fp32", "tf32") and pinned["matmul"] == "fp16"
    bench(f"--onnx={models / 'static.onnx'}", "--skipInference", "--device=cpu",
          f"--exportLayerInfo={tmp_path / 'l3.json'}")
    bench(f"--onnx={models / 'static.onnx'}", "--skipInference", "--device=cpu",
          "--builderOptimizationLevel=0", f"--exportLayerInfo={tmp_path / 'l0.json'}")
    fused = json.loads((tmp_path / "l3.json").read_text())["Layers"]
    unfused = json.loads((tmp_path / "l0.json").read_text())["Layers"]
    assert len(unfused) > len(fused)
    bench(f"--onnx={models / 'static.onnx'}", "--skipInference", "--device=cpu",
          "--inputIOFormats=fp32:chw", "--outputIOFormats=fp32:chw")


def test_strongly_typed_keeps_the_models_types(tmp_path):
    """`trtexec --onnx=model.onnx --stronglyTyped` on an FP16 model: its layers stay FP16."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((16, 8)).astype(np.float16)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
         onnx.helper.make_node("Relu", ["m"], ["y"], name="relu")], "half",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, [4, 16])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, [4, 8])],
        [onnx.numpy_helper.from_array(w, "w")])
    path = tmp_path / "half.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]),
              path)
    x = rng.standard_normal((4, 16)).astype(np.float16)
    x.tofile(tmp_path / "x.bin")
    bench(f"--onnx={path}", "--stronglyTyped", "--device=cpu", "--iterations=1", "--warmUp=0",
          "--duration=0", f"--loadInputs=x:{tmp_path / 'x.bin'}",
          f"--exportLayerInfo={tmp_path / 'l.json'}", f"--exportOutput={tmp_path / 'o.json'}")
    layers = json.loads((tmp_path / "l.json").read_text())["Layers"]
    assert {layer["Precision"] for layer in layers} == {"fp16"}
    want = np.maximum(x.astype(np.float64) @ w.astype(np.float64), 0)
    np.testing.assert_allclose(_outputs(tmp_path / "o.json")["y"], want, rtol=2e-2, atol=2e-2)


def _mixed_model(path: Path) -> Path:
    """FP32 MatMul + Relu, a Cast to FP16, FP16 MatMul + Softmax, a Cast back to FP32."""
    rng = np.random.default_rng(5)
    graph = onnx.helper.make_graph([
        onnx.helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm32"),
        onnx.helper.make_node("Relu", ["a"], ["r"], name="relu32"),
        onnx.helper.make_node("Cast", ["r"], ["rh"], name="to_half", to=onnx.TensorProto.FLOAT16),
        onnx.helper.make_node("MatMul", ["rh", "w2"], ["b"], name="mm16"),
        onnx.helper.make_node("Softmax", ["b"], ["s"], name="softmax16", axis=-1),
        onnx.helper.make_node("Cast", ["s"], ["y"], name="to_float", to=onnx.TensorProto.FLOAT)],
        "mixed", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4, 16])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4, 8])],
        [onnx.numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w1"),
         onnx.numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float16), "w2")])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]),
              path)
    return path


def test_strongly_typed_keeps_a_mixed_models_fp32_layers_fp32(tmp_path):
    """`--stronglyTyped` on a model that is FP32, then FP16 (casts as written): the FP32 MatMul
    stays FP32 (TF32 math, a math mode trtexec keeps), the FP16 ones FP16 — as ember builds
    any model without precision flags; the weakly typed `--fp16` would lower the FP32 MatMul,
    so under --stronglyTyped it, and every flag that changes types, is an error (trtexec drops
    --fp16/--bf16/--int8 with a warning and refuses --best; ember ignores no flag)."""
    model = _mixed_model(tmp_path / "mixed.onnx")

    def precisions(*flags: str) -> tuple[list[tuple[str, str]], str]:
        ran = bench(f"--onnx={model}", "--skipInference", "--device=cpu",
                    f"--exportLayerInfo={tmp_path / 'l.json'}", *flags)
        layers = json.loads((tmp_path / "l.json").read_text())["Layers"]
        return [(layer["LayerType"], layer["Precision"]) for layer in layers], ran.stdout

    typed, log = precisions("--stronglyTyped")
    assert typed[:3] == [("matmul", "tf32"), ("matmul", "fp16"), ("softmax", "fp16")]
    assert "Strongly typed network" in log
    assert precisions("--stronglyTyped", "--noTF32")[0][0] == ("matmul", "fp32")
    weak, _ = precisions("--fp16")  # the builder may lower FP32 layers: it does
    assert ("matmul", "tf32") not in weak and weak.count(("matmul", "fp16")) == 2
    for flags in (["--fp16"], ["--bf16"], ["--int8"], ["--best"], ["--layerPrecisions=mm16:fp32"],
                  ["--layerOutputTypes=mm32:fp16"], ["--precisionConstraints=obey"]):
        done = bench(f"--onnx={model}", "--skipInference", "--device=cpu", "--stronglyTyped",
                     *flags, check=False)
        assert done.returncode == 1 and "Traceback" not in done.stderr, flags
        assert f"--stronglyTyped with {flags[0].split('=')[0]}: a strongly typed network " \
            "takes its types from the model" in done.stderr, done.stderr


def test_strongly_typed_routes_through_the_builders_rule(tmp_path, monkeypatch):
    """The config `--stronglyTyped` builds with passes the Builder's STRONGLY_TYPED check: one
    a flag's refusal missed (here INT8 set behind the flags' back) is refused there."""
    import io

    import ember.compiler.builder as builder_module
    from ember.compiler import bench as trtexec
    from ember.compiler.builder import BuilderFlag, precision_config
    from ember.errors import EmberError

    def sneak_int8(config, **flags):  # what a flag missing from the refusals would do
        config = precision_config(config, **flags)
        config.set_flag(BuilderFlag.INT8)
        return config

    monkeypatch.setattr(builder_module, "precision_config", sneak_int8)
    args = trtexec.parse_args([f"--onnx={_mixed_model(tmp_path / 'mixed.onnx')}",
                               "--stronglyTyped"])
    with pytest.raises(EmberError, match=r"STRONGLY_TYPED network takes its types from the "
                                         r"network; the flags set BuilderFlag\.INT8"):
        trtexec.build(args, None, trtexec.Log(io.StringIO(), False))


def _split_k_model(path: Path) -> Path:
    """A matmul with a long K and a small output: the cost model splits K (a workspace)."""
    w = np.random.default_rng(1).standard_normal((8192, 16)).astype(np.float32)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [16, 8192])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [16, 16])],
        [onnx.numpy_helper.from_array(w, "w")])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]),
              path)
    return path


@pytest.mark.parametrize("spec, pools", [
    ("workspace:1024", {"WORKSPACE": 1024 << 20}),  # MiB without a suffix
    ("workspace:0.25M", {"WORKSPACE": 1 << 18}),
    ("workspace:2K,workspace:1g", {"WORKSPACE": 1 << 30}),  # later wins; either case
    ("workspace:1000.9B", {"WORKSPACE": 1000}),  # rounded down to bytes
    ("dlaSRAM:1,tacticSharedMem:48K", {"DLA_MANAGED_SRAM": 1 << 20,
                                       "TACTIC_SHARED_MEMORY": 48 << 10}),
])
def test_mem_pool_size_reads_trtexecs_units(spec, pools):
    from ember.compiler.bench import parse_memory_pools

    assert parse_memory_pools(spec) == pools


def test_mem_pool_size_workspace_limits_the_plan_as_the_builder_does(tmp_path):
    """`--memPoolSize=workspace:N` is config.set_memory_pool_limit(WORKSPACE, N bytes): a GPU
    build (sm_90, the cost model's tactics, no GPU needed) of a long-K matmul splits K into a
    workspace without a limit or under a large one; under a smaller limit the tactic fits it
    (fewer splits, or none under a limit of 0), as tests/api/test_never_ignored.py checks of
    the builder."""
    import io

    from ember.compiler.bench import Log, build, parse_args
    from ember.runtime.engine import workspace_bytes

    model = _split_k_model(tmp_path / "splitk.onnx")

    def plan(*flags: str) -> tuple[int, int, str]:
        out = io.StringIO()
        manifest, _ = build(parse_args([f"--onnx={model}", "--builderOptimizationLevel=2",
                                        *flags]), "sm_90", Log(out, False))
        (step,) = manifest["steps"]
        return (workspace_bytes(manifest["steps"]), step["params"]["tactic"].get("splits", 1),
                out.getvalue())

    free, free_splits, _ = plan()
    assert free > 0 and free_splits > 1
    big, big_splits, log = plan("--memPoolSize=workspace:1G")
    assert (big, big_splits) == (free, free_splits)
    assert f"Memory pool limit: WORKSPACE {1 << 30} bytes" in log
    assert plan("--memPoolSize=workspace:0")[:2] == (0, 1)  # no split fits
    for spec, limit in ((f"workspace:{free - 1}B", free - 1), ("workspace:0.01", 10485)):
        need, splits, _ = plan(f"--memPoolSize={spec}")  # a smaller split, or none
        assert need <= limit and splits < free_splits, spec
    # as a user runs it: a CPU plan has no split-K, so any limit is met
    ran = bench(f"--onnx={model}", "--device=cpu", "--memPoolSize=workspace:0", "--iterations=1",
                "--warmUp=0", "--duration=0")
    assert "Memory pool limit: WORKSPACE 0 bytes" in ran.stdout
    assert "&&&& PASSED" in ran.stdout


@pytest.mark.parametrize("flags, message", [
    (["--int8"], "has no Q/DQ nodes and no calibration cache was given (--calib=FILE)"),
    (["--best"], "--best: "),
    (["--calib=nowhere.cache"], "--calib=nowhere.cache: a calibration cache is for an INT8 "
                                "build: give --int8"),
    (["--int8", "--calib=nowhere.cache"], "--calib=nowhere.cache: no such calibration cache"),
    (["--memPoolSize=dlaSRAM:1"], "--memPoolSize=dlaSRAM:1: MemoryPoolType.DLA_MANAGED_SRAM is "
                                  "not implemented (ember has no DLA)"),
    (["--memPoolSize=tacticSharedMem:48K"], "MemoryPoolType.TACTIC_SHARED_MEMORY is not "
                                            "implemented"),
    (["--memPoolSize=scratch:1"], "--memPoolSize: unknown memory pool 'scratch'"),
    (["--memPoolSize=workspace:-1"], "'workspace:-1': a pool size is at least 0"),
    (["--memPoolSize=workspace:1X"], "with a B, K, M or G suffix"),
    (["--workspace=1024"], "--workspace: trtexec's flag is not implemented by ember (TensorRT "
                           "10's trtexec dropped it: use --memPoolSize=workspace:N)"),
    (["--noBuilderCache", "--timingCacheFile=cache.bin"],
     "--noBuilderCache with --timingCacheFile"),
    (["--builderOptimizationLevel=5"], "--builderOptimizationLevel=5"),
    (["--stronglyTyped", "--fp16"], "--stronglyTyped with --fp16"),
    (["--stronglyTyped", "--best"], "--stronglyTyped with --best"),
    (["--inputIOFormats=fp16:chw"], "--inputIOFormats: 'x' is float32"),
    (["--inputIOFormats=fp32:chw16"], "format 'chw16' is not one ember has"),
    (["--inputIOFormats=fp32:hwc"], "--inputIOFormats: the builder chose NCHW for 'x'"),
    (["--useDLACore=0"], "--useDLACore: trtexec's flag is not implemented"),
    (["--streams=2"], "--streams: trtexec's flag is not implemented by ember (use --infStreams"),
    (["--noSuchFlag=1"], "--noSuchFlag: unknown flag"),
    (["--iterations=many"], "--iterations: invalid int value"),
    (["--loadInputs=y:nowhere.bin"], "--loadInputs: the engine has no input 'y'"),
    (["--loadInputs=x:nowhere.bin"], "--loadInputs: cannot read 'nowhere.bin'"),
    (["--shapes=x:1x3x8x8"], "but the model fixes it at 2"),
    (["--separateProfileRun"], "--separateProfileRun: profiles nothing"),
    (["--plot=profile.jpg"], "--plot=profile.jpg: give a .png, .svg or .pdf file"),
    (["--percentile=90,101"], "--percentile=90,101: each percentile must be in [0, 100]"),
])
def test_unknown_and_unimplemented_flags_are_one_line_errors(models, flags, message):
    done = bench(f"--onnx={models / 'static.onnx'}", "--device=cpu", "--iterations=1",
                 "--warmUp=0", "--duration=0", *flags, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ember bench: error: "), done.stderr
    assert message in lines[0]
    assert "=== Performance summary ===" not in done.stdout


def test_a_file_that_cannot_be_written_is_a_one_line_error(models, tmp_path):
    done = bench(f"--onnx={models / 'static.onnx'}", "--device=cpu", "--iterations=1",
                 "--warmUp=0", "--duration=0", f"--exportTimes={tmp_path / 'no' / 't.json'}",
                 check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("ember bench: error: ") and "t.json" in done.stderr
    assert "&&&& FAILED" in done.stdout


def test_plan_flags_and_gpu_flags(models, tmp_path):
    plan = tmp_path / "m.plan"
    bench(f"--onnx={models / 'static.onnx'}", f"--saveEngine={plan}", "--skipInference",
          "--device=cpu")
    done = bench(f"--loadEngine={plan}", "--fp16", "--device=cpu", check=False)
    assert done.returncode == 1 and "--fp16: build flag(s) with --loadEngine" in done.stderr
    both = bench(f"--loadEngine={plan}", f"--onnx={models / 'static.onnx'}", check=False)
    assert both.returncode == 1 and "one of them" in both.stderr
    cpu = bench(f"--loadEngine={plan}", "--useCudaGraph", "--noDataTransfers", "--useSpinWait",
                "--noPDL", "--iterations=2", "--warmUp=0", "--duration=0", "--device=cpu")
    for flag in ("useCudaGraph", "noDataTransfers", "useSpinWait", "noPDL"):
        assert re.search(rf"\[W\] --{flag}: n/a on the CPU executor", cpu.stdout)
    data = np.zeros((2, 3, 8, 8), np.float32)
    np.save(tmp_path / "x.npy", data)
    fed = bench(f"--loadEngine={plan}", f"--loadInputs=x:{tmp_path / 'x.npy'}", "--iterations=1",
                "--warmUp=0", "--duration=0", "--device=cpu",
                f"--exportOutput={tmp_path / 'o.json'}")
    assert "PASSED" in fed.stdout
    np.testing.assert_allclose(_outputs(tmp_path / "o.json")["y"],
                               _ort(models / "static.onnx", {"x": data})["y"], rtol=1e-4,
                               atol=1e-6)
    short = tmp_path / "short.bin"
    data[:1].tofile(short)
    bad = bench(f"--loadEngine={plan}", f"--loadInputs=x:{short}", "--device=cpu", check=False)
    assert bad.returncode == 1 and "holds 192 float32 value(s); 'x' takes 384" in bad.stderr


# -- on the GPU (run on an H200 host) ------------------------------------------------------------
needs_gpu = [pytest.mark.cuda,
             pytest.mark.skipif(not cuda.cuda_available(), reason="no CUDA GPU visible")]


def _gpu(f):
    for mark in needs_gpu:
        f = mark(f)
    return f


@_gpu
def test_gpu_benchmark_with_cuda_graph(models, tmp_path):
    """`trtexec --loadEngine=g1.trt --useCudaGraph --iterations=50` (after a build with
    --saveEngine), on the GPU."""
    plan = tmp_path / "g1.trt"
    bench(f"--onnx={models / 'static.onnx'}", f"--saveEngine={plan}", "--skipInference",
          "--device=cuda")
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    ran = bench(f"--loadEngine={plan}", "--useCudaGraph", "--noPDL", "--iterations=50",
                "--warmUp=0", "--duration=0", "--device=cuda",
                f"--loadInputs=x:{tmp_path / 'x.bin'}", f"--exportOutput={tmp_path / 'o.json'}",
                f"--exportTimes={tmp_path / 't.json'}")
    out = ran.stdout
    assert "Programmatic dependent launch: off (--noPDL)" in out
    assert re.search(rf"Latency:.*percentile\(99%\) = {NUMBER} ms", out)
    stats = summary(out)
    assert set(stats) == {"Latency", "Enqueue Time", "H2D Latency", "GPU Compute Time",
                          "D2H Latency"}
    assert stats["GPU Compute Time"]["min"] > 0 and stats["H2D Latency"]["max"] > 0
    assert stats["Latency"]["mean"] == pytest.approx(
        stats["H2D Latency"]["mean"] + stats["GPU Compute Time"]["mean"]
        + stats["D2H Latency"]["mean"], rel=1e-3)
    assert "Timing trace has 50 queries" in out
    np.testing.assert_allclose(_outputs(tmp_path / "o.json")["y"],
                               _ort(models / "static.onnx", {"x": x})["y"], rtol=1e-2,
                               atol=1e-3)  # TF32 allowed, as trtexec
    for t in json.loads((tmp_path / "t.json").read_text()):
        assert t["startH2dMs"] <= t["endH2dMs"] <= t["startComputeMs"] < t["endComputeMs"] \
            <= t["startD2hMs"] <= t["endD2hMs"]


@_gpu
def test_gpu_no_transfers_spin_wait_streams_profile(models, tmp_path):
    ran = bench(f"--onnx={models / 'static.onnx'}", "--noDataTransfers", "--useSpinWait",
                "--infStreams=2", "--iterations=20", "--warmUp=0", "--duration=0",
                "--device=cuda", "--dumpProfile", "--separateProfileRun",
                f"--exportProfile={tmp_path / 'p.json'}")
    stats = summary(ran.stdout)
    assert stats["H2D Latency"]["max"] == 0 and stats["D2H Latency"]["max"] == 0
    from ember.runtime.cuda import Device

    # the GPU's own plan: its kernels launch programmatically from sm_90 on, unless --noPDL
    on = Device(0).compute_capability >= (9, 0)
    assert re.search(r"Programmatic dependent launch: on \(\d+ kernel launch" if on else
                     r"Programmatic dependent launch: n/a \(no kernel of this plan", ran.stdout)
    assert "roofline: " in ran.stdout and "roofline: n/a" not in ran.stdout
    rows = json.loads((tmp_path / "p.json").read_text())[1:]
    assert rows and all(r["rooflinePercent"] is not None and r["rooflinePercent"] > 0
                        for r in rows if r["bytes"])


@_gpu
def test_gpu_dynamic_shape_build(models, tmp_path):
    x = np.random.default_rng(3).standard_normal((5, 3, 8, 8)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    bench(f"--onnx={models / 'dynamic.onnx'}", "--minShapes=x:1x3x8x8", "--optShapes=x:4x3x8x8",
          "--maxShapes=x:8x3x8x8", "--shapes=x:5x3x8x8", "--device=cuda", "--noTF32",
          f"--loadInputs=x:{tmp_path / 'x.bin'}", f"--exportOutput={tmp_path / 'o.json'}",
          "--iterations=5", "--warmUp=0", "--duration=0", "--useCudaGraph")
    np.testing.assert_allclose(_outputs(tmp_path / "o.json")["y"],
                               _ort(models / "dynamic.onnx", {"x": x})["y"], rtol=1e-4,
                               atol=1e-6)



@_gpu
def test_gpu_mem_pool_size_workspace(tmp_path):
    """`trtexec --onnx=m.onnx --memPoolSize=workspace:0 --saveEngine=m.plan` on the GPU: the
    long-K matmul's plan needs no workspace under the limit, and some without it (the cost
    model's tactics: --builderOptimizationLevel=2), and both run."""
    from ember.runtime.engine import Runtime

    model = _split_k_model(tmp_path / "splitk.onnx")
    need = {}
    for spec in ("", "--memPoolSize=workspace:0"):
        plan = tmp_path / f"m{len(need)}.plan"
        bench(f"--onnx={model}", f"--saveEngine={plan}", "--device=cuda",
              "--builderOptimizationLevel=2", "--iterations=2", "--warmUp=0", "--duration=0",
              *filter(None, [spec]))
        need[spec] = Runtime("cpu").load(str(plan)).workspace_bytes
    assert need[""] > 0 and need["--memPoolSize=workspace:0"] == 0
