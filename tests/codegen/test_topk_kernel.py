"""The CUDA TopK kernel (one block per line, k block-wide argmin rounds) on the emulated GPU
(g++) against the numpy kernel: largest and smallest, ties by the lower index, NaNs, -0.0,
int64 values past float precision, float16, an inner axis, k = the whole line; a run-time k
stays on the host."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from ember.codegen.emit_cuda import emit_step
from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.cpu_kernels.reduction import topk
from tests.codegen import simt_emulator


def _values(dtype, shape, rng):
    if dtype == "int64":
        return (rng.integers(-3, 4, shape) * (2**53 + 1)).astype(np.int64)
    x = rng.integers(-4, 5, shape).astype(dtype)  # small integers: many ties
    flat = x.reshape(-1)
    flat[::7] = np.nan
    flat[3::11] = -0.0
    return x


@pytest.mark.parametrize("dtype, shape, axis, k, largest", [
    ("float32", (3, 40), 1, 5, True),
    ("float32", (3, 40), 1, 6, False),
    ("float16", (2, 30, 3), 1, 4, True),
    ("int64", (4, 9), -1, 9, True),
    ("float64", (300, 2), 0, 3, False),
])
def test_the_cuda_kernel_matches_numpy(tmp_path, dtype, shape, axis, k, largest):
    if not simt_emulator.available():
        pytest.skip("needs g++")
    x = _values(dtype, shape, np.random.default_rng(0))
    out = list(shape)
    out[axis] = k
    params = {"k": k, "axis": axis % len(shape), "largest": largest,
              "in_shapes": [list(shape)], "in_dtypes": [dtype],
              "out_shapes": [out, out], "out_dtypes": [dtype, "int64"]}
    want = topk([x], params)
    name, spec = emit_step({"name": "topk_0", "template": "topk", "params": params})
    got = simt_emulator.run_outputs(spec, name, [x], [w.shape for w in want],
                                    [w.dtype for w in want], tmp_path)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])  # NaNs in the same places


def test_a_constant_k_gets_a_cuda_kernel_a_run_time_k_the_host():
    ios = [h.make_tensor_value_info("x", T.FLOAT, [2, 8])]
    k = h.make_tensor("k", T.INT64, [1], [3])
    model = h.make_model(h.make_graph(
        [h.make_node("TopK", ["x", "k"], ["v", "i"])], "g", ios,
        [h.make_tensor_value_info("v", T.FLOAT, None),
         h.make_tensor_value_info("i", T.INT64, None)], [k]),
        opset_imports=[h.make_opsetid("", 11)])
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = manifest["steps"]
    assert step["template"] == "topk" and "device" not in step
    del model.graph.initializer[:]
    model.graph.input.append(h.make_tensor_value_info("k", T.INT64, [1]))
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = manifest["steps"]
    assert step.get("device") == "cpu"
