"""`ember inspect MODEL.plan`: the header and layers, --explain (why each fusion, format,
precision and tactic, and what it beat, from what the passes recorded), --graph, --json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import onnx
import pytest

from ember.codegen.templates import template_module
from ember.compiler.builder import BuilderConfig, build_model, precision_config
from ember.compiler.cli import main
from ember.compiler.inspect_plan import PlanReport
from ember.compiler.models import light_model_path
from ember.errors import EmberError
from ember.runtime.manifest import decode
from ember.runtime.plan import plan_bytes, write_plan
from tests.onnx_cases import small_cnn

# small_cnn in FP16 with its Gemm pinned to FP32, for sm_90 (NVRTC, no GPU needed): a cast of
# the input, the channel pad, conv+relu, pool, reduce, a cast, the matmul, softmax with the
# output's cast as its epilogue
MATMUL, CONV, LAYERS = 6, 2, 8


@pytest.fixture(scope="module")
def cnn_plan(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "cnn.plan"
    config = precision_config(BuilderConfig(target_arch="sm_90"), fp16=True,
                              layer_precisions="fc:fp32")
    write_plan(path, *build_model(small_cnn(), config))
    return path


@pytest.fixture(scope="module")
def resnet_plan(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "resnet50.plan"
    config = precision_config(BuilderConfig(target_arch="sm_90"), fp16=True)
    write_plan(path, *build_model(light_model_path("resnet50"), config))
    return path


def test_explain_tactic_names_the_choice_and_the_alternatives(cnn_plan):
    report = PlanReport(cnn_plan)
    step = report.manifest["steps"][MATMUL]
    assert step["template"] == "matmul"
    params = decode(step["params"])
    # what select-tactics ranked: the template's own candidates, best estimated first
    ranked = template_module("matmul").tactics({k: v for k, v in params.items()
                                                if k != "tactic"}, "sm_90")
    assert len(ranked) > 1 and params["tactic"] == ranked[0]
    e = report.explain(MATMUL)
    assert e["tactic"]["rank"] == 1 and "cost model" in e["tactic"]["why"]
    from ember.runtime.inspector import tactic_text

    assert e["tactic"]["chosen"] == tactic_text(ranked[0])
    assert e["tactic"]["beat"] == [tactic_text(t) for t in ranked[1:]]
    text = report.explain_text("fc")  # by ONNX node name too
    assert f"tactic: {tactic_text(ranked[0])}" in text
    assert all(f"  beat: {tactic_text(t)}" in text for t in ranked[1:])


def test_explain_precision_pin_and_policy(cnn_plan):
    report = PlanReport(cnn_plan)
    fc = report.explain(MATMUL)["precision"]
    assert fc["chosen"] == "fp32" and "pinned by a per-layer precision (fc: fp32" in fc["why"]
    assert fc["why"].endswith("allowed: fp32, fp16")  # (no TF32: precision_config's default)
    conv = report.explain("conv_2")["precision"]
    assert conv["chosen"] == "fp16" and "the build allowed fp16" in conv["why"]
    edge = report.explain("elementwise_0")  # cast(input:x): FP32 input to the FP16 conv
    assert edge["origin"] == ["cast(input:x)"]
    assert edge["precision"]["why"].startswith("a cast at the network's edge")


def test_explain_fusion(cnn_plan):
    fusion = PlanReport(cnn_plan).explain("conv_2")["fusion"]
    assert fusion["chosen"] == "2 ONNX node(s) in one kernel"
    assert fusion["why"].startswith("fuse-epilogues: the elementwise kernel after this conv (")
    assert "relu" in fusion["why"]


def test_explain_format_with_its_costs(resnet_plan):
    report = PlanReport(resnet_plan)
    index = next(i for i, s in enumerate(report.manifest["steps"]) if s["template"] == "conv")
    fmt = report.explain(index)["format"]
    assert fmt["chosen"] == "NHWC" and set(fmt["costs_us"]) == {"NCHW", "NHWC"}
    assert fmt["costs_us"]["NHWC"] < fmt["costs_us"]["NCHW"]
    assert fmt["beat"] == [f"NCHW: {fmt['costs_us']['NCHW']:.2f} us"]
    assert "cost model's estimates" in fmt["why"]
    assert report.layer(index)["format_out"] == "NHWC"  # what the plan runs


def test_explain_errors(cnn_plan, tmp_path):
    report = PlanReport(cnn_plan)
    with pytest.raises(EmberError, match="no layer 'nope'"):
        report.explain("nope")
    with pytest.raises(EmberError, match="out of range"):
        report.explain(99)
    with pytest.raises(EmberError, match="ONNX node 'conv' is in layers pad_1, conv_2"):
        report.explain("conv")  # the channel pad and the conv both came from it
    manifest, sections = build_model(small_cnn())
    old = plan_bytes(manifest, {k: v for k, v in sections.items() if k != "explain"})
    with pytest.raises(EmberError, match="records no reasons"):
        PlanReport(old).explain(0)


def test_plan_text_and_json(cnn_plan, capsys):
    assert main(["inspect", str(cnn_plan)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith(f"plan {cnn_plan}: ember ") and "CUDA sm_90 (NVRTC " in lines[0]
    assert lines[1] == "inputs: x float32[2x3x8x8] NCHW" and text.endswith(f"kernels: {LAYERS}\n")
    assert main(["inspect", str(cnn_plan), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["layers"] == len(doc["steps"]) == LAYERS and doc["target"]["arch"] == "sm_90"
    conv = doc["steps"][CONV]
    assert conv["origin"] == ["conv", "relu"] and conv["precision"] == "fp16"
    assert all("offset" in t for t in conv["inputs"])  # arena / weight offsets
    assert main(["inspect", str(cnn_plan), "--explain", str(MATMUL), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {
        "layer", "name", "template", "origin", "fusion", "format", "precision", "tactic"}
    assert main(["inspect", str(cnn_plan), "--layer", str(CONV), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "conv_2"
    assert main(["inspect", str(cnn_plan), "--fp16"]) == 1
    assert "is a plan, built already: --fp16" in capsys.readouterr().err


def test_graph(cnn_plan, tmp_path, capsys):
    out = tmp_path / "layers.dot"
    assert main(["inspect", str(cnn_plan), "--graph", str(out)]) == 0
    dot = out.read_text()
    assert dot.startswith("digraph plan {")
    for i in range(LAYERS - 1):  # a chain: each layer feeds the next
        assert f"step{i} -> step{i + 1}" in dot
    assert "input0 -> step0" in dot and f"step{LAYERS - 1} -> output0" in dot
    assert "matmul_6\nmatmul  plain  fp32  cuda" in dot  # a layer's label
    svg = tmp_path / "layers.svg"
    code = main(["inspect", str(cnn_plan), "--graph", str(svg)])
    assert (tmp_path / "layers.dot").exists()
    if shutil.which("dot") is None:
        assert code == 1 and "needs graphviz's `dot` program" in capsys.readouterr().err
        assert not svg.exists()
    else:
        assert code == 0 and svg.read_text().lstrip().startswith("<")


def test_onnx_model_with_plan_options_is_built_first(tmp_path, capsys):
    onnx.save(small_cnn(), tmp_path / "cnn.onnx")
    assert main(["inspect", str(tmp_path / "cnn.onnx"), "--layer", "0"]) == 0
    assert capsys.readouterr().out.split()[0] == "conv_0"
    assert main(["inspect", str(tmp_path / "cnn.onnx"), "--explain", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "conv_0"


def test_inspect_plan_as_a_user_runs_it(cnn_plan):
    done = subprocess.run([sys.executable, "-m", "ember.compiler.cli", "inspect",
                           str(cnn_plan), "--explain", "fc"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"layer {MATMUL} matmul_6 (matmul), ONNX nodes: fc")
    assert "\n  beat: " in done.stdout


def test_explain_shows_measured_tactic_times(tmp_path, monkeypatch):
    """An autotuned kernel's candidates with the times the autotuner measured (select-tactics'
    `tactic_times_us`; the stand-in GPU of test_timing_cache times each candidate by its
    name), the chosen one the fastest; a warm build (from the timing cache, which keeps every
    candidate's outcome) explains it the same way (test_timing_cache checks the plans are the
    same but for the autotuner's counts)."""
    from tests.api.test_timing_cache import _config, _mlp, _stand_in

    _stand_in(tmp_path, monkeypatch)
    config = _config()
    config.set_timing_cache(config.create_timing_cache(b""), False)
    plan = plan_bytes(*build_model(_mlp().SerializeToString(), config))
    report = PlanReport(plan)
    index = next(i for i, s in enumerate(report.manifest["steps"]) if s["template"] == "matmul")
    e = report.explain(index)["tactic"]
    times = e["times_us"]
    assert len(times) >= 2 and all(isinstance(t, float) for t in times.values())
    fastest = min(times, key=times.get)
    assert e["chosen"] == fastest
    assert e["why"].endswith(f"does: {fastest} ({times[fastest]:.2f} us)")
    assert all(b.endswith(" us)") for b in e["beat"])
    warm = plan_bytes(*build_model(_mlp().SerializeToString(), config))
    assert PlanReport(warm).explain(index)["tactic"] == e


@pytest.mark.cuda
def test_explain_an_autotuned_tactic_on_the_gpu(tmp_path, monkeypatch):
    """On a GPU, an autotuned build's matmul says the autotuner chose its tactic, among the
    candidates select-tactics listed."""
    from ember.runtime.cuda import cuda_available, gpu_arch

    if not cuda_available():
        pytest.skip("no CUDA GPU visible")
    from onnx import TensorProto, helper, numpy_helper

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    import numpy as np

    w = numpy_helper.from_array(np.ones((768, 1024), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [512, 768])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    manifest, sections = build_model(model, BuilderConfig(target_arch=gpu_arch(), autotune=True))
    report = PlanReport(plan_bytes(manifest, sections))
    e = report.explain("mm")["tactic"]
    assert "the autotuner timed the candidates on the GPU" in e["why"]
    recorded = json.loads(sections["explain"])["steps"][report.find("mm")]["tactic"]
    assert recorded["by"] == "autotune" and recorded["chosen"] in recorded["candidates"]
