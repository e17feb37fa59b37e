"""kmajor-matmul-operands (GPU builds): Q Kᵀ with K transposed to [B, H, D, S] through an
elementwise chain reads K as [B, H, S, D] (transpose_b): the elementwise kernel's view is
contiguous along its last dim (the strided path: several elements a thread) and the results do
not change. The IR rewrite itself is tests/filecheck/kmajor-matmul-operands."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

B, S, H, D = 2, 16, 2, 32


def _model() -> onnx.ModelProto:
    """scores = Q · Relu(Kᵀ · 0.125), Q and K the heads of [B, S, H·D] inputs."""
    inits = [numpy_helper.from_array(np.array([B, S, H, D], np.int64), "shape"),
             numpy_helper.from_array(np.array(0.125, np.float32), "scale")]
    nodes = [h.make_node("Reshape", ["q", "shape"], ["q4"]),
             h.make_node("Reshape", ["k", "shape"], ["k4"]),
             h.make_node("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
             h.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]),
             h.make_node("Mul", ["kt", "scale"], ["ks"]),
             h.make_node("Relu", ["ks"], ["kr"]),
             h.make_node("MatMul", ["qh", "kr"], ["y"])]
    io = [h.make_tensor_value_info(n, T.FLOAT, [B, S, H * D]) for n in ("q", "k")]
    graph = h.make_graph(nodes, "qk", io, [h.make_tensor_value_info("y", T.FLOAT, [B, H, S, S])],
                         inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _feed() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {n: rng.standard_normal((B, S, H * D)).astype(np.float32) for n in ("q", "k")}


def _reference(feed: dict[str, np.ndarray]) -> np.ndarray:
    q = feed["q"].astype(np.float64).reshape(B, S, H, D).transpose(0, 2, 1, 3)
    k = feed["k"].astype(np.float64).reshape(B, S, H, D).transpose(0, 2, 3, 1)
    return q @ np.maximum(k * 0.125, 0)


def _rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got.astype(np.float64) - want) / np.linalg.norm(want))


def _config(fp16: bool, arch: str = "sm_90") -> BuilderConfig:
    config = BuilderConfig(target_arch=arch, autotune=False)
    if fp16:
        config.set_flag(BuilderFlag.FP16)
    return config


@pytest.mark.parametrize("fp16", [False, True])
def test_k_is_read_k_major_and_the_results_stand(fp16):
    manifest, sections = build_model(_model(), _config(fp16))
    steps = manifest["steps"]
    (mm,) = [s for s in steps if s["template"] == "matmul"]
    (made_b,) = [s for s in steps if mm["inputs"][1] in s["outputs"]]
    assert made_b["template"] == "elementwise"  # no transpose step between K and the matmul
    assert mm["params"]["transpose_b"] is True
    assert mm["params"]["in_shapes"][1] == [B, H, S, D]
    # K's elementwise kernel reads [B, S, H, D] as [B, H, S, D]: contiguous rows
    views = [v for s in steps if s["template"] == "elementwise"
             for v in s["params"].get("in_views") or ()]
    assert views and all(v["strides"][-1] == 1 for v in views)
    feed = _feed()
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feed)["y"]
    assert _rel(got, _reference(feed)) < (2e-3 if fp16 else 1e-6)


def test_a_cpu_build_keeps_the_transpose():
    manifest, _ = build_model(_model(), BuilderConfig())
    (mm,) = [s for s in manifest["steps"] if s["template"] == "matmul"]
    assert not mm["params"].get("transpose_b")


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.parametrize("fp16", [False, True])
def test_k_major_k_on_the_gpu(fp16):
    from ember.compiler.builder import detect_arch

    manifest, sections = build_model(_model(), _config(fp16, detect_arch()))
    (mm,) = [s for s in manifest["steps"] if s["template"] == "matmul"]
    assert mm["params"]["transpose_b"] is True
    feed = _feed()
    got = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feed)["y"]
    assert _rel(got, _reference(feed)) < (2e-3 if fp16 else 1e-3)  # TF32 allowed by default
