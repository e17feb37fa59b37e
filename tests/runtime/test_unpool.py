"""MaxPool's Indices output and MaxUnpool (nn.max_pool_indices, nn.max_unpool): a SegNet-style
encoder-decoder against onnxruntime (onnx.reference where a larger output_shape is given: ember
follows ONNX's reference and node tests, which read the indices in the unpooled geometry, where
onnxruntime reads them in the output's); the CUDA kernels on the emulated GPU (g++) against the
numpy kernels, overlapping windows, pads and column-major indices included; indices that do not
come from a matching pool scatter on the host; a run-time output_shape is checked."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.ort_compat import for_onnxruntime
from ember.errors import StepError
from ember.runtime.cpu_kernels.unpool import max_pool_indices, max_unpool
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _segnet(kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0), output_shape=None):
    """conv -> MaxPool (values and indices) -> conv -> MaxUnpool with those indices -> conv."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w3")]
    unpool_inputs = ["p2", "where"]
    if output_shape is not None:
        inits.append(numpy_helper.from_array(np.array(output_shape, np.int64), "shape"))
        unpool_inputs.append("shape")
    pool = dict(kernel_shape=list(kernel), strides=list(strides), pads=list(pads))
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("MaxPool", ["c1"], ["p", "where"], name="pool", **pool),
             h.make_node("Conv", ["p", "w2"], ["p2"], pads=[1, 1, 1, 1]),
             h.make_node("MaxUnpool", unpool_inputs, ["u"], name="unpool", **pool),
             h.make_node("Conv", ["u", "w3"], ["y"])]
    graph = h.make_graph(nodes, "segnet", [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, None),
                          h.make_tensor_value_info("where", T.INT64, None)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 12)])


def _ort(model, feeds):
    session = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds),
                    strict=True))


@pytest.mark.parametrize("geometry", [
    {},
    {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 0, 0)},  # overlapping windows, pads
    {"output_shape": (2, 4, 9, 10)},  # a larger output: onnx.reference (onnxruntime refuses)
])
def test_segnet_matches_onnxruntime(geometry):
    model = _segnet(**geometry)
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    if "output_shape" in geometry:
        want = dict(zip(["y", "where"], ReferenceEvaluator(model).run(None, {"x": x}),
                        strict=True))
    else:
        want = _ort(model, {"x": x})
    for arch in (None, "sm_90"):
        manifest, sections = build_model(model, BuilderConfig(target_arch=arch,
                                                              autotune=False))
        steps = {s["template"]: s for s in manifest["steps"]}
        assert steps["max_unpool"]["params"]["windowed"] is True
        assert arch is None or not any(steps[t].get("device") for t in
                                       ("max_pool_indices", "max_unpool"))
        got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
            .create_execution_context().execute({"x": x})
        np.testing.assert_array_equal(got["where"], want["where"])
        np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-4)


def _emulated(template, params, inputs, tmp_path):
    from ember.codegen.emit_cuda import emit_step
    from tests.codegen import simt_emulator

    if not simt_emulator.available():
        pytest.skip("needs g++")
    want = {"max_pool_indices": max_pool_indices, "max_unpool": max_unpool}[template](
        inputs, params)
    name, spec = emit_step({"name": f"{template}_0", "template": template, "params": params})
    got = simt_emulator.run_outputs(spec, name, inputs, [w.shape for w in want],
                                    [w.dtype for w in want], tmp_path)
    return got, want


@pytest.mark.parametrize("kernel, strides, pads, dilations, ceil, order", [
    ([2, 2], [2, 2], [0, 0, 0, 0], [1, 1], False, 0),
    ([3, 3], [1, 2], [1, 0, 1, 2], [1, 1], True, 0),
    ([2, 3], [2, 1], [0, 1, 0, 1], [2, 1], False, 1),
    ([3], [2], [1, 1], [1], False, 0),
])
def test_max_pool_indices_kernel_matches_numpy(tmp_path, kernel, strides, pads, dilations,
                                               ceil, order):
    x = np.random.default_rng(2).integers(-3, 4, (2, 3, 7, 6)[:2 + len(kernel)]) \
        .astype(np.float32)  # small integers: ties, where the first maximum must win
    values, _ = max_pool_indices([x], {"kernel": kernel, "strides": strides, "pads": pads,
                                       "dilations": dilations, "ceil_mode": ceil})
    params = {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations,
              "ceil_mode": ceil, "storage_order": order, "in_shapes": [list(x.shape)],
              "in_dtypes": ["float32"], "out_shapes": [list(values.shape)] * 2,
              "out_dtypes": ["float32", "int64"]}
    got, want = _emulated("max_pool_indices", params, [x], tmp_path)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("size, kernel, strides, pads, out", [
    ([6, 6], [2, 2], [2, 2], [0, 0, 0, 0], None),
    ([7, 7], [3, 3], [2, 2], [1, 1, 1, 1], [2, 3, 8, 9]),
    ([7, 6], [3, 2], [1, 2], [0, 0, 1, 0], None),  # overlapping windows: the last writer wins
])
def test_windowed_max_unpool_kernel_matches_numpy(tmp_path, size, kernel, strides, pads, out):
    rng = np.random.default_rng(3)
    n = len(kernel)
    image = rng.integers(-2, 3, (2, 3, *size)).astype(np.float32)
    pooled, where = max_pool_indices([image], {"kernel": kernel, "strides": strides,
                                               "pads": pads, "dilations": [1] * n,
                                               "ceil_mode": False})
    x = rng.standard_normal(pooled.shape).astype(np.float32)
    unpooled = [(pooled.shape[2 + d] - 1) * strides[d] - pads[d] - pads[n + d] + kernel[d]
                for d in range(n)]
    assert unpooled == size  # the pool's input: the indices lie in their windows
    shape = out or [2, 3, *unpooled]
    params = {"kernel": kernel, "strides": strides, "pads": pads, "windowed": True,
              "in_shapes": [list(x.shape), list(where.shape)], "in_dtypes": ["float32", "int64"],
              "out_shapes": [shape], "out_dtypes": ["float32"],
              **({"output_shape": out} if out else {})}
    got, want = _emulated("max_unpool", params, [x, where], tmp_path)
    np.testing.assert_array_equal(got[0], want[0])


def test_other_indices_scatter_on_the_host():
    node = h.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    model = h.make_model(h.make_graph(
        [node], "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 1, 2, 2]),
                      h.make_tensor_value_info("i", T.INT64, [1, 1, 2, 2])],
        [h.make_tensor_value_info("y", T.FLOAT, None)]), opset_imports=[h.make_opsetid("", 11)])
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = manifest["steps"]
    assert step.get("device") == "cpu" and "scattered on the host" in step["fallback"]
    feeds = {"x": np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2),
             "i": np.array([15, 0, 15, 5], np.int64).reshape(1, 1, 2, 2)}  # a repeated index
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute(feeds)["y"]
    np.testing.assert_array_equal(got, _ort(model, feeds)["y"])


def test_a_run_time_output_shape_is_checked():
    node = h.make_node("MaxUnpool", ["x", "i", "shape"], ["y"], kernel_shape=[2, 2],
                       strides=[2, 2])
    model = h.make_model(h.make_graph(
        [node], "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 1, 2, 2]),
                      h.make_tensor_value_info("i", T.INT64, [1, 1, 2, 2]),
                      h.make_tensor_value_info("shape", T.INT64, [4])],
        [h.make_tensor_value_info("y", T.FLOAT, [1, 1, 5, 5])]),
        opset_imports=[h.make_opsetid("", 11)])
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = manifest["steps"]
    assert step.get("device") == "cpu" and "dyn_output_shape) are read on the host" in \
        step["fallback"]
    context = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context()
    feeds = {"x": np.ones((1, 1, 2, 2), np.float32),
             "i": np.array([0, 3, 8, 15], np.int64).reshape(1, 1, 2, 2),
             "shape": np.array([1, 1, 5, 5], np.int64)}
    np.testing.assert_array_equal(context.execute(feeds)["y"],
                                  ReferenceEvaluator(model).run(None, feeds)[0])
    with pytest.raises(StepError, match="output_shape \\[1, 1, 6, 6\\] at run time"):
        context.execute({**feeds, "shape": np.array([1, 1, 6, 6], np.int64)})


@pytest.mark.cuda
def test_segnet_on_the_gpu():
    from ember.compiler.builder import detect_arch
    from ember.runtime.cuda import cuda_available

    if not cuda_available():
        pytest.skip("needs a GPU")
    model = _segnet(kernel=(3, 3), strides=(2, 2), pads=(1, 1, 0, 0))
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    manifest, sections = build_model(model, BuilderConfig(target_arch=detect_arch()))
    got = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})
    want = _ort(model, {"x": x})
    np.testing.assert_array_equal(got["where"], want["where"])
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-4)
