"""TensorRT's bound-address path: set_tensor_address + execute_async_v3 on a caller's stream."""

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import EmberError
from ember.runtime import cuda
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

rng = np.random.default_rng(3)
W = rng.standard_normal((16, 8)).astype(np.float32)


def _model():
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Relu", ["m"], ["r"]),
             h.make_node("Flatten", ["r"], ["y"], axis=0)]  # the output is a view of an arena
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [4, 16])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 32])],
                         [numpy_helper.from_array(W, "w")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_cpu_engines_run_the_bound_path_on_host_memory():
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(*build_model(_model())))
    ctx = engine.create_execution_context()
    with pytest.raises(EmberError, match="no address bound for 'x'"):
        ctx.execute_async_v3(0)
    x = rng.standard_normal((4, 16)).astype(np.float32)
    y = np.full((1, 32), np.nan, np.float32)
    ctx.set_tensor_address("x", x.ctypes.data)
    ctx.set_tensor_address("y", y.ctypes.data)
    assert ctx.execute_async_v3(0)  # a CPU run has finished when it returns
    np.testing.assert_allclose(y, np.maximum(x @ W, 0).reshape(1, 32), rtol=1e-5, atol=1e-6)
    with pytest.raises(EmberError, match="host address"):
        ctx.set_tensor_address("x", 0)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.cuda_available(), reason="no CUDA GPU visible")
def test_execute_async_v3_on_bound_addresses():
    plan = plan_bytes(*build_model(_model(), BuilderConfig(target_arch=cuda.Device().arch)))
    engine = Runtime("cuda").deserialize_cuda_engine(plan)
    ctx = engine.create_execution_context()
    x = rng.standard_normal((4, 16)).astype(np.float32)
    want = np.maximum(x @ W, 0).reshape(1, 32)
    with cuda.DeviceBuffer(x.nbytes) as dx, cuda.DeviceBuffer(want.nbytes) as dy:
        dx.upload(x)
        with pytest.raises(EmberError, match="not 16-byte aligned"):
            ctx.set_tensor_address("x", dx.ptr + 4)
        assert ctx.set_tensor_address("x", dx.ptr) and ctx.set_tensor_address("y", dy.ptr)
        assert ctx.get_tensor_address("y") == dy.ptr
        stream = cuda.Stream()
        for _ in range(3):
            assert ctx.execute_async_v3(stream.handle)
        stream.synchronize()
        got = np.empty_like(want)
        dy.download(got)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.cuda_available(), reason="no CUDA GPU visible")
def test_output_that_views_an_input_is_copied_to_its_address():
    graph = h.make_graph([h.make_node("Flatten", ["x"], ["y"], axis=0)], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [4, 16])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 64])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    plan = plan_bytes(*build_model(model, BuilderConfig(target_arch=cuda.Device().arch)))
    ctx = Runtime("cuda").deserialize_cuda_engine(plan).create_execution_context()
    x = rng.standard_normal((4, 16)).astype(np.float32)
    with cuda.DeviceBuffer(x.nbytes) as dx, cuda.DeviceBuffer(x.nbytes) as dy:
        dx.upload(x)
        ctx.set_tensor_address("x", dx.ptr)
        ctx.set_tensor_address("y", dy.ptr)
        stream = cuda.Stream()
        ctx.execute_async_v3(stream.handle)
        stream.synchronize()
        got = np.empty((1, 64), np.float32)
        dy.download(got)
    np.testing.assert_array_equal(got, x.reshape(1, 64))


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.cuda_available(), reason="no CUDA GPU visible")
def test_two_outputs_on_one_buffer_are_both_written():
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"]),
                          h.make_node("Flatten", ["y"], ["z"], axis=0)], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [4, 16])],
                         [h.make_tensor_value_info("y", T.FLOAT, [4, 16]),
                          h.make_tensor_value_info("z", T.FLOAT, [1, 64])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    plan = plan_bytes(*build_model(model, BuilderConfig(target_arch=cuda.Device().arch)))
    ctx = Runtime("cuda").deserialize_cuda_engine(plan).create_execution_context()
    x = rng.standard_normal((4, 16)).astype(np.float32)
    with cuda.DeviceBuffer(x.nbytes) as dx, cuda.DeviceBuffer(x.nbytes) as dy, \
            cuda.DeviceBuffer(x.nbytes) as dz:
        dx.upload(x)
        for name, buf in (("x", dx), ("y", dy), ("z", dz)):
            ctx.set_tensor_address(name, buf.ptr)
        stream = cuda.Stream()
        ctx.execute_async_v3(stream.handle)
        stream.synchronize()
        y, z = np.empty((4, 16), np.float32), np.empty((1, 64), np.float32)
        dy.download(y)
        dz.download(z)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(z, np.maximum(x, 0).reshape(1, 64))


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.cuda_available(), reason="no CUDA GPU visible")
def test_cuda_graph_replay_matches_and_follows_rebinding():
    plan = plan_bytes(*build_model(_model(), BuilderConfig(target_arch=cuda.Device().arch)))
    engine = Runtime("cuda").deserialize_cuda_engine(plan)
    plain = engine.create_execution_context()
    graphed = engine.create_execution_context(cuda_graph=True)
    for seed in range(3):  # execute(): captured once, replayed with new inputs
        x = np.random.default_rng(seed).standard_normal((4, 16)).astype(np.float32)
        np.testing.assert_array_equal(graphed.execute({"x": x})["y"], plain.execute({"x": x})["y"])
    x = rng.standard_normal((4, 16)).astype(np.float32)
    want = np.maximum(x @ W, 0).reshape(1, 32)
    stream = cuda.Stream()
    with cuda.DeviceBuffer(x.nbytes) as dx, cuda.DeviceBuffer(want.nbytes) as dy1, \
            cuda.DeviceBuffer(want.nbytes) as dy2:
        dx.upload(x)
        graphed.set_tensor_address("x", dx.ptr)
        for out in (dy1, dy2):  # rebinding the output re-captures the graph
            graphed.set_tensor_address("y", out.ptr)
            graphed.execute_async_v3(stream.handle)
            stream.synchronize()
            got = np.empty_like(want)
            out.download(got)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
