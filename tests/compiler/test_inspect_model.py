"""`ember inspect MODEL.onnx`: I/O, opsets, op histogram, parameters, and every node ember cannot
compile yet, all at once (no stop at the first)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.compiler.cli import main
from ember.compiler.inspect_model import inspect_model
from ember.compiler.models import light_model_path
from ember.errors import EmberError


def _out_type(name: str) -> int:
    return TensorProto.INT32 if name == "lp" else TensorProto.FLOAT


def _unsupported_model() -> onnx.ModelProto:
    """Three ops without a lowering (MelWeightMatrix, TfIdfVectorizer, Multinomial), one the
    legalizer refuses
    (Resize tf_crop_and_resize without a roi), one node after an unsupported one, and ops that
    compile (MatMul, Softmax)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    img = helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 2, 4, 4])
    outs = [helper.make_tensor_value_info(n, _out_type(n), None) for n in ("y", "z", "lp", "r")]
    inits = [numpy_helper.from_array(np.ones((4, 4), np.float32), "w"),
             *(numpy_helper.from_array(np.array(v, t), n) for n, v, t in (
                 ("bins", 8, np.int64), ("dft", 16, np.int64), ("rate", 8000, np.int64),
                 ("low", 0.0, np.float32), ("high", 4000.0, np.float32))),
             numpy_helper.from_array(np.array([2, 3, 3, 5], np.int64), "tokens"),
             numpy_helper.from_array(np.ones(4, np.int64), "lens"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
             helper.make_node("MelWeightMatrix", ["bins", "dft", "rate", "low", "high"], ["h"],
                              name="mel"),
             helper.make_node("Relu", ["h"], ["y"], name="after_mel"),
             helper.make_node("TfIdfVectorizer", ["tokens"], ["z"], name="tfidf", mode="TF",
                              min_gram_length=1, max_gram_length=1, max_skip_count=0,
                              ngram_counts=[0], ngram_indexes=[0, 1], pool_int64s=[2, 3]),
             helper.make_node("Softmax", ["m"], ["s"], name="sm", axis=1),
             helper.make_node("Multinomial", ["s"], ["lp"], name="multinomial"),
             helper.make_node("Resize", ["img", "", "scales"], ["r"], name="resize",
                              mode="linear",
                              coordinate_transformation_mode="tf_crop_and_resize")]
    graph = helper.make_graph(nodes, "g", [x, img], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


NO_LOWERING = ("MelWeightMatrix", "TfIdfVectorizer", "Multinomial")


def test_the_ops_have_no_lowering_yet():
    from ember.passes.convert_onnx_to_nn.registry import LEGALIZERS

    legalized = [op for op in NO_LOWERING if op in LEGALIZERS]
    assert not legalized, f"{legalized} are legalized now: pick other ops for these tests"


def test_lists_every_unsupported_node_at_once():
    report = inspect_model(_unsupported_model())
    found = {(p.node, p.op_type): p.reason for p in report.unsupported}
    assert set(found) == {("mel", "MelWeightMatrix"), ("tfidf", "TfIdfVectorizer"),
                          ("multinomial", "Multinomial"), ("resize", "Resize")}
    assert found[("tfidf", "TfIdfVectorizer")] == "no lowering to nn for TfIdfVectorizer"
    assert "roi" in found[("resize", "Resize")]  # the legalizer's own reason
    assert report.unchecked == ["after_mel"]  # reads MelWeightMatrix's result: not checked
    text = report.text()
    assert ("ember cannot compile 4 node(s) yet (MelWeightMatrix, Multinomial, Resize, "
            "TfIdfVectorizer):") in text
    assert "  - node 'resize' (Resize): " in text


def test_importer_problems_are_listed_together():
    model = _unsupported_model()
    model.graph.node[1].domain = "com.example"  # an op of an unknown domain
    model.graph.node[2].attribute.append(helper.make_attribute("bogus", 1))
    report = inspect_model(model)
    assert [p.node for p in report.unsupported] == ["mel", "after_mel"]
    first, second = (p.reason for p in report.unsupported)
    assert first.startswith("operator domain 'com.example' is not supported")
    assert second == "attribute 'bogus' is not defined for Relu"


def test_report_fields():
    report = inspect_model(_unsupported_model())
    assert report.inputs == [{"name": "x", "dtype": "float32", "shape": ["N", 4]},
                             {"name": "img", "dtype": "float32", "shape": [1, 2, 4, 4]}]
    assert report.opsets == {"": 18}
    assert report.ops == {"MatMul": 1, "MelWeightMatrix": 1, "Relu": 1, "TfIdfVectorizer": 1,
                          "Softmax": 1, "Multinomial": 1, "Resize": 1}
    assert (report.parameters, report.parameter_bytes, report.initializers) == (
        16 + 5 + 4 + 4 + 4, 16 * 4 + 3 * 8 + 2 * 4 + 4 * 8 + 4 * 8 + 4 * 4, 9)
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["supported"] is False and len(doc["unsupported"]) == 4


def test_light_resnet50_is_supported_and_counted():
    path = light_model_path("resnet50")
    report = inspect_model(path)
    model = onnx.load(str(path))
    arrays = [numpy_helper.to_array(t) for t in model.graph.initializer]
    assert report.unsupported == [] and report.nodes == len(model.graph.node) == 415
    assert report.parameters == sum(a.size for a in arrays)
    assert report.parameter_bytes == sum(a.nbytes for a in arrays)
    assert report.ops["Conv"] == 53 and sum(report.ops.values()) == 415
    assert report.inputs == [{"name": "gpu_0/data_0", "dtype": "float32",
                              "shape": [1, 3, 224, 224]}]  # initializers are not inputs
    assert "every node imports and legalizes (415 node(s))" in report.text()


def test_cli_model_report(tmp_path, capsys):
    onnx.save(_unsupported_model(), tmp_path / "m.onnx")
    assert main(["inspect", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"model {tmp_path / 'm.onnx'}: IR version")
    assert "nodes: 7 (7 op types)" in out and "- node 'multinomial' (Multinomial)" in out
    assert main(["inspect", str(tmp_path / "m.onnx"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["ops"]["TfIdfVectorizer"] == 1
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01garbage")
    assert main(["inspect", str(tmp_path / "junk.onnx")]) == 1
    assert "error" in capsys.readouterr().err


def test_cli_inspect_model_as_a_user_runs_it(tmp_path):
    onnx.save(_unsupported_model(), tmp_path / "m.onnx")
    done = subprocess.run([sys.executable, "-m", "ember.compiler.cli", "inspect",
                           str(tmp_path / "m.onnx"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert sorted(p["op_type"] for p in doc["unsupported"]) == [
        "MelWeightMatrix", "Multinomial", "Resize", "TfIdfVectorizer"]


def test_not_a_model(tmp_path):
    with pytest.raises(EmberError, match="no such file"):
        inspect_model(tmp_path / "missing.onnx")
