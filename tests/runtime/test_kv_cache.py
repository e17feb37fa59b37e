"""ONNX TensorScatter (nn.tensor_scatter, the KV-cache update): the plan against onnx.reference
in both modes, with and without write indices, on a dynamic batch; the CUDA kernel on the
emulated GPU (g++) against the numpy kernel, float16 included; a linear write past the cache's
end refused on the host."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model
from ember.errors import StepError
from ember.runtime.cpu_kernels.kv_cache import tensor_scatter
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _model(mode, axis=-2, indices=True, batch=2):
    inputs = ["past", "update"] + (["w"] if indices else [])
    ios = [h.make_tensor_value_info("past", T.FLOAT, [batch, 3, 6, 4]),
           h.make_tensor_value_info("update", T.FLOAT, [batch, 3, 2, 4])]
    if indices:
        ios.append(h.make_tensor_value_info("w", T.INT64, [batch]))
    node = h.make_node("TensorScatter", inputs, ["present"], mode=mode, axis=axis)
    graph = h.make_graph([node], "g", ios, [h.make_tensor_value_info("present", T.FLOAT, None)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 24)])


def _feeds(batch, w, rng):
    return {"past": rng.standard_normal((batch, 3, 6, 4)).astype(np.float32),
            "update": rng.standard_normal((batch, 3, 2, 4)).astype(np.float32),
            "w": np.array(w, np.int64)}


@pytest.mark.parametrize("mode, w", [("linear", [0, 4]), ("circular", [5, 3])])
def test_tensor_scatter_matches_the_reference(mode, w):
    model = _model(mode)
    manifest, sections = build_model(model, BuilderConfig(autotune=False))
    context = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context()
    feeds = _feeds(2, w, np.random.default_rng(0))
    np.testing.assert_array_equal(context.execute(feeds)["present"],
                                  ReferenceEvaluator(model).run(None, feeds)[0])
    plain = _model(mode, indices=False)  # no write indices: written at 0
    feeds.pop("w")
    manifest, sections = build_model(plain, BuilderConfig(autotune=False))
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feeds)["present"]
    np.testing.assert_array_equal(got, ReferenceEvaluator(plain).run(None, feeds)[0])


def test_a_dynamic_batch_and_a_linear_write_past_the_end():
    model = _model("linear", batch="B")
    profile = OptimizationProfile()
    for name, shape in (("past", (3, 6, 4)), ("update", (3, 2, 4))):
        profile.set_shape(name, (1, *shape), (2, *shape), (4, *shape))
    profile.set_shape("w", (1,), (2,), (4,))
    manifest, sections = build_model(model, BuilderConfig(autotune=False, profiles=[profile]))
    context = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context()
    rng = np.random.default_rng(1)
    for w in ([1, 0, 3], [2]):
        feeds = _feeds(len(w), w, rng)
        np.testing.assert_array_equal(context.execute(feeds)["present"],
                                      ReferenceEvaluator(model).run(None, feeds)[0])
    with pytest.raises(StepError, match="past the cache's 6 \\(mode linear\\)"):
        context.execute(_feeds(2, [0, 5], rng))


@pytest.mark.parametrize("mode, axis, dtype, indices", [
    ("linear", 2, "float32", True),
    ("circular", 2, "float16", True),
    ("circular", 1, "float32", True),
    ("linear", 3, "float32", False),
])
def test_the_cuda_kernel_matches_numpy(tmp_path, mode, axis, dtype, indices):
    from ember.codegen.emit_cuda import emit_step
    from tests.codegen import simt_emulator

    if not simt_emulator.available():
        pytest.skip("needs g++")
    rng = np.random.default_rng(2)
    past = rng.standard_normal((3, 5, 6, 7)).astype(dtype)
    shape = list(past.shape)
    shape[axis] = 3
    update = rng.standard_normal(shape).astype(dtype)
    inputs = [past, update]
    cache = past.shape[axis]
    if indices:
        # linear: the last sample's update ends at the cache's end; circular: wrapping
        inputs.append(np.array([0, 1, cache - 3] if mode == "linear" else [5, 11, 2],
                               np.int64))
    params = {"axis": axis, "mode": mode, "in_shapes": [list(a.shape) for a in inputs],
              "in_dtypes": [a.dtype.name for a in inputs], "out_shapes": [list(past.shape)],
              "out_dtypes": [dtype]}
    (want,) = tensor_scatter(inputs, params)
    name, spec = emit_step({"name": "tensor_scatter_0", "template": "tensor_scatter",
                            "params": params})
    (got,) = simt_emulator.run_outputs(spec, name, inputs, [want.shape], [want.dtype], tmp_path)
    np.testing.assert_array_equal(got, want)
