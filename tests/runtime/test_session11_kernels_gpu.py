"""On a GPU, the plans of session 11's new CUDA kernels (MaxPool indices, MaxUnpool, TopK,
GatherND, Col2Im, TensorScatter, RoiAlign, DeformConv; a data-dependent host step before CUDA
kernels) against the CPU executor running the same plan, twice on one context."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

pytestmark = pytest.mark.cuda


def _model(nodes, inputs, outputs, inits=(), opset=24):
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                         [h.make_tensor_value_info(n, t, None) for n, t in outputs],
                         list(inits))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def _cases():
    rng = np.random.default_rng(0)
    k = numpy_helper.from_array(np.array([5], np.int64), "k")
    image = numpy_helper.from_array(np.array([6, 7], np.int64), "image")
    block = numpy_helper.from_array(np.array([2, 3], np.int64), "block")
    x4 = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    return {
        "pool_unpool": (_model(
            [h.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 0, 0]),
             h.make_node("MaxUnpool", ["p", "i"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 0, 0])],
            [("x", T.FLOAT, [2, 3, 8, 8])], [("y", T.FLOAT), ("i", T.INT64)]), {"x": x4}),
        "topk": (_model([h.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)],
                        [("x", T.FLOAT, [4, 1000])], [("v", T.FLOAT), ("i", T.INT64)], [k]),
                 {"x": rng.standard_normal((4, 1000)).astype(np.float32)}),
        "gather_nd": (_model([h.make_node("GatherND", ["x", "i"], ["y"], batch_dims=1)],
                             [("x", T.FLOAT, [2, 5, 6]), ("i", T.INT64, [2, 3, 1])],
                             [("y", T.FLOAT)]),
                      {"x": rng.standard_normal((2, 5, 6)).astype(np.float32),
                       "i": np.array([[[0], [4], [-1]], [[2], [2], [1]]], np.int64)}),
        "col2im": (_model([h.make_node("Col2Im", ["x", "image", "block"], ["y"])],
                          [("x", T.FLOAT, [2, 18, 25])], [("y", T.FLOAT)], [image, block]),
                   {"x": rng.standard_normal((2, 18, 25)).astype(np.float32)}),
        "tensor_scatter": (_model(
            [h.make_node("TensorScatter", ["past", "new", "w"], ["y"], mode="circular")],
            [("past", T.FLOAT, [2, 4, 16, 8]), ("new", T.FLOAT, [2, 4, 3, 8]),
             ("w", T.INT64, [2])], [("y", T.FLOAT)]),
            {"past": rng.standard_normal((2, 4, 16, 8)).astype(np.float32),
             "new": rng.standard_normal((2, 4, 3, 8)).astype(np.float32),
             "w": np.array([2, 14], np.int64)}),
        "roi_align": (_model(
            [h.make_node("RoiAlign", ["x", "rois", "b"], ["y"], output_height=3,
                         output_width=3, sampling_ratio=0, spatial_scale=0.5)],
            [("x", T.FLOAT, [2, 3, 8, 8]), ("rois", T.FLOAT, [4, 4]), ("b", T.INT64, [4])],
            [("y", T.FLOAT)]),
            {"x": x4, "rois": np.array([[0, 0, 9, 9], [2, 3, 12, 7], [1, 1, 1.5, 1.2],
                                        [-2, 4, 6, 20]], np.float32),
             "b": np.array([0, 1, 1, 0], np.int64)}),
        "deform_conv": (_model(
            [h.make_node("DeformConv", ["x", "w", "off", "bias", "mask"], ["y"], group=1,
                         offset_group=3, pads=[1, 1, 1, 1])],
            [("x", T.FLOAT, [2, 3, 8, 8]), ("w", T.FLOAT, [4, 3, 3, 3]),
             ("off", T.FLOAT, [2, 54, 8, 8]), ("bias", T.FLOAT, [4]),
             ("mask", T.FLOAT, [2, 27, 8, 8])], [("y", T.FLOAT)], opset=19),
            {"x": x4, "w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "off": rng.uniform(-2, 2, (2, 54, 8, 8)).astype(np.float32),
             "bias": rng.standard_normal(4).astype(np.float32),
             "mask": rng.uniform(0, 1, (2, 27, 8, 8)).astype(np.float32)}),
        "nonzero_then_kernels": (_model(
            [h.make_node("NonZero", ["x"], ["nz"]), h.make_node("Transpose", ["nz"], ["t"]),
             h.make_node("Cast", ["t"], ["y"], to=T.FLOAT)],
            [("x", T.FLOAT, [3, 40])], [("y", T.FLOAT)]),
            {"x": (rng.random((3, 40)) < 0.3).astype(np.float32)}),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_the_gpu_plan_matches_the_cpu_executor(case):
    from ember.compiler.builder import detect_arch
    from ember.runtime.cuda import cuda_available

    if not cuda_available():
        pytest.skip("needs a GPU")
    model, feeds = _cases()[case]
    manifest, sections = build_model(model, BuilderConfig(target_arch=detect_arch()))
    assert any(s.get("cuda") for s in manifest["steps"])
    plan = plan_bytes(manifest, sections)
    got = Runtime("cuda").deserialize_cuda_engine(plan).create_execution_context()
    want = Runtime("cpu").deserialize_cuda_engine(plan).create_execution_context()
    for _ in range(2):  # twice: the second run reuses the first's binding
        g, w = got.execute(feeds), want.execute(feeds)
        for name in w:
            assert g[name].shape == w[name].shape, name
            np.testing.assert_allclose(g[name], w[name], rtol=1e-5, atol=1e-5, err_msg=name)
