"""Dynamic shapes: plans built with an optimization profile keep symbolic dims, kernels take
their values as arguments, and one plan runs every shape in the profile's range (CPU executor
everywhere, CUDA with the `cuda` marker), against onnxruntime / onnx.reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model
from ember.compiler.models import light_model_case
from ember.errors import EmberError, PlanError
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import InputError, Runtime
from ember.runtime.plan import plan_bytes
from tests.dynamic_models import attention_block, cnn
from tests.runtime.test_cuda_executor import CASES, _inputs

needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
RNG = np.random.default_rng(0)


def _profile(**shapes) -> OptimizationProfile:
    profile = OptimizationProfile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    return profile


def _engine(model, *profiles, device="cpu", arch=None, **config):
    config.setdefault("autotune", False)
    manifest, sections = build_model(model, BuilderConfig(
        target_arch=arch, profiles=list(profiles), **config))
    return Runtime(device=device).deserialize_cuda_engine(plan_bytes(manifest, sections)), \
        manifest


def _ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


CNN_PROFILE = {"x": ((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))}
ATTN_PROFILE = {"x": ((1, 1, 32), (2, 16, 32), (4, 64, 32))}


def test_cnn_runs_every_batch_of_its_profile_on_cpu():
    model = cnn()
    engine, manifest = _engine(model, _profile(**CNN_PROFILE))
    assert manifest["symbols"] == {"N": [1, 4, 8]}
    assert engine.get_tensor_shape("x") == (-1, 3, 8, 8)
    assert engine.get_tensor_shape("y") == (-1, 10)
    assert engine.get_tensor_profile_shape("x", 0) == CNN_PROFILE["x"]
    for batch in (1, 3, 8):
        x = RNG.random((batch, 3, 8, 8), dtype=np.float32)
        y = engine(x=x)["y"]
        assert y.shape == (batch, 10)
        np.testing.assert_allclose(y, _ort(model, {"x": x}), rtol=1e-5, atol=1e-6)


def test_attention_block_with_dynamic_batch_and_sequence_on_cpu():
    model = attention_block()
    engine, manifest = _engine(model, _profile(**ATTN_PROFILE))
    assert manifest["symbols"] == {"B": [1, 2, 4], "S": [1, 16, 64]}
    for batch, seq in ((1, 1), (2, 16), (3, 7), (4, 64)):
        x = RNG.standard_normal((batch, seq, 32)).astype(np.float32)
        np.testing.assert_allclose(engine(x=x)["y"], _ort(model, {"x": x}), rtol=1e-4,
                                   atol=2e-5)


def test_arena_is_planned_for_the_profile_max():
    dynamic, _ = _engine(cnn(), _profile(**CNN_PROFILE))
    static, _ = _engine(cnn(batch=8))
    assert dynamic.arena_bytes == static.arena_bytes


def test_shapes_outside_the_profile_are_refused_by_name():
    engine, _ = _engine(cnn(), _profile(**CNN_PROFILE))
    with pytest.raises(InputError, match=r"input 'x': dim 0 \('N'\) is 9, outside .*\[1, 8\]"):
        engine(x=np.zeros((9, 3, 8, 8), np.float32))
    with pytest.raises(InputError, match="dim 2 must be 8"):
        engine(x=np.zeros((2, 3, 9, 8), np.float32))
    with pytest.raises(InputError, match="rank 4"):
        engine(x=np.zeros((2, 3, 8), np.float32))


def test_one_symbol_given_two_values_is_refused():
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["a", "b"], ["y"])], "add",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, ["N", 4]),
         onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, ["N", 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    profile = _profile(a=((1, 4), (2, 4), (5, 4)), b=((1, 4), (2, 4), (5, 4)))
    engine, _ = _engine(model, profile)
    ones = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(engine(a=ones, b=ones)["y"], 2 * ones)
    with pytest.raises(InputError, match="another input gives 'N' = 3"):
        engine(a=ones, b=np.ones((2, 4), np.float32))


def test_a_symbol_broadcast_against_a_static_dim_must_equal_it():
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["a", "b"], ["y"])], "add",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, ["N", 4]),
         onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [3, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, 4])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    engine, manifest = _engine(model, _profile(a=((1, 4), (3, 4), (5, 4))))
    assert manifest["constraints"] == [["N", 3]]
    b = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(engine(a=2 * b, b=b)["y"], 3 * b)
    with pytest.raises(InputError, match="'N' is 1, but the model broadcasts it against a dim "
                                         "of 3"):
        engine(a=np.ones((1, 4), np.float32), b=b)


def test_bad_profiles_are_build_errors():
    with pytest.raises(EmberError, match="min ≤ opt ≤ max"):
        _engine(cnn(), _profile(x=((4, 3, 8, 8), (2, 3, 8, 8), (8, 3, 8, 8))))
    with pytest.raises(EmberError, match="fixes it at 3"):
        _engine(cnn(), _profile(x=((1, 1, 8, 8), (1, 3, 8, 8), (1, 4, 8, 8))))
    with pytest.raises(EmberError, match="rank 3"):
        _engine(cnn(), _profile(x=((1, 8, 8), (1, 8, 8), (2, 8, 8))))
    with pytest.raises(EmberError, match="unknown input"):
        _engine(cnn(), _profile(z=((1,), (1,), (2,))))


def test_a_dynamic_model_without_a_profile_names_the_problem():
    with pytest.raises(EmberError, match="optimization profile"):
        _engine(cnn())


def test_min_equal_max_makes_a_dim_static():
    engine, manifest = _engine(cnn(), _profile(x=((2, 3, 8, 8), (2, 3, 8, 8), (2, 3, 8, 8))))
    assert "symbols" not in manifest
    assert engine.get_tensor_shape("x") == (2, 3, 8, 8)


def test_context_shapes_follow_set_input_shape():
    engine, _ = _engine(cnn(), _profile(**CNN_PROFILE))
    context = engine.create_execution_context()
    assert not context.all_binding_shapes_specified
    assert context.get_tensor_shape("y") == (-1, 10)
    context.set_input_shape("x", (5, 3, 8, 8))
    assert context.all_binding_shapes_specified
    assert context.get_tensor_shape("x") == (5, 3, 8, 8)
    assert context.get_tensor_shape("y") == (5, 10)
    assert not context.set_input_shape("x", (0, 3, 8, 8))  # TensorRT's answer; logged
    assert context.get_tensor_shape("x") == (5, 3, 8, 8)


def test_several_profiles_make_one_range_and_each_bounds_its_context():
    small = _profile(x=((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)))
    large = _profile(x=((4, 3, 8, 8), (8, 3, 8, 8), (16, 3, 8, 8)))
    engine, manifest = _engine(cnn(), small, large)
    assert manifest["symbols"] == {"N": [1, 2, 16]}  # opt: the first profile's
    assert engine.num_optimization_profiles == 2
    assert engine.get_tensor_profile_shape("x", 1)[2] == (16, 3, 8, 8)
    context = engine.create_execution_context()
    x = RNG.random((12, 3, 8, 8), dtype=np.float32)
    with pytest.raises(InputError, match=r"\[1, 4\]"):
        context.execute({"x": x})
    context.set_optimization_profile_async(1, 0)
    np.testing.assert_allclose(context.execute({"x": x})["y"], _ort(cnn(), {"x": x}),
                               rtol=1e-5, atol=1e-6)


def test_symbols_in_a_plan_are_validated():
    manifest, sections = build_model(cnn(), BuilderConfig(profiles=[_profile(**CNN_PROFILE)]))
    bad = {**manifest, "symbols": {"N": [4, 2, 8]}}
    with pytest.raises(PlanError, match="bad range"):
        Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(bad, sections))
    bad = {**manifest, "symbols": {"M": [1, 2, 8]}}
    with pytest.raises(PlanError, match="unknown symbol 'N'"):
        Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(bad, sections))
    bad = {**manifest, "symbols": {"N": [1, 2, 2**31]}}  # kernels take sizes as int
    with pytest.raises(PlanError, match="bad range"):
        Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(bad, sections))
    for profiles in (5, [3], [{"x": [[1], [2]]}], [{"x": [["a"], [1], [2]]}]):
        with pytest.raises(PlanError, match="profile"):
            Runtime(device="cpu").deserialize_cuda_engine(
                plan_bytes({**manifest, "profiles": profiles}, sections))
    buffers = [dict(b) for b in manifest["buffers"]]
    buffers[0]["shape"] = ["\u00b2*N", 3, 8, 8]  # a digit to str.isdigit, not to int()
    with pytest.raises(PlanError, match="unknown symbol"):
        Runtime(device="cpu").deserialize_cuda_engine(
            plan_bytes({**manifest, "buffers": buffers}, sections))


def test_switching_profile_rechecks_the_shapes_already_set():
    small = _profile(x=((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)))
    large = _profile(x=((4, 3, 8, 8), (8, 3, 8, 8), (16, 3, 8, 8)))
    engine, _ = _engine(cnn(), small, large)
    context = engine.create_execution_context()
    context.set_optimization_profile_async(1)
    context.set_input_shape("x", (12, 3, 8, 8))
    assert not context.set_optimization_profile_async(0)  # TensorRT's answer; logged
    assert context.active_optimization_profile == 1
    assert context.get_tensor_shape("y") == (12, 10)


def test_a_reshape_that_fixes_the_batch_is_a_build_error():
    path, _, _ = light_model_case("resnet50")  # flattens with a constant [1, 2048]
    model, profile = _dynamic_batch(onnx.load(str(path)), 3)
    with pytest.raises(EmberError, match=r"reshape \(n173\) of \['N', 2048, 1, 1\] to "
                                         r"\[1, 2048\] keeps the element count only"):
        _engine(model, profile)


@pytest.mark.parametrize("name", ["squeezenet"])
def test_light_model_with_dynamic_batch_on_cpu(name):
    path, inputs, expected = light_model_case(name)
    model, profile = _dynamic_batch(onnx.load(str(path)), 3)
    engine, manifest = _engine(model, profile)
    static, _ = build_model(path, BuilderConfig())
    assert len(manifest["steps"]) == len(static["steps"])  # fusion is not lost to symbols
    (name_, x), = inputs.items()
    np.testing.assert_allclose(engine({name_: x})[engine.output_names[0]], expected, rtol=1e-3,
                               atol=1e-4)
    batch = np.concatenate([x, x[:, ::-1] * 0.5, 1 - x])
    got = engine({name_: batch})[engine.output_names[0]]
    for i in range(3):
        np.testing.assert_allclose(got[i:i + 1], engine({name_: batch[i:i + 1]})[
            engine.output_names[0]], rtol=1e-5, atol=1e-6)


BERT_DYNAMIC = Path(__file__).parents[1] / "models" / "bert_tiny_dynamic.onnx"
BERT_PROFILE = {n: ((1, 16), (2, 16), (4, 16)) for n in ("input_ids", "attention_mask")}


def _bert_feeds(batch: int) -> dict[str, np.ndarray]:
    ids = RNG.integers(0, 100, (batch, 16)).astype(np.int64)
    mask = np.ones((batch, 16), np.int64)
    mask[0, 11:] = 0  # a padded row: the mask path (Range over the batch) matters
    return {"input_ids": ids, "attention_mask": mask}


def test_bert_exported_with_a_dynamic_batch_on_cpu():
    """PyTorch's export with dynamic_axes: Shape/Equal/Where/Expand and Range(0, batch) chains
    fold to symbolic forms; attention still fuses (one kernel per layer)."""
    model = onnx.load(str(BERT_DYNAMIC))
    engine, manifest = _engine(model, _profile(**BERT_PROFILE))
    assert manifest["symbols"] == {"batch": [1, 2, 4]}
    assert [s["template"] for s in manifest["steps"]].count("attention") == 2
    for batch in (1, 3, 4):
        feeds = _bert_feeds(batch)
        np.testing.assert_allclose(engine(feeds)["y"], _ort(model, feeds), rtol=1e-4, atol=1e-5)


def test_conv_and_matmul_steps_get_a_kernel_tuned_for_small_batches():
    path, _, _ = light_model_case("squeezenet")
    model, profile = _dynamic_batch(onnx.load(str(path)), 32)
    profile.shapes["data_0"] = (profile.shapes["data_0"][0], (8, 3, 224, 224),
                                profile.shapes["data_0"][2])
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False,
                                                   profiles=[profile]))
    with_variants = [s for s in manifest["steps"] if s["cuda"].get("variants")]
    assert with_variants and all(s["template"] in ("conv", "matmul") for s in with_variants)
    for step in with_variants:
        (variant,) = step["cuda"]["variants"]
        assert variant["when"] == {"N": 2}  # ⌊√(min · opt)⌋ = ⌊√8⌋
        assert variant["kernel"] != step["cuda"]["kernel"]
    from ember.runtime.inspector import layer_table

    assert "| N ≤ 2: conv_" in layer_table(manifest)


BERT_DYNAMIC_SEQ = BERT_DYNAMIC.with_name("bert_tiny_dynamic_seq.onnx")
SEQ_PROFILE = {n: ((1, 1), (2, 16), (4, 32)) for n in ("input_ids", "attention_mask")}


def _seq_feeds(batch: int, seq: int) -> dict[str, np.ndarray]:
    ids = RNG.integers(0, 100, (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    mask[0, seq // 2 + 1:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_bert_with_dynamic_batch_and_sequence_on_cpu():
    """position_ids[:, :seq] becomes a gather at Range(0, seq); the mask's Shape stays a
    (tiny) kernel; attention still fuses."""
    model = onnx.load(str(BERT_DYNAMIC_SEQ))
    engine, manifest = _engine(model, _profile(**SEQ_PROFILE))
    assert manifest["symbols"] == {"batch": [1, 2, 4], "sequence": [1, 16, 32]}
    assert [s["template"] for s in manifest["steps"]].count("attention") == 2
    for batch, seq in ((1, 1), (3, 16), (4, 32), (2, 7)):
        feeds = _seq_feeds(batch, seq)
        np.testing.assert_allclose(engine(feeds)["y"], _ort(model, feeds), rtol=1e-4, atol=1e-5)


def test_a_profile_past_a_sliced_buffer_is_a_build_error():
    long = {n: ((1, 1), (2, 16), (4, 64)) for n in ("input_ids", "attention_mask")}
    with pytest.raises(EmberError, match=r"/bert/embeddings/Slice\) slices 0:sequence of a dim "
                                         r"of 32, and the profile lets sequence reach 64"):
        _engine(onnx.load(str(BERT_DYNAMIC_SEQ)), _profile(**long))


WIDE_SEQ_PROFILE = {n: ((1, 1), (16, 32), (64, 32)) for n in ("input_ids", "attention_mask")}


def test_each_set_of_small_symbols_gets_its_own_kernel():
    manifest, _ = build_model(onnx.load(str(BERT_DYNAMIC_SEQ)), BuilderConfig(
        target_arch="sm_90", autotune=False, profiles=[_profile(**WIDE_SEQ_PROFILE)]))
    whens = [[v["when"] for v in s["cuda"].get("variants", [])] for s in manifest["steps"]
             if s["template"] == "matmul"]
    # small thresholds: batch ⌊√16⌋ = 4, sequence ⌊√32⌋ = 5; both small first
    assert [{"batch": 4, "sequence": 5}, {"sequence": 5}] in whens
    assert all(w and w[0] == {"batch": 4, "sequence": 5} for w in whens)


def _dynamic_batch(model: onnx.ModelProto, max_batch: int):
    inits = {t.name for t in model.graph.initializer}
    profile = OptimizationProfile()
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        shape = [d.dim_value for d in dims]
        dims[0].Clear()
        dims[0].dim_param = "N"
        profile.set_shape(vi.name, (1, *shape[1:]), (2, *shape[1:]), (max_batch, *shape[1:]))
    return model, profile


def _symbolic_case(model: onnx.ModelProto, feeds: dict):
    """dim 0 (size ≥ 2) of each input as a symbol of profile [1, size, 2 * size]."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    profile = OptimizationProfile()
    for vi in model.graph.input:
        value = feeds.get(vi.name)
        if value is None or value.ndim == 0 or value.shape[0] < 2:
            continue
        dim = vi.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = f"d{value.shape[0]}"
        shape = value.shape
        profile.set_shape(vi.name, (1, *shape[1:]), shape, (2 * shape[0], *shape[1:]))
    return model, profile


# template cases whose symbolic form cannot build (an unknown dim) or still runs on the host
SYMBOLIC_EXEMPT: dict[str, str] = {
    **{case: "pads dim 0: N + pads is not a product of symbols (an unknown dim)"
       for case in ("pad_constant", "pad_reflect", "pad_wrap")},
    "slice": "slices dim 0: its length is not a product of symbols (an unknown dim)",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_symbolic_case_builds_every_kernel(case):
    """Each template case with its dim 0 symbolic: NVRTC compiles the kernels, none on the host."""
    if case in SYMBOLIC_EXEMPT:
        pytest.skip(SYMBOLIC_EXEMPT[case])
    model, profile = _symbolic_case(CASES[case], _inputs(CASES[case]))
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False,
                                                   profiles=[profile] if profile.shapes else []))
    on_host = [(s["name"], s["fallback"]) for s in manifest["steps"] if s.get("device") == "cpu"]
    assert not on_host, on_host


# -- on the GPU ---------------------------------------------------------------------------------

@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case", sorted(CASES))
def test_symbolic_case_matches_the_static_plan_on_gpu(case):
    if case in SYMBOLIC_EXEMPT:
        pytest.skip(SYMBOLIC_EXEMPT[case])
    feeds = _inputs(CASES[case])
    if case == "reduce_logsum":
        feeds = {k: np.abs(v) + 0.1 for k, v in feeds.items()}
    model, profile = _symbolic_case(CASES[case], feeds)
    if not profile.shapes:
        pytest.skip("no input dim 0 of size ≥ 2")
    from ember.compiler.builder import detect_arch

    engine, manifest = _engine(model, profile, device="cuda", arch=detect_arch())
    static, _ = _engine(CASES[case], device="cpu")
    assert manifest["symbols"]  # (a kernel that never reads the symbol takes no argument)
    got = engine.create_execution_context().execute(feeds)["y"]
    want = static(feeds)["y"]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _gpu_engine(model, profile, **kw):
    from ember.compiler.builder import detect_arch

    return _engine(model, profile, device="cuda", arch=detect_arch(), **kw)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("graph", [False, True])
def test_cnn_and_attention_run_every_shape_on_gpu(graph):
    for model, profile, shapes in (
            (cnn(), CNN_PROFILE, [(1, 3, 8, 8), (8, 3, 8, 8), (3, 3, 8, 8)]),
            (attention_block(), ATTN_PROFILE, [(1, 1, 32), (4, 64, 32), (3, 7, 32), (2, 16, 32)])):
        engine, manifest = _gpu_engine(model, _profile(**profile))
        assert not [s for s in manifest["steps"] if s.get("device") == "cpu"]
        context = engine.create_execution_context(cuda_graph=graph)
        for shape in shapes:
            x = RNG.standard_normal(shape).astype(np.float32)
            np.testing.assert_allclose(context.execute({"x": x})["y"], _ort(model, {"x": x}),
                                       rtol=1e-4, atol=2e-5)


@needs_gpu
@pytest.mark.cuda
def test_execute_async_v3_with_set_input_shape():
    from ember.runtime import cuda

    model = attention_block()
    engine, _ = _gpu_engine(model, _profile(**ATTN_PROFILE))
    context = engine.create_execution_context(cuda_graph=True)
    stream = cuda.Stream()
    xbuf = cuda.DeviceBuffer(4 * 64 * 32 * 4)
    ybuf = cuda.DeviceBuffer(4 * 64 * 32 * 4)
    context.set_tensor_address("x", xbuf.ptr)
    context.set_tensor_address("y", ybuf.ptr)
    with pytest.raises(InputError, match="set_input_shape"):
        context.execute_async_v3(stream.handle)
    for shape in ((2, 5, 32), (4, 64, 32), (1, 1, 32)):
        x = RNG.standard_normal(shape).astype(np.float32)
        xbuf.upload(x, stream)
        context.set_input_shape("x", shape)
        assert context.get_tensor_shape("y") == shape
        context.execute_async_v3(stream.handle)
        y = np.empty(shape, np.float32)
        cuda.copy_dtoh(y, ybuf.ptr, stream)
        stream.synchronize()
        np.testing.assert_allclose(y, _ort(model, {"x": x}), rtol=1e-4, atol=2e-5)


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("name", ["squeezenet", "densenet121"])
def test_light_model_with_dynamic_batch_on_gpu(name):
    path, inputs, expected = light_model_case(name)
    model, profile = _dynamic_batch(onnx.load(str(path)), 4)
    engine, manifest = _gpu_engine(model, profile)
    assert not [s for s in manifest["steps"] if s.get("device") == "cpu"]
    (name_, x), = inputs.items()
    out = engine.output_names[0]
    np.testing.assert_allclose(engine({name_: x})[out], expected, rtol=1e-3, atol=1e-4)
    batch = np.concatenate([x, x[:, ::-1] * 0.5, 1 - x, x * 0.25])
    cpu, _ = _engine(model, profile)
    np.testing.assert_allclose(engine({name_: batch})[out], cpu({name_: batch})[out],
                               rtol=1e-3, atol=1e-4)


@needs_gpu
@pytest.mark.cuda
def test_bert_exported_with_a_dynamic_batch_on_gpu():
    model = onnx.load(str(BERT_DYNAMIC))
    # autotuned: symbolic steps are timed at the opt shapes (batch 2)
    engine, manifest = _gpu_engine(model, _profile(**BERT_PROFILE), autotune=True)
    assert manifest["autotune"]["steps"] > 0
    assert not [s for s in manifest["steps"] if s.get("device") == "cpu"]
    context = engine.create_execution_context(cuda_graph=True)
    for batch in (4, 1, 3):
        feeds = _bert_feeds(batch)
        np.testing.assert_allclose(context.execute(feeds)["y"], _ort(model, feeds), rtol=1e-4,
                                   atol=1e-5)


@needs_gpu
@pytest.mark.cuda
def test_bert_with_dynamic_batch_and_sequence_on_gpu():
    model = onnx.load(str(BERT_DYNAMIC_SEQ))
    engine, manifest = _gpu_engine(model, _profile(**SEQ_PROFILE), autotune=True)
    assert not [s for s in manifest["steps"] if s.get("device") == "cpu"]
    context = engine.create_execution_context(cuda_graph=True)
    for batch, seq in ((4, 32), (1, 1), (3, 16), (2, 7)):
        feeds = _seq_feeds(batch, seq)
        np.testing.assert_allclose(context.execute(feeds)["y"], _ort(model, feeds), rtol=1e-4,
                                   atol=1e-5)


def test_the_static_length_range_reads_its_length_from_its_type():
    from ember.errors import ShapeError
    from ember.runtime.cpu_kernels.movement import range_

    zero, one = np.array(0), np.array(1)
    np.testing.assert_array_equal(range_([zero, zero, one], {"out_shapes": [[4]]})[0],
                                  np.arange(4))
    with pytest.raises(ShapeError, match="symbolic dim"):  # never an empty array instead
        range_([zero, zero, one], {"out_shapes": [["N"]]})
    half = np.array(0.5, np.float32)  # an ordinary range keeps numpy's arange, in its dtype
    got = range_([half, np.array(3.0, np.float32), half], {"out_shapes": [[5]]})[0]
    np.testing.assert_array_equal(got, np.arange(0.5, 3.0, 0.5, dtype=np.float32))


def test_the_nn_interpreter_runs_a_module_with_symbolic_folds():
    """The reference interpreter binds the inputs' symbols, so the static-length Range (and the
    gather that replaced BERT's position-id slice) get their run-time length there too."""
    from ember.compiler.builder import _apply_profiles
    from ember.compiler.interpret import interpret
    from ember.compiler.onnx_importer import import_onnx
    from ember.compiler.pipeline import resolve_passes, run_passes

    model = onnx.load(str(BERT_DYNAMIC_SEQ))
    proto, _ = _apply_profiles(model, BuilderConfig(profiles=[_profile(**SEQ_PROFILE)]))
    module = import_onnx(proto)
    run_passes(module, resolve_passes("default"))
    feeds = _seq_feeds(3, 7)
    (got,) = interpret(module, feeds).values()
    np.testing.assert_allclose(got, _ort(model, feeds), rtol=1e-4, atol=1e-5)


@needs_gpu
@pytest.mark.cuda
def test_bert_runs_each_small_shape_kernel_on_gpu():
    """A wide profile: shapes that pick the both-small, sequence-small and opt kernels."""
    model = onnx.load(str(BERT_DYNAMIC_SEQ))
    engine, manifest = _gpu_engine(model, _profile(**WIDE_SEQ_PROFILE), autotune=True)
    assert any(len(s["cuda"].get("variants", [])) > 1 for s in manifest["steps"]
               if s["template"] == "matmul")
    context = engine.create_execution_context(cuda_graph=True)
    for batch, seq in ((1, 1), (16, 3), (64, 32), (2, 32), (3, 5)):
        feeds = _seq_feeds(batch, seq)
        np.testing.assert_allclose(context.execute(feeds)["y"], _ort(model, feeds), rtol=1e-4,
                                   atol=1e-5)
