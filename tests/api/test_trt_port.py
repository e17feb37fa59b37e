"""TensorRT's Python sample flows, run with `import ember as trt` and no other change.

The flows are written as NVIDIA/TensorRT's `samples/python` write them: the ONNX ResNet-50
parser sample (`introductory_parser_samples/onnx_resnet50.py`) with its `common.py` helpers,
dynamic shapes with two optimization profiles, a custom ILogger, and the engine inspector.
Each runs on the CPU (the helpers' "device" memory is host memory: `tests/api/trt_common.py`)
and, marked `cuda`, on the GPU with cudart device buffers, `set_tensor_address` and
`execute_async_v3`. Results are checked against onnxruntime.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ember as trt
from ember.compiler.models import light_model_path
from ember.runtime.cuda import cuda_available
from tests.api import trt_common as common
from tests.dynamic_models import cnn

BACKENDS = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")])]


@pytest.fixture(autouse=True)
def _cpu_builds(request, monkeypatch):
    """Builders target the GPU present, as TensorRT's do; the CPU flows build CPU plans even on
    a GPU machine (as on one without a GPU), so their host buffers meet a CPU engine."""
    if request.node.get_closest_marker("cuda"):  # the GPU variants
        return
    from ember.compiler import builder

    monkeypatch.setattr(builder, "detect_arch", lambda: None)


@pytest.fixture(params=BACKENDS)
def backend(request):
    common.use_backend(common.CudaBackend() if request.param == "cuda" else common.CpuBackend())
    yield request.param
    common.use_backend(common.CpuBackend())


def _check_close(got: np.ndarray, want: np.ndarray, backend: str) -> None:
    """Exact to FP32 rounding on the CPU; on the GPU the builder allows TF32 (as TensorRT's
    does by default), whose 10-bit mantissas give ~1e-3 relative error per dot product."""
    if backend == "cpu":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        return
    rel_l2 = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert rel_l2 < 5e-2, rel_l2


def _ort(model: onnx.ModelProto | str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feed)


# -- the ONNX ResNet-50 parser sample, as the sample writes it -------------------------------------
class ModelData:
    MODEL_PATH = str(light_model_path("resnet50"))
    INPUT_SHAPE = (3, 224, 224)
    # We can convert TensorRT data types to numpy types with trt.nptype()
    DTYPE = trt.float32


TRT_LOGGER = trt.Logger(trt.Logger.WARNING)


def build_engine_onnx(model_file):
    builder = trt.Builder(TRT_LOGGER)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    config = builder.create_builder_config()
    parser = trt.OnnxParser(network, TRT_LOGGER)

    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, common.GiB(1))
    # Load the Onnx model and parse it in order to populate the TensorRT network.
    with open(model_file, "rb") as model:
        if not parser.parse(model.read()):
            print("ERROR: Failed to parse the ONNX file.")
            for error in range(parser.num_errors):
                print(parser.get_error(error))
            return None

    engine_bytes = builder.build_serialized_network(network, config)
    runtime = trt.Runtime(TRT_LOGGER)
    return runtime.deserialize_cuda_engine(engine_bytes)


def load_normalized_test_case(image, pagelocked_buffer):
    # The sample resizes a JPEG with PIL; here the "image" is an HWC uint8 array already 224².
    def normalize_image(image):
        return (image.transpose([2, 0, 1]).astype(trt.nptype(ModelData.DTYPE)).ravel()
                / 255.0 - 0.45) / 0.225

    np.copyto(pagelocked_buffer, normalize_image(image))
    return image


# light_resnet50's activations grow ~10x per block (no trained BatchNorm statistics): its logits
# are all ~9.6e18 and its softmax a flat 0.001, which checks little. The test's copy of the
# model also outputs a first-stage and a fourth-stage activation, which vary.
PROBES = ["r15", "r139"]


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    model = onnx.load(ModelData.MODEL_PATH)
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(p) for p in PROBES)
    path = tmp_path_factory.mktemp("resnet50") / "ResNet50.onnx"
    onnx.save(model, str(path))
    return str(path)


def test_onnx_resnet50_sample(backend, resnet50_file):
    engine = build_engine_onnx(resnet50_file)
    inputs, outputs, bindings = common.allocate_buffers(engine)
    context = engine.create_execution_context()
    image = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    with common.CudaStreamContext() as stream:
        load_normalized_test_case(image, inputs[0].host)
        trt_outputs = common.do_inference(context, engine=engine, bindings=bindings,
                                          inputs=inputs, outputs=outputs, stream=stream)
        common.free_buffers(inputs, outputs)

    assert engine.device == backend  # the GPU variant really ran on the GPU
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert names[1:] == ["gpu_0/softmax_1", *PROBES]
    x = inputs[0].host.reshape(1, *ModelData.INPUT_SHAPE)
    wants = _ort(resnet50_file, {names[0]: x})
    assert trt_outputs[0].shape == (1000,)
    for got, want in zip(trt_outputs, wants, strict=True):
        assert want.std() > 0.05 * np.abs(want).mean() or want.size == 1000  # they vary
        _check_close(got, want.ravel(), backend)


# -- dynamic shapes with two optimization profiles -------------------------------------------------
def build_dynamic_engine(model_bytes, logger):
    with trt.Builder(logger) as builder, builder.create_network(0) as network, \
            trt.OnnxParser(network, logger) as parser, \
            builder.create_builder_config() as config:
        assert parser.parse(model_bytes)
        small = builder.create_optimization_profile()
        small.set_shape("x", (1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))
        config.add_optimization_profile(small)
        large = builder.create_optimization_profile()
        large.set_shape("x", (5, 3, 8, 8), (8, 3, 8, 8), (16, 3, 8, 8))
        config.add_optimization_profile(large)
        serialized = builder.build_serialized_network(network, config)
    with trt.Runtime(logger) as runtime:
        return runtime.deserialize_cuda_engine(serialized)


class RecordingLogger(trt.ILogger):
    def __init__(self):
        trt.ILogger.__init__(self)
        self.messages = []

    def log(self, severity, msg):
        self.messages.append((severity, msg))

    def texts(self, severity):
        return [m for s, m in self.messages if s == severity]


def test_dynamic_shapes_with_two_profiles(backend):
    model = cnn("N")
    logger = RecordingLogger()
    engine = build_dynamic_engine(model.SerializeToString(), logger)
    assert engine.num_optimization_profiles == 2
    assert engine.get_tensor_shape("x") == (-1, 3, 8, 8)
    assert engine.get_tensor_profile_shape("x", 1) == ((5, 3, 8, 8), (8, 3, 8, 8), (16, 3, 8, 8))
    rng = np.random.default_rng(2)
    for profile, batch in ((0, 3), (1, 12)):
        with engine.create_execution_context() as context, common.CudaStreamContext() as stream:
            context.set_optimization_profile_async(profile, stream.stream)
            assert context.infer_shapes() == ["x"]
            assert context.set_input_shape("x", (batch, 3, 8, 8))
            assert context.infer_shapes() == []
            assert context.get_tensor_shape("y") == (batch, 10)
            inputs, outputs, bindings = common.allocate_buffers(engine, profile, context)
            x = rng.standard_normal((batch, 3, 8, 8)).astype(np.float32)
            inputs[0].host = x
            out = common.do_inference(context, engine, bindings, inputs, outputs, stream)[0]
            common.free_buffers(inputs, outputs)
        _check_close(out.reshape(batch, 10), _ort(model, {"x": x})[0], backend)
    # a shape outside the active profile: False, the reason logged as an ERROR, shapes kept
    context = engine.create_execution_context()
    assert context.set_input_shape("x", (3, 3, 8, 8))
    assert not context.set_input_shape("x", (12, 3, 8, 8))
    assert context.get_tensor_shape("x") == (3, 3, 8, 8)
    assert any("[1, 4]" in m for m in logger.texts(trt.ILogger.ERROR))
    # a profile that cannot take the shapes already set: False, logged, the profile kept
    assert context.set_optimization_profile_async(1, 0) is False
    assert context.active_optimization_profile == 0
    assert any(m.startswith("set_optimization_profile_async(1)")
               for m in logger.texts(trt.ILogger.ERROR))


def test_allocate_buffers_from_a_profile_max():
    engine = build_dynamic_engine(cnn("N").SerializeToString(), trt.Logger())
    inputs, outputs, _ = common.allocate_buffers(engine, profile_idx=1)
    assert inputs[0].host.size == 16 * 3 * 8 * 8 and outputs[0].host.size == 16 * 10
    with pytest.raises(ValueError, match="dynamic shape"):
        common.allocate_buffers(engine)


# -- the logger ------------------------------------------------------------------------------------
def test_custom_logger_receives_builder_parser_and_runtime_messages():
    logger = RecordingLogger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(cnn(1).SerializeToString())
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    plan = builder.build_serialized_network(network, config)
    assert isinstance(plan, trt.IHostMemory) and plan.nbytes == len(bytes(plan)) > 0
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    severities = {s for s, _ in logger.messages}
    assert {trt.Logger.INFO, trt.Logger.VERBOSE} <= severities
    assert all(isinstance(s, trt.ILogger.Severity) and isinstance(m, str)
               for s, m in logger.messages)
    info = logger.texts(trt.Logger.INFO)
    assert any(m.startswith("parsed an ONNX model of 6 node(s)") for m in info)
    assert any(m.startswith(f"built a plan of {engine.num_layers} kernel(s)") for m in info)
    assert any(m.startswith("loaded a plan") for m in info)
    assert any("convert-onnx-to-nn" in m for m in logger.texts(trt.Logger.VERBOSE))

    bad = cnn(1)
    bad.graph.node[1].op_type = "NoSuchOp"
    parser = trt.OnnxParser(trt.Builder(logger).create_network(0), logger)
    assert not parser.parse(bad.SerializeToString())
    error = parser.get_error(0)
    assert (error.code(), error.node(), error.node_operator()) == (
        trt.ErrorCode.UNSUPPORTED_NODE, 1, "NoSuchOp")
    assert str(error) in logger.texts(trt.Logger.ERROR)


def test_default_logger_filters_by_severity(capsys):
    logger = trt.Logger(trt.Logger.INFO)
    trt.Runtime(logger).deserialize_cuda_engine(_plan())
    assert "[ember] [I] loaded a plan" in capsys.readouterr().err
    trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(_plan())
    assert capsys.readouterr().err == ""


def _named_cnn(batch: int) -> onnx.ModelProto:
    model = cnn(batch)
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{i}"
    return model


def _plan() -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network(0)
    assert trt.OnnxParser(network, builder.logger).parse(_named_cnn(2).SerializeToString())
    return builder.build_serialized_network(network, builder.create_builder_config())


# -- the engine inspector --------------------------------------------------------------------------
def test_engine_inspector_json_has_tensorrts_keys():
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(_plan())
    assert engine.profiling_verbosity == trt.ProfilingVerbosity.DETAILED
    context = engine.create_execution_context()
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    doc = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    assert doc["Bindings"] == ["x", "y"]
    assert len(doc["Layers"]) == engine.num_layers
    for index, layer in enumerate(doc["Layers"]):
        assert {"Name", "LayerType", "Inputs", "Outputs", "TacticName", "Metadata"} <= set(layer)
        for tensor in layer["Inputs"] + layer["Outputs"]:
            assert set(tensor) == {"Name", "Location", "Dimensions", "Format/Datatype"}
        assert json.loads(inspector.get_layer_information(
            index, trt.LayerInformationFormat.JSON)) == layer
    first, last = doc["Layers"][0], doc["Layers"][-1]
    assert first["LayerType"] == "conv" and first["Metadata"] == (
        "[ONNX Layer: Conv_0] [ONNX Layer: Relu_1]")
    assert first["Inputs"][0] == {"Name": "x", "Location": "Host", "Dimensions": [2, 3, 8, 8],
                                  "Format/Datatype": "Row major linear FP32"}
    assert last["Outputs"][0]["Name"] == "y" and last["Outputs"][0]["Dimensions"] == [2, 10]


# -- the engine's and the context's TensorRT queries -----------------------------------------------
def test_engine_queries_use_tensorrts_types():
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(_plan())
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert names == ["x", "y"]
    assert [engine.get_tensor_mode(n) for n in names] == [trt.TensorIOMode.INPUT,
                                                          trt.TensorIOMode.OUTPUT]
    assert engine.get_tensor_dtype("x") == trt.float32 == trt.DataType.FLOAT
    assert trt.nptype(engine.get_tensor_dtype("x")) is np.float32
    assert np.dtype(trt.float16) == np.float16 and trt.float16.itemsize == 2
    with pytest.raises(TypeError):
        trt.nptype(trt.bfloat16)
    shape = engine.get_tensor_shape("x")
    assert isinstance(shape, trt.Dims) and shape == (2, 3, 8, 8) and trt.volume(shape) == 384
    assert trt.Dims4(2, 3, 8, 8) == shape and trt.DimsHW(8, 4).w == 4
    assert engine.get_tensor_format("x") == trt.TensorFormat.LINEAR
    assert engine.get_tensor_format_desc("x").startswith("Row major linear FLOAT")
    assert bytes(engine.serialize()) == bytes(_plan())
    assert engine.device_memory_size >= engine.arena_bytes > 0


def test_execute_v2_and_bound_host_memory():
    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(_plan())
    context = engine.create_execution_context()
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = np.empty((2, 10), np.float32)
    assert context.execute_v2([x.ctypes.data, y.ctypes.data])
    np.testing.assert_allclose(y, _ort(cnn(2), {"x": x})[0], rtol=1e-5, atol=1e-6)
    y2 = np.empty((2, 10), np.float32)
    context.set_tensor_address("x", x)  # ember: a numpy array is a host address too
    context.set_tensor_address("y", y2)
    assert context.execute_async_v3(0) and np.array_equal(y, y2)
    assert context.get_tensor_address("y") == y2.ctypes.data


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_execute_v2_on_cudart_device_buffers():
    """TensorRT's synchronous execute_v2 with cudart allocations, on a plan for the GPU here."""
    from cuda.bindings import runtime as cudart

    engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(_plan())
    assert engine.device == "cuda"
    context = engine.create_execution_context()
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = np.empty((2, 10), np.float32)
    dx = common.cuda_call(cudart.cudaMalloc(x.nbytes))
    dy = common.cuda_call(cudart.cudaMalloc(y.nbytes))
    try:
        common.cuda_call(cudart.cudaMemcpy(dx, x.ctypes.data, x.nbytes,
                                           cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
        # a pageable cudaMemcpy may return before its DMA lands; ember runs on its own stream
        common.cuda_call(cudart.cudaDeviceSynchronize())
        assert context.execute_v2([dx, dy])
        common.cuda_call(cudart.cudaMemcpy(y.ctypes.data, dy, y.nbytes,
                                           cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost))
    finally:
        common.cuda_call(cudart.cudaFree(dx))
        common.cuda_call(cudart.cudaFree(dy))
    _check_close(y, _ort(cnn(2), {"x": x})[0], "cuda")


def test_strongly_typed_network_keeps_the_networks_types():
    """FP16 in the ONNX graph stays FP16 without any precision flag; flags that would change
    types are refused (tests/api/test_never_ignored.py)."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal((16, 8)).astype(np.float16)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Cast", ["x"], ["xh"], to=onnx.TensorProto.FLOAT16),
         onnx.helper.make_node("MatMul", ["xh", "w"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4, 16])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, [4, 8])],
        [onnx.numpy_helper.from_array(w, "w")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)],
                                   ir_version=8)
    builder = trt.Builder(trt.Logger())
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    assert trt.OnnxParser(network, builder.logger).parse(model.SerializeToString())
    engine = trt.Runtime(builder.logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, builder.create_builder_config()))
    assert engine.get_tensor_dtype("x") == trt.float32
    assert engine.get_tensor_dtype("y") == trt.float16
    x = rng.standard_normal((4, 16)).astype(np.float32)
    y = engine.create_execution_context().execute({"x": x})["y"]
    assert y.dtype == np.float16
    want = x.astype(np.float16).astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_allclose(y.astype(np.float64), want, rtol=1e-2, atol=1e-2)


def test_an_io_type_tensorrt_lacks_is_named_not_guessed():
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, [2])])
    engine = trt.compile(onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), device="cpu")
    with pytest.raises(trt.EmberError, match="tensor 'x': numpy dtype float64 has no"):
        engine.get_tensor_dtype("x")
    assert engine.tensors["x"].dtype == np.float64  # ember's own answer
