"""convert-onnx-to-nn on ScatterElements, ScatterND and GatherND: numbers against
onnx.reference (every reduction, negative indices, batch_dims) through the interpreter, and
plans for the CPU and for sm_90 (host steps, which say why) and in FP16."""

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.onnx_cases import check_against_reference, single_node_model

rng = np.random.default_rng(0)
DATA = rng.standard_normal((4, 5, 3)).astype(np.float32)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements(axis, reduction):
    shape = list(DATA.shape)
    shape[axis] = 2
    n = DATA.shape[axis]
    if reduction == "none":  # distinct indices along each line (duplicates are undefined)
        distinct = np.argsort(rng.random(DATA.shape), axis=axis)
        indices = np.take(distinct, [0, 1], axis=axis) - n * (rng.random(shape) < 0.5)
    else:  # repeats accumulate
        indices = rng.integers(-n, n, shape)
    updates = rng.standard_normal(shape).astype(np.float32)
    model = single_node_model("ScatterElements", {"data": DATA},
                              initializers={"indices": indices.astype(np.int64),
                                            "updates": updates},
                              opset=18, axis=axis, reduction=reduction)
    check_against_reference(model, {"data": DATA})


@pytest.mark.parametrize("reduction", ["none", "add", "max"])
def test_scatter_nd(reduction):
    indices = np.array([[1, 2], [-1, 0], [1, 2] if reduction != "none" else [0, 4]], np.int64)
    updates = rng.standard_normal((3, 3)).astype(np.float32)
    model = single_node_model("ScatterND", {"data": DATA},
                              initializers={"indices": indices, "updates": updates},
                              opset=18, reduction=reduction)
    check_against_reference(model, {"data": DATA})


@pytest.mark.parametrize("batch_dims, indices", [
    (0, np.array([[1, 2], [3, -1]])), (0, np.array([[2], [0]])),
    (1, np.array([[[1], [4]], [[0], [0]], [[2], [3]], [[4], [1]]]))])
def test_gather_nd(batch_dims, indices):
    model = single_node_model("GatherND", {"data": DATA},
                              initializers={"indices": indices.astype(np.int64)},
                              opset=13, batch_dims=batch_dims)
    check_against_reference(model, {"data": DATA})


@pytest.mark.parametrize("arch, fp16", [(None, False), ("sm_90", False), ("sm_90", True)])
def test_scatter_nd_plans(arch, fp16):
    indices = np.array([[3, 1], [0, 0]], np.int64)
    updates = rng.standard_normal((2, 3)).astype(np.float32)
    model = single_node_model("ScatterND", {"data": DATA},
                              initializers={"indices": indices, "updates": updates}, opset=18)
    config = BuilderConfig(target_arch=arch)
    if fp16:
        config.set_flag(BuilderFlag.FP16)
    manifest, sections = build_model(model, config)
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    got = engine.create_execution_context().execute({"data": DATA})["y"]
    want = ReferenceEvaluator(model).run(None, {"data": DATA})[0]
    np.testing.assert_allclose(got, want, rtol=1e-3 if fp16 else 0)
    if arch:
        step = next(s for s in manifest["steps"] if s["template"] == "scatter_nd")
        assert step["device"] == "cpu" and "scatter_nd" in step["fallback"]
