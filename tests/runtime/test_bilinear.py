"""RoiAlign and DeformConv against onnxruntime: several images and regions, adaptive sampling,
max mode, a spatial scale, opset 10's coordinates; deformable convolution with groups, offset
groups, a mask, a bias, strides, pads and dilations (with zero offsets, a plain convolution).
nn.roi_align's and nn.deform_conv's CUDA kernels run on the emulated GPU against the numpy
kernels."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.ort_compat import for_onnxruntime
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _run(model, feeds, arch=None):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch, autotune=False))
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feeds)
    return manifest, got


def _ort(model, feeds):
    session = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
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
    assert step["template"] == "roi_align" and "device" not in step  # a CUDA kernel
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


@pytest.mark.parametrize("mode, transform, ratio, dtype", [
    ("avg", "half_pixel", 2, "float32"),
    ("avg", "output_half_pixel", 0, "float32"),  # adaptive sampling, regions made 1 x 1
    ("max", "half_pixel", 0, "float32"),
    ("avg", "half_pixel", 1, "float16"),
])
def test_the_roi_align_cuda_kernel_matches_numpy(tmp_path, mode, transform, ratio, dtype):
    from ember.codegen.emit_cuda import emit_step
    from ember.runtime.cpu_kernels.bilinear import roi_align
    from tests.codegen import simt_emulator

    if not simt_emulator.available():
        pytest.skip("needs g++")
    rng = np.random.default_rng(3)
    corner = rng.uniform(-3, 12, (6, 2))
    size = rng.uniform(0.2, 9, (6, 2))  # some smaller than a pixel
    rois = np.concatenate([corner, corner + size], 1).astype(dtype)
    x = rng.standard_normal((2, 3, 11, 9)).astype(dtype)
    batch = np.array([0, 1, 1, 0, 1, 0], np.int64)
    params = {"mode": mode, "coordinate_transformation_mode": transform, "output_height": 3,
              "output_width": 2, "sampling_ratio": ratio, "spatial_scale": 0.75,
              "in_shapes": [list(x.shape), list(rois.shape), [6]],
              "in_dtypes": [dtype, dtype, "int64"], "out_shapes": [[6, 3, 3, 2]],
              "out_dtypes": [dtype]}
    (want,) = roi_align([x, rois, batch], params)
    name, spec = emit_step({"name": "roi_align_0", "template": "roi_align", "params": params})
    (got,) = simt_emulator.run_outputs(spec, name, [x, rois, batch], [want.shape],
                                       [want.dtype], tmp_path)
    tol = 1e-3 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("groups, offset_groups, extras, dtype", [
    (1, 1, (), "float32"),
    (2, 2, ("bias", "mask"), "float32"),
    (1, 2, ("mask",), "float16"),
])
def test_the_deform_conv_cuda_kernel_matches_numpy(tmp_path, groups, offset_groups, extras,
                                                   dtype):
    from ember.codegen.emit_cuda import emit_step
    from ember.runtime.cpu_kernels.bilinear import deform_conv
    from tests.codegen import simt_emulator

    if not simt_emulator.available():
        pytest.skip("needs g++")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 7, 6)).astype(dtype)
    w = rng.standard_normal((6, 4 // groups, 3, 2)).astype(dtype)
    offset = rng.uniform(-2, 2, (2, offset_groups * 12, 7, 5)).astype(dtype)
    inputs = [x, w, offset]
    if "bias" in extras:
        inputs.append(rng.standard_normal(6).astype(dtype))
    if "mask" in extras:
        inputs.append(rng.uniform(0, 1, (2, offset_groups * 6, 7, 5)).astype(dtype))
    params = {"present": list(extras), "strides": [1, 1], "pads": [1, 0, 1, 0],
              "dilations": [1, 1], "group": groups, "offset_group": offset_groups,
              "in_shapes": [list(a.shape) for a in inputs], "in_dtypes": [dtype] * len(inputs),
              "out_shapes": [[2, 6, 7, 5]], "out_dtypes": [dtype]}
    (want,) = deform_conv(inputs, params)
    name, spec = emit_step({"name": "deform_conv_0", "template": "deform_conv",
                            "params": params})
    (got,) = simt_emulator.run_outputs(spec, name, inputs, [want.shape], [want.dtype],
                                       tmp_path)
    tol = 2e-2 if dtype == "float16" else 1e-4
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol,
                               atol=tol)
