"""Results whose length depends on the data (NonZero, Compress, Unique, NonMaxSuppression,
TopK with a run-time K): the op's step binds a data-dependent symbol when the plan runs, memory
is planned for its bound, and the steps after it (CUDA kernels too, in GPU plans) take the length
found. Checked against onnxruntime, with lengths from 0 to the bound on one engine, with a
dynamic input, and with hostile manifests."""

from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from xdsl.context import Context

from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model
from ember.compiler.inspect_plan import symbols_text
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.ort_compat import for_onnxruntime
from ember.errors import EmberError, PlanError, StepError
from ember.passes.convert_onnx_to_nn import ConvertOnnxToNN
from ember.runtime.engine import Runtime
from ember.runtime.logger import Logger, Severity
from ember.runtime.plan import plan_bytes
from ember.runtime.trt_types import IOutputAllocator

SILENT = Logger(Severity.INTERNAL_ERROR)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def _io(name, dtype, shape):
    return h.make_tensor_value_info(name, dtype, shape)


def _engine(model, arch=None, profiles=()):
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch, autotune=False,
                                                          profiles=list(profiles)))
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine, manifest


def _ort(model, feeds):
    session = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


def _nonzero_chain():
    """NonZero, then ops on its [rank, n] result: a transpose, a cast, a sum and a gather."""
    nodes = [h.make_node("NonZero", ["x"], ["nz"], name="nonzero"),
             h.make_node("Transpose", ["nz"], ["t"]),
             h.make_node("Cast", ["t"], ["y"], to=T.FLOAT),
             h.make_node("ReduceSum", ["y"], ["s"], keepdims=0),
             h.make_node("Flatten", ["x"], ["flat"], axis=0),
             h.make_node("Gather", ["flat", "nz"], ["g"], axis=1)]
    return _model(nodes, [_io("x", T.FLOAT, [3, 4])],
                  [_io("y", T.FLOAT, None), _io("s", T.FLOAT, None),
                   _io("g", T.FLOAT, None)])


@pytest.mark.parametrize("arch", [None, "sm_90"])
def test_nonzero_lengths_from_zero_to_the_bound_on_one_engine(arch):
    model = _nonzero_chain()
    engine, manifest = _engine(model, arch)
    assert manifest["symbols"] == {"nonzero0": [0, 12, 12]}
    (binder,) = [s for s in manifest["steps"] if s.get("binds")]
    assert binder["template"] == "nonzero" and binder["binds"] == {"nonzero0": [0, 1]}
    assert arch is None or binder.get("device") == "cpu"  # a host step in a GPU plan
    assert symbols_text(manifest) == "nonzero0 (0, 12, 12; bound by step nonzero_0)"
    context = engine.create_execution_context()
    assert tuple(context.get_tensor_shape("y")) == (-1, 2)  # not known before a run
    rng = np.random.default_rng(0)
    for density in (0.0, 0.3, 1.0, 0.6):
        x = (rng.random((3, 4)) < density).astype(np.float32) * rng.standard_normal((3, 4))
        x = x.astype(np.float32)
        got = context.execute({"x": x})
        want = _ort(model, {"x": x})
        for name in ("y", "s", "g"):
            assert got[name].shape == want[name].shape, (density, name)
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6)
        assert tuple(context.get_tensor_shape("y")) == (np.count_nonzero(x), 2)


def test_the_bound_follows_a_dynamic_input_at_its_max():
    model = _model([h.make_node("NonZero", ["x"], ["nz"])], [_io("x", T.INT32, ["N", 4])],
                   [_io("nz", T.INT64, None)])
    profile = OptimizationProfile()
    profile.set_shape("x", (1, 4), (2, 4), (5, 4))
    engine, manifest = _engine(model, profiles=[profile])
    assert manifest["symbols"]["nonzero0"] == [0, 20, 20]  # 5 x 4 at the profile's max
    context = engine.create_execution_context()
    for n in (1, 5, 3):
        x = np.random.default_rng(n).integers(-1, 2, (n, 4)).astype(np.int32)
        np.testing.assert_array_equal(context.execute({"x": x})["nz"], np.stack(np.nonzero(x)))


def test_compress_at_run_time_and_a_constant_condition_as_a_gather():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    run_time = _model([h.make_node("Compress", ["x", "c"], ["y"], axis=1)],
                      [_io("x", T.FLOAT, [4, 6]), _io("c", T.BOOL, [5])],
                      [_io("y", T.FLOAT, None)])
    engine, manifest = _engine(run_time)
    assert manifest["symbols"] == {"compress0": [0, 5, 5]}  # the condition is shorter
    context = engine.create_execution_context()
    for c in ([1, 0, 1, 1, 0], [0] * 5, [1] * 5):
        cond = np.array(c, bool)
        np.testing.assert_array_equal(context.execute({"x": x, "c": cond})["y"],
                                      np.compress(cond, x, axis=1))
    cond = numpy_helper.from_array(np.array([0, 1, 1, 0, 0, 1, 1], bool), "c")
    constant = _model([h.make_node("Compress", ["x", "c"], ["y"])],
                      [_io("x", T.FLOAT, [4, 6])], [_io("y", T.FLOAT, None)], [cond])
    module = import_onnx(constant)
    ConvertOnnxToNN().apply(Context(), module)
    text = str(module)
    assert "nn.gather" in text and "nn.compress" not in text and "data_symbols" not in text
    engine, manifest = _engine(constant)
    assert "symbols" not in manifest
    np.testing.assert_array_equal(engine.create_execution_context().execute({"x": x})["y"],
                                  np.compress(numpy_helper.to_array(cond), x))


def test_a_constant_condition_on_a_dynamic_input():
    """Without an axis, the flattened input's length is symbolic ("6*N"), not its bound."""
    cond = numpy_helper.from_array(np.array([1, 0, 0, 1, 1], bool), "c")
    model = _model([h.make_node("Compress", ["x", "c"], ["y"])],
                   [_io("x", T.FLOAT, ["N", 6])], [_io("y", T.FLOAT, None)], [cond])
    profile = OptimizationProfile()
    profile.set_shape("x", (1, 6), (2, 6), (4, 6))
    engine, manifest = _engine(model, profiles=[profile])
    assert set(manifest["symbols"]) == {"N"}  # no data-dependent symbol: a gather
    context = engine.create_execution_context()
    for n in (1, 3):
        x = np.arange(6 * n, dtype=np.float32).reshape(n, 6)
        np.testing.assert_array_equal(context.execute({"x": x})["y"],
                                      np.compress(numpy_helper.to_array(cond), x))


@pytest.mark.parametrize("attrs", [{}, {"sorted": 0}, {"axis": 0}, {"axis": 1, "sorted": 0}])
def test_unique_matches_onnxruntime(attrs):
    node = h.make_node("Unique", ["x"], ["y", "indices", "inverse", "counts"], **attrs)
    model = _model([node], [_io("x", T.FLOAT, [4, 3])],
                   [_io(n, T.FLOAT if n == "y" else T.INT64, None)
                    for n in ("y", "indices", "inverse", "counts")], opset=11)
    engine, _ = _engine(model)
    x = np.array([[1, 2, 1], [3, 2, 1], [1, 2, 1], [0, 0, 5]], np.float32)
    got = engine.create_execution_context().execute({"x": x})
    for name, want in _ort(model, {"x": x}).items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def _nms(max_output=None):
    inputs = ["boxes", "scores", "max_output" if max_output is None else "limit", "iou",
              "score"]
    inits = [] if max_output is None else [
        numpy_helper.from_array(np.array([max_output], np.int64), "limit")]
    node = h.make_node("NonMaxSuppression", inputs, ["selected"], center_point_box=0)
    ios = [_io("boxes", T.FLOAT, [2, 6, 4]), _io("scores", T.FLOAT, [2, 3, 6])]
    if max_output is None:
        ios.append(_io("max_output", T.INT64, [1]))
    ios += [_io("iou", T.FLOAT, [1]), _io("score", T.FLOAT, [1])]
    return _model([node], ios, [_io("selected", T.INT64, None)], inits, opset=11)


def _nms_feeds(seed):
    rng = np.random.default_rng(seed)
    corner = rng.random((2, 6, 2)).astype(np.float32)
    boxes = np.concatenate([corner, corner + rng.random((2, 6, 2)).astype(np.float32) * 0.5],
                           -1)
    return {"boxes": boxes, "scores": rng.random((2, 3, 6)).astype(np.float32),
            "iou": np.array([0.3], np.float32), "score": np.array([0.2], np.float32)}


def test_non_max_suppression_matches_onnxruntime():
    model = _nms()
    engine, manifest = _engine(model)
    assert manifest["symbols"] == {"nms0": [0, 36, 36]}  # 2 batches x 3 classes x 6 boxes
    context = engine.create_execution_context()
    for seed, limit in ((0, 2), (1, 0), (2, 6), (3, 100)):
        feeds = {**_nms_feeds(seed), "max_output": np.array([limit], np.int64)}
        got = context.execute(feeds)["selected"]
        np.testing.assert_array_equal(got, _ort(model, feeds)["selected"])
    bounded = _nms(max_output=2)
    engine, manifest = _engine(bounded)
    assert manifest["symbols"] == {"nms0": [0, 12, 12]}  # a constant limit bounds it
    feeds = _nms_feeds(4)
    np.testing.assert_array_equal(engine.create_execution_context().execute(feeds)["selected"],
                                  _ort(bounded, feeds)["selected"])


def test_topk_with_a_run_time_k_and_no_declared_shape():
    model = _model([h.make_node("TopK", ["x", "k"], ["v", "i"], axis=1)],
                   [_io("x", T.FLOAT, [2, 7]), _io("k", T.INT64, [1])],
                   [_io("v", T.FLOAT, None), _io("i", T.INT64, None)], opset=11)
    engine, manifest = _engine(model)
    assert manifest["symbols"] == {"topk0": [0, 7, 7]}
    context = engine.create_execution_context()
    x = np.random.default_rng(5).standard_normal((2, 7)).astype(np.float32)
    for k in (3, 0, 7):
        feeds = {"x": x, "k": np.array([k], np.int64)}
        got, want = context.execute(feeds), _ort(model, feeds)
        np.testing.assert_array_equal(got["v"], want["v"])
        np.testing.assert_array_equal(got["i"], want["i"])
    with pytest.raises(EmberError, match="k=8 is out of range"):
        context.execute({"x": x, "k": np.array([8], np.int64)})


def test_bound_host_memory_gets_the_length_found():
    engine, _ = _engine(_nonzero_chain())
    context = engine.create_execution_context()
    x = np.zeros((3, 4), np.float32)
    x[1, 2] = x[2, 0] = 1.0
    outputs = {n: np.full(context.get_max_output_size(n) // 4, -7, np.float32)
               for n in ("y", "s", "g")}
    assert [a.size for a in outputs.values()] == [24, 1, 24]  # the bound: 12 x 2
    context.set_tensor_address("x", x)
    for name, array in outputs.items():
        context.set_tensor_address(name, array)
    assert context.execute_async_v3(0)
    assert tuple(context.get_tensor_shape("y")) == (2, 2)
    np.testing.assert_array_equal(outputs["y"][:4], [1, 2, 2, 0])
    assert outputs["y"][4] == -7  # nothing written past the length found


class _Allocator(IOutputAllocator):
    """Host memory as TensorRT's Python samples write an output allocator (a numpy array for a
    CPU engine), growing when a run needs more."""

    def __init__(self):
        super().__init__()
        self.memory = np.zeros(0, np.uint8)
        self.calls, self.shapes = [], []

    def reallocate_output(self, tensor_name, memory, size, alignment):
        self.calls.append((tensor_name, size, alignment))
        if size > self.memory.nbytes:
            self.memory = np.zeros(size, np.uint8)
        return self.memory

    def notify_shape(self, tensor_name, shape):
        self.shapes.append((tensor_name, tuple(shape)))


def test_an_output_allocator_gets_the_size_and_the_shape():
    engine, _ = _engine(_nonzero_chain())
    context = engine.create_execution_context()
    allocator = _Allocator()
    assert context.set_output_allocator("y", allocator)
    assert context.get_output_allocator("y") is allocator
    s, g = np.zeros(1, np.float32), np.zeros(24, np.float32)
    context.set_tensor_address("s", s)
    context.set_tensor_address("g", g)
    for count in (3, 7, 0):
        x = np.zeros((3, 4), np.float32)
        x.reshape(-1)[:count] = 1.0
        context.set_tensor_address("x", x)
        assert context.execute_async_v3(0)
        y = allocator.memory[:count * 8].view(np.float32).reshape(count, 2)
        np.testing.assert_array_equal(y, np.stack(np.nonzero(x), 1))
        assert allocator.calls[-1] == ("y", count * 8, 256)
        assert allocator.shapes[-1] == ("y", (count, 2))
        assert s[0] == np.stack(np.nonzero(x)).sum()
    with pytest.raises(EmberError, match="has an output allocator"):
        context.set_tensor_address("y", np.zeros(24, np.float32))
    with pytest.raises(EmberError, match="has an address set"):
        context.set_output_allocator("s", _Allocator())
    with pytest.raises(EmberError, match="not an IOutputAllocator"):
        context.set_output_allocator("g", object())
    assert context.set_output_allocator("y", None) and context.get_output_allocator("y") is None


# -- hostile manifests ----------------------------------------------------------------------

MANIFEST, SECTIONS = build_model(_nonzero_chain(), BuilderConfig(autotune=False))


def _binder(m):
    return next(s for s in m["steps"] if s.get("binds"))


def _drop_binds(m):
    del _binder(m)["binds"]


def _bind_input_symbol(m):
    _binder(m)["binds"] = {"nonzero0": [0, 1], "other": [0, 0]}


def _bind_wrong_dim(m):
    _binder(m)["binds"] = {"nonzero0": [0, 0]}


def _bind_bad_result(m):
    _binder(m)["binds"] = {"nonzero0": [3, 1]}


def _bind_twice(m):
    later = [s for s in m["steps"] if not s.get("binds")][-1]
    later["binds"] = {"nonzero0": [0, 0]}


def _unbound(m):
    m["symbols"]["spare"] = [0, 4, 4]


@pytest.mark.parametrize("mutate, message", [
    (_drop_binds, "uses the data-dependent symbol 'nonzero0' before a step binds it"),
    (_bind_input_symbol, "not an unbound data-dependent symbol"),
    (_bind_wrong_dim, "binds 'nonzero0' from dim 0"),
    (_bind_bad_result, "from a bad place"),
    (_bind_twice, "not an unbound data-dependent symbol"),
    (_unbound, "no step binds the data-dependent symbol\\(s\\) spare"),
])
def test_hostile_binds_are_plan_errors(mutate, message):
    manifest = copy.deepcopy(MANIFEST)
    mutate(manifest)
    with pytest.raises(PlanError, match=message):
        Runtime(SILENT, device="cpu").deserialize_cuda_engine(plan_bytes(manifest, SECTIONS))


def test_an_input_sized_by_a_data_symbol_is_a_plan_error():
    model = _model([h.make_node("NonZero", ["x"], ["nz"])], [_io("x", T.FLOAT, [3, 4])],
                   [_io("nz", T.INT64, None)])
    manifest, sections = build_model(model, BuilderConfig(autotune=False))
    manifest["inputs"][0]["shape"] = manifest["buffers"][0]["shape"] = ["nonzero0", 4]
    manifest["steps"][0]["params"]["in_shapes"] = [["nonzero0", 4]]
    with pytest.raises(PlanError, match="input 'x' is sized by a data-dependent symbol"):
        Runtime(SILENT, device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))


def test_a_length_past_the_bound_is_a_step_error():
    manifest = copy.deepcopy(MANIFEST)
    manifest["symbols"]["nonzero0"] = [0, 3, 3]  # (the arena is still planned for 12)
    engine = Runtime(SILENT, device="cpu").deserialize_cuda_engine(
        plan_bytes(manifest, SECTIONS))
    context = engine.create_execution_context()
    context.execute({"x": np.eye(3, 4, dtype=np.float32)})  # 3 non-zeros: fits
    x = np.eye(3, 4, dtype=np.float32)
    x[0, 3] = 1.0
    with pytest.raises(StepError, match="length 4 \\('nonzero0'\\) is more than the 3"):
        context.execute({"x": x})


@pytest.mark.cuda
def test_nonzero_chain_on_the_gpu():
    """The host step binds the length; the CUDA kernels after it take it as a size argument."""
    from ember.compiler.builder import detect_arch
    from ember.runtime.cuda import cuda_available

    if not cuda_available():
        pytest.skip("needs a GPU")
    model = _nonzero_chain()
    manifest, sections = build_model(model, BuilderConfig(target_arch=detect_arch()))
    assert any(s.get("cuda") for s in manifest["steps"])
    context = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context()
    rng = np.random.default_rng(1)
    for density in (0.5, 0.0, 1.0):
        x = ((rng.random((3, 4)) < density) * rng.standard_normal((3, 4))).astype(np.float32)
        got, want = context.execute({"x": x}), _ort(model, {"x": x})
        for name in ("y", "s", "g"):
            assert got[name].shape == want[name].shape
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6)


@pytest.mark.cuda
def test_an_output_allocator_on_the_gpu():
    from ember.compiler.builder import detect_arch
    from ember.runtime import cuda

    if not cuda.cuda_available():
        pytest.skip("needs a GPU")

    class Device(IOutputAllocator):
        def __init__(self):
            super().__init__()
            self.buffer, self.shape = None, None

        def reallocate_output_async(self, tensor_name, memory, size, alignment, stream):
            if self.buffer is None or self.buffer.nbytes < size:
                self.buffer = cuda.DeviceBuffer(max(size, 16))
            return self.buffer.ptr

        def notify_shape(self, tensor_name, shape):
            self.shape = tuple(shape)

    manifest, sections = build_model(_nonzero_chain(), BuilderConfig(target_arch=detect_arch()))
    context = Runtime("cuda").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context()
    x = np.zeros((3, 4), np.float32)
    x[0, 1] = x[2, 3] = 2.0
    dx = cuda.DeviceBuffer(x.nbytes)
    dx.upload(x)
    context.set_tensor_address("x", dx.ptr)
    allocator = Device()
    context.set_output_allocator("y", allocator)
    stream = cuda.Stream()
    assert context.execute_async_v3(stream.handle)
    stream.synchronize()
    assert allocator.shape == (2, 2)
    y = np.empty((2, 2), np.float32)
    allocator.buffer.download(y)
    np.testing.assert_array_equal(y, [[0, 1], [2, 3]])
