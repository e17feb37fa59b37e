"""FP16 / BF16 / TF32 builds end to end on the CPU executor: flags and their defaults, the
network API's per-layer precisions, the CLI, `ember.compile` / `ember.backend` options, and
FP16 / BF16 storage (the CPU executor rounds as the GPU does)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import ember
from ember.compiler import builder as builder_module
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model, pipeline_for
from ember.compiler.cli import main
from ember.compiler.pipeline import parse_pipeline_text, pipeline_text, run_passes
from ember.errors import EmberError, PassError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.onnx_cases import single_node_model, small_cnn

X = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
BF16 = np.dtype(ml_dtypes.bfloat16)


def _engine(model, config: BuilderConfig):
    manifest, sections = build_model(model, config)
    return Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))


def _rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    got, want = got.astype(np.float64), want.astype(np.float64)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


# -- flags and defaults ----------------------------------------------------------------------------

def test_flag_values_are_tensorrts_bit_positions():
    assert [int(f) for f in (BuilderFlag.FP16, BuilderFlag.INT8, BuilderFlag.REFIT,
                             BuilderFlag.TF32, BuilderFlag.OBEY_PRECISION_CONSTRAINTS,
                             BuilderFlag.BF16)] == [0, 1, 4, 6, 9, 17]
    assert BuilderFlag.STRICT_TYPES is BuilderFlag.OBEY_PRECISION_CONSTRAINTS
    assert BuilderConfig(flags=1 << int(BuilderFlag.FP16)).get_flag(BuilderFlag.FP16)
    assert BuilderFlag.FP16 | BuilderFlag.TF32 == 1 << 0 | 1 << 6


def test_builder_config_allows_tf32_a_plain_config_is_strict():
    assert ember.Builder().create_builder_config().get_flag(BuilderFlag.TF32)
    assert not BuilderConfig().get_flag(BuilderFlag.TF32)
    assert "assign-precision" not in [p.name for p in pipeline_for(BuilderConfig())]


def test_pipeline_carries_the_precision_options():
    config = BuilderConfig(flags=BuilderFlag.FP16 | BuilderFlag.TF32
                           | BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_layer_precisions("conv:fp32")
    config.set_layer_output_types("fc:fp16")
    text = pipeline_text(pipeline_for(config))
    assert ('assign-precision{fp16=true bf16=false tf32=true constraints="obey" '
            'layer_precisions="conv:fp32" output_types="fc:*:fp16" names_checked=true '
            'patterns=""},convert-nn-to-kernel') in text
    assert pipeline_text(parse_pipeline_text(text)) == text
    unoptimized = [p.name for p in pipeline_for(BuilderConfig(flags=BuilderFlag.BF16,
                                                              optimize=False))]
    assert unoptimized[-3:] == ["assign-precision", "convert-nn-to-kernel", "plan-memory"]


def test_precision_constraints_from_flags():
    config = BuilderConfig()
    assert config.precision_constraints == "none"
    config.set_flag(BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    assert config.precision_constraints == "prefer"
    config.set_flag(BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    assert config.precision_constraints == "obey"  # OBEY wins
    assert BuilderConfig(flags=BuilderFlag.STRICT_TYPES).precision_constraints == "obey"
    with pytest.raises(EmberError, match="obey, prefer or none"):
        config.set_precision_constraints("always")


def test_int8_without_a_calibrator_or_qdq_nodes_is_refused():
    with pytest.raises(EmberError, match="INT8: the model has no Q/DQ nodes and the config no "
                                         "int8_calibrator"):
        build_model(small_cnn(), BuilderConfig(flags=BuilderFlag.INT8))


# -- FP16 / BF16 storage on the CPU executor -------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, BF16])
def test_storage_rounds_to_the_low_precision(dtype):
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    model = single_node_model("Relu", {"x": x})
    flag = BuilderFlag.FP16 if dtype == np.float16 else BuilderFlag.BF16
    got = _engine(model, BuilderConfig(flags=flag))({"x": x})["y"]
    assert got.dtype == np.float32  # the output keeps its declared type
    want = np.maximum(x.astype(dtype), 0).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, np.maximum(x, 0))  # rounding is visible


@pytest.mark.parametrize("dtype", [np.float16, BF16])
def test_matmul_rounds_inputs_and_output_and_accumulates_wide(dtype):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 64)).astype(np.float32)
    w = rng.standard_normal((64, 5)).astype(np.float32)
    model = single_node_model("MatMul", {"a": a}, initializers={"w": w})
    flag = BuilderFlag.FP16 if dtype == np.float16 else BuilderFlag.BF16
    got = _engine(model, BuilderConfig(flags=flag))({"a": a})["y"]
    acc = a.astype(dtype).astype(np.float64) @ w.astype(dtype).astype(np.float64)
    np.testing.assert_array_equal(got, acc.astype(dtype).astype(np.float32))


def test_fp16_reduction_accumulates_in_fp32_or_wider():
    x = np.ones((1, 4096), np.float32)  # an FP16 running sum sticks at 2048
    axes = np.array([1], np.int64)
    model = single_node_model("ReduceSum", {"x": x}, initializers={"axes": axes}, keepdims=0)
    got = _engine(model, BuilderConfig(flags=BuilderFlag.FP16))({"x": x})["y"]
    assert got.tolist() == [4096.0]


def test_fp16_and_bf16_plans_store_low_precision_buffers():
    for flag, name in ((BuilderFlag.FP16, "float16"), (BuilderFlag.BF16, "bfloat16")):
        manifest, _ = build_model(small_cnn(), BuilderConfig(flags=flag))
        conv = next(s for s in manifest["steps"] if s["template"] == "conv")
        assert conv["params"]["in_dtypes"] == [name] * 3
        assert [t["dtype"] for t in manifest["inputs"] + manifest["outputs"]] == ["float32"] * 2
        weights = [b for b in manifest["buffers"] if b["kind"] == "weight"]
        assert {b["dtype"] for b in weights} == {name}  # converted at build time


@pytest.mark.parametrize("flag", [BuilderFlag.FP16, BuilderFlag.BF16])
def test_small_cnn_in_low_precision_is_close_to_fp32(flag):
    want = _engine(small_cnn(), BuilderConfig())({"x": X})["y"]
    got = _engine(small_cnn(), BuilderConfig(flags=flag))({"x": X})["y"]
    assert 0 < _rel_l2(got, want) < 1e-2


def test_tf32_marks_the_step_and_the_cpu_computes_exactly():
    strict = build_model(small_cnn(), BuilderConfig())[0]
    manifest, sections = build_model(small_cnn(), BuilderConfig(flags=BuilderFlag.TF32))
    marked = [s["template"] for s in manifest["steps"] if s["params"].get("tf32")]
    assert sorted(marked) == ["conv", "matmul"]
    assert not any(s["params"].get("tf32") for s in strict["steps"])
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    np.testing.assert_array_equal(engine({"x": X})["y"],
                                  _engine(small_cnn(), BuilderConfig())({"x": X})["y"])
    rows = engine.inspector.get_engine_information().splitlines()
    assert " tf32 " in next(r for r in rows if r.strip().startswith("conv_"))


# -- per-layer precision: OBEY, the layer table ----------------------------------------------------

def _four_layer_model() -> onnx.ModelProto:
    """conv1 -> relu -> conv2 -> relu -> conv3 -> flatten -> fc: a few layers to pin."""
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
             for n, s in (("w1", (8, 3, 3, 3)), ("w2", (8, 8, 3, 3)), ("w3", (4, 8, 3, 3)),
                          ("wf", (256, 10)))]
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1] * 4),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1] * 4),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("Conv", ["r2", "w3"], ["c3"], name="conv3", pads=[1] * 4),
             h.make_node("Flatten", ["c3"], ["f"], name="flatten"),
             h.make_node("MatMul", ["f", "wf"], ["y"], name="fc")]
    graph = h.make_graph(nodes, "four", [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 10])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _precisions(engine) -> dict[str, str]:
    """ONNX node -> the precision of the kernel it runs in (the layer table's JSON); the casts
    assign-precision adds at the network's edges (origin `cast(input:x)`) are no nodes."""
    return {node: layer["precision"] for layer in engine.inspector.layers()
            for node in layer["origin"] if not node.startswith("cast(")}


def test_two_layers_pinned_fp32_under_obey_run_in_fp32():
    config = BuilderConfig(flags=BuilderFlag.FP16 | BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_layer_precisions({"conv2": np.float32, "fc": "fp32"})
    engine = _engine(_four_layer_model(), config)
    # the relus are not pinned: FP16, each fused with the cast to its neighbour's type into the
    # conv before it (relu2 into the FP32 conv2, whose precision its kernel shows)
    assert _precisions(engine) == {"conv1": "fp16", "relu1": "fp16", "conv2": "fp32",
                                   "relu2": "fp32", "conv3": "fp16", "fc": "fp32"}
    want = _engine(_four_layer_model(), BuilderConfig())({"x": X})["y"]
    got = engine({"x": X})["y"]
    assert 0 < _rel_l2(got, want) < 1e-2
    table = engine.inspector.get_engine_information()
    conv2 = next(r for r in table.splitlines() if r.rstrip().endswith(" conv2, relu2"))
    assert " fp32 " in conv2


def test_casts_around_pinned_layers_fuse_into_their_neighbours(monkeypatch):
    """FP16 convs around an FP32-pinned conv and before an FP32-pinned fc: each cast between
    the precisions becomes the epilogue of the conv before it (the kernel stores the cast
    type), so 3 of 8 kernels go; the results are the unfused plan's, bit for bit, and within
    FP16 error of onnxruntime's FP32 ones. Only the network input's cast stays a kernel, named
    after its tensor in the layer table."""
    import onnxruntime

    config = BuilderConfig(flags=BuilderFlag.FP16 | BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_layer_precisions("conv2:fp32,fc:fp32")
    manifest, sections = build_model(_four_layer_model(), config)
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    assert [s["template"] for s in manifest["steps"]] == [
        "elementwise", "conv", "conv", "conv", "matmul"]
    assert [s["origin"] for s in manifest["steps"]] == [
        ["cast(input:x)"], ["conv1", "relu1"], ["conv2", "relu2"], ["conv3"], ["fc"]]
    stores = [(s["params"]["out_dtypes"], s["params"].get("epilogue", {}).get("out_dtype"))
              for s in manifest["steps"][1:4]]
    assert stores == [(["float16"], "float32"), (["float32"], "float16"),
                      (["float16"], "float32")]
    table = engine.inspector.get_engine_information()
    assert table.splitlines()[1].rstrip().endswith(" cast(input:x)")
    assert "kernels: 5" in table
    got = engine({"x": X})["y"]

    pipeline_for = builder_module.pipeline_for
    monkeypatch.setattr(builder_module, "pipeline_for", lambda c: [
        p for p in pipeline_for(c) if p.name != "fuse-epilogues"])
    unfused = _engine(_four_layer_model(), config)
    assert unfused.inspector.get_engine_information().rstrip().endswith("kernels: 8")
    np.testing.assert_array_equal(got, unfused({"x": X})["y"])

    session = onnxruntime.InferenceSession(_four_layer_model().SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": X})
    assert 0 < _rel_l2(got, want) < 1e-2


def test_network_api_layer_precision_and_output_type():
    builder = ember.Builder()
    network = builder.create_network()
    x = network.add_input("x", np.float32, (2, 3, 8, 8))
    w = np.random.default_rng(4).standard_normal((4, 3, 3, 3)).astype(np.float32)
    conv = network.add_convolution(x, 4, (3, 3), w, padding=(1, 1))
    act = network.add_activation(conv.get_output(0), ember.ActivationType.RELU)
    network.mark_output(act.get_output(0))
    conv.precision = ember.float16
    assert conv.precision == np.float16 and conv.precision_is_set
    assert act.precision == np.float32 and not act.precision_is_set
    act.set_output_type(0, ember.bfloat16)
    assert act.get_output_type(0) == BF16 and act.output_type_is_set(0)
    with pytest.raises(EmberError, match="no #1"):
        act.set_output_type(1, np.float16)
    with pytest.raises(EmberError, match="not one of fp32, fp16, bf16"):
        conv.precision = np.int8
    config = builder.create_builder_config()
    config.target_arch = None  # the CPU executor's plan wherever this runs
    config.clear_flag(BuilderFlag.TF32)
    config.set_flag(BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    engine = ember.Runtime(device="cpu").deserialize_cuda_engine(
        builder.build_serialized_network(network, config))
    assert _precisions(engine)[conv.name] == "fp16"
    got = engine({"x": X})[act.get_output(0).name]
    # conv in FP16, relu in FP32, its result stored in BF16 and returned as FP32
    conv16 = _engine(_conv_model(w), BuilderConfig(flags=BuilderFlag.FP16))({"x": X})["y"]
    np.testing.assert_array_equal(got, np.maximum(conv16, 0).astype(BF16).astype(np.float32))


def _conv_model(w: np.ndarray) -> onnx.ModelProto:
    node = h.make_node("Conv", ["x", "w"], ["y"], name="c", pads=[1] * 4)
    graph = h.make_graph([node], "c", [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 4, 8, 8])],
                         [numpy_helper.from_array(w, "w")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_parsed_network_layers_take_precisions():
    builder = ember.Builder()
    network = builder.create_network()
    assert ember.OnnxParser(network).parse(small_cnn())
    names = [network.get_layer(i).name for i in range(network.num_layers)]
    assert names == [n.name for n in small_cnn().graph.node]
    network.get_layer(names.index("fc")).precision = "fp32"
    config = builder.create_builder_config()
    config.target_arch = None  # the CPU executor's plan wherever this runs
    config.set_flag(BuilderFlag.FP16 | BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    engine = ember.Runtime(device="cpu").deserialize_cuda_engine(
        builder.build_serialized_network(network, config))
    precisions = _precisions(engine)
    assert precisions["fc"] in ("fp32", "tf32") and precisions["conv"] == "fp16"


def test_unknown_layer_names_and_impossible_pins_are_errors():
    config = BuilderConfig(flags=BuilderFlag.FP16)
    config.set_layer_precisions("nosuch:fp32")
    with pytest.raises(EmberError, match="'nosuch'.*no node"):
        build_model(small_cnn(), config)
    with pytest.raises(EmberError, match="not one of fp32, fp16, bf16"):
        BuilderConfig().set_layer_output_types("softmax:int8")
    config = BuilderConfig(flags=BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_layer_output_types("softmax:fp16+fp16")  # softmax has one output
    with pytest.raises(EmberError, match=r"layer 'softmax' has 1 output\(s\) but 2 types"):
        build_model(small_cnn(), config)
    config = BuilderConfig(flags=BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_layer_output_types({("softmax", 1): "fp16"})  # an index: the pass refuses it
    with pytest.raises(PassError, match="node 'softmax'.*no output #1"):
        build_model(small_cnn(), config)


# -- ember.compile, ember.backend ------------------------------------------------------------------

def test_compile_fp16():
    engine = ember.compile(small_cnn(), fp16=True, device="cpu")
    assert set(_precisions(engine).values()) == {"fp16"}
    want = ember.compile(small_cnn(), device="cpu")({"x": X})["y"]
    assert 0 < _rel_l2(engine({"x": X})["y"], want) < 1e-2
    strict = ember.compile(small_cnn(), device="cpu")
    assert "tf32" not in _precisions(strict).values()  # strict FP32 by default
    assert "tf32" in _precisions(ember.compile(small_cnn(), tf32=True, device="cpu")).values()


def test_compile_and_backend_refuse_unknown_options():
    with pytest.raises(EmberError, match="unknown option.*colour"):
        ember.compile(small_cnn(), device="cpu", colour="red")
    with pytest.raises(EmberError, match="unknown option.*fp8"):
        ember.backend.prepare(small_cnn(), "CPU", fp8=True)
    rep = ember.backend.prepare(small_cnn(), "CPU", bf16=True)
    (got,) = rep.run([X])
    want = ember.backend.prepare(small_cnn(), "CPU").run([X])[0]
    assert 0 < _rel_l2(got, want) < 1e-2
    with pytest.raises(EmberError, match="unknown option.*verbose"):
        rep.run([X], verbose=True)


# -- the CLI ---------------------------------------------------------------------------------------

def _table(capsys) -> dict[str, str]:
    """ONNX node -> precision, from the layer table `ember build --verbose` prints."""
    rows = [r.split() for r in capsys.readouterr().out.splitlines()
            if r.startswith("  ") and "_" in r.split()[0]]
    return {node.rstrip(","): r[5] for r in rows for node in r[7:] if node != "-"}


def test_cli_precision_flags(tmp_path, capsys):
    path, plan = tmp_path / "four.onnx", str(tmp_path / "four.plan")
    onnx.save(_four_layer_model(), path)
    assert main(["build", str(path), "-o", plan, "--verbose"]) == 0
    assert _table(capsys)["conv1"] == "tf32"  # trtexec's default: TF32 allowed
    assert main(["build", str(path), "-o", plan, "--verbose", "--noTF32"]) == 0
    assert _table(capsys)["conv1"] == "fp32"
    assert main(["build", str(path), "-o", plan, "--verbose", "--fp16", "--noTF32",
                 "--layer-precisions", "conv2:fp32,fc:fp32",
                 "--precision-constraints", "obey"]) == 0
    table = _table(capsys)
    assert (table["conv1"], table["conv2"], table["fc"]) == ("fp16", "fp32", "fp32")
    assert main(["build", str(path), "-o", plan, "--verbose", "--bf16", "--layerPrecisions",
                 "fc:fp16", "--precisionConstraints", "prefer"]) == 0
    table = _table(capsys)
    assert (table["conv1"], table["fc"]) == ("bf16", "fp16")
    assert main(["build", str(path), "-o", plan, "--layer-precisions", "nosuch:fp16"]) == 1
    assert "no node" in capsys.readouterr().err


def test_cli_run_is_strict_and_refuses_flags_for_a_plan(tmp_path, capsys):
    path, plan = tmp_path / "cnn.onnx", str(tmp_path / "cnn.plan")
    onnx.save(small_cnn(), path)
    assert main(["run", str(path), "--fp16"]) == 0
    assert "ran on cpu" in capsys.readouterr().out
    assert main(["build", str(path), "-o", plan]) == 0
    capsys.readouterr()
    assert main(["run", plan, "--fp16"]) == 1
    assert "is a plan, built already" in capsys.readouterr().err
    assert main(["run", plan, "--tf32"]) == 1
    assert main(["run", plan]) == 0


def test_bad_precision_spec_is_an_error():
    with pytest.raises(PassError, match="NODE:PRECISION"):
        BuilderConfig().set_layer_precisions("conv")


def test_layer_table_shows_tactic_and_tf32_in_a_cuda_plan():
    from ember.runtime.inspector import EngineInspector

    config = BuilderConfig(target_arch="sm_90", flags=BuilderFlag.TF32, autotune=False)
    manifest, _ = build_model(small_cnn(), config)
    inspector = EngineInspector(manifest)
    index = next(i for i, s in enumerate(manifest["steps"]) if s["template"] == "matmul")
    info = inspector.layer(index)
    tactic = manifest["steps"][index]["params"]["tactic"]
    assert info["tactic"] == tactic and info["tf32"] and info["precision"] == "tf32"
    row = inspector.get_layer_information(index)
    assert f"[tile={'x'.join(map(str, tactic['tile']))},splits={tactic['splits']}]" in row


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("option", ["fp16", "bf16", "tf32"])
def test_compile_on_the_gpu_matches_the_cpu(option):
    engine = ember.compile(small_cnn(), device="cuda", **{option: True})
    assert engine.device == "cuda"
    precisions = set(_precisions(engine).values())
    assert option in precisions, precisions
    want = ember.compile(small_cnn(), device="cpu")({"x": X})["y"]
    assert _rel_l2(engine({"x": X})["y"], want) < 1e-2


def test_bf16_build_dumps_stages_that_replay(tmp_path):
    """`--dump-dir` of a BF16 build: the assign-precision stage holds the BF16 weights and
    replays the rest of the pipeline to the last stage."""
    from ember.compiler.opt import load_module
    from ember.dialects.weights import print_module, weights_of

    path, dump = tmp_path / "cnn.onnx", tmp_path / "stages"
    onnx.save(small_cnn(), path)
    assert main(["build", str(path), "-o", str(tmp_path / "cnn.plan"), "--bf16",
                 "--dump-dir", str(dump)]) == 0
    stages = sorted(p for p in dump.iterdir() if p.suffix == ".mlir")
    k = next(i for i, p in enumerate(stages) if p.name.endswith("-assign-precision.mlir"))
    module = load_module(stages[k])
    w = numpy_helper.to_array(small_cnn().graph.initializer[0])
    np.testing.assert_array_equal(weights_of(module)["conv.w.bf16"], w.astype(BF16))
    passes = parse_pipeline_text((dump / "pipeline.txt").read_text().strip())
    run_passes(module, passes[k:])
    assert print_module(module, debuginfo=True) == stages[-1].read_text()
