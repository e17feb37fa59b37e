"""fuse-strided-reads: elementwise kernels read the input of the transposes and slices before them
through strides; the movement kernels do not run, and the results do not change."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from ember.compiler.builder import BuilderConfig, build_model
from ember.passes import fuse_strided_reads
from ember.passes.fuse_strided_reads import view_strides
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.codegen import simt_emulator


def _model(shape=(2, 4, 12), start=4, end=8, heads=2, perm=(0, 2, 1, 3), users=1, step=1):
    """x -> Slice(last axis, start:end:step) -> Reshape [.., heads, d] -> Transpose(perm) ->
    Relu -> Neg (+ the transposed tensor itself as a second output when `users` is 2)."""
    b, s, _ = shape
    d = len(range(start, end, step)) // heads
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (
        ("starts", [start]), ("ends", [end]), ("axes", [2]), ("steps", [step]),
        ("shape", [b, s, heads, d]))]
    nodes = [h.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["sl"],
                         name="slice"),
             h.make_node("Reshape", ["sl", "shape"], ["heads"], name="reshape"),
             h.make_node("Transpose", ["heads"], ["t"], perm=list(perm), name="transpose"),
             h.make_node("Relu", ["t"], ["r"], name="relu"),
             h.make_node("Neg", ["r"], ["y"], name="neg")]
    out_shape = [[b, s, heads, d][p] for p in perm]
    outputs = [h.make_tensor_value_info("y", T.FLOAT, out_shape)]
    if users == 2:
        outputs.append(h.make_tensor_value_info("t", T.FLOAT, out_shape))
    graph = h.make_graph(nodes, "strided", [h.make_tensor_value_info("x", T.FLOAT, list(shape))],
                         outputs, inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _reference(x, start=4, end=8, heads=2, perm=(0, 2, 1, 3), step=1):
    b, s, _ = x.shape
    t = x[:, :, start:end:step].reshape(b, s, heads, -1).transpose(perm)
    return -np.maximum(t, 0)


def test_view_strides():
    # split the last dim, merge two contiguous dims, a transposed pair that cannot merge
    assert view_strides([2, 4, 4], [48, 12, 1], [2, 4, 2, 2]) == [48, 12, 2, 1]
    assert view_strides([2, 4, 4], [16, 4, 1], [2, 16]) == [16, 1]
    assert view_strides([2, 4, 4], [16, 1, 4], [2, 16]) is None
    assert view_strides([3], [1], [1, 3, 1]) == [3, 1, 1]
    assert view_strides([2, 3], [3, 1], [7]) is None  # another element count


@pytest.mark.parametrize("perm", [(0, 2, 1, 3), (0, 2, 3, 1)])
def test_a_slice_reshape_transpose_chain_is_read_through_strides(perm):
    """Q's [2, 4, 4] columns 4..8 of x, split into 2 heads and transposed (perm 0213, and K's
    0231 across rows: small, so read scattered too): the CPU plan runs one elementwise step
    reading x at offset 4 with the composed strides, no slice or transpose, and gives numpy's
    result exactly."""
    manifest, sections = build_model(_model(perm=perm), BuilderConfig())
    steps = manifest["steps"]
    assert [s["template"] for s in steps] == ["elementwise"]
    strides = {(0, 2, 1, 3): [48, 2, 12, 1], (0, 2, 3, 1): [48, 2, 1, 12]}[perm]
    assert steps[0]["params"]["in_views"] == [{"input": 0, "offset": 4, "strides": strides}]
    assert steps[0]["params"]["in_shapes"] == [[2, 4, 12]]
    assert set(steps[0]["origin"]) >= {"slice", "reshape", "transpose", "relu", "neg"}
    x = np.random.default_rng(0).standard_normal((2, 4, 12)).astype(np.float32)
    got = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context().execute({"x": x})["y"]
    np.testing.assert_array_equal(got, _reference(x, perm=perm))


def test_a_reversed_slice_reads_through_negative_strides(tmp_path):
    """Columns 7 down to 4 (step -1), split into heads and transposed: offset 7, the last
    stride -1; the CPU plan and the CUDA C (emulated) give numpy's result exactly."""
    from ember.codegen.emit_cuda import emit_step
    from ember.runtime.manifest import decode

    model = _model(start=7, end=3, step=-1)
    x = np.random.default_rng(3).standard_normal((2, 4, 12)).astype(np.float32)
    want = _reference(x, start=7, end=3, step=-1)
    manifest, sections = build_model(model, BuilderConfig())
    (step,) = manifest["steps"]
    assert step["params"]["in_views"] == [{"input": 0, "offset": 7, "strides": [48, -2, 12, -1]}]
    got = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context().execute({"x": x})["y"]
    np.testing.assert_array_equal(got, want)
    if simt_emulator.available():
        gpu, _ = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False))
        params = decode(gpu["steps"][0]["params"])
        name, spec = emit_step({"name": "e", "template": "elementwise", "params": params})
        got = simt_emulator.run(spec, name, [x], params["out_shapes"][0], np.dtype("float32"),
                                tmp_path)
        np.testing.assert_array_equal(got, want)


def test_fusions_after_it_leave_strided_reads_alone():
    """fuse-strided-reads before fuse-elementwise (a pipeline written by hand): the relu that
    reads through strides keeps its views and is not inlined into the neg after it (the fused
    kernel would read the input as if it were the output's shape)."""
    from ember.compiler.builder import pipeline_for
    from ember.passes import make_pass

    config = BuilderConfig()
    names = [p.name for p in pipeline_for(config)]
    names.remove("fuse-strided-reads")
    names.insert(names.index("fuse-elementwise"), "fuse-strided-reads")
    manifest, sections = build_model(_model(), config, passes=[make_pass(n) for n in names])
    views = [s for s in manifest["steps"] if "in_views" in s["params"]]
    assert len(views) == 1 and len(manifest["steps"]) == 2
    x = np.random.default_rng(4).standard_normal((2, 4, 12)).astype(np.float32)
    got = Runtime("cpu").deserialize_cuda_engine(
        plan_bytes(manifest, sections)).create_execution_context().execute({"x": x})["y"]
    np.testing.assert_array_equal(got, _reference(x))


def test_a_view_reading_outside_its_input_is_refused():
    from xdsl.utils.exceptions import VerifyException

    from ember.dialects import ember_context
    from ember.dialects.weights import parse_module

    text = """builtin.module {
  func.func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {
    %y = kernel.elementwise(%x) attributes {views = [
        {input = 0 : i64, offset = 4 : i64, strides = array<i64: 8, 1>}]}
        : (tensor<2x8xf32>) -> tensor<2x8xf32> {
    ^bb0(%0: f32):
      kernel.yield %0 : f32
    }
    func.return %y : tensor<2x8xf32>
  }
}"""
    with pytest.raises(VerifyException, match=r"reads elements 4\.\.19, outside its input"):
        parse_module(ember_context(), text).verify()


def test_a_transpose_with_another_user_stays():
    """The transposed tensor is also an output: its kernel runs (the elementwise op is not its
    only user), and the elementwise kernel reads its result."""
    manifest, _ = build_model(_model(users=2), BuilderConfig())
    templates = [s["template"] for s in manifest["steps"]]
    assert "transpose" in templates
    assert all("in_views" not in s["params"] for s in manifest["steps"])


def test_a_large_scattered_read_keeps_its_transpose(monkeypatch):
    """Across rows (K's perm 0231) and larger than SCATTERED_BYTES: the transpose kernel stays
    (it reads and writes coalesced); the slice before it still folds into nothing else."""
    monkeypatch.setattr(fuse_strided_reads, "SCATTERED_BYTES", 64)
    manifest, _ = build_model(_model(perm=(0, 2, 3, 1)), BuilderConfig())
    assert "transpose" in [s["template"] for s in manifest["steps"]]


def test_the_strided_elementwise_kernels_cuda_c_matches_numpy(tmp_path):
    """The sm_90 build's elementwise kernel (CUDA C read through the view's strides) on emulated
    threads (g++) against the CPU kernel, on the same input buffer."""
    from ember.codegen.emit_cuda import emit_step
    from ember.runtime.cpu_kernels import KERNELS
    from ember.runtime.manifest import decode

    if not simt_emulator.available():
        pytest.skip("g++ not found: the emulator compiles the kernel's CUDA C with it")
    manifest, _ = build_model(_model(perm=(0, 2, 3, 1)),
                              BuilderConfig(target_arch="sm_90", autotune=False))
    (step,) = [s for s in manifest["steps"] if s["template"] == "elementwise"]
    params = decode(step["params"])
    assert params["in_views"]
    x = np.random.default_rng(1).standard_normal((2, 4, 12)).astype(np.float32)
    (want,) = KERNELS["elementwise"]([x], params)
    name, spec = emit_step({"name": "elementwise", "template": "elementwise", "params": params})
    assert "read through strides [48, 2, 1, 12] from element 4" in spec.source
    got = simt_emulator.run(spec, name, [x], params["out_shapes"][0], np.dtype("float32"),
                            tmp_path)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, _reference(x, perm=(0, 2, 3, 1)))


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
def test_the_strided_read_on_the_gpu():
    from ember.compiler.builder import detect_arch

    for perm in ((0, 2, 1, 3), (0, 2, 3, 1)):
        manifest, sections = build_model(_model(perm=perm), BuilderConfig(
            target_arch=detect_arch(), autotune=False))
        assert "transpose" not in [s["template"] for s in manifest["steps"]]
        x = np.random.default_rng(2).standard_normal((2, 4, 12)).astype(np.float32)
        got = Runtime("cuda").deserialize_cuda_engine(
            plan_bytes(manifest, sections)).create_execution_context().execute({"x": x})["y"]
        np.testing.assert_array_equal(got, _reference(x, perm=perm))


def test_onnx_model_is_valid():
    onnx.checker.check_model(_model(), full_check=True)
