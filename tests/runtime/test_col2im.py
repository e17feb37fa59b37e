"""ONNX Col2Im (nn.col2im): the plan against onnx.reference, with constant shapes (a CUDA kernel
in GPU plans) and run-time ones (read on the host, the image shape checked); the CUDA kernel on
the emulated GPU (g++) against the numpy kernel, strides, pads, dilations and 3-D included; a
fold of an unfold gives the input times its coverage."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import StepError
from ember.runtime.cpu_kernels.col2im import blocks, col2im
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes


def _model(x_shape, image, block, constant=True, declared=None, **attrs):
    inits = [numpy_helper.from_array(np.array(image, np.int64), "image"),
             numpy_helper.from_array(np.array(block, np.int64), "block")] if constant else []
    ios = [h.make_tensor_value_info("x", T.FLOAT, x_shape)]
    if not constant:
        ios += [h.make_tensor_value_info("image", T.INT64, [len(image)]),
                h.make_tensor_value_info("block", T.INT64, [len(block)])]
    graph = h.make_graph([h.make_node("Col2Im", ["x", "image", "block"], ["y"], **attrs)], "g",
                         ios, [h.make_tensor_value_info("y", T.FLOAT, declared)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])


CASES = [  # image, block, attributes
    ([5, 5], [2, 2], {}),
    ([6, 7], [3, 2], {"strides": [2, 1], "pads": [1, 0, 1, 2], "dilations": [1, 2]}),
    ([4, 5, 3], [2, 2, 1], {"strides": [1, 2, 1]}),
]


def _x(image, block, attrs, rng, channels=3):
    n = len(image)
    counts = blocks(image, block, attrs.get("strides", [1] * n), attrs.get("pads", [0] * 2 * n),
                    attrs.get("dilations", [1] * n))
    return rng.standard_normal((2, channels * int(np.prod(block)), int(np.prod(counts)))) \
        .astype(np.float32)


@pytest.mark.parametrize("image, block, attrs", CASES)
def test_col2im_matches_the_reference(image, block, attrs):
    x = _x(image, block, attrs, np.random.default_rng(0))
    model = _model(list(x.shape), image, block, **attrs)
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90",
                                                          autotune=False))
    (step,) = manifest["steps"]
    assert step["template"] == "col2im" and "device" not in step  # a CUDA kernel
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_run_time_shapes_are_read_on_the_host():
    image, block = [5, 6], [2, 3]
    x = _x(image, block, {}, np.random.default_rng(1))
    model = _model(list(x.shape), image, block, constant=False, declared=[2, 3, 5, 6])
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90",
                                                          autotune=False))
    (step,) = manifest["steps"]
    assert step.get("device") == "cpu"
    context = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context()
    feeds = {"x": x, "image": np.array(image, np.int64), "block": np.array(block, np.int64)}
    np.testing.assert_allclose(context.execute(feeds)["y"],
                               ReferenceEvaluator(model).run(None, feeds)[0], rtol=1e-5)
    with pytest.raises(StepError, match="image_shape \\[6, 5\\] at run time"):
        context.execute({**feeds, "image": np.array([6, 5], np.int64)})


@pytest.mark.parametrize("image, block, attrs", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_cuda_kernel_matches_numpy(tmp_path, image, block, attrs, dtype):
    from ember.codegen.emit_cuda import emit_step
    from tests.codegen import simt_emulator

    if not simt_emulator.available():
        pytest.skip("needs g++")
    n = len(image)
    x = _x(image, block, attrs, np.random.default_rng(2)).astype(dtype)
    params = {"image_shape": image, "block_shape": block,
              "strides": attrs.get("strides", [1] * n), "pads": attrs.get("pads", [0] * 2 * n),
              "dilations": attrs.get("dilations", [1] * n), "in_shapes": [list(x.shape)],
              "in_dtypes": [dtype], "out_shapes": [[2, 3, *image]], "out_dtypes": [dtype]}
    (want,) = col2im([x], params)
    name, spec = emit_step({"name": "col2im_0", "template": "col2im", "params": params})
    (got,) = simt_emulator.run_outputs(spec, name, [x], [want.shape], [want.dtype], tmp_path)
    tol = 1e-2 if dtype == "float16" else 1e-5
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=tol,
                               atol=tol)


def test_fold_of_unfold_counts_each_pixel_by_its_coverage():
    image = np.arange(20, dtype=np.float32).reshape(1, 1, 4, 5)
    # unfold (im2col) with 2x2 blocks, stride 1: 3 x 4 blocks of 4 taps
    cols = np.stack([image[0, 0, i:i + 2, j:j + 2].reshape(-1) for i in range(3)
                     for j in range(4)], 1)[None]
    (folded,) = col2im([cols], {"image_shape": [4, 5], "block_shape": [2, 2],
                                "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1]})
    cover = np.outer([1, 2, 2, 1], [1, 2, 2, 2, 1]).astype(np.float32)
    np.testing.assert_array_equal(folded[0, 0], image[0, 0] * cover)
