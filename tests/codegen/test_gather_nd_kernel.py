"""The CUDA GatherND kernel on the emulated GPU (g++) against the numpy kernel: batch dims,
partial index rows (slices), negative indices, int32 indices, float16; a plan step gets it."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from ember.codegen.emit_cuda import emit_step
from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.cpu_kernels.movement import gather_nd
from tests.codegen import simt_emulator


@pytest.mark.parametrize("data_shape, index_shape, batch_dims, dtype, itype", [
    ((4, 5, 6), (3, 2), 0, "float32", "int64"),
    ((4, 5, 6), (2, 3, 3), 0, "float16", "int64"),
    ((2, 5, 6, 3), (2, 4, 1), 1, "float32", "int32"),
    ((2, 3, 5, 6), (2, 3, 2, 2), 2, "int64", "int64"),
])
def test_the_cuda_kernel_matches_numpy(tmp_path, data_shape, index_shape, batch_dims, dtype,
                                       itype):
    if not simt_emulator.available():
        pytest.skip("needs g++")
    rng = np.random.default_rng(0)
    data = rng.standard_normal(data_shape).astype(dtype) if dtype != "int64" else \
        rng.integers(-100, 100, data_shape).astype(np.int64)
    k = index_shape[-1]
    dims = np.array(data_shape[batch_dims:batch_dims + k])
    idx = rng.integers(0, 1 << 20, index_shape) % dims
    idx = np.where(rng.random(index_shape) < 0.3, idx - dims, idx).astype(itype)  # negatives
    params = {"batch_dims": batch_dims, "in_shapes": [list(data_shape), list(index_shape)],
              "in_dtypes": [dtype, itype]}
    (want,) = gather_nd([data, idx], params)
    params.update(out_shapes=[list(want.shape)], out_dtypes=[dtype])
    name, spec = emit_step({"name": "gather_nd_0", "template": "gather_nd", "params": params})
    (got,) = simt_emulator.run_outputs(spec, name, [data, idx], [want.shape], [want.dtype],
                                       tmp_path)
    np.testing.assert_array_equal(got, want)


def test_a_plan_step_gets_the_cuda_kernel():
    model = h.make_model(h.make_graph(
        [h.make_node("GatherND", ["x", "i"], ["y"])], "g",
        [h.make_tensor_value_info("x", T.FLOAT, [4, 5]),
         h.make_tensor_value_info("i", T.INT64, [3, 2])],
        [h.make_tensor_value_info("y", T.FLOAT, None)]), opset_imports=[h.make_opsetid("", 13)])
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = manifest["steps"]
    assert step["template"] == "gather_nd" and "device" not in step
