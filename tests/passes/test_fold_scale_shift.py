"""fold-scale-shift on ONNX graphs: multiplies and adds by constants after a conv or a matmul
disappear into its weights, the numbers stay onnx.reference's."""

from __future__ import annotations

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.onnx_cases import node_graph_model

rng = np.random.default_rng(0)


def _w(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], **config):
    manifest, sections = build_model(model.SerializeToString(), BuilderConfig(**config))
    ctx = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, ctx.create_execution_context().execute(feeds)


def _check(model, feeds, kernels: int, unfused: int) -> None:
    manifest, got = _run(model, feeds)
    assert len(manifest["steps"]) == kernels, [s["template"] for s in manifest["steps"]]
    plain, _ = _run(model, feeds, optimize=False)
    assert len(plain["steps"]) == unfused
    want = ReferenceEvaluator(model).run(None, feeds)
    for name, expected in zip([o.name for o in model.graph.output], want, strict=True):
        np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-5)


def test_conv_scale_then_shift_fold_into_one_conv():
    x = _w(2, 3, 8, 8)
    model = node_graph_model(
        [("Conv", ["x", "w", "b"], "c", {"pads": [1, 1, 1, 1]}),
         ("Mul", ["c", "s"], "m", {}), ("Add", ["t", "m"], "a", {}),
         ("Div", ["a", "d"], "y", {})],
        {"x": x}, ["y"],
        {"w": _w(4, 3, 3, 3), "b": _w(4), "s": _w(4, 1, 1), "t": _w(1, 4, 1, 1),
         "d": np.float32(3.0).reshape(())})
    _check(model, {"x": x}, kernels=1, unfused=4)


def test_linear_then_batch_norm_folds_the_scale_into_the_weight():
    x = _w(5, 16)
    gamma, beta = _w(8), _w(8)
    mean, var = _w(8), np.abs(_w(8)) + 0.5
    model = node_graph_model(
        [("MatMul", ["x", "w"], "h", {}),
         ("BatchNormalization", ["h", "g", "be", "mu", "v"], "y", {})],
        {"x": x}, ["y"], {"w": _w(16, 8), "g": gamma, "be": beta, "mu": mean, "v": var})
    manifest, got = _run(model, {"x": x})
    # the scale is in the weight; the shift is the matmul's epilogue: one kernel
    assert [s["template"] for s in manifest["steps"]] == ["matmul"]
    assert [op["fn"] for op in manifest["steps"][0]["params"]["epilogue"]["ops"]] == ["add"]
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-5)


def test_gemm_transposed_weight_divided_by_a_scalar():
    x = _w(3, 10)
    model = node_graph_model(
        [("Gemm", ["x", "w"], "g", {"transB": 1}), ("Div", ["g", "d"], "y", {})],
        {"x": x}, ["y"], {"w": _w(6, 10), "d": np.float32(8.0).reshape(())})
    _check(model, {"x": x}, kernels=1, unfused=2)


def test_a_scale_over_space_and_a_shared_result_stay():
    x = _w(1, 2, 4, 4)
    model = node_graph_model(
        [("Conv", ["x", "w"], "c", {}), ("Mul", ["c", "s"], "m", {}),
         ("Add", ["c", "m"], "y", {})],
        {"x": x}, ["y"], {"w": _w(2, 2, 1, 1), "s": _w(4)})
    manifest, got = _run(model, {"x": x})
    # not folded (c is used twice, s varies over W): the mul stays, in the conv's epilogue
    (step,) = manifest["steps"]
    assert [op["fn"] for op in step["params"]["epilogue"]["ops"]] == ["mul", "add"]
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-5)
