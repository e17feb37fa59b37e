"""GridSample (nn.grid_sample): every mode, padding and corner alignment, 2-D and 3-D, against
onnx.reference, through the whole plan path; opset 16's mode names; the CUDA kernel against the
numpy one on the emulated GPU."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import UnsupportedError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F = TensorProto.FLOAT
CASES = list(itertools.product(("linear", "nearest", "cubic"), ("zeros", "border", "reflection"),
                               (0, 1), (2, 3)))


def _model(x_shape, grid_shape, opset=22, **attrs):
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], name="gs", **attrs)
    out = [x_shape[0], x_shape[1], *grid_shape[1:-1]]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, x_shape),
                                            helper.make_tensor_value_info("grid", F, grid_shape)],
                              [helper.make_tensor_value_info("y", F, out)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(model, feed, arch=None):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch,
                                                          autotune=False if arch else None))
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine.create_execution_context().execute(feed)["y"]


@pytest.mark.parametrize("mode, padding, align, rank", CASES)
def test_grid_sample_matches_the_reference(mode, padding, align, rank):
    rng = np.random.default_rng(rank * 7 + align)
    x_shape = (2, 3, *([5, 4, 3][:rank]))
    grid_shape = (2, *([3, 4, 2][:rank]), rank)
    feed = {"x": rng.standard_normal(x_shape).astype(np.float32),
            "grid": (rng.standard_normal(grid_shape) * 1.4).astype(np.float32)}  # some outside
    model = _model(x_shape, grid_shape, mode=mode, padding_mode=padding, align_corners=align)
    _, got = _run(model, feed)
    np.testing.assert_allclose(got, ReferenceEvaluator(model).run(None, feed)[0], rtol=1e-5,
                               atol=1e-5)


def test_opset_16_mode_names_and_a_gpu_plan():
    rng = np.random.default_rng(1)
    feed = {"x": rng.standard_normal((1, 2, 4, 4)).astype(np.float32),
            "grid": rng.uniform(-1, 1, (1, 3, 3, 2)).astype(np.float32)}
    model = _model((1, 2, 4, 4), (1, 3, 3, 2), opset=16, mode="bicubic")
    manifest, got = _run(model, feed, arch="sm_90")
    (step,) = [s for s in manifest["steps"] if s["template"] == "grid_sample"]
    assert step["params"]["mode"] == "cubic" and "device" not in step
    assert step["cuda"]["kernel"].startswith("grid_sample_")
    # onnx.reference knows opset 16's names not: its opset 22 twin is the reference
    twin = _model((1, 2, 4, 4), (1, 3, 3, 2), mode="cubic")
    np.testing.assert_allclose(got, ReferenceEvaluator(twin).run(None, feed)[0], rtol=1e-5,
                               atol=1e-5)


def test_an_unknown_mode_is_refused_naming_it():
    model = _model((1, 1, 2, 2), (1, 2, 2, 2), mode="area")
    with pytest.raises(UnsupportedError, match="mode 'area'"):
        build_model(model, BuilderConfig())


@pytest.mark.parametrize("mode, padding, align, rank", CASES)
def test_the_cuda_kernel_matches_the_numpy_kernel(tmp_path, mode, padding, align, rank):
    """The CUDA C on the emulated GPU (g++) against the numpy kernel, inputs as above."""
    from ember.codegen.emit_cuda import emit_step
    from ember.runtime.cpu_kernels.sampling import grid_sample_array
    from tests.codegen import simt_emulator

    if not simt_emulator.available():
        pytest.skip("needs g++")
    rng = np.random.default_rng(rank * 7 + align)
    x = rng.standard_normal((2, 3, *([5, 4, 3][:rank]))).astype(np.float32)
    grid = (rng.standard_normal((2, *([3, 4, 2][:rank]), rank)) * 1.4).astype(np.float32)
    want = grid_sample_array(x, grid, mode, padding, bool(align))
    params = {"in_shapes": [list(x.shape), list(grid.shape)],
              "in_dtypes": ["float32", "float32"], "out_shapes": [list(want.shape)],
              "out_dtypes": ["float32"], "mode": mode, "padding_mode": padding,
              "align_corners": bool(align)}
    name, spec = emit_step({"name": "grid_sample_0", "template": "grid_sample",
                            "params": params})
    got = simt_emulator.run(spec, name, [x, grid], list(want.shape), np.dtype(np.float32),
                            tmp_path)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("mode, padding, align, rank", [("linear", "zeros", 0, 2),
                                                        ("cubic", "reflection", 1, 2),
                                                        ("nearest", "border", 0, 3)])
def test_grid_sample_on_the_gpu(mode, padding, align, rank):
    from ember.compiler.builder import detect_arch
    from ember.runtime.cuda import cuda_available

    if not cuda_available():
        pytest.skip("needs a GPU")
    rng = np.random.default_rng(5)
    x_shape, grid_shape = (2, 3, *([9, 8, 7][:rank])), (2, *([5, 6, 4][:rank]), rank)
    feed = {"x": rng.standard_normal(x_shape).astype(np.float32),
            "grid": (rng.standard_normal(grid_shape) * 1.4).astype(np.float32)}
    model = _model(x_shape, grid_shape, mode=mode, padding_mode=padding, align_corners=align)
    manifest, sections = build_model(model, BuilderConfig(target_arch=detect_arch()))
    assert "device" not in next(s for s in manifest["steps"] if s["template"] == "grid_sample")
    got = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feed)["y"]
    np.testing.assert_allclose(got, ReferenceEvaluator(model).run(None, feed)[0], rtol=1e-5,
                               atol=1e-5)
