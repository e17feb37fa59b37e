"""trtexec's wildcard in per-layer precisions and output types (`--layerPrecisions=*:fp16`,
`--layerOutputTypes=conv*:fp16`): a name holding one '*' names every node it matches, as
`ember build` and `ember bench` (and the Python API) read it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model, expand_layer_patterns
from ember.errors import EmberError
from ember.passes.precision_policy import EVERY_OUTPUT
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _model() -> onnx.ModelProto:
    """FP32 MatMul, Mul by a Constant, Shape + Reshape, Relu; a Cast to FP16, an FP16 MatMul
    and a Cast back: a wildcard has integer, constant, cast and FP16 nodes to leave alone."""
    rng = np.random.default_rng(5)
    graph = h.make_graph([
        h.make_node("Constant", [], ["two"], name="const_two",
                    value=numpy_helper.from_array(np.array(2.0, np.float32))),
        h.make_node("MatMul", ["x", "w1"], ["a"], name="mm32"),
        h.make_node("Mul", ["a", "two"], ["a2"], name="scale32"),
        h.make_node("Shape", ["a2"], ["shp"], name="shape_of"),
        h.make_node("Reshape", ["a2", "shp"], ["r0"], name="reshape32"),
        h.make_node("Relu", ["r0"], ["r"], name="relu32"),
        h.make_node("Cast", ["r"], ["rh"], name="to_half", to=T.FLOAT16),
        h.make_node("MatMul", ["rh", "w2"], ["b"], name="mm16"),
        h.make_node("Cast", ["b"], ["y"], name="to_float", to=T.FLOAT)], "wild",
        [h.make_tensor_value_info("x", T.FLOAT, [4, 16])],
        [h.make_tensor_value_info("y", T.FLOAT, [4, 8])],
        [numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w1"),
         numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float16), "w2")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


FP32_LAYERS = ["mm32", "scale32", "reshape32", "relu32"]


def _expand(precisions: str = "", output_types: str = "") -> BuilderConfig:
    config = BuilderConfig()
    if precisions:
        config.set_layer_precisions(precisions)
    if output_types:
        config.set_layer_output_types(output_types)
    return expand_layer_patterns(_model(), config)


def test_star_names_every_layer_a_precision_can_change():
    """'*' pins each FP32 node; integer (Shape), constant, cast and FP16 nodes are left as the
    model has them, as trtexec skips layers of non-activation types."""
    assert _expand("*:fp16").layer_precisions == {n: "fp16" for n in FP32_LAYERS}
    types = _expand(output_types="*:fp16").layer_output_types
    assert types == {(n, EVERY_OUTPUT): "fp16" for n in FP32_LAYERS}


@pytest.mark.parametrize("spec, want", [
    ("*:fp16,mm32:fp32", {"mm32": "fp32"}),  # a name beats a pattern, given before or after
    ("mm32:fp32,*:fp16", {"mm32": "fp32"}),
    ("*:fp16,*32:bf16", {"mm32": "bf16", "relu32": "bf16"}),  # patterns: the last one wins
    ("*32:bf16,*:fp16", {"mm32": "fp16", "relu32": "fp16"}),
    ("re*:fp32", {"reshape32": "fp32", "relu32": "fp32"}),  # a prefix
    ("m*32:fp32", {"mm32": "fp32"}),  # a wildcard inside
])
def test_patterns_read_left_to_right_and_names_win(spec, want):
    got = _expand(spec).layer_precisions
    assert {n: got.get(n) for n in want} == want
    assert "*" not in "".join(got)


def test_a_name_in_one_table_leaves_the_other_tables_patterns():
    """An exact precision does not stop an output-type pattern on that node (and the reverse),
    nor an exact output type for output 0 a pattern for another output; a pattern matching
    only a node named exactly is no error."""
    both = _expand("mm32:fp32", "*:fp16")
    assert both.layer_precisions == {"mm32": "fp32"}
    assert both.layer_output_types[("mm32", EVERY_OUTPUT)] == "fp16"
    reverse = _expand("*:bf16", "mm32:fp16")
    assert reverse.layer_precisions["mm32"] == "bf16"
    assert reverse.layer_output_types == {("mm32", EVERY_OUTPUT): "fp16"}
    assert _expand("mm32:fp32,mm*:fp16").layer_precisions == {"mm32": "fp32"}


def test_pattern_errors_are_named():
    with pytest.raises(EmberError, match=r"'\*x\*' holds 2 wildcards; trtexec's spelling allows "
                                         "one"):
        BuilderConfig().set_layer_precisions("*x*:fp16")
    with pytest.raises(EmberError, match=r"'conv\*' match no node of the model"):
        _expand("conv*:fp16")
    with pytest.raises(EmberError, match=r"'conv\*' match no node"):
        _expand(output_types="conv*:fp16")


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ember.compiler.cli", *argv],
                          capture_output=True, text=True, timeout=600)


def _precisions(layer_info: Path) -> dict[str, str]:
    """ONNX node -> the precision of the kernel it runs in (the engine's layer JSON)."""
    layers = json.loads(layer_info.read_text())["Layers"]
    return {node: layer["Precision"] for layer in layers
            for node in re.findall(r"\[ONNX Layer: ([^\]]+)\]", layer["Metadata"])}


def test_ember_bench_and_build_take_the_wildcard(tmp_path):
    """`ember bench --layerPrecisions=*:fp16 --precisionConstraints=obey` (trtexec's line) and
    `ember build --layer-precisions '*:fp16,mm32:fp32' --precision-constraints obey`, as a
    user runs them: every FP32 layer runs in FP16 but the one named; the FP16 MatMul stays
    FP16; OBEY holds (no layer the wildcard named is refused)."""
    model = tmp_path / "wild.onnx"
    onnx.save(_model(), model)
    info = tmp_path / "layers.json"
    done = _cli("bench", f"--onnx={model}", "--device=cpu", "--skipInference",
                "--layerPrecisions=*:fp16", "--precisionConstraints=obey",
                f"--exportLayerInfo={info}")
    assert done.returncode == 0, done.stderr
    got = _precisions(info)
    assert {got[n] for n in ("mm32", "relu32", "mm16")} == {"fp16"}
    plan = tmp_path / "wild.plan"
    done = _cli("build", str(model), "-o", str(plan), "--layer-precisions", "*:fp16,mm32:fp32",
                "--precision-constraints", "obey")
    assert done.returncode == 0, done.stderr
    done = _cli("inspect", str(plan), "--json")
    assert done.returncode == 0, done.stderr
    (tmp_path / "plan.json").write_text(done.stdout)
    got = _precisions(tmp_path / "plan.json")
    assert got["mm32"] in ("fp32", "tf32") and got["mm16"] == "fp16"
    for argv in (["bench", f"--onnx={model}", "--device=cpu", "--skipInference",
                  "--layerPrecisions=nosuch*:fp16"],
                 ["build", str(model), "-o", str(plan), "--layer-precisions", "nosuch*:fp16"]):
        done = _cli(*argv)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert "'nosuch*' match no node of the model" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def _build_warnings(precisions: str) -> list[str]:
    config = BuilderConfig()
    config.set_layer_precisions(precisions)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_model(_model(), config)
    return [str(w.message) for w in caught]


def test_a_wildcard_warns_only_when_it_matches_no_op():
    """reshape32 (a Reshape to its own shape) is folded away at build time. A wildcard that
    also names it but matches other ops warns about nothing; one matching no op (only the
    folded node) warns once, naming the pattern; a full name says the node was folded."""
    assert _build_warnings("*:fp16") == []
    assert _build_warnings("re*:fp16") == []  # relu32 is left
    assert _build_warnings("resh*:fp16") == [
        "assign-precision: per-layer precision pattern 'resh*' matches no op (the nodes it "
        "matches were folded away at build time)"]
    for spec in ("reshape32:fp16", "*:fp16,reshape32:fp32"):
        assert _build_warnings(spec) == [
            "assign-precision: per-layer precision for reshape32: node(s) of the model folded "
            "away at build time (computed as constants or removed as no-ops): no op is left to "
            "set a precision on"], spec


def test_passes_made_before_expansion_take_the_expanded_names():
    """`ember debug` makes its pass list with `pipeline_for` before the build expands the
    wildcards: the build gives that list's assign-precision the nodes they name."""
    from ember.compiler.builder import pipeline_for

    config = BuilderConfig()
    config.set_layer_precisions("*:fp16")
    stages: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model(_model(), config, passes=pipeline_for(config),
                    after_pass=lambda i, p, m: stages.setdefault(p.name, str(m)))
    text = stages["assign-precision"]
    assert re.search(r"nn\.matmul [^\n]*-> tensor<4x16xf16>", text), text


def test_a_wildcard_build_from_the_cli_warns_about_nothing(tmp_path):
    model = tmp_path / "wild.onnx"
    onnx.save(_model(), model)
    done = _cli("build", str(model), "-o", str(tmp_path / "w.plan"), "--layer-precisions",
                "*:fp16")
    assert done.returncode == 0, done.stderr
    assert "assign-precision" not in done.stderr and "match" not in done.stderr, done.stderr
    done = _cli("build", str(model), "-o", str(tmp_path / "w.plan"), "--layer-precisions",
                "resh*:fp16")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("pattern 'resh*' matches no op") == 1, done.stderr
    assert "reshape32" not in done.stderr, done.stderr


def _split_model() -> onnx.ModelProto:
    """x -> Split into two halves (node "sp") -> each Relu'd, two outputs."""
    graph = h.make_graph([
        h.make_node("Split", ["x", "sizes"], ["a", "b"], name="sp", axis=1),
        h.make_node("Relu", ["a"], ["ya"], name="ra"),
        h.make_node("Relu", ["b"], ["yb"], name="rb")], "split",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 8])],
        [h.make_tensor_value_info("ya", T.FLOAT, [2, 4]),
         h.make_tensor_value_info("yb", T.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.array([4, 4], np.int64), "sizes")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_one_output_type_applies_to_every_output_as_trtexec():
    """trtexec broadcasts a single --layerOutputTypes type to each of a layer's outputs: both of
    the split's results (two slices after import) are cast to FP16 after assign-precision."""
    config = BuilderConfig()
    config.set_layer_output_types("sp:fp16")
    assert config.layer_output_types == {("sp", EVERY_OUTPUT): "fp16"}
    stages: dict[str, str] = {}
    build_model(_split_model(), config,
                after_pass=lambda i, p, m: stages.setdefault(p.name, str(m)))
    text = stages["assign-precision"]
    slices = re.findall(r"(%\w+) = nn\.slice", text)
    assert len(slices) == 2
    for value in slices:
        assert re.search(rf"nn\.cast {value} \{{to = f16\}}", text), text


def test_several_output_types_go_one_per_output():
    """`sp:fp16+fp32`: the split's output #0 (made by the first of its two slices) is stored in
    FP16, output #1 (the second slice's only result) stays FP32: output i is the node's i-th
    output, whichever nn op makes it, with no warning about a missing output #1."""
    config = BuilderConfig(flags=BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_layer_output_types("sp:fp16+fp32")
    assert config.layer_output_types == {("sp", 0): "fp16", ("sp", 1): "fp32"}
    stages: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manifest, sections = build_model(
            _split_model(), config, after_pass=lambda i, p, m: stages.setdefault(p.name, str(m)))
    text = stages["assign-precision"]
    first = re.search(r"(%\w+) = nn\.slice [^\n]*starts = array<i64: 0, 0>", text)
    second = re.search(r"(%\w+) = nn\.slice [^\n]*starts = array<i64: 0, 4>", text)
    assert first and second, text
    assert re.search(rf"nn\.cast {first[1]} \{{to = f16\}}", text), text
    assert not re.search(rf"nn\.cast {second[1]} ", text), text
    assert len(re.findall(r"nn\.cast ", text)) == 2  # to f16 and back for the relu
    # the run's numbers: the first half rounded to FP16, the second exact
    x = (1 + np.arange(16, dtype=np.float32).reshape(2, 8) * 1e-4).astype(np.float32)
    assert not np.array_equal(x.astype(np.float16).astype(np.float32), x)
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine({"x": x})
    np.testing.assert_array_equal(got["ya"], x[:, :4].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(got["yb"], x[:, 4:])


def test_set_output_type_on_a_parsed_split_layer():
    """The network API's spelling: the parsed Split layer's `set_output_type(1, float16)`
    stores its second output (the second slice) in FP16 and leaves the first exact."""
    import ember

    builder = ember.Builder()
    network = builder.create_network()
    assert ember.OnnxParser(network).parse(_split_model())
    layer = next(network.get_layer(i) for i in range(network.num_layers)
                 if network.get_layer(i).name == "sp")
    layer.set_output_type(1, np.float16)
    config = builder.create_builder_config()
    config.target_arch = None  # the CPU executor's plan wherever this runs
    config.set_flag(BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        engine = ember.Runtime(device="cpu").deserialize_cuda_engine(
            builder.build_serialized_network(network, config))
    x = (1 + np.arange(16, dtype=np.float32).reshape(2, 8) * 1e-4).astype(np.float32)
    got = engine({"x": x})
    np.testing.assert_array_equal(got["ya"], x[:, :4])
    np.testing.assert_array_equal(got["yb"], x[:, 4:].astype(np.float16).astype(np.float32))


def test_output_types_of_a_split_from_the_cli(tmp_path):
    """`ember build --layer-output-types sp:fp16+fp32` as a user runs it: no warning (the
    second output exists), and the stage after assign-precision casts only the first slice."""
    model = tmp_path / "split.onnx"
    onnx.save(_split_model(), model)
    dump = tmp_path / "dump"
    done = _cli("build", str(model), "-o", str(tmp_path / "split.plan"), "--dump-dir", str(dump),
                "--layer-output-types", "sp:fp16+fp32")
    assert done.returncode == 0, done.stderr
    assert "output #1" not in done.stderr and "warn" not in done.stderr.lower(), done.stderr
    (stage,) = dump.glob("*assign-precision*.mlir")
    text = stage.read_text()
    slices = re.findall(r"(%\w+) = nn\.slice [^\n]*starts = array<i64: 0, (\d)>", text)
    assert sorted(start for _, start in slices) == ["0", "4"], text
    for value, start in slices:
        cast = re.search(rf"nn\.cast {value} \{{to = f16\}}", text)
        assert bool(cast) == (start == "0"), text


def test_a_plus_list_needs_a_type_per_output():
    """trtexec's rule: a '+' list gives one type per output, so its count must be the layer's
    output count (each layer a pattern matches); one type still goes to every output; a later
    item for a layer replaces an earlier one."""
    for spec, layer, outputs, count, given in [("sp:fp16+fp32+fp16", "sp", 2, 3, "it"),
                                               ("r*:fp16+fp32", "ra", 1, 2, "'r*'")]:
        config = BuilderConfig()
        config.set_layer_output_types(spec)
        with pytest.raises(EmberError, match=rf"layer '{layer}' has {outputs} output\(s\) but "
                                             rf"{count} types are given for {re.escape(given)}"):
            build_model(_split_model(), config)
    config = BuilderConfig()
    config.set_layer_output_types("s*:fp16+fp32")  # matches sp only, which has two outputs
    build_model(_split_model(), config)
    config = BuilderConfig()
    config.set_layer_output_types("sp:fp16+fp32+fp16,sp:fp16")
    assert (config.layer_output_types, config.layer_output_type_counts) == (
        {("sp", EVERY_OUTPUT): "fp16"}, {})
    build_model(_split_model(), config)


def test_a_plus_list_of_the_wrong_length_from_the_cli(tmp_path):
    """`ember build --layer-output-types` and `ember bench --layerOutputTypes` as a user runs
    them: a one-line error naming the layer and both counts."""
    model = tmp_path / "split.onnx"
    onnx.save(_split_model(), model)
    for argv in (["build", str(model), "-o", str(tmp_path / "p.plan"),
                  "--layer-output-types", "sp:fp16+fp32+fp16"],
                 ["bench", f"--onnx={model}", "--device=cpu", "--skipInference",
                  "--layerOutputTypes=sp:fp16+fp32+fp16"]):
        done = _cli(*argv)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert "layer 'sp' has 2 output(s) but 3 types are given" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_output_type_index_star_in_the_pass_spec():
    config = BuilderConfig()
    config.set_layer_output_types({("sp", "*"): "fp16"})
    assert config.layer_output_types == {("sp", EVERY_OUTPUT): "fp16"}
    assert config.precision_options()["output_types"] == "sp:*:fp16"
