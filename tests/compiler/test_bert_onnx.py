"""benchmarks/bert_onnx.py, the torch-free BERT generator: its graph is BERT's (inputs, output, the
exported op pattern per layer, padding that masks), a small one built by ember for the CPU
matches onnxruntime, and the default pipeline gives one nn.attention per layer (fuse-attention)
and every layer norm as nn.layer_norm (imported from LayerNormalization at opset 17, recognized
by fuse-normalization in the written-out form of opset 13)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto

from ember.compiler.builder import build_model
from ember.compiler.cli import main
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"
SMALL = {"layers": 2, "hidden": 64, "heads": 4, "ffn": 128}
B, S, VOCAB = 2, 16, 1000


@pytest.fixture(scope="module")
def bert_onnx():
    """benchmarks/bert_onnx.py, imported by name as its neighbours are."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        import bert_onnx

        yield bert_onnx


@pytest.fixture(scope="module")
def small(bert_onnx) -> onnx.ModelProto:
    return bert_onnx.bert_base(B, S, **SMALL, vocab=VOCAB)


@pytest.fixture(scope="module", params=[17, 13], ids=["opset17", "opset13"])
def small_any_opset(bert_onnx, request) -> onnx.ModelProto:
    return bert_onnx.bert_base(B, S, **SMALL, vocab=VOCAB, opset=request.param)


def _feeds(keep: tuple[int, int] = (S, 9), seed: int = 1) -> dict[str, np.ndarray]:
    """Random ids; row r attends to its first keep[r] tokens (the rest is padding)."""
    ids = np.random.default_rng(seed).integers(0, VOCAB, (B, S)).astype(np.int64)
    mask = np.zeros((B, S), np.int64)
    for row, n in enumerate(keep):
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    (y,) = onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"]).run(None, feeds)
    return y


def _rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got.astype(np.float64) - want) / np.linalg.norm(want))


def test_graph_is_berts(small):
    graph = small.graph
    inputs = {i.name: (i.type.tensor_type.elem_type,
                       [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in graph.input}
    assert inputs == {"input_ids": (TensorProto.INT64, [B, S]),
                      "attention_mask": (TensorProto.INT64, [B, S])}
    (out,) = graph.output
    assert out.name == "y" and [d.dim_value for d in out.type.tensor_type.shape.dim] == [B, S, 64]
    assert small.opset_import[0].version == 17
    ops = Counter(n.op_type for n in graph.node)
    layers = SMALL["layers"]
    assert ops["LayerNormalization"] == 2 * layers + 1
    assert ops["Gather"] == 3  # word, token-type and position embeddings
    for op, per_layer in {"Softmax": 1, "Erf": 1, "MatMul": 8, "Div": 2, "Transpose": 5,
                          "Reshape": 4}.items():
        assert ops[op] == per_layer * layers, op
    # the extended mask once: Unsqueeze -> Cast -> Sub(1, .) -> Mul(., -10000)
    mask_ops = [n.op_type for n in graph.node if n.name.startswith("/bert/") and
                n.name.count("/") == 2 and n.op_type != "Constant"]
    assert mask_ops == ["Unsqueeze", "Cast", "Sub", "Mul"]
    for layer in range(layers):  # every node of a layer is named under it
        assert any(re.match(rf"/bert/encoder/layer\.{layer}/attention/self/Softmax$", n.name)
                   for n in graph.node)


def test_layer_norm_is_written_out_before_opset_17(bert_onnx):
    model = bert_onnx.bert_base(B, S, **SMALL, vocab=VOCAB, opset=13)
    assert model.opset_import[0].version == 13
    ops = Counter(n.op_type for n in model.graph.node)
    norms = 2 * SMALL["layers"] + 1
    assert ops["LayerNormalization"] == 0
    assert ops["ReduceMean"] == 2 * norms and ops["Sqrt"] == norms and ops["Pow"] == norms


def test_padding_is_masked(small):
    """A padded token changes nothing at the tokens attending (the mask is applied)."""
    feeds = _feeds(keep=(S, 9))
    other = {k: v.copy() for k, v in feeds.items()}
    other["input_ids"][1, 9:] = (other["input_ids"][1, 9:] + 7) % VOCAB
    a, b = _onnxruntime(small, feeds), _onnxruntime(small, other)
    np.testing.assert_allclose(a[1, :9], b[1, :9], rtol=1e-5, atol=1e-5)
    assert not np.allclose(a[1, 9:], b[1, 9:], atol=1e-2)  # the padded positions themselves do
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("keep", [(S, 9), (S, S)], ids=["padded", "full"])
def test_small_bert_on_the_cpu_matches_onnxruntime(small_any_opset, keep):
    model = small_any_opset
    feeds = _feeds(keep)
    manifest, sections = build_model(model)
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute(feeds)["y"]
    want = _onnxruntime(model, feeds)
    assert got.shape == want.shape == (B, S, 64)
    assert _rel_l2(got, want) < 1e-4
    templates = Counter(step["template"] for step in manifest["steps"])
    assert templates["attention"] == SMALL["layers"]
    assert templates["layer_norm"] == 2 * SMALL["layers"] + 1
    assert templates["softmax"] == 0 and templates["transpose"] == 0


def test_default_pipeline_fuses_attention_and_layer_norms(small_any_opset, tmp_path, capsys):
    path = tmp_path / "bert_small.onnx"
    onnx.save(small_any_opset, path)
    assert main(["opt", str(path), "--pipeline", "default"]) == 0
    ir = capsys.readouterr().out
    layers, heads, head_dim = SMALL["layers"], SMALL["heads"], SMALL["hidden"] // SMALL["heads"]
    attention = re.findall(r"nn\.attention .*", ir)
    assert len(attention) == layers
    for line in attention:
        # the chain's Div by sqrt(d) became the scale, the extended mask is an operand, and Q, K
        # and V are column ranges of the one QKV projection merge-parallel-matmuls made
        assert f"num_heads = {heads} : i64" in line and f"head_dim = {head_dim} : i64" in line
        assert "scale = 2.500000e-01 : f64" in line
        assert "k_offset = 64 : i64" in line and "v_offset = 128 : i64" in line
        assert re.search(r"nn\.attention (%\d+), \1, \1, %\d+ ", line), line
        assert ": (tensor<2x16x192xf32>, tensor<2x16x192xf32>, tensor<2x16x192xf32>, " \
               "tensor<2x1x1x16xf32>) -> tensor<2x16x64xf32>" in line, line
    assert ir.count("nn.layer_norm ") == 2 * layers + 1
    for gone in ("nn.softmax", "nn.transpose", "nn.reduce"):
        assert gone not in ir
    # Q, K and V projections merged into one matmul per layer: QKV, out-proj, FFN1, FFN2
    assert ir.count("nn.matmul ") == 4 * layers


def test_main_writes_the_model(bert_onnx, tmp_path, capsys):
    out = tmp_path / "b.onnx"
    assert bert_onnx.main([str(out), "--batch", "1", "--seq", "8", "--layers", "1",
                           "--hidden", "32", "--heads", "2", "--ffn", "64"]) == 0
    model = onnx.load(out)
    onnx.checker.check_model(model)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 8]
    assert "1 layers, hidden 32" in capsys.readouterr().out


def test_bad_configs_are_refused(bert_onnx):
    with pytest.raises(ValueError, match="does not split into 5 heads"):
        bert_onnx.bert_base(1, 8, layers=1, hidden=64, heads=5, ffn=64)
    with pytest.raises(ValueError, match="opset 10"):
        bert_onnx.bert_base(1, 8, opset=10)
    with pytest.raises(ValueError, match="seq 600"):
        bert_onnx.bert_base(1, 600, layers=1, hidden=32, heads=2, ffn=32)
