"""BitCast: the legalizer against onnx.reference (every width, through a CPU plan), and the
CUDA kernel run on the emulated GPU (g++) giving numpy's view bit for bit."""

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from ember.codegen.emit_cuda import emit_step
from ember.compiler.builder import BuilderConfig, build_model
from ember.errors import UnsupportedError
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.codegen import simt_emulator

CASES = [(np.float32, np.int32), (np.int64, np.float64), (np.bool_, np.uint8),
         (np.float16, np.int16), (np.int8, np.uint8)]


def _model(src, dst, shape=(3, 4)):
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
    graph = helper.make_graph(
        [helper.make_node("BitCast", ["x"], ["y"], to=to)], "g",
        [helper.make_tensor_value_info("x", helper.np_dtype_to_tensor_dtype(np.dtype(src)),
                                       list(shape))],
        [helper.make_tensor_value_info("y", to, list(shape))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)])


def _data(src, shape=(3, 4)):
    raw = np.random.default_rng(0).integers(0, 256, (*shape, np.dtype(src).itemsize),
                                            dtype=np.uint8)
    x = raw.view(src).reshape(shape)
    return (x != 0) if np.dtype(src) == np.bool_ else x


@pytest.mark.parametrize("src, dst", CASES, ids=lambda t: np.dtype(t).name)
def test_bitcast_plans_match_the_reference(src, dst):
    model, x = _model(src, dst), _data(src)
    manifest, sections = build_model(model, BuilderConfig())
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections)) \
        .create_execution_context().execute({"x": x})["y"]
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_different_widths_are_refused():
    with pytest.raises(UnsupportedError, match="differ in width"):
        build_model(_model(np.float32, np.int64), BuilderConfig())


@pytest.mark.skipif(not simt_emulator.available(), reason="needs g++")
@pytest.mark.parametrize("src, dst", CASES[:3], ids=lambda t: np.dtype(t).name)
def test_the_cuda_kernel_copies_the_bits(tmp_path, src, dst):
    x = _data(src, (70,))
    params = {"in_shapes": [[70]], "in_dtypes": [np.dtype(src).name], "out_shapes": [[70]],
              "out_dtypes": [np.dtype(dst).name], "to": np.dtype(dst).name}
    name, spec = emit_step({"name": "bitcast_0", "template": "bitcast", "params": params})
    got = simt_emulator.run(spec, name, [x], [70], np.dtype(dst), tmp_path)
    np.testing.assert_array_equal(got, x.view(dst))
