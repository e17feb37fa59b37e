"""fold-quantize-scales: GPU INT8 builds compute a quantize as TensorRT does (its scale folded
into the multiplies before it), CPU builds as ONNX spells it (op by op); both run on the CPU
executor exactly as the IR says."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.builder import BuilderConfig, build_model, pipeline_for
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

# scales for which one sum (ACC) quantizes to different integers op by op and folded:
# round(f32(f32(ACC) * f32(SX * SW)) / SY) != round(f32(ACC) * f32(f32(SX * SW) / SY))
SX, SW, SY, ACC = np.float32(0.03229861), np.float32(0.0007565469), np.float32(0.113288745), 275857
K, N = 32, 16


def _model() -> tuple[onnx.ModelProto, np.ndarray, np.ndarray, np.ndarray]:
    """y = quantize(dequantize(x, SX) @ dequantize(w, sw), SY) on int8 x [16, K]; row 0 of x and
    column 0 of w sum to ACC (17 x 127 x 127 + 13 x 127 + 13 x 1)."""
    rng = np.random.default_rng(3)
    x = rng.integers(-20, 21, (16, K)).astype(np.int8)
    w = rng.integers(-127, 128, (K, N)).astype(np.int8)
    x[0] = w[:, 0] = 0
    x[0, :19] = [127] * 17 + [13, 13]
    w[:19, 0] = [127] * 17 + [127, 1]
    sw = rng.uniform(2e-4, 1e-3, N).astype(np.float32)
    sw[0] = SW
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(sw, "sw"),
             numpy_helper.from_array(np.array(SX), "sx"),
             numpy_helper.from_array(np.array(SY), "sy"),
             numpy_helper.from_array(np.array(0, np.int8), "zero")]
    nodes = [h.make_node("DequantizeLinear", ["x", "sx"], ["xf"]),
             h.make_node("DequantizeLinear", ["w", "sw"], ["wf"], axis=1),
             h.make_node("MatMul", ["xf", "wf"], ["m"]),
             h.make_node("QuantizeLinear", ["m", "sy", "zero"], ["y"])]
    graph = h.make_graph(nodes, "q", [h.make_tensor_value_info("x", T.INT8, [16, K])],
                         [h.make_tensor_value_info("y", T.INT8, [16, N])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 19)]), x, w, sw


def _expected(x: np.ndarray, w: np.ndarray, sw: np.ndarray, folded: bool) -> np.ndarray:
    acc = (x.astype(np.int32) @ w.astype(np.int32)).astype(np.float32)
    c = (SX * sw).astype(np.float32)  # fold-qdq's dequantizing scale, one per column
    if folded:
        v = acc * (c.astype(np.float64) / SY).astype(np.float32)
    else:
        v = (acc * c) / SY
    return np.clip(np.rint(v), -128, 127).astype(np.int8)


def _run(model: onnx.ModelProto, config: BuilderConfig, x: np.ndarray, passes=None) -> np.ndarray:
    kwargs = {} if passes is None else {"passes": passes}
    manifest, sections = build_model(model, config, **kwargs)
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine.create_execution_context().execute({"x": x})["y"]


def test_the_planted_sum_quantizes_differently_folded():
    acc = np.float32(ACC)
    c = np.float32(SX * SW)
    assert np.rint(acc * c / SY) != np.rint(acc * np.float32(np.float64(c) / SY))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_a_gpu_int8_build_quantizes_with_the_scales_folded(arch):
    model, x, w, sw = _model()
    config = BuilderConfig(target_arch=arch, autotune=False)
    assert "fold-quantize-scales" in [p.name for p in pipeline_for(config)]
    got = _run(model, config, x)
    np.testing.assert_array_equal(got, _expected(x, w, sw, folded=True))
    assert got[0, 0] != _expected(x, w, sw, folded=False)[0, 0]
    # onnxruntime (its float MatMul of the dequantized values, exact here) agrees with the
    # folded value: ACC * SX * SW / SY is 59.49999735, which op by op rounds to 59.5 -> 60
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"x": x})[0], got)
    # without the pass, the same plan computes ONNX's arithmetic
    passes = [p for p in pipeline_for(config) if p.name != "fold-quantize-scales"]
    np.testing.assert_array_equal(_run(model, config, x, passes),
                                  _expected(x, w, sw, folded=False))


def test_cpu_builds_keep_onnx_arithmetic():
    model, x, w, sw = _model()
    want = _expected(x, w, sw, folded=False)
    np.testing.assert_array_equal(_run(model, BuilderConfig(), x), want)


def test_only_int8_tensor_core_targets_run_it():
    """CPU builds and targets below sm_80 (whose Q/DQ convs and matmuls run dequantized, in
    FP32) keep the divisions."""
    for config in (BuilderConfig(), BuilderConfig(target_arch="sm_75", autotune=False)):
        assert "fold-quantize-scales" not in [p.name for p in pipeline_for(config)]
