"""INT8 from calibration (BuilderFlag.INT8 + config.int8_calibrator, TensorRT's flow): each
calibrator class, given batches as TensorRT's samples give them (host addresses here, cudart
device pointers on the GPU), quantizes a small CNN and an MLP whose convs and matmuls then run on
int8; the plan matches onnxruntime running the same Q/DQ model, and float64 within INT8's
error; the calibration cache replaces the batches and gives the identical plan."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import ember
from ember.compiler.builder import BuilderConfig, BuilderFlag, build_model
from ember.compiler.calibrate import (
    CACHE_NAMES,
    IInt8Calibrator,
    IInt8EntropyCalibrator,
    IInt8EntropyCalibrator2,
    IInt8LegacyCalibrator,
    IInt8MinMaxCalibrator,
    batch_array,
    entropy_amax,
    int8_model,
    parse_cache,
)
from ember.compiler.ort_compat import for_onnxruntime
from ember.errors import EmberError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.ort_qdq import run_as_written


def _init(rng, name, *shape, scale=0.2):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _cnn() -> onnx.ModelProto:
    """conv(3 -> 16) relu conv(16 -> 16, stride 2) relu max-pool global-pool flatten gemm."""
    rng = np.random.default_rng(0)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2],
                         name="conv2"),
             h.make_node("Relu", ["c2"], ["r2"]),
             h.make_node("MaxPool", ["r2"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("GlobalAveragePool", ["m"], ["p"]), h.make_node("Flatten", ["p"], ["f"]),
             h.make_node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1, name="fc")]
    graph = h.make_graph(
        nodes, "cnn", [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 16, 16])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 10])],
        [_init(rng, "w1", 16, 3, 3, 3), _init(rng, "b1", 16), _init(rng, "w2", 16, 16, 3, 3),
         _init(rng, "b2", 16), _init(rng, "fc", 10, 16, scale=0.5), _init(rng, "fcb", 10)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _mlp() -> onnx.ModelProto:
    """Linear layers as PyTorch exports them: MatMul by a [K, N] weight, then Add."""
    rng = np.random.default_rng(1)
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"),
             h.make_node("Add", ["m1", "b1"], ["a1"]), h.make_node("Relu", ["a1"], ["r1"]),
             h.make_node("MatMul", ["r1", "w2"], ["m2"], name="fc2"),
             h.make_node("Add", ["m2", "b2"], ["y"])]
    graph = h.make_graph(
        nodes, "mlp", [h.make_tensor_value_info("x", T.FLOAT, [4, 8, 32])],
        [h.make_tensor_value_info("y", T.FLOAT, [4, 8, 16])],
        [_init(rng, "w1", 32, 64), _init(rng, "b1", 64), _init(rng, "w2", 64, 16),
         _init(rng, "b2", 16)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


MODELS = {"cnn": (_cnn, ("conv", "conv", "matmul")), "mlp": (_mlp, ("matmul", "matmul"))}
CALIBRATORS = [IInt8EntropyCalibrator2, IInt8EntropyCalibrator, IInt8MinMaxCalibrator,
               IInt8LegacyCalibrator]


def _shape(model: onnx.ModelProto) -> tuple[int, ...]:
    return tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)


def _batches(model: onnx.ModelProto, count: int = 8, seed: int = 0) -> list[dict]:
    return [{"x": np.random.default_rng(seed + i).standard_normal(_shape(model))
             .astype(np.float32)} for i in range(count)]


def calibrator(base: type, batches: list[dict], cache: bytes | None = None):
    """A calibrator as TensorRT's samples write one: host addresses of its arrays."""

    class Calibrator(base):
        def __init__(self) -> None:
            base.__init__(self)  # the samples call the parent's constructor explicitly
            self.batches, self.index, self.calls = batches, 0, 0
            self.cache, self.written = cache, None

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            self.calls += 1
            if self.index == len(self.batches):
                return None
            batch = self.batches[self.index]
            self.index += 1
            return [batch[n].ctypes.data for n in names]

        def read_calibration_cache(self):
            return self.cache

        def write_calibration_cache(self, cache) -> None:
            self.written = bytes(cache)

        if base is IInt8LegacyCalibrator:
            def get_quantile(self) -> float:
                return 0.9999

            def get_regression_cutoff(self) -> float:
                return 1.0

    return Calibrator()


def _int8_config(calib, arch: str | None = None) -> BuilderConfig:
    config = BuilderConfig(flags=BuilderFlag.INT8, target_arch=arch, autotune=False)
    config.int8_calibrator = calib
    return config


def _execute(manifest: dict, sections: dict, feed: dict, device: str = "cpu") -> np.ndarray:
    engine = Runtime(device).deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine.create_execution_context().execute(feed)["y"]




def _float64(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    """The model in float64 (weights and inputs), by onnx's reference evaluator."""
    double = onnx.ModelProto.FromString(model.SerializeToString())
    for init in double.graph.initializer:
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64),
                                              init.name))
    for vi in [*double.graph.input, *double.graph.output]:
        vi.type.tensor_type.elem_type = T.DOUBLE
    feed = {k: v.astype(np.float64) for k, v in feed.items()}
    return ReferenceEvaluator(double).run(None, feed)[0]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


def _linear(manifest: dict) -> list[dict]:
    return [s for s in manifest["steps"] if s["template"] in ("conv", "matmul")]


LEGACY_WARNING = "ignore:.*get_regression_cutoff:UserWarning"  # its own test below


@pytest.mark.filterwarnings(LEGACY_WARNING)
@pytest.mark.parametrize("base", CALIBRATORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", MODELS)
def test_each_calibrator_puts_convs_and_matmuls_on_int8(name, base):
    make, linear = MODELS[name]
    model = make()
    calib = calibrator(base, _batches(model))
    manifest, sections = build_model(model, _int8_config(calib))
    assert calib.calls == 9 and calib.index == 8  # every batch, then None
    steps = _linear(manifest)
    assert tuple(s["template"] for s in steps) == linear
    for step in steps:  # int8 in, int32 sums out
        assert step["params"]["in_dtypes"][:2] == ["int8", "int8"]
        assert step["params"]["out_dtypes"] == ["int32"]
    # the cache it wrote: TensorRT's table, one scale per calibrated tensor
    lines = calib.written.decode().splitlines()
    assert lines[0] == f"EMBER-1-{CACHE_NAMES[calib.get_algorithm()]}"
    scales = parse_cache(calib.written, calib.get_algorithm())
    assert "x" in scales and len(scales) == len(lines) - 1
    assert all(0 < s < 1 for s in scales.values())

    feed = {"x": np.random.default_rng(99).standard_normal(_shape(model)).astype(np.float32)}
    got = _execute(manifest, sections, feed)
    # onnxruntime on the same Q/DQ model (made again from the cache: no batches run)
    again = calibrator(base, [], cache=calib.written)
    qdq = int8_model(model, again)
    assert again.calls == 0
    assert {n.op_type for n in qdq.graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    assert _rel(got, run_as_written(qdq, feed)) < 1e-5  # integer sums: float rounding only
    # INT8 against float64: 8-bit symmetric steps are ~1/127 of each tensor's range; over the
    # 4-6 quantized tensors of these nets that adds up to 1-3% (measured 1.0e-2 to 2.8e-2)
    assert _rel(got, _float64(model, feed)) < 5e-2


@pytest.mark.filterwarnings(LEGACY_WARNING)
@pytest.mark.parametrize("base, method, options", [
    (IInt8MinMaxCalibrator, "MinMax", {}),
    (IInt8LegacyCalibrator, "Percentile", {"CalibPercentile": 99.99,
                                           "CalibTensorRangeSymmetric": True})],
    ids=["minmax", "legacy-percentile"])
@pytest.mark.parametrize("name", MODELS)
def test_calibration_equals_onnxruntimes_quantize_static(tmp_path, name, base, method, options):
    """The same batches through onnxruntime's own quantize_static (symmetric int8, per-channel
    weights, QDQ): ember's calibrated plan gives its output."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = MODELS[name][0]()
    batches = _batches(model)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self):
            return next(self.items, None)

    onnx.save(for_onnxruntime(model), tmp_path / "fp32.onnx")
    quantize_static(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method),
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                   **options})
    feed = {"x": np.random.default_rng(99).standard_normal(_shape(model)).astype(np.float32)}
    got = _execute(*build_model(model, _int8_config(calibrator(base, batches))), feed)
    assert _rel(got, run_as_written(onnx.load(tmp_path / "qdq.onnx"), feed)) < 1e-5


@pytest.mark.parametrize("name", MODELS)
def test_a_cache_read_back_runs_no_batch_and_gives_the_identical_plan(name):
    model = MODELS[name][0]()
    first = calibrator(IInt8EntropyCalibrator2, _batches(model))
    plan = plan_bytes(*build_model(model, _int8_config(first)))
    second = calibrator(IInt8EntropyCalibrator2, _batches(model, seed=50), cache=first.written)
    assert plan_bytes(*build_model(model, _int8_config(second))) == plan
    assert second.calls == 0 and second.written is None
    # other batches calibrate to another plan (the cache above was what decided)
    third = calibrator(IInt8EntropyCalibrator2, _batches(model, count=2, seed=50))
    assert plan_bytes(*build_model(model, _int8_config(third))) != plan


def test_a_cache_that_does_not_match_is_reported_and_ignored():
    cnn, mlp = _cnn(), _mlp()
    mlp_cache = calibrator(IInt8EntropyCalibrator2, _batches(mlp))
    build_model(mlp, _int8_config(mlp_cache))
    cnn_cache = calibrator(IInt8MinMaxCalibrator, _batches(cnn))
    build_model(cnn, _int8_config(cnn_cache))
    for cache, why in [(mlp_cache.written, "the network has no tensor 'a1', 'm1'"),
                       (cnn_cache.written, "the calibration cache is of MinMaxCalibration; the "
                                           "calibrator is EntropyCalibration2"),
                       (b"not a table", "no header line"),
                       (b"EMBER-1-EntropyCalibration2\nx: 12", "line 2 is not"),
                       (cnn_cache.written.replace(b"MinMaxCalibration", b"EntropyCalibration2")
                        .replace(b"\nx: ", b"\nx_gone: "), "no scale for 'x'")]:
        calib = calibrator(IInt8EntropyCalibrator2, _batches(cnn), cache=cache)
        with pytest.warns(UserWarning, match="calibration cache ignored: .*" + why):
            build_model(cnn, _int8_config(calib))
        assert calib.calls == 9  # calibrated instead
        assert calib.written.startswith(b"EMBER-1-EntropyCalibration2\n")


def test_tensorrts_own_cache_header_is_read():
    model = _mlp()
    first = calibrator(IInt8MinMaxCalibrator, _batches(model))
    plan = plan_bytes(*build_model(model, _int8_config(first)))
    trt_cache = first.written.replace(b"EMBER-1-", b"TRT-100300-")
    second = calibrator(IInt8MinMaxCalibrator, [], cache=trt_cache)
    assert plan_bytes(*build_model(model, _int8_config(second))) == plan


class _Bare(IInt8Calibrator):
    pass


@pytest.mark.parametrize("make, message", [
    (lambda m: object(), "must subclass one of ember's calibrators"),
    (lambda m: _Bare(), r"_Bare.get_algorithm\(\) is not implemented"),
    (lambda m: type("C", (IInt8MinMaxCalibrator,), {})(),
     r"C.get_batch_size\(\) is not implemented"),
    (lambda m: calibrator(IInt8MinMaxCalibrator, []), "get_batch returned None at once"),
    (lambda m: type("C", (IInt8MinMaxCalibrator,), {
        "get_batch_size": lambda self: 3})(), r"get_batch_size\(\) is 3, but input 'x' is"),
    (lambda m: type("C", (IInt8MinMaxCalibrator,), {
        "get_batch_size": lambda self: 1,
        "get_batch": lambda self, names: [1, 2]})(), "must return a list of 1 buffer"),
    (lambda m: type("C", (IInt8MinMaxCalibrator,), {
        "get_batch_size": lambda self: 1,
        "get_batch": lambda self, names: [np.zeros(_shape(m), np.float64)]})(),
     "get_batch gave 'x' a float64 array"),
    (lambda m: type("C", (IInt8MinMaxCalibrator,), {
        "get_batch_size": lambda self: 1, "get_batch": lambda self, names: ["x"]})(),
     "expected a device pointer, a host address"),
    (lambda m: type("C", (IInt8LegacyCalibrator,), {
        "get_batch_size": lambda self: 1, "get_quantile": lambda self: 99.9,
        "get_batch": lambda self, names: None})(), r"get_quantile\(\) must be in \(0, 1\]"),
    (lambda m: type("C", (IInt8EntropyCalibrator2,), {
        "get_batch_size": lambda self: 1,
        "read_calibration_cache": lambda self: "x: 1"})(),
     r"read_calibration_cache\(\) must return bytes or None, not str"),
], ids=["not-a-calibrator", "no-algorithm", "no-batch-size", "no-data", "batch-size",
        "pointer-count", "dtype", "not-a-pointer", "quantile", "cache-type"])
def test_bad_calibrators_are_errors_naming_what_is_wrong(make, message):
    model = _mlp()
    with pytest.raises(EmberError, match=message):
        build_model(model, _int8_config(make(model)))


def test_int8_without_calibrator_or_qdq_and_a_calibrator_without_int8_are_errors():
    with pytest.raises(EmberError, match="no Q/DQ nodes and the config no int8_calibrator"):
        build_model(_mlp(), BuilderConfig(flags=BuilderFlag.INT8))
    config = BuilderConfig()
    config.int8_calibrator = calibrator(IInt8MinMaxCalibrator, _batches(_mlp()))
    with pytest.raises(EmberError, match="int8_calibrator is set but BuilderFlag.INT8 is not"):
        build_model(_mlp(), config)


def test_a_qdq_model_keeps_its_scales_and_the_calibrator_is_not_used():
    model = _mlp()
    qdq = int8_model(model, calibrator(IInt8MinMaxCalibrator, _batches(model)))
    calib = calibrator(IInt8EntropyCalibrator2, _batches(model))
    with pytest.warns(UserWarning, match="explicit quantization.*calibrator is not used"):
        manifest, sections = build_model(qdq, _int8_config(calib))
    assert calib.calls == 0
    assert plan_bytes(manifest, sections) == plan_bytes(*build_model(qdq, BuilderConfig()))


def test_layers_with_a_precision_of_their_own_stay_float():
    model = _mlp()
    config = _int8_config(calibrator(IInt8MinMaxCalibrator, _batches(model)))
    config.set_layer_precisions("fc2:fp32")
    steps = _linear(build_model(model, config)[0])
    assert [s["params"]["in_dtypes"][0] for s in steps] == ["int8", "float32"]


def test_a_pinned_layer_reads_its_inputs_unrounded():
    """fc2 pinned to FP32 reads relu(fc1 + b) in float: the quantizer quantizes the Relu's
    input and output (it runs Relu on int8), so the pinned layer reads a float copy of the Relu
    on the float sum instead of the int8 round trip."""
    from ember.compiler.calibrate import int8_model

    model = _mlp()
    qdq = int8_model(model, calibrator(IInt8MinMaxCalibrator, _batches(model)),
                     exclude=["fc2"])
    producer = {o: n for n in qdq.graph.node for o in n.output}
    (fc2,) = [n for n in qdq.graph.node if n.name == "fc2"]
    reads = producer[fc2.input[0]]
    assert reads.op_type == "Relu" and reads.name.endswith("/float")
    assert producer[reads.input[0]].op_type != "DequantizeLinear"
    # the quantized Relu is left as it was (for other readers; here none: the build drops it)
    assert [n for n in qdq.graph.node if n.op_type == "Relu" and not n.name.endswith("/float")]


def test_legacy_calibrator_warns_that_the_regression_cutoff_is_not_used():
    model = _mlp()
    with pytest.warns(UserWarning, match=r"get_regression_cutoff\(\) is not used"):
        build_model(model, _int8_config(calibrator(IInt8LegacyCalibrator, _batches(model))))


def test_entropy_threshold_clips_outliers_and_keeps_a_flat_range():
    rng = np.random.default_rng(0)
    values = np.abs(np.concatenate([rng.standard_normal(200_000), [40.0, 45.0, 50.0]]))
    hist, edges = np.histogram(values, bins=2048, range=(0, values.max()))
    amax = entropy_amax(hist, edges)
    assert 3.0 < amax < 8.0  # a gaussian's tail kept, the three outliers clipped
    flat = np.abs(rng.uniform(-1, 1, 200_000))
    hist, edges = np.histogram(flat, bins=2048, range=(0, flat.max()))
    assert entropy_amax(hist, edges) > 0.97 * flat.max()  # nothing to gain by clipping


def test_batches_as_host_addresses_and_arrays():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_array_equal(batch_array(x.ctypes.data, "x", (2, 3, 4), np.float32), x)
    np.testing.assert_array_equal(batch_array(x.reshape(-1), "x", (2, 3, 4), np.float32), x)


def test_a_network_built_layer_by_layer_is_calibrated():
    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((64, 32)) * 0.2).astype(np.float32)
    w2 = (rng.standard_normal((16, 64)) * 0.2).astype(np.float32)
    builder = ember.Builder()
    network = builder.create_network()
    x = network.add_input("x", ember.float32, (8, 32))
    fc1 = network.add_matrix_multiply(x, ember.MatrixOperation.NONE,
                                      network.add_constant((64, 32), w1).get_output(0),
                                      ember.MatrixOperation.TRANSPOSE)
    relu = network.add_activation(fc1.get_output(0), ember.ActivationType.RELU)
    fc2 = network.add_matrix_multiply(relu.get_output(0), ember.MatrixOperation.NONE,
                                      network.add_constant((16, 64), w2).get_output(0),
                                      ember.MatrixOperation.TRANSPOSE)
    fc2.get_output(0).name = "y"
    network.mark_output(fc2.get_output(0))
    config = builder.create_builder_config()
    config.target_arch = None
    config.set_flag(ember.BuilderFlag.INT8)
    batches = [{"x": rng.standard_normal((8, 32)).astype(np.float32)} for _ in range(8)]
    config.int8_calibrator = calib = calibrator(ember.IInt8EntropyCalibrator2, batches)
    engine = ember.Runtime(ember.Logger()).deserialize_cuda_engine(
        builder.build_serialized_network(network, config))
    assert calib.calls == 9
    layers = json.loads(engine.create_engine_inspector().get_engine_information(
        ember.LayerInformationFormat.JSON))["Layers"]
    assert [[i["Format/Datatype"].split()[-1] for i in layer["Inputs"][:2]]
            for layer in layers if layer["LayerType"] == "matmul"] == [["Int8", "Int8"]] * 2
    feed = rng.standard_normal((8, 32)).astype(np.float32)
    got = engine.create_execution_context().execute({"x": feed})["y"]
    want = np.maximum(feed.astype(np.float64) @ w1.T, 0) @ w2.T
    assert _rel(got, want) < 5e-2


# -- the GPU: batches in device memory, as TensorRT's samples give them --------------------------

def _device_calibrator(base: type, batches: list[dict]):
    """get_batch copies each batch to cudart memory and gives its device pointer."""
    from cuda.bindings import runtime as cudart

    class Calibrator(base):
        def __init__(self) -> None:
            super().__init__()
            self.batches, self.index = batches, 0
            nbytes = batches[0]["x"].nbytes
            err, self.device_input = cudart.cudaMalloc(nbytes)
            assert err == cudart.cudaError_t.cudaSuccess

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if self.index == len(self.batches):
                return None
            batch = self.batches[self.index]["x"]
            self.index += 1
            (err,) = cudart.cudaMemcpy(self.device_input, batch.ctypes.data, batch.nbytes,
                                       cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)
            assert err == cudart.cudaError_t.cudaSuccess
            return [int(self.device_input)]

        def free(self) -> None:
            cudart.cudaFree(self.device_input)

    return Calibrator()


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.cuda
@pytest.mark.parametrize("name", MODELS)
def test_calibration_from_device_pointers_on_the_gpu(name):
    from ember.compiler.builder import detect_arch

    model = MODELS[name][0]()
    batches = _batches(model)
    calib = _device_calibrator(IInt8EntropyCalibrator2, batches)
    try:
        manifest, sections = build_model(model, _int8_config(calib, detect_arch()))
    finally:
        calib.free()
    assert not any(s.get("device") == "cpu" for s in manifest["steps"])
    # the device batches calibrated as the host ones do
    host = calibrator(IInt8EntropyCalibrator2, batches)
    qdq = int8_model(model, host)
    # every conv and matmul on int8, the 3-channel first conv's input padded to 16 channels
    assert {s["params"]["in_dtypes"][0] for s in _linear(manifest)} == {"int8"}
    feed = {"x": np.random.default_rng(99).standard_normal(_shape(model)).astype(np.float32)}
    got = _execute(manifest, sections, feed, "cuda")
    assert _rel(got, run_as_written(qdq, feed)) < 1e-5
    assert _rel(got, _float64(model, feed)) < 5e-2


@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.cuda
def test_a_device_pointer_is_copied_from_the_gpu():
    from ember.runtime.cuda import DeviceBuffer

    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    with DeviceBuffer(x.nbytes) as buffer:
        buffer.upload(x)
        np.testing.assert_array_equal(batch_array(int(buffer), "x", x.shape, np.float32), x)


# -- the command line ------------------------------------------------------------------------------

def test_ember_build_int8_from_calibration_data_and_from_its_cache(tmp_path, capsys):
    from ember.compiler.cli import main

    model = _cnn()
    onnx.save(model, tmp_path / "m.onnx")
    samples = np.concatenate([b["x"] for b in _batches(model)])  # 16 samples: 8 batches of 2
    np.savez(tmp_path / "calib.npz", x=samples)
    (tmp_path / "dir").mkdir()
    np.savez(tmp_path / "dir" / "a.npz", x=samples[:6])
    np.savez(tmp_path / "dir" / "b.npz", x=samples[6:])
    np.savez(tmp_path / "bad.npz", x=samples[:5])
    np.savez(tmp_path / "extra.npz", x=samples, mask=samples)
    cache = tmp_path / "calib.cache"

    def build(plan: str, *flags: str) -> bytes:
        assert main(["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / plan),
                     "--int8", *flags]) == 0
        return (tmp_path / plan).read_bytes()

    plan = build("a.plan", "--calib-data", str(tmp_path / "calib.npz"), "--calibrator", "minmax",
                 "--calib-cache", str(cache))
    assert cache.read_text().startswith("EMBER-1-MinMaxCalibration\n")
    # the same samples from a folder of .npz files; the cache alone (its algorithm read from
    # it); trtexec's `--int8 --calib=CACHE`: the same plan each time
    assert build("b.plan", "--calib-data", str(tmp_path / "dir"), "--calibrator", "minmax") \
        == plan
    assert build("c.plan", "--calib-cache", str(cache)) == plan
    assert main(["bench", f"--onnx={tmp_path / 'm.onnx'}", "--int8", f"--calib={cache}",
                 "--device=cpu", f"--saveEngine={tmp_path / 'd.plan'}", "--skipInference"]) == 0
    assert (tmp_path / "d.plan").read_bytes() == plan
    # the plan runs its convs and matmul on int8
    manifest = ember.Runtime("cpu").load(str(tmp_path / "a.plan")).manifest
    assert [s["params"]["in_dtypes"][0] for s in _linear(manifest)] == ["int8"] * 3
    capsys.readouterr()

    for flags, message in [
        (["--calib-data", str(tmp_path / "calib.npz")], "--calib-data calibrate an INT8 build: "
                                                        "give --int8"),
        (["--int8"], "the model has no Q/DQ nodes and the config no int8_calibrator"),
        (["--int8", "--calib-data", str(tmp_path / "calib.npz"), "--calibrator", "kl"],
         "--calibrator 'kl': one of entropy, minmax, percentile, legacy"),
        (["--int8", "--calibrator", "minmax"], "give the data to calibrate on (--calib-data)"),
        (["--int8", "--calib-data", str(tmp_path / "none")], "no such file or folder"),
        (["--int8", "--calib-data", str(tmp_path / "extra.npz")],
         "calibration data #0 has arrays 'x', 'mask'; the network's inputs are 'x'"),
        (["--int8", "--calib-data", str(tmp_path / "bad.npz")],
         "'x' is [5, 3, 16, 16]; the input is [2, 3, 16, 16], so give [k*2, 3, 16, 16]")]:
        assert main(["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "e.plan"),
                     *flags]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "e.plan").exists()


def _entropy_loop(hist: np.ndarray, edges: np.ndarray, levels: int = 128) -> float:
    """The entropy search written out candidate by candidate (TensorRT's published steps)."""
    counts = hist.astype(np.float64).copy()
    counts[0] = counts[1]
    best, best_i = np.inf, len(counts)
    for i in range(levels, len(counts) + 1):
        p = counts[:i].copy()
        p[-1] += counts[i:].sum()
        level = np.arange(i) * levels // i
        nonzero = counts[:i] > 0
        sums = np.bincount(level, weights=counts[:i], minlength=levels)
        used = np.bincount(level, weights=nonzero, minlength=levels)
        q = np.where(nonzero, sums[level] / np.maximum(used[level], 1), 0.0)
        p, q = p / p.sum(), q / q.sum()
        if np.any(q[p > 0] == 0):
            continue
        divergence = np.sum(p[p > 0] * np.log(p[p > 0] / q[p > 0]))
        if divergence <= best + 1e-12:
            best, best_i = divergence, i
    return float(edges[best_i])


@pytest.mark.parametrize("seed", range(4))
def test_entropy_threshold_equals_the_search_written_out(seed):
    rng = np.random.default_rng(seed)
    values = np.abs(np.concatenate([rng.standard_normal(20_000) * rng.uniform(0.5, 2),
                                    rng.standard_t(3, 500)]))
    hist, edges = np.histogram(values, bins=512, range=(0, values.max()))
    assert entropy_amax(hist, edges) == pytest.approx(_entropy_loop(hist, edges), rel=1e-6)


def test_a_dynamic_input_calibrates_at_the_profiles_opt_shape():
    from ember.compiler.builder import OptimizationProfile

    model = _mlp()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    batches = [{"x": np.random.default_rng(i).standard_normal((2, 8, 32)).astype(np.float32)}
               for i in range(4)]
    config = _int8_config(calibrator(IInt8MinMaxCalibrator, batches))
    config.add_optimization_profile(OptimizationProfile({"x": ((1, 8, 32), (2, 8, 32),
                                                               (4, 8, 32))}))
    manifest, sections = build_model(model, config)
    assert [s["params"]["in_dtypes"][0] for s in _linear(manifest)] == ["int8", "int8"]
    feed = {"x": np.random.default_rng(99).standard_normal((3, 8, 32)).astype(np.float32)}
    got = _execute(manifest, sections, feed)
    assert got.shape == (3, 8, 16) and _rel(got, _float64(_mlp(), {"x": feed["x"]})) < 5e-2
    # without a profile there is no shape to calibrate at
    config = _int8_config(calibrator(IInt8MinMaxCalibrator, batches))
    with pytest.raises(EmberError, match="input 'x' dim 0 is dynamic; give an optimization"):
        build_model(model, config)


def test_calibration_is_a_progress_phase_a_monitor_can_cancel():
    """"Calibrating" (inside "Building plan", before the passes): a step per batch; ember's own
    calibrator announces how many (2 arrays of 3 batches each: 6), a TensorRT-style one 0 (it
    is read until get_batch returns None). A monitor's False at a batch cancels the build."""
    from ember.compiler.calibrate import DataCalibrator
    from ember.compiler.progress import PhaseTimes
    from ember.errors import BuildCancelled
    from tests.api.test_progress_monitor import Recorder

    model = _cnn()
    shape = _shape(model)
    data = [{"x": np.random.default_rng(i).standard_normal((3 * shape[0], *shape[1:]))
             .astype(np.float32)} for i in range(2)]
    config = _int8_config(DataCalibrator(data))
    config.progress_monitor = monitor = Recorder()
    build_model(model, config)
    assert ("start", "Calibrating", "Building plan", 6) in monitor.events
    assert monitor.steps("Calibrating") == [1, 2, 3, 4, 5, 6]
    order = [e[1] for e in monitor.phases() if e[0] == "start"]
    assert order.index("Calibrating") < order.index("Running passes")

    config = _int8_config(calibrator(IInt8MinMaxCalibrator, _batches(model, count=4)))
    config.progress_monitor = times = PhaseTimes(inner := Recorder())
    build_model(model, config)
    assert ("start", "Calibrating", "Building plan", 0) in inner.events
    assert inner.steps("Calibrating") == [1, 2, 3, 4] and times.totals["Calibrating"] > 0

    config = _int8_config(calibrator(IInt8MinMaxCalibrator, _batches(model, count=4)))
    config.progress_monitor = Recorder(cancel_at=("Calibrating", 2))
    with pytest.raises(BuildCancelled, match="'Calibrating', 2"):
        build_model(model, config)
