"""choose-formats: the DP over the format graph (against brute force on chains and trees, and
on small DAGs with fan-out), the pass's decisions and attributes on IR, assign-layouts applying
them, the builder's wiring (cost model without a GPU, timing when the build autotunes), the
`--verbose` report, and FP16 plans that compute the same on the CPU executor."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import (
    BuilderConfig,
    BuilderFlag,
    build_model,
    detect_arch,
    pipeline_for,
)
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import pipeline_text, run_passes
from ember.dialects.attributes import attribute_value
from ember.dialects.kernel import ElementwiseOp, LaunchOp
from ember.errors import EmberError, PassError
from ember.passes.choose_formats import ChooseFormats, format_report
from ember.passes.format_choice import FormatGraph, solve
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

FORMATS = ("NCHW", "NHWC", "NC4HW4")


# -- the DP on synthetic graphs --------------------------------------------------------------------

def _chain(middle_nhwc: float, reformat: float = 3.0) -> FormatGraph:
    """NCHW-only op -> a conv (NCHW 10, NHWC `middle_nhwc`) -> NCHW-only op."""
    graph = FormatGraph()
    a = graph.add_node("a", {"NCHW": 1.0})
    b = graph.add_node("conv", {"NCHW": 10.0, "NHWC": middle_nhwc})
    c = graph.add_node("c", {"NCHW": 1.0})
    graph.add_value("x", a, [b], lambda s, d: reformat)
    graph.add_value("y", b, [c], lambda s, d: reformat)
    return graph


def test_one_nhwc_conv_is_not_worth_its_two_reformats():
    graph = _chain(middle_nhwc=5.0)  # saves 5, costs 2 x 3
    assert solve(graph) == ["NCHW", "NCHW", "NCHW"]
    assert graph.total_cost(["NCHW"] * 3) == 12.0


def test_one_nhwc_conv_that_pays_for_its_two_reformats():
    graph = _chain(middle_nhwc=3.0)  # saves 7, costs 2 x 3
    choice = solve(graph)
    assert choice == ["NCHW", "NHWC", "NCHW"]
    assert graph.total_cost(choice) == 11.0
    assert graph.reformats(choice) == [("x", "NCHW", "NHWC"), ("y", "NHWC", "NCHW")]


def test_a_run_of_nhwc_kernels_pays_for_the_reformats_at_its_ends():
    """Convs each saving 2, a flexible op after each: two save as much as the pair of
    reformats (4) costs, a tie that NCHW keeps; three make NHWC pay."""
    for convs, want in ((2, "NCHW"), (3, "NHWC")):
        graph = FormatGraph()
        prev = graph.add_node("in", {"NCHW": 0.0})
        nodes = []
        for i in range(convs):
            conv = graph.add_node(f"conv{i}", {"NCHW": 5.0, "NHWC": 3.0})
            graph.add_value(f"v{i}", prev, [conv], lambda s, d: 2.0)
            relu = graph.add_node(f"relu{i}", {"NCHW": 1.0, "NHWC": 1.0})
            graph.add_value(f"c{i}", conv, [relu], lambda s, d: 2.0)
            prev = relu
            nodes += [conv, relu]
        out = graph.add_node("out", {"NCHW": 0.0})
        graph.add_value("y", prev, [out], lambda s, d: 2.0)
        choice = solve(graph)
        assert {choice[n] for n in nodes[::2]} == {want}  # the convs
        assert graph.total_cost(choice) == _brute_force(graph)[0] == \
            min(6 * convs, 4 * convs + 4)


def _brute_force(graph: FormatGraph) -> tuple[float, list[str]]:
    best = None
    for combo in itertools.product(*(list(n.costs) for n in graph.nodes)):
        cost = graph.total_cost(combo)
        if best is None or cost < best[0] - 1e-12:
            best = (cost, list(combo))
    return best


def _random_graph(rng: np.random.Generator, n: int, fan_out: bool) -> FormatGraph:
    """n nodes; each after the first reads 1-2 earlier values. Without `fan_out` every value
    has one consumer (an in-tree: chains and joins of disjoint branches)."""
    graph = FormatGraph()
    sizes = rng.uniform(0.5, 3.0, n)
    consumers: dict[int, list[int]] = {}
    free = []
    for i in range(n):
        formats = [f for f in FORMATS if f == "NCHW" or rng.random() < 0.7]
        graph.add_node(f"n{i}", {f: float(rng.uniform(0, 10)) for f in formats})
        if i:
            pool = list(range(i)) if fan_out else free
            picks = rng.choice(pool, size=min(len(pool), int(rng.integers(1, 3))), replace=False)
            for p in picks:
                consumers.setdefault(int(p), []).append(i)
                if not fan_out:
                    free.remove(int(p))
        free.append(i)
    for p, cs in sorted(consumers.items()):
        graph.add_value(f"v{p}", p, cs, lambda s, d, k=sizes[p]: 0.0 if s == d else k)
    return graph


@pytest.mark.parametrize("seed", range(40))
def test_the_dp_is_exact_on_chains_and_trees(seed):
    rng = np.random.default_rng(seed)
    graph = _random_graph(rng, int(rng.integers(2, 8)), fan_out=False)
    assert graph.total_cost(solve(graph)) == pytest.approx(_brute_force(graph)[0], abs=1e-9)


@pytest.mark.parametrize("seed", range(40))
def test_the_dp_with_fan_out_beats_every_single_format(seed):
    """With fan-out and joins the DP is approximate, but never worse than running everything
    in one format (where every node can), and near the optimum on these small graphs."""
    rng = np.random.default_rng(seed)
    graph = _random_graph(rng, int(rng.integers(3, 8)), fan_out=True)
    cost = graph.total_cost(solve(graph))
    best, _ = _brute_force(graph)
    assert best - 1e-9 <= cost <= best * 1.25 + 1e-9
    for f in FORMATS:
        if all(f in node.costs for node in graph.nodes):
            assert cost <= graph.total_cost([f] * len(graph.nodes)) + 1e-9


def test_a_residual_join_settles_the_shared_input_once():
    """r feeds a conv (much cheaper in NHWC) and the add after it: the conv and the add both
    run NHWC and share r's one reformat (reformatting x before the relu costs more)."""
    graph = FormatGraph()
    src = graph.add_node("input", {"NCHW": 0.0})
    relu = graph.add_node("relu", {"NCHW": 1.0, "NHWC": 1.0})
    conv = graph.add_node("conv", {"NCHW": 20.0, "NHWC": 5.0})
    add = graph.add_node("add", {"NCHW": 1.0, "NHWC": 1.0})
    out = graph.add_node("output", {"NCHW": 0.0})
    graph.add_value("x", src, [relu], lambda s, d: 3.0)
    graph.add_value("r", relu, [conv, add], lambda s, d: 2.0)
    graph.add_value("c", conv, [add], lambda s, d: 3.0)
    graph.add_value("y", add, [out], lambda s, d: 2.0)
    choice = solve(graph)
    assert choice == ["NCHW", "NCHW", "NHWC", "NHWC", "NCHW"]
    assert graph.reformats(choice) == [("r", "NCHW", "NHWC"), ("y", "NHWC", "NCHW")]
    assert graph.total_cost(choice) == _brute_force(graph)[0] == 1 + 2 + 5 + 1 + 2


def test_consumers_in_one_format_share_one_reformat():
    graph = FormatGraph()
    src = graph.add_node("input", {"NCHW": 0.0})
    a = graph.add_node("a", {"NHWC": 1.0})
    b = graph.add_node("b", {"NHWC": 1.0})
    graph.add_value("x", src, [a, b], lambda s, d: 4.0)
    assert graph.total_cost(solve(graph)) == 6.0
    with pytest.raises(ValueError, match="topological"):
        graph.add_value("back", b, [a], lambda s, d: 1.0)


# -- the pass on IR --------------------------------------------------------------------------------

def _half_model(batch: int, channels: int, size: int, residual: bool = True,
                seed: int = 0) -> onnx.ModelProto:
    """Conv 3x3 -> Relu -> Conv 3x3 [-> Add x] -> Relu, float16 throughout (weights too)."""
    rng = np.random.default_rng(seed)
    f16 = TensorProto.FLOAT16
    shape = [batch, channels, size, size]
    inits = [numpy_helper.from_array(
        (rng.standard_normal((channels, channels, 3, 3)) / (3 * channels ** 0.5))
        .astype(np.float16), f"w{i}") for i in (1, 2)]
    conv = {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", **conv),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", **conv)]
    last = "c2"
    if residual:
        nodes.append(helper.make_node("Add", ["c2", "x"], ["s"], name="add"))
        last = "s"
    nodes.append(helper.make_node("Relu", [last], ["y"], name="relu2"))
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", f16, shape)],
                              [helper.make_tensor_value_info("y", f16, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _config(**kwargs) -> BuilderConfig:
    return BuilderConfig(flags=BuilderFlag.FP16, target_arch="sm_90", autotune=False, **kwargs)


def _through(model: onnx.ModelProto, config: BuilderConfig, last: str):
    """The module after the config's pipeline up to and including pass `last`."""
    module = import_onnx(model)
    run_passes(module, pipeline_for(config), stop_after=last)
    return module


def _kernels(module) -> list:
    return [op for op in module.walk() if isinstance(op, LaunchOp | ElementwiseOp)]


def _convs(manifest: dict) -> list[dict]:
    return [s for s in manifest["steps"] if s["template"] == "conv"]


def _reformats(manifest: dict) -> list[str]:
    return [s["params"]["reformat"] for s in manifest["steps"] if "reformat" in s["params"]]


def test_gpu_builds_choose_formats_by_the_cost_model_cpu_builds_do_not():
    gpu = pipeline_for(_config())
    names = [p.name for p in gpu]
    assert names.index("choose-formats") == names.index("assign-layouts") - 1
    choose = gpu[names.index("choose-formats")]
    assert (choose.source, choose.arch, choose.io_formats, choose.packed) == \
        ("model", "sm_90", "NCHW", False)
    assert 'choose-formats{source="model" arch="sm_90" io_formats="NCHW" packed=false}' in \
        pipeline_text(gpu)
    assert "choose-formats" not in [p.name for p in pipeline_for(BuilderConfig())]
    assert "choose-formats" not in [p.name for p in pipeline_for(_config(assign_layouts=False))]


def test_the_config_can_ask_for_a_format_choice():
    assert "choose-formats" not in [p.name for p in
                                    pipeline_for(_config(format_choice="preferred"))]
    choose = next(p for p in pipeline_for(_config(format_choice="model"))
                  if p.name == "choose-formats")
    assert choose.source == "model"
    with pytest.raises(EmberError, match="format_choice='measured' times kernels on a sm_90"):
        pipeline_for(_config(format_choice="measured"))
    with pytest.raises(EmberError, match="format_choice must be one of measured, model, "):
        pipeline_for(_config(format_choice="fastest"))


def test_gpu_builds_that_autotune_measure(monkeypatch):
    from ember.compiler import builder

    monkeypatch.setattr(builder, "_should_autotune", lambda config: True)
    choose = next(p for p in pipeline_for(_config()) if p.name == "choose-formats")
    assert choose.source == "measured"


def test_big_convs_run_nhwc_and_record_their_costs():
    module = _through(_half_model(8, 64, 56), _config(), "choose-formats")
    kernels = _kernels(module)
    assert [op.attributes["format"].data for op in kernels] == ["NHWC"] * len(kernels)
    for op in kernels:
        costs = op.attributes.get("format_costs")
        if isinstance(op, LaunchOp) and op.template.data == "conv":
            costs = attribute_value(costs)
            assert set(costs) == {"NCHW", "NHWC"} and costs["NHWC"] < costs["NCHW"] / 2
        else:  # memory-bound: the same in both formats, nothing to print
            assert costs is None
    fn = next(op for op in module.walk() if op.name == "func.func")
    summary = attribute_value(fn.attributes["formats"])
    assert summary["source"] == "model" and summary["args"] == ["NCHW"]
    assert summary["reformats"] == 2 and summary["reformats_us"] > 0  # in and out


def _single_conv(batch: int, channels: int, size: int) -> onnx.ModelProto:
    model = _half_model(batch, channels, size, residual=False)
    del model.graph.node[1:]
    model.graph.node[0].output[0] = "y"
    del model.graph.initializer[1]
    return model


def _policy_layouts(model: onnx.ModelProto) -> list:
    """The conv layouts assign-layouts' own policy gives (choose-formats left out)."""
    module = import_onnx(model)
    run_passes(module, [p for p in pipeline_for(_config()) if p.name != "choose-formats"])
    return [attribute_value(op.params).get("layout") for op in _kernels(module)
            if isinstance(op, LaunchOp) and op.template.data == "conv"]


def test_one_big_conv_is_worth_its_two_reformats():
    """FP16 8x64x56x56 3x3: NHWC (16-byte chunks, wgmma) saves more than reformatting its
    input and output costs. The policy (NHWC regions with more NHWC convs than border
    reformats) keeps it NCHW."""
    model = _single_conv(8, 64, 56)
    manifest, _ = build_model(model, _config())
    assert [s["params"].get("layout") for s in _convs(manifest)] == ["NHWC"]
    assert _reformats(manifest) == ["NCHW->NHWC", "NHWC->NCHW"]
    assert _policy_layouts(model) == [None]


def test_nhwc_network_io_where_allowed_saves_the_reformats():
    model = _single_conv(8, 64, 56)
    config = _config()
    config.set_allowed_io_formats("NCHW", "NHWC")
    manifest, sections = build_model(model, config)
    assert [s["params"].get("layout") for s in _convs(manifest)] == ["NHWC"]
    assert _reformats(manifest) == []
    assert [t["format"] for t in (*manifest["inputs"], *manifest["outputs"])] == ["NHWC"] * 2
    x = np.random.default_rng(1).standard_normal((8, 64, 56, 56)).astype(np.float16)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0].astype(np.float64)
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine({"x": x.transpose(0, 2, 3, 1)})["y"].transpose(0, 3, 1, 2).astype(np.float64)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-2


def test_one_tiny_conv_is_not_worth_its_two_reformats():
    manifest, _ = build_model(_single_conv(1, 8, 4), _config())
    assert [s["params"].get("layout") for s in _convs(manifest)] == [None]
    assert _reformats(manifest) == []


def test_assign_layouts_applies_the_chosen_formats():
    module = _through(_half_model(8, 64, 56), _config(), "assign-layouts")
    types = {str(op.results[0].type) for op in _kernels(module)
             if not (isinstance(op, LaunchOp) and "reformat" in attribute_value(op.params))}
    assert types == {"tensor<8x64x56x56xf16, #nn.layout<NHWC>>"}


def test_fp16_plans_compute_the_same_on_the_cpu_executor():
    model = _half_model(8, 32, 28, seed=3)
    x = np.random.default_rng(4).standard_normal((8, 32, 28, 28)).astype(np.float16)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0].astype(np.float64)
    manifest, sections = build_model(model, _config())
    assert [s["params"].get("layout") for s in _convs(manifest)] == ["NHWC", "NHWC"]
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine({"x": x})["y"].astype(np.float64)
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-2


def test_measured_costs_override_the_model(monkeypatch):
    """A timer (standing in for the GPU) that finds NHWC convs slow: the convs stay NCHW,
    though the model prefers NHWC. The timer is asked for each conv in both formats, in the
    physical terms assign-layouts would give it, and for the reformats between them."""
    from ember.codegen import autotune

    asked: list[dict] = []

    def fake_time_kernels(steps, arch):
        asked.extend(steps)
        assert arch == "sm_90"
        return [1.0 if s["params"].get("layout") == "NHWC" else 0.01 if s["template"] == "conv"
                else 1e-4 for s in steps]

    monkeypatch.setattr(autotune, "time_kernels", fake_time_kernels)
    module = import_onnx(_half_model(8, 64, 56))
    passes = pipeline_for(_config())
    at = [p.name for p in passes].index("choose-formats")
    passes[at] = ChooseFormats(source="measured", arch="sm_90")
    run_passes(module, passes[:at + 1])
    convs = [op for op in _kernels(module) if isinstance(op, LaunchOp)]
    assert [op.attributes["format"].data for op in convs] == ["NCHW", "NCHW"]
    assert attribute_value(convs[0].attributes["format_costs"]) == {"NCHW": 10.0,
                                                                   "NHWC": 1000.0}
    nhwc = [s["params"] for s in asked if s["params"].get("layout") == "NHWC"]
    assert len(nhwc) == 2 and nhwc[0]["in_shapes"] == [[8, 56, 56, 64], [64, 3, 3, 64]]
    assert nhwc[0]["out_shapes"] == [[8, 56, 56, 64]]
    assert {s["params"]["reformat"] for s in asked if s["template"] == "transpose"} == \
        {"NCHW->NHWC", "NHWC->NCHW"}
    summary = attribute_value(next(op for op in module.walk()
                                   if op.name == "func.func").attributes["formats"])
    assert summary["source"] == "measured" and summary["reformats"] == 0


@pytest.mark.parametrize("name,flags", [("resnet50", 0),
                                        ("squeezenet", 0),
                                        ("resnet50", BuilderFlag.FP16)])
def test_light_model_plans_are_the_policys(name, flags, monkeypatch):
    """sm_90 light models where the cost model agrees with the policy: strict FP32 (FP32 convs
    are a little faster in NCHW) and ResNet-50 in FP16 (every conv NHWC, the input's channel
    pad folded into its one reformat): every step runs the same kernel with choose-formats or
    without it."""
    from ember.compiler import builder
    from ember.compiler.models import light_model_path

    config = BuilderConfig(flags=flags, target_arch="sm_90", autotune=False)
    path = str(light_model_path(name))
    chosen, _ = build_model(path, config)
    full = builder.pipeline_for
    monkeypatch.setattr(builder, "pipeline_for", lambda c: [p for p in full(c)
                                                            if p.name != "choose-formats"])
    policy, _ = build_model(path, config)
    kernels = [[(s["template"], (s.get("cuda") or {}).get("kernel")) for s in m["steps"]]
               for m in (chosen, policy)]
    assert kernels[0] == kernels[1]


def test_bad_options_are_errors():
    module = import_onnx(_half_model(1, 8, 4))
    with pytest.raises(PassError, match="source must be one of model, measured"):
        run_passes(module, [ChooseFormats(source="fast")])
    with pytest.raises(PassError, match="unknown I/O format 'CHW32'"):
        run_passes(module, [ChooseFormats(io_formats="NCHW,CHW32")])
    with pytest.raises(EmberError, match="needs the build's arch"):
        run_passes(module, [ChooseFormats(source="measured")])


def test_verbose_build_reports_the_formats(tmp_path):
    from ember.compiler.commands import build

    onnx.save(_half_model(8, 64, 56), tmp_path / "m.onnx")
    lines: list[str] = []

    class Out:
        def write(self, text: str) -> None:
            lines.extend(text.splitlines())

    build(tmp_path / "m.onnx", tmp_path / "m.plan", arch="sm_90", verbose=True, out=Out(),
          autotune=False, fp16=True)
    report = [ln for ln in lines if ln.startswith("formats (cost model): ")]
    assert len(report) == 1 and "NHWC 5" in report[0] and "2 reformat(s)" in report[0]
    convs = [ln for ln in lines if ln.strip().startswith("conv (conv")]
    assert len(convs) == 2 and all(" NHWC " in ln and "(NCHW " in ln for ln in convs)


def test_format_report_is_empty_without_choose_formats():
    module = _through(_half_model(1, 8, 4), BuilderConfig(), "assign-layouts")
    assert format_report(module) == ""


def test_time_kernels_keeps_each_steps_fastest_tactic_and_caches(tmp_path, monkeypatch):
    """`autotune.time_kernels` with the GPU stood in for (the launches "take" a time set by
    the tactic's tile): every candidate tactic of a conv is compiled and timed, the fastest
    counts, a kernel without tactics is timed once, and a rebuild reads the timing cache."""
    from types import SimpleNamespace

    from ember.codegen import autotune
    from ember.codegen.format_costs import format_params, reformat_step
    from ember.runtime import cuda

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    module = _through(_single_conv(8, 64, 56), _config(), "convert-nn-to-kernel")
    conv = next(op for op in _kernels(module) if isinstance(op, LaunchOp))
    steps = [{"name": f"conv_{f}", "template": "conv", "params": format_params(conv, f)}
             for f in ("NCHW", "NHWC")]
    steps.append(dict(reformat_step(conv.inputs[0], "NCHW", "NHWC"), name="reformat"))
    compiled: list[str] = []
    launches: dict[str, float] = {}

    def compile_stub(sources, arch):
        compiled.extend(sources)
        return {name: SimpleNamespace(cubin=b"", ptx="") for name in sources}

    def time_stub(spec, function, bufs, cuda_, stream, bound=None):
        ms = 1.0 + spec.shared_bytes / 1e5 + spec.grid[0] * spec.grid[1] / 1e4
        launches[function] = ms
        return ms

    loaded = SimpleNamespace(function=lambda name: name, unload=lambda: None)
    monkeypatch.setattr(autotune, "_compile", compile_stub)
    monkeypatch.setattr(autotune, "_time", time_stub)
    monkeypatch.setattr(autotune, "_buffers", lambda step, cuda_, rng, stream: [])
    monkeypatch.setattr(autotune, "_scratch", lambda spec, cuda_, stream: [])
    monkeypatch.setattr(cuda, "default_device", lambda: SimpleNamespace(name="H200"))
    monkeypatch.setattr(cuda, "Stream", lambda device: SimpleNamespace(synchronize=lambda: None))
    monkeypatch.setattr(cuda, "Module", SimpleNamespace(load=lambda *a, **k: loaded))
    times = autotune.time_kernels(steps, "sm_90")
    tactics = [autotune._tactics(s, "sm_90") for s in steps]
    assert len(tactics[0]) > 1 and len(tactics[1]) > 1 and tactics[2] == []
    assert len(compiled) == len(launches) == len(tactics[0]) + len(tactics[1]) + 1
    for step, time, options in zip(steps, times, tactics, strict=True):
        names = [autotune.emit_step(dict(step, params={**step["params"], "tactic": t}))[0]
                 for t in options] or [autotune.emit_step(step)[0]]
        assert time == min(launches[n] for n in names)
    compiled.clear()
    assert autotune.time_kernels(steps, "sm_90") == times and compiled == []


# -- on the GPU (the lead runs these on the H200) --------------------------------------------------

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")


@needs_gpu
@pytest.mark.cuda
def test_time_kernels_times_a_conv_in_each_format_and_caches(tmp_path, monkeypatch):
    from ember.codegen import autotune
    from ember.codegen.format_costs import format_params, reformat_step

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    arch = detect_arch()
    module = _through(_single_conv(8, 64, 56),
                      BuilderConfig(flags=BuilderFlag.FP16, target_arch=arch, autotune=False),
                      "convert-nn-to-kernel")
    conv = next(op for op in _kernels(module) if isinstance(op, LaunchOp))
    steps = [{"name": f"conv_{f}", "template": "conv", "params": format_params(conv, f)}
             for f in ("NCHW", "NHWC")]
    steps.append(dict(reformat_step(conv.inputs[0], "NCHW", "NHWC"), name="reformat"))
    times = autotune.time_kernels(steps, arch)
    assert all(isinstance(t, float) and t > 0 for t in times), times
    from ember.codegen.timing_cache import read

    cached = [value for *_, value in read(tmp_path / "timing.cache").items()]
    assert sorted(v["ms"] for v in cached) == sorted(times)

    def no_compiling(*args, **kwargs):
        raise AssertionError("the timing cache should have answered")

    monkeypatch.setattr(autotune, "_compile", no_compiling)
    assert autotune.time_kernels(steps, arch) == times


@needs_gpu
@pytest.mark.cuda
def test_a_measured_build_picks_formats_and_runs_correctly(tmp_path, monkeypatch):
    """An FP16 residual block built with autotuning: choose-formats times each conv in NCHW
    and NHWC (and the reformats), and the plan computes on the GPU what the CPU executor
    computes from the same plan, within FP16 rounding of the float64 reference."""
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    model = _half_model(8, 64, 56, seed=5)
    config = BuilderConfig(flags=BuilderFlag.FP16, target_arch=detect_arch(), autotune=True)
    seen = []

    def after(index, p, module):
        if p.name == "choose-formats":
            fn = next(op for op in module.walk() if op.name == "func.func")
            seen.append(attribute_value(fn.attributes["formats"]))
            seen.extend((op.attributes["format"].data,
                         attribute_value(op.attributes["format_costs"]))
                        for op in _kernels(module)
                        if isinstance(op, LaunchOp) and op.template.data == "conv")

    manifest, sections = build_model(model, config, after_pass=after)
    summary, *convs = seen
    assert summary["source"] == "measured" and len(convs) == 2
    assert all(set(c) == {"NCHW", "NHWC"} and min(c.values()) > 0 for _, c in convs)
    assert manifest["autotune"]["steps"] >= 1
    # the plan runs each conv in the format chosen for it
    assert [s["params"].get("layout", "NCHW") for s in _convs(manifest)] == [f for f, _ in convs]
    x = np.random.default_rng(6).standard_normal((8, 64, 56, 56)).astype(np.float16)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0].astype(np.float64)
    blob = plan_bytes(manifest, sections)
    gpu = Runtime(device="cuda").deserialize_cuda_engine(blob)({"x": x})["y"].astype(np.float64)
    cpu = Runtime(device="cpu").deserialize_cuda_engine(blob)({"x": x})["y"].astype(np.float64)
    assert np.isfinite(gpu).all()
    assert np.linalg.norm(gpu - cpu) / np.linalg.norm(cpu) < 1e-2
    assert np.linalg.norm(gpu - want) / np.linalg.norm(want) < 1e-2


def test_an_int8_conv_is_only_offered_nhwc(tmp_path):
    """The INT8 tensor-core conv reads NHWC only: choose-formats offers an int8 conv nothing
    else, so a measured choice cannot put one in NCHW (a GPU build ran the projection block's
    last conv on the host that way)."""
    from ember.passes.choose_formats import candidates
    from tests.passes.test_fold_qdq import _projection, _quantized

    _, qdq, _ = _quantized(tmp_path, _projection, symmetric=True)
    module = _through(onnx.load(qdq), BuilderConfig(target_arch="sm_90", autotune=False),
                      "choose-formats")
    convs = [op for op in _kernels(module)
             if isinstance(op, LaunchOp) and op.template.data == "conv"]
    assert len(convs) == 3
    for op in convs:
        assert attribute_value(op.params)["in_dtypes"][:2] == ["int8", "int8"]
        assert candidates(op, packed=False) == ["NHWC"]
        assert op.attributes["format"].data == "NHWC"
