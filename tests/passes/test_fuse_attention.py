"""fuse-attention and merge-parallel-matmuls: a BERT layer is 7 kernels with attention as one
(bert_tiny.onnx against onnxruntime on the CPU executor), the older PyTorch export form fuses too
(against onnx.reference), near-misses are left alone, and the attention kernel compiles with NVRTC
(and matches numpy on the GPU, where there is one)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.cpu_kernels.attention import attention
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

BERT = Path(__file__).parents[1] / "models" / "bert_tiny.onnx"
F = TensorProto.FLOAT
B, S, H, D = 2, 7, 2, 8
E = H * D
rng = np.random.default_rng(0)


def _w(*shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def _run(model, feeds: dict[str, np.ndarray]) -> tuple[dict, np.ndarray]:
    manifest, sections = build_model(model)
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine.create_execution_context().execute(feeds)["y"]


def _templates(manifest: dict) -> list[str]:
    return [step["template"] for step in manifest["steps"]]


# -- bert_tiny.onnx (the sdpa export: Mul on Q and on K, Where mask, IsNaN guard) ----------------

def _bert_feeds(mask_rows: dict[int, int]) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(1).integers(0, 100, (2, 16)).astype(np.int64)
    mask = np.ones((2, 16), np.int64)
    for row, keep in mask_rows.items():
        mask[row, keep:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("mask_rows", [{0: 11, 1: 4}, {0: 16, 1: 0}],
                         ids=["partial", "one_row_fully_masked"])
def test_bert_tiny_matches_onnxruntime(mask_rows):
    feeds = _bert_feeds(mask_rows)
    manifest, got = _run(str(BERT), feeds)
    (expected,) = onnxruntime.InferenceSession(str(BERT)).run(None, feeds)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert _templates(manifest).count("attention") == 2


def test_bert_tiny_layer_kernel_count():
    manifest, _ = build_model(str(BERT))
    per_layer: dict[str, list[str]] = {}
    for step in manifest["steps"]:
        layers = {m for o in step.get("origin", []) for m in re.findall(r"layer\.\d+", o)}
        assert len(layers) <= 1, step
        for layer in layers:
            per_layer.setdefault(layer, []).append(step["template"])
    assert sorted(per_layer) == ["layer.0", "layer.1"]
    for layer, templates in per_layer.items():
        assert len(templates) <= 8, (layer, templates)
        assert templates.count("attention") == 1
        assert "softmax" not in templates and "transpose" not in templates
        # Q, K and V projections are one matmul: QKV, out-proj, FFN1, FFN2
        assert templates.count("matmul") == 4
    # layer.1 has no share of the mask (computed once, with layer.0's Where)
    assert len(per_layer["layer.1"]) == 7


# -- the older export form, built by hand --------------------------------------------------------

def _attention_model(variant: str = "div_add") -> onnx.ModelProto:
    """Q/K/V projections, head split, scores, (variant's) scale and mask, softmax, PV, merge.
    Variants: div_add (BERT's older export), mul_qk_where_guard (sdpa's), and near-misses."""
    wq, wk, wv = _w(E, E), _w(E, E), _w(E, E)
    bq, bk, bv = _w(E), _w(E), _w(E)
    inits = {"wq": wq, "wk": wk, "wv": wv, "bq": bq, "bk": bk, "bv": bv,
             "heads": np.array([B, S, H, D], np.int64), "merged": np.array([B, S, E], np.int64),
             "sqrt_d": np.array(np.sqrt(D), np.float32), "one": np.array(1.0, np.float32),
             "big": np.array(-10000.0, np.float32), "quarter": np.array(D ** -0.25, np.float32),
             "zero": np.array(0.0, np.float32), "ninf": np.array(-np.inf, np.float32)}
    n = []

    def node(op, ins, out, **attrs):
        n.append(helper.make_node(op, ins, [out], name=out, **attrs))

    for x in "qkv":
        node("MatMul", ["x", f"w{x}"], f"{x}_mm")
        node("Add", [f"{x}_mm", f"b{x}"], f"{x}_proj")
        node("Reshape", [f"{x}_proj", "heads"], f"{x}_4d")
        node("Transpose", [f"{x}_4d"], f"{x}_h", perm=[0, 2, 1, 3])
    v_heads = "v_h"
    if variant == "scaled_v":
        node("Mul", ["v_h", "sqrt_d"], "v_hh")
        v_heads = "v_hh"
    if variant.startswith("mul_qk"):
        node("Transpose", ["k_4d"], "k_t", perm=[0, 2, 3, 1])
        node("Mul", ["q_h", "quarter"], "q_s")
        node("Mul", ["k_t", "quarter"], "k_s")
        node("MatMul", ["q_s", "k_s"], "scores")
        scaled = "scores"
    else:
        node("Transpose", ["k_h"], "k_t", perm=[0, 1, 3, 2])
        node("MatMul", ["q_h", "k_t"], "scores")
        node("Div", ["scores", "sqrt_d" if variant != "runtime_scale" else "scale"], "scaled")
        scaled = "scaled"
    if variant.startswith("mul_qk"):
        node("Cast", ["mask"], "mask_b", to=TensorProto.BOOL)
        node("Where", ["mask_b", scaled, "ninf"], "masked")
    else:
        node("Cast", ["mask"], "mask_f", to=F)
        node("Sub", ["one", "mask_f"], "inv")
        node("Mul", ["inv", "big"], "bias")
        node("Add", [scaled, "bias"], "masked")
    node("Softmax", ["masked"], "probs", axis=-1 if variant != "softmax_axis2" else 2)
    probs = "probs"
    if variant == "mul_qk_where_guard":
        node("IsNaN", ["probs"], "nan")
        node("Where", ["nan", "zero", "probs"], "safe")
        probs = "safe"
    node("MatMul", [probs, v_heads], "ctx")
    node("Transpose", ["ctx"], "ctx_t", perm=[0, 2, 1, 3])
    node("Reshape", ["ctx_t", "merged"], "y")
    outputs = [helper.make_tensor_value_info("y", F, None)]
    if variant == "scores_also_output":
        outputs.append(helper.make_tensor_value_info(scaled, F, None))
    inputs = [helper.make_tensor_value_info("x", F, [B, S, E]),
              helper.make_tensor_value_info("mask", TensorProto.INT64, [B, 1, 1, S])]
    if variant == "runtime_scale":
        inputs.append(helper.make_tensor_value_info("scale", F, []))
    graph = helper.make_graph(n, "attn", inputs, outputs,
                              [numpy_helper.from_array(a, k) for k, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _attention_feeds(variant: str = "div_add") -> dict[str, np.ndarray]:
    mask = np.ones((B, 1, 1, S), np.int64)
    mask[0, ..., 5:] = 0
    mask[1, ..., 2] = 0
    feeds = {"x": _w(B, S, E), "mask": mask}
    if variant == "runtime_scale":
        feeds["scale"] = np.array(np.sqrt(D), np.float32)
    return feeds


@pytest.mark.parametrize("variant", ["div_add", "mul_qk_where_guard"])
def test_export_forms_fuse_and_match_reference(variant):
    model, feeds = _attention_model(variant), _attention_feeds(variant)
    manifest, got = _run(model, feeds)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    templates = _templates(manifest)
    assert templates.count("attention") == 1 and templates.count("matmul") == 1, templates
    assert not {"softmax", "transpose", "slice"} & set(templates), templates
    step = manifest["steps"][templates.index("attention")]
    assert (step["params"]["num_heads"], step["params"]["head_dim"]) == (H, D)
    assert step["params"]["scale"] == pytest.approx(D ** -0.5)
    assert (step["params"].get("k_offset"), step["params"].get("v_offset")) == (E, 2 * E)


@pytest.mark.parametrize("variant", ["softmax_axis2", "scaled_v", "runtime_scale",
                                     "scores_also_output"])
def test_near_misses_do_not_fuse(variant):
    model, feeds = _attention_model(variant), _attention_feeds(variant)
    manifest, _ = build_model(model)
    templates = _templates(manifest)
    assert "attention" not in templates and "softmax" in templates, templates
    engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(*build_model(model)))
    outputs = engine.create_execution_context().execute(feeds)
    expected = ReferenceEvaluator(model).run(None, feeds)
    for name, want in zip([o.name for o in model.graph.output], expected, strict=True):
        np.testing.assert_allclose(outputs[name], want, rtol=1e-4, atol=1e-5)


def test_merged_matmuls_without_attention_are_sliced():
    """Three projections of one input with no attention after them: one matmul, three slices."""
    w = {f"w{i}": _w(E, 3 + i) for i in range(3)}
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["m0"]),
             helper.make_node("Add", ["m0", "b0"], ["a0"]),
             helper.make_node("MatMul", ["x", "w1"], ["m1"]),
             helper.make_node("MatMul", ["x", "w2"], ["m2"]),
             helper.make_node("Relu", ["m2"], ["r2"]),
             helper.make_node("Concat", ["a0", "m1", "r2"], ["y"], axis=-1)]
    graph = helper.make_graph(
        nodes, "par", [helper.make_tensor_value_info("x", F, [B, S, E])],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(a, k) for k, a in {**w, "b0": _w(3)}.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": _w(B, S, E)}
    manifest, got = _run(model, feeds)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert _templates(manifest).count("matmul") == 1


# -- the kernel: numpy semantics, NVRTC, the GPU -------------------------------------------------

def _reference(q, k, v, mask, heads, dim, scale, masked=-np.inf):
    """Per (batch, head) loops in float64, the chain as ONNX computes it (+ the NaN guard)."""
    bsz, sq, sk = q.shape[0], q.shape[1], k.shape[1]
    out = np.zeros((bsz, sq, heads * dim))
    for b in range(bsz):
        for h in range(heads):
            cols = slice(h * dim, (h + 1) * dim)
            s = q[b, :, cols].astype(np.float64) @ k[b, :, cols].astype(np.float64).T * scale
            if mask is not None:
                m = np.broadcast_to(mask, (bsz, heads, sq, sk))[b, h]
                s = np.where(m, s, masked) if m.dtype == bool else s + m
            with np.errstate(all="ignore"):
                p = np.exp(s - s.max(axis=-1, keepdims=True))
                p = p / p.sum(axis=-1, keepdims=True)
            out[b, :, cols] = np.nan_to_num(p, nan=0.0) @ v[b, :, cols].astype(np.float64)
    return out


def test_cpu_kernel_against_loops():
    q, k, v = _w(2, 5, 12), _w(2, 9, 12), _w(2, 9, 12)
    mask = np.ones((2, 1, 5, 9), bool)
    mask[0, 0, 1] = False  # a fully masked row: zeros
    mask[1, 0, :, 3:] = False
    params = {"num_heads": 3, "head_dim": 4, "scale": 0.5}
    (got,) = attention([q, k, v, mask], params)
    np.testing.assert_allclose(got, _reference(q, k, v, mask, 3, 4, 0.5), rtol=1e-6, atol=1e-6)
    assert not got[0, 1].any()
    packed = np.concatenate([q, _w(2, 5, 3), q], axis=-1)
    (got,) = attention([packed] * 3, {**params, "k_offset": 15, "v_offset": 3})
    np.testing.assert_allclose(got, _reference(q, q, packed[..., 3:15], None, 3, 4, 0.5),
                               rtol=1e-6, atol=1e-6)


def test_attention_step_compiles_for_the_gpu():
    manifest, _ = build_model(_attention_model("div_add"), BuilderConfig(target_arch="sm_90"))
    steps = [s for s in manifest["steps"] if s["template"] == "attention"]
    assert len(steps) == 1 and steps[0].get("device") != "cpu", steps


def _gpu_case(sq: int, sk: int, heads: int, dim: int, mask_kind: str) -> onnx.ModelProto:
    """nn-level attention from separate q/k/v inputs: sdpa-style chain on graph inputs."""
    scale = np.array(dim ** -0.25, np.float32)
    nodes = [helper.make_node("Reshape", ["q", "qs"], ["q4"]),
             helper.make_node("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
             helper.make_node("Mul", ["qh", "c"], ["qm"]),
             helper.make_node("Reshape", ["k", "ks"], ["k4"]),
             helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]),
             helper.make_node("Mul", ["kt", "c"], ["km"]),
             helper.make_node("MatMul", ["qm", "km"], ["s"]),
             (helper.make_node("Where", ["mask", "s", "ninf"], ["sm"]) if mask_kind == "bool"
              else helper.make_node("Add", ["s", "mask"], ["sm"])),
             helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
             helper.make_node("IsNaN", ["p"], ["nan"]),
             helper.make_node("Where", ["nan", "zero", "p"], ["pg"]),
             helper.make_node("Reshape", ["v", "ks"], ["v4"]),
             helper.make_node("Transpose", ["v4"], ["vh"], perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["pg", "vh"], ["o"]),
             helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["ot", "os"], ["y"])]
    inits = {"qs": np.array([2, sq, heads, dim]), "ks": np.array([2, sk, heads, dim]),
             "os": np.array([2, sq, heads * dim]), "c": scale,
             "zero": np.array(0.0, np.float32), "ninf": np.array(-np.inf, np.float32)}
    mask_type = TensorProto.BOOL if mask_kind == "bool" else F
    graph = helper.make_graph(
        nodes, "gpu_attn",
        [helper.make_tensor_value_info("q", F, [2, sq, heads * dim]),
         helper.make_tensor_value_info("k", F, [2, sk, heads * dim]),
         helper.make_tensor_value_info("v", F, [2, sk, heads * dim]),
         helper.make_tensor_value_info("mask", mask_type, [2, 1, 1, sk])],
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(np.asarray(a), k) for k, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


GPU_CASES = [(16, 16, 4, 16, "float"), (40, 70, 2, 64, "bool"), (129, 33, 3, 128, "float"),
             (5, 100, 1, 40, "bool")]


@pytest.mark.parametrize("sq,sk,heads,dim,mask_kind", GPU_CASES)
def test_gpu_case_fuses_and_compiles(sq, sk, heads, dim, mask_kind):
    manifest, _ = build_model(_gpu_case(sq, sk, heads, dim, mask_kind),
                              BuilderConfig(target_arch="sm_90"))
    assert [s["template"] for s in manifest["steps"]] == ["attention"]
    assert manifest["steps"][0].get("device") != "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("sq,sk,heads,dim,mask_kind", GPU_CASES)
def test_attention_on_gpu_matches_numpy(sq, sk, heads, dim, mask_kind):
    model = _gpu_case(sq, sk, heads, dim, mask_kind)
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90"))
    engine = Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    g = np.random.default_rng(sq)
    q, k, v = (g.standard_normal((2, n, heads * dim)).astype(np.float32) for n in (sq, sk, sk))
    keep = np.ones((2, 1, 1, sk), bool)
    keep[0, ..., sk // 2:] = False
    keep[1, ..., ::3] = False
    mask = keep if mask_kind == "bool" else np.where(keep, 0, -np.inf).astype(np.float32)
    got = engine.create_execution_context().execute({"q": q, "k": k, "v": v, "mask": mask})["y"]
    np.testing.assert_allclose(got, _reference(q, k, v, mask, heads, dim, dim ** -0.5),
                               rtol=1e-4, atol=1e-5)
