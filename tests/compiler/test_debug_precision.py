"""`ember debug precision --fp16`: a model whose middle matmul overflows FP16 (its outputs exceed
65504, and its weights do too) ahead of a softmax; the FP16 build gives NaN, and the command
must return the FP32 set {big, softmax} — which meets the tolerance when rebuilt — and nothing
smaller. Trials run on the CPU executor, whose FP16 layers store float16 as the GPU's do."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as h

from ember.compiler.builder import BuilderConfig, build_model, precision_config
from ember.compiler.debug import (
    output_errors,
    passed,
    reference_outputs,
    seeded_inputs,
)
from ember.compiler.debug_precision import ddmin, debug_precision, float_nodes
from ember.compiler.flag_groups import Tolerances
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def overflow_model(scale: float = 3e4) -> onnx.ModelProto:
    """fc0 -> relu0 -> big (weights ~`scale`; 3e4: outputs ~1e5) -> softmax -> fc."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in [
        ("w0", rng.standard_normal((16, 16)) * 0.3), ("w1", rng.standard_normal((16, 16)) * scale),
        ("w2", rng.standard_normal((16, 8)) * 0.3)]]
    nodes = [h.make_node("MatMul", ["x", "w0"], ["a0"], name="fc0"),
             h.make_node("Relu", ["a0"], ["r0"], name="relu0"),
             h.make_node("MatMul", ["r0", "w1"], ["a"], name="big"),
             h.make_node("Softmax", ["a"], ["b"], name="softmax", axis=-1),
             h.make_node("MatMul", ["b", "w2"], ["y"], name="fc")]
    graph = h.make_graph(nodes, "overflow",
                         [h.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.fixture(autouse=True)
def _fp16_overflow_is_expected():
    with warnings.catch_warnings():  # numpy's cast warning when weights overflow FP16
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _run(model: onnx.ModelProto, feeds: dict, **precision) -> dict:
    manifest, sections = build_model(model, precision_config(BuilderConfig(), **precision))
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    with np.errstate(all="ignore"):
        return engine.create_execution_context().execute(feeds)


def test_the_fp16_build_fails_and_the_set_found_meets_the_tolerance_when_rebuilt() -> None:
    model = overflow_model()
    feeds = seeded_inputs(model, 0)
    want, _ = reference_outputs(model, feeds)
    tolerance = Tolerances(1e-3, 1e-3)
    assert not passed(output_errors(_run(model, feeds, fp16=True), want, tolerance))
    result = debug_precision(model, precision="fp16", feeds=feeds, tolerance=tolerance)
    assert result.status == 0
    assert result.fp32 == ["big", "softmax"]
    # rebuilt from the answer, as the report tells the user to
    got = _run(model, feeds, fp16=True, layer_precisions="big:fp32,softmax:fp32",
               precision_constraints="obey")
    errors = output_errors(got, want, tolerance)
    assert passed(errors) and errors[0].max_abs > 0  # FP16 elsewhere: not bit-exact
    # 1-minimal: neither of the two alone is enough
    for alone in ("big", "softmax"):
        got = _run(model, feeds, fp16=True, layer_precisions=f"{alone}:fp32",
                   precision_constraints="obey")
        assert not passed(output_errors(got, want, tolerance))
    report = result.report()
    assert "--layer-precisions big:fp32,softmax:fp32 --precision-constraints obey" in report.text
    assert report.data["layer_precisions"] == "big:fp32,softmax:fp32"


def test_a_dynamic_batch_builds_at_the_shape_of_the_inputs() -> None:
    model = overflow_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    feeds = seeded_inputs(model, 1, {"x": (3, 16)})
    result = debug_precision(model, feeds=feeds)
    assert result.fp32 == ["big", "softmax"]
    assert all(e.size == 24 for t in result.trials for e in t.errors)


def test_a_build_that_already_passes_needs_no_fp32_layer() -> None:
    result = debug_precision(overflow_model(scale=1.0), tolerance=Tolerances(1e-2, 1e-2))
    assert result.fp32 == [] and result.status == 0 and len(result.trials) == 1
    assert "PASSED" in result.report().text


def test_a_tolerance_no_set_meets_fails() -> None:
    result = debug_precision(overflow_model(), tolerance=Tolerances(0.0, 0.0),
                             candidates=["fc0", "relu0"])
    assert result.fp32 is None and result.status == 1
    assert len(result.trials) == 2  # none, then all: the search does not start
    assert "FAILED" in result.report().text


def test_float_nodes_skip_integer_nodes() -> None:
    model = overflow_model()
    shape = h.make_node("Shape", ["y"], ["s"], name="shape")
    model.graph.node.append(shape)
    model.graph.output.append(h.make_tensor_value_info("s", TensorProto.INT64, [2]))
    model.graph.node.append(h.make_node("Relu", ["y"], ["z"]))  # unnamed
    model.graph.output.append(h.make_tensor_value_info("z", TensorProto.FLOAT, [4, 8]))
    names, unnamed = float_nodes(model)
    assert names == ["fc0", "relu0", "big", "softmax", "fc"] and unnamed == 1


@pytest.mark.parametrize("needed", [set(), {"c"}, {"a", "h"}, {"b", "c", "d"}])
def test_ddmin_returns_a_one_minimal_set(needed) -> None:
    items = list("abcdefgh")
    calls = []

    def test(subset):
        calls.append(subset)
        return needed <= set(subset)

    found = ddmin(items, test)
    assert set(found) == needed or (not needed and len(found) == 1)
    assert len(calls) <= 40


def _ember(*args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "ember.compiler.cli", "debug", "precision", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def test_cli_finds_the_set(tmp_path) -> None:
    onnx.save(overflow_model(), tmp_path / "m.onnx")
    done = _ember(str(tmp_path / "m.onnx"), "--fp16", "--atol", "1e-3", "--rtol", "1e-3",
                  "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["status"] == "found" and data["fp32"] == ["big", "softmax"]
    assert data["trials"][0]["fp32"] == [] and not data["trials"][0]["passed"]
    assert "Traceback" not in done.stderr
    text = _ember(str(tmp_path / "m.onnx"), "--fp16")
    assert text.returncode == 0 and "keep 2 layer(s) in FP32: big, softmax" in text.stdout


def test_cli_fails_with_status_1_when_no_set_meets_the_tolerance(tmp_path) -> None:
    onnx.save(overflow_model(), tmp_path / "m.onnx")
    done = _ember(str(tmp_path / "m.onnx"), "--fp16", "--atol", "0", "--rtol", "0",
                  "--nodes", "fc0")
    assert done.returncode == 1 and "FAILED" in done.stdout


def test_cli_bad_usage(tmp_path) -> None:
    onnx.save(overflow_model(), tmp_path / "m.onnx")
    done = _ember(str(tmp_path / "m.onnx"))  # neither --fp16 nor --bf16
    assert done.returncode == 2 and "--fp16" in done.stderr
    done = _ember(str(tmp_path / "m.onnx"), "--fp16", "--nodes", "nope")
    assert done.returncode == 2 and "nope" in done.stderr and done.stderr.count("\n") == 1
    done = _ember(str(tmp_path / "m.onnx"), "--fp16", "--atol", "-1")
    assert done.returncode == 2 and "--atol" in done.stderr
    done = _ember("--help")
    assert done.returncode == 0 and "ember debug precision model.onnx --fp16" in done.stdout
