"""The storage-only element types (float8 e4m3fn/e4m3fnuz/e5m2/e5m2fnuz/e8m0, float4 e2m1,
int4/uint4/int2/uint2: ml_dtypes', one element per byte): Cast, CastLike, QuantizeLinear and
DequantizeLinear through the whole plan path on the CPU executor, against onnx.reference, and
what a CUDA build does with them (host steps that say why)."""

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import UnsupportedError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

# every value class a conversion must handle: zeros of both signs, ties, subnormals of the
# small types, values past each type's range, infinities and NaN
X = np.array([0.0, -0.0, 0.3, -1.7, 2.5, 3.5, 7.4, -8.9, 0.0068, 1e-3, 100.0, 239.0, 241.0,
              449.0, 500.0, -60000.0, 57344.0, 70000.0, 1e30, np.inf, -np.inf, np.nan],
             np.float32)

FLOAT8 = [TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2,
          TensorProto.FLOAT8E5M2FNUZ]
NAMES = {t: TensorProto.DataType.Name(t) for t in
         [*FLOAT8, TensorProto.FLOAT8E8M0, TensorProto.FLOAT4E2M1, TensorProto.INT4,
          TensorProto.UINT4, TensorProto.INT2, TensorProto.UINT2]}


def _model(nodes, inputs, outputs, inits=(), opset=23):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _cast_model(to: int, src: int = TensorProto.FLOAT, **attrs) -> onnx.ModelProto:
    return _model([helper.make_node("Cast", ["x"], ["y"], to=to, name="cast0", **attrs)],
                  [helper.make_tensor_value_info("x", src, [len(X)])],
                  [helper.make_tensor_value_info("y", to, [len(X)])],
                  opset=25 if "round_mode" in attrs else 23)


def _run(model: onnx.ModelProto, feed: dict, arch: str | None = None):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch))
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine.create_execution_context().execute(feed)


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype and shape, and the same values (NaN where the reference has NaN)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    np.testing.assert_array_equal(g[~np.isnan(w)], w[~np.isnan(w)])


@pytest.mark.parametrize("saturate", [1, 0])
@pytest.mark.parametrize("to", FLOAT8, ids=lambda t: NAMES[t])
def test_cast_to_float8_matches_the_reference(to, saturate):
    model = _cast_model(to, saturate=saturate)
    want = ReferenceEvaluator(model).run(None, {"x": X})[0]
    _same(_run(model, {"x": X})[1]["y"], want)


@pytest.mark.parametrize("to", [TensorProto.FLOAT4E2M1, TensorProto.FLOAT8E8M0,
                                TensorProto.INT4, TensorProto.UINT4, TensorProto.INT2,
                                TensorProto.UINT2], ids=lambda t: NAMES[t])
def test_cast_to_float4_e8m0_and_small_ints_matches_the_reference(to):
    x = X if to in (TensorProto.FLOAT4E2M1, TensorProto.FLOAT8E8M0) else \
        np.arange(-10, 17, dtype=np.float32)
    model = _cast_model(to)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = len(x)
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = len(x)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    _same(_run(model, {"x": x})[1]["y"], want)


@pytest.mark.parametrize("src", [*FLOAT8, TensorProto.INT4, TensorProto.FLOAT4E2M1],
                         ids=lambda t: NAMES[t])
def test_cast_from_storage_types_to_float_and_float16(src):
    dtype = onnx.helper.tensor_dtype_to_np_dtype(src)
    x = X.astype(np.float32).clip(-6, 6) if src in (TensorProto.INT4, TensorProto.FLOAT4E2M1) \
        else X
    x = np.nan_to_num(x, nan=1.0, posinf=2.0, neginf=-2.0).astype(dtype)
    for to in (TensorProto.FLOAT, TensorProto.FLOAT16):
        model = _cast_model(to, src=src)
        want = ReferenceEvaluator(model).run(None, {"x": x})[0]
        _same(_run(model, {"x": x})[1]["y"], want)


def test_quantize_and_dequantize_float8_and_int4():
    x = (np.random.default_rng(0).standard_normal(64) * 30).astype(np.float32)
    for zp_type in (TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2, TensorProto.INT4,
                    TensorProto.UINT4):
        zp = helper.make_tensor("zp", zp_type, [], [0])
        scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.37])
        model = _model([helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
                        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"])],
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])],
                       [helper.make_tensor_value_info("q", zp_type, [64]),
                        helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])],
                       [zp, scale])
        want = ReferenceEvaluator(model).run(None, {"x": x})
        got = _run(model, {"x": x})[1]
        _same(got["q"], want[0])
        np.testing.assert_allclose(got["y"], want[1], rtol=1e-6)


def test_cast_to_e8m0_rounds_up_only():
    model = _cast_model(TensorProto.FLOAT8E8M0, round_mode="nearest")
    with pytest.raises(UnsupportedError, match="round_mode='nearest'"):
        build_model(model, BuilderConfig())


@pytest.mark.parametrize("to, dtype", [(TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn),
                                       (TensorProto.FLOAT8E5M2, ml_dtypes.float8_e5m2)])
def test_cuda_build_runs_e4m3_casts_on_the_gpu_and_other_storage_casts_on_the_host(to, dtype):
    """E4M3 has CUDA storage (scalar_c.FLOAT8_TYPES: FP8 models' type); the other storage
    types run on the host and the plan says why."""
    model = _cast_model(to)
    manifest, out = _run(model, {"x": X}, arch="sm_90")
    want = ReferenceEvaluator(model).run(None, {"x": X})[0]
    _same(out["y"], want)
    (step,) = manifest["steps"]
    if to == TensorProto.FLOAT8E4M3FN:
        assert "device" not in step and step["cuda"]["kernel"].startswith("elementwise_")
    else:
        assert step["device"] == "cpu" and "saturate_cast" in step["fallback"]
    assert out["y"].dtype == np.dtype(dtype)
