"""RoiAlign and DeformConv (nn.roi_align, nn.deform_conv: numpy kernels, host steps in GPU
plans) against onnxruntime: several images and regions, adaptive sampling, max mode, a spatial
scale, opset 10's coordinates; deformable convolution with groups, offset groups, a mask, a
bias, strides, pads and dilations; with zero offsets it is a plain convolution."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _run(model, feeds, arch=None):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch, autotune=False))
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feeds)
    return manifest, got


def _ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _model(op, inputs, attrs, opset):
    ios = [h.make_tensor_value_info(n, T.INT64 if n == "batch" else T.FLOAT, list(a.shape))
           for n, a in inputs.items()]
    graph = h.make_graph([h.make_node(op, list(inputs), ["y"], **attrs)], "g", ios,
                         [h.make_tensor_value_info("y", T.FLOAT, None)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


@pytest.mark.parametrize("attrs, opset", [
    ({"output_height": 3, "output_width": 4, "sampling_ratio": 2}, 16),
    ({"output_height": 2, "output_width": 2, "sampling_ratio": 0, "spatial_scale": 0.5}, 16),
    ({"output_height": 3, "output_width": 3, "mode": "max", "sampling_ratio": 2,
      "coordinate_transformation_mode": "output_half_pixel"}, 16),
    ({"output_height": 2, "output_width": 3, "sampling_ratio": 1}, 10),
])
def test_roi_align_matches_onnxruntime(attrs, opset):
    rng = np.random.default_rng(0)
    corner = rng.uniform(-2, 12, (5, 2))
    rois = np.concatenate([corner, corner + rng.uniform(0.5, 9, (5, 2))], 1).astype(np.float32)
    feeds = {"x": rng.standard_normal((2, 3, 12, 10)).astype(np.float32), "rois": rois,
             "batch": np.array([0, 1, 1, 0, 1], np.int64)}
    model = _model("RoiAlign", feeds, attrs, opset)
    manifest, got = _run(model, feeds, arch="sm_90")
    (step,) = manifest["steps"]
    assert step["template"] == "roi_align" and step.get("device") == "cpu"
    np.testing.assert_allclose(got["y"], _ort(model, feeds), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs, groups, offset_groups, extras", [
    ({}, 1, 1, ()),
    ({"strides": [2, 1], "pads": [1, 0, 1, 2], "dilations": [1, 2]}, 1, 1, ("B",)),
    ({"pads": [1, 1, 1, 1]}, 2, 2, ("B", "mask")),
])
def test_deform_conv_matches_onnxruntime(attrs, groups, offset_groups, extras):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 3, 2)).astype(np.float32)
    strides, pads = attrs.get("strides", [1, 1]), attrs.get("pads", [0] * 4)
    dilations = attrs.get("dilations", [1, 1])
    out = [(s + pads[d] + pads[2 + d] - (k - 1) * dilations[d] - 1) // strides[d] + 1
           for d, (s, k) in enumerate(zip((7, 6), (3, 2), strict=True))]
    feeds = {"X": x, "W": w,
             "offset": rng.uniform(-1.5, 1.5, (2, offset_groups * 3 * 2 * 2, *out))
             .astype(np.float32)}
    if "B" in extras:
        feeds["B"] = rng.standard_normal(6).astype(np.float32)
    if "mask" in extras:
        feeds["mask"] = rng.uniform(0, 1, (2, offset_groups * 3 * 2, *out)).astype(np.float32)
    model = _model("DeformConv", feeds, {**attrs, "group": groups,
                                         "offset_group": offset_groups}, 19)
    _, got = _run(model, feeds)
    np.testing.assert_allclose(got["y"], _ort(model, feeds), rtol=1e-4, atol=1e-4)


def test_deform_conv_with_zero_offsets_is_a_convolution():
    rng = np.random.default_rng(2)
    feeds = {"X": rng.standard_normal((1, 2, 5, 5)).astype(np.float32),
             "W": rng.standard_normal((3, 2, 3, 3)).astype(np.float32),
             "offset": np.zeros((1, 18, 3, 3), np.float32)}
    _, got = _run(_model("DeformConv", feeds, {}, 19), feeds)
    conv = h.make_model(h.make_graph(
        [h.make_node("Conv", ["X", "W"], ["y"])], "c",
        [h.make_tensor_value_info(n, T.FLOAT, list(feeds[n].shape)) for n in ("X", "W")],
        [h.make_tensor_value_info("y", T.FLOAT, None)]), opset_imports=[h.make_opsetid("", 19)])
    np.testing.assert_allclose(got["y"], _ort(conv, {k: feeds[k] for k in ("X", "W")}),
                               rtol=1e-5, atol=1e-5)
