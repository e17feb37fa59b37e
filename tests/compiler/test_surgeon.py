"""`ember surgeon`: extract, fold and sanitize write valid ONNX that onnxruntime runs with the
original's outputs (and ember too, for an extracted block); bad inputs are one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.compiler.cli import main
from ember.compiler.models import LIGHT_MODELS, light_model_case, light_model_path
from ember.compiler.surgeon import extract, fold, sanitize
from ember.errors import EmberError

# keeps the light models' big ConstantOfShape weights computed (they are all one value), so the
# folded files stay small; every smaller constant subgraph folds
THRESHOLD = 1 << 16


def _run(model: onnx.ModelProto | str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_fold_light_model_runs_in_onnxruntime_and_matches(name):
    path, inputs, _ = light_model_case(name)
    folded = fold(path, size_threshold=THRESHOLD)
    onnx.checker.check_model(folded.model)
    assert folded.nodes[1] < folded.nodes[0]  # something folded
    # every constant subgraph under the threshold is gone: what stays computed is big
    for node in folded.model.graph.node:
        if node.op_type == "ConstantOfShape":
            shape = numpy_helper.to_array(
                next(t for t in folded.model.graph.initializer if t.name == node.input[0]))
            assert np.prod(shape) * 4 > THRESHOLD, node.name
    for got, want in zip(_run(folded.model, inputs), _run(path, inputs), strict=True):
        np.testing.assert_array_equal(got, want)


def test_fold_everything_leaves_no_constant_subgraph(tmp_path):
    path, inputs, expected = light_model_case("squeezenet")
    folded = fold(path)
    assert "ConstantOfShape" not in {n.op_type for n in folded.model.graph.node}
    np.testing.assert_allclose(_run(folded.model, inputs)[0], expected, rtol=1e-5, atol=1e-6)


def test_extract_middle_block_of_resnet50_matches_in_onnxruntime_and_ember():
    import ember

    # r35: the output of res2's last block; r57: res3's second block (a projection shortcut
    # and an identity one)
    sub = extract(light_model_path("resnet50"), "r35", "r57").model
    assert [i.name for i in sub.graph.input] == ["r35"]
    assert [o.name for o in sub.graph.output] == ["r57"]
    dims = [[d.dim_value for d in vi.type.tensor_type.shape.dim]
            for vi in (*sub.graph.input, *sub.graph.output)]
    assert dims == [[1, 256, 56, 56], [1, 512, 28, 28]]  # shapes inferred
    ops = [n.op_type for n in sub.graph.node]
    assert ops.count("Conv") == 7 and ops.count("Sum") == 2
    x = np.random.default_rng(0).standard_normal((1, 256, 56, 56)).astype(np.float32)
    (want,) = _run(sub, {"r35": x})
    got = ember.compile(sub, device="cpu")({"r35": x})["r57"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _messy_model() -> onnx.ModelProto:
    """Unnamed nodes, out of order, with a dead branch and an unused initializer."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    w = numpy_helper.from_array(np.full((2, 3), 2.0, np.float32), "w")
    unused = numpy_helper.from_array(np.ones(7, np.float32), "unused")
    nodes = [helper.make_node("Relu", ["t"], ["y"]),  # reads t before it is made
             helper.make_node("Mul", ["x", "w"], ["t"]),
             helper.make_node("Neg", ["x"], ["dead"], name="dead_end")]
    graph = helper.make_graph(nodes, "messy", [x], [y], [w, unused])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_sanitize_sorts_drops_and_names():
    clean = sanitize(_messy_model())
    graph = clean.model.graph
    assert [n.op_type for n in graph.node] == ["Mul", "Relu"]  # toposorted, dead node gone
    assert [t.name for t in graph.initializer] == ["w"]
    assert all(n.name for n in graph.node) and len({n.name for n in graph.node}) == 2
    assert clean.nodes == (3, 2) and clean.initializers == (2, 1)
    x = np.arange(-3, 3, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(_run(clean.model, {"x": x})[0], np.maximum(2 * x, 0))


def test_extract_errors_name_what_is_wrong(tmp_path):
    path = light_model_path("resnet50")
    with pytest.raises(EmberError, match="no tensor named 'nope'"):
        extract(path, "r35,nope", "r57")
    # r47 adds r35 (the skip connection) to r45's branch: r41 alone does not cut it off from
    # the network's input
    with pytest.raises(EmberError, match="reads 'gpu_0/data_0', which --inputs do not cut off"):
        extract(path, "r41", "r47")
    with pytest.raises(EmberError, match="at least one tensor"):
        extract(path, " , ", "r57")


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    out = tmp_path / "out.onnx"
    assert main(["surgeon", "sanitize", str(tmp_path / "bad.onnx"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ember surgeon sanitize: error:") and err.count("\n") == 1
    assert main(["surgeon", "extract", str(light_model_path("squeezenet")), "--inputs", "x",
                 "--outputs", "y", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no tensor named 'x', 'y'" in err and err.count("\n") == 1
    assert main(["surgeon", "fold", str(tmp_path / "missing.onnx"), "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))  # nothing half-written


def test_cli_sanitize_writes_the_model(tmp_path, capsys):
    onnx.save(_messy_model(), tmp_path / "messy.onnx")
    assert main(["surgeon", "sanitize", str(tmp_path / "messy.onnx"), "-o",
                 str(tmp_path / "clean.onnx")]) == 0
    assert "3 -> 2 node(s), 2 -> 1 initializer(s)" in capsys.readouterr().out
    assert len(onnx.load(str(tmp_path / "clean.onnx")).graph.node) == 2


def test_surgeon_as_a_user_runs_it(tmp_path):
    """`ember surgeon extract`, `fold` and `sanitize` in a subprocess, chained."""
    src = str(light_model_path("squeezenet"))
    sub, folded, clean = (str(tmp_path / f) for f in ("sub.onnx", "folded.onnx", "clean.onnx"))
    model = onnx.load(src)
    relus = [n.output[0] for n in model.graph.node if n.op_type == "Relu"]
    commands = [["extract", src, "--inputs", relus[0], "--outputs", relus[3], "-o", sub],
                ["fold", sub, "-o", folded],
                ["sanitize", folded, "-o", clean]]
    for args in commands:
        done = subprocess.run([sys.executable, "-m", "ember.compiler.cli", "surgeon", *args],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(("extracted", "folded", "sanitized"))
    x = np.random.default_rng(1).standard_normal(
        [d.dim_value for d in onnx.load(sub).graph.input[0].type.tensor_type.shape.dim]
    ).astype(np.float32)
    want = _run(onnx.load(sub), {relus[0]: x})[0]
    np.testing.assert_allclose(_run(onnx.load(clean), {relus[0]: x})[0], want, rtol=1e-6)
    done = subprocess.run([sys.executable, "-m", "ember.compiler.cli", "surgeon", "fold",
                           "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "example:" in done.stdout
