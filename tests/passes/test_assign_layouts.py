"""assign-layouts: the same numbers on the CPU executor with the pass on and off (light_* models
and small conv / pool / residual graphs), few reformats, NHWC network I/O when allowed, the
layer table's formats, and the CUDA pool template's NHWC form (NVRTC, and its C on the host)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.commands import layer_table
from ember.compiler.models import LIGHT_MODELS, light_model_case
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import run_passes
from ember.dialects import ember_context
from ember.dialects.attributes import attribute_value
from ember.dialects.kernel import LaunchOp
from ember.errors import EmberError
from ember.passes.assign_layouts import AssignLayouts
from ember.runtime.cpu_kernels.reduction import pool as cpu_pool
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from ember.runtime.trt_types import TensorFormat
from tests.onnx_cases import node_graph_model

rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _cpu_builds_use_nhwc(monkeypatch):
    """These tests exercise NHWC: let CPU builds run conv in it (off by default: slower)."""
    from ember.passes import assign_layouts

    monkeypatch.setattr(assign_layouts, "CPU_CONV_NHWC", True)
F32 = onnx.TensorProto.FLOAT


def _w(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _model(nodes: list[tuple], inputs: dict[str, np.ndarray], outputs: list[str],
           initializers: dict[str, np.ndarray]) -> onnx.ModelProto:
    return node_graph_model(nodes, inputs, outputs, initializers, opset=17)


def _run(model, feeds: dict[str, np.ndarray], config: BuilderConfig | None = None):
    manifest, sections = build_model(model, config or BuilderConfig())
    engine = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine, engine(feeds)


def _reformats(manifest: dict) -> list[str]:
    return [s["params"]["reformat"] for s in manifest["steps"] if "reformat" in s["params"]]


def _nhwc_steps(manifest: dict) -> list[str]:
    return [s["template"] for s in manifest["steps"] if s["params"].get("layout") == "NHWC"]


# -- the light models ------------------------------------------------------------------------------

# reformats per model (NCHW->NHWC where a run of NHWC convs starts, NHWC->NCHW before a flatten)
LIGHT_REFORMATS = {"bvlc_alexnet": 0, "densenet121": 2, "inception_v1": 2, "inception_v2": 1,
                   "resnet50": 1, "shufflenet": 0, "squeezenet": 1, "vgg19": 2, "zfnet512": 2}


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_same_numbers(name):
    path, inputs, expected = light_model_case(name)
    manifest, _, got = _run(str(path), inputs)
    _, _, off = _run(str(path), inputs, BuilderConfig(assign_layouts=False))
    (got,), (off,) = got.values(), off.values()
    np.testing.assert_allclose(got, off, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    assert len(_reformats(manifest)) == LIGHT_REFORMATS[name]
    if name == "resnet50":
        assert len(_nhwc_steps(manifest)) >= 52  # every conv but the first (C_in = 3)
        assert len(_reformats(manifest)) <= 2


# -- small graphs ----------------------------------------------------------------------------------

X = _w(1, 8, 10, 10)
W = {f"w{i}": _w(8, 8, 3, 3) * 0.3 for i in range(4)}
B = {f"b{i}": _w(8) for i in range(4)}
PAD = {"pads": [1, 1, 1, 1]}


def _conv(i: int, x: str, out: str, **attrs) -> tuple:
    return ("Conv", [x, f"w{i}", f"b{i}"], out, {**PAD, **attrs})


GRAPHS = {
    # conv -> relu -> conv, + residual, relu; max pool, conv; global average pool, flatten, gemm
    "residual_pool_head": (
        [_conv(0, "x", "c0"), ("Relu", ["c0"], "r0", {}), _conv(1, "r0", "c1"),
         ("Add", ["c1", "x"], "s", {}), ("Relu", ["s"], "r1", {}),
         ("MaxPool", ["r1"], "p", {"kernel_shape": [3, 3], "strides": [2, 2],
                                   "pads": [1, 1, 1, 1]}),
         _conv(2, "p", "c2"), ("AveragePool", ["c2"], "ap", {"kernel_shape": [2, 2],
                                                            "ceil_mode": 1}),
         _conv(3, "ap", "c3"), ("GlobalAveragePool", ["c3"], "g", {}),
         ("Flatten", ["g"], "f", {}), ("Gemm", ["f", "wg", "bg"], "y", {"transB": 1})],
        {"wg": _w(5, 8), "bg": _w(5)}, ["y"]),
    # branches concatenated on channels, a per-channel scale [8, 1, 1], a squeeze-excitation
    # multiply by an [N, C, 1, 1] tensor, a channel softmax, a slice and a pad
    "concat_se_softmax": (
        [_conv(0, "x", "c0"), _conv(1, "x", "c1"), ("Concat", ["c0", "c1"], "cat", {"axis": 1}),
         ("Mul", ["cat", "scale"], "sc", {}),
         ("Conv", ["sc", "w16", "b0"], "c2", {"pads": [0, 0, 0, 0]}),
         ("GlobalAveragePool", ["c2"], "gp", {}), ("Sigmoid", ["gp"], "sg", {}),
         ("Mul", ["c2", "sg"], "se", {}), _conv(2, "se", "c3"),
         ("Softmax", ["c3"], "sm", {"axis": 1}),
         ("Slice", ["sm", "starts", "ends", "axes"], "sl", {}),
         ("Pad", ["sl", "pads"], "y", {})],
        {"scale": _w(16, 1, 1), "w16": _w(8, 16, 1, 1),
         "starts": np.array([1, 2], np.int64), "ends": np.array([7, 9], np.int64),
         "axes": np.array([1, 3], np.int64),
         "pads": np.array([0, 1, 0, 2, 0, 0, 1, 0], np.int64)}, ["y"]),
    # two outputs: an NHWC conv's result and a reduction over channels (keepdims)
    "two_outputs_reduce": (
        [_conv(0, "x", "c0"), _conv(1, "c0", "c1"), _conv(2, "c1", "c2"),
         ("ReduceMean", ["c2"], "y", {"axes": [1], "keepdims": 1})],
        {}, ["c1", "y"]),
}


def _graph(case: str) -> onnx.ModelProto:
    nodes, inits, outputs = GRAPHS[case]
    return _model(nodes, {"x": X}, outputs, {**W, **B, **inits})


@pytest.mark.parametrize("case", sorted(GRAPHS))
def test_small_graph_same_numbers(case):
    model = _graph(case)
    manifest, _, got = _run(model, {"x": X})
    _, _, off = _run(model, {"x": X}, BuilderConfig(assign_layouts=False))
    want = ReferenceEvaluator(model).run(None, {"x": X})
    assert "conv" in _nhwc_steps(manifest), layer_table(manifest)
    assert len(_reformats(manifest)) <= 3, layer_table(manifest)
    for out, expected in zip(model.graph.output, want, strict=True):
        np.testing.assert_allclose(got[out.name], off[out.name], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[out.name], expected, rtol=1e-4, atol=1e-4)
    assert all(s["format"] == "NCHW" for s in manifest["inputs"] + manifest["outputs"]
               if len(s["shape"]) == 4)


def test_pool_runs_nhwc_and_residual_is_physical():
    manifest, _, _ = _run(_graph("residual_pool_head"), {"x": X})
    assert "pool" in _nhwc_steps(manifest)
    fused = [s for s in manifest["steps"] if "epilogue" in s["params"]
             and s["params"].get("layout") == "NHWC"]
    # the residual add reads x through the input's reformat, in NHWC: [1, 10, 10, 8]
    assert any(s["params"]["epilogue"]["in_shapes"] == [[1, 10, 10, 8]] for s in fused)
    conv = fused[0]["params"]
    assert conv["in_shapes"][:2] == [[1, 10, 10, 8], [8, 3, 3, 8]]  # NHWC input, OHWI weight


# -- network I/O -----------------------------------------------------------------------------------

def test_nhwc_io_when_allowed():
    model = _model([_conv(0, "x", "c0"), ("Relu", ["c0"], "r", {}), _conv(1, "r", "y")],
                   {"x": X}, ["y"], {**W, **B})
    config = BuilderConfig()
    config.set_allowed_io_formats("NCHW", "NHWC")
    x_nhwc = np.ascontiguousarray(X.transpose(0, 2, 3, 1))
    manifest, engine, got = _run(model, {"x": x_nhwc}, config)
    assert manifest["inputs"][0]["format"] == "NHWC"
    assert manifest["inputs"][0]["shape"] == [1, 10, 10, 8]
    assert engine.get_tensor_format("x") == engine.get_tensor_format("y") == TensorFormat.HWC
    assert _reformats(manifest) == []
    (want,) = ReferenceEvaluator(model).run(None, {"x": X})
    np.testing.assert_allclose(got["y"], want.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    # by default the same model keeps ONNX's NCHW at its edges
    manifest, engine, got = _run(model, {"x": X})
    assert engine.get_tensor_format("x") == TensorFormat.LINEAR
    assert manifest["inputs"][0]["shape"] == [1, 8, 10, 10]
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4)


def test_io_format_names():
    config = BuilderConfig()
    config.set_allowed_io_formats("LINEAR", "HWC")
    assert config.allowed_io_formats == ("NCHW", "NHWC")
    with pytest.raises(EmberError, match="unknown I/O format"):
        config.set_allowed_io_formats("CHW32")


def test_resnet_input_stays_nchw_when_first_conv_wants_it():
    """NHWC allowed, but conv1 has C_in = 3 (NCHW): the input keeps NCHW, no extra reformat."""
    path, inputs, expected = light_model_case("resnet50")
    config = BuilderConfig()
    config.set_allowed_io_formats("NCHW", "NHWC")
    manifest, engine, got = _run(str(path), inputs, config)
    assert engine.get_tensor_format(manifest["inputs"][0]["name"]) == TensorFormat.LINEAR
    assert len(_reformats(manifest)) <= 2
    np.testing.assert_allclose(next(iter(got.values())), expected, rtol=1e-3, atol=1e-4)


# -- policy switches and the layer table -----------------------------------------------------------

def test_conv_nhwc_off_keeps_conv_nchw():
    """What GPU builds get until the CUDA conv template reads `layout: NHWC`."""
    module = import_onnx(_graph("residual_pool_head"))
    run_passes(module, ["convert-onnx-to-nn", "fold-constants", "convert-nn-to-kernel"])
    AssignLayouts(conv_nhwc=False).apply(ember_context(), module)
    module.verify()
    launches = [op for op in module.walk() if isinstance(op, LaunchOp)]
    assert launches and all("layout" not in attribute_value(op.params) for op in launches)
    assert "NHWC" not in str(module)


def test_layer_table_shows_formats():
    manifest, _, _ = _run(_graph("residual_pool_head"), {"x": X})
    table = layer_table(manifest)
    conv_lines = [line for line in table.splitlines() if line.strip().startswith("conv_")]
    assert any(" NHWC " in line and line.split()[2] == "NHWC" for line in conv_lines), table
    reformat = next(line for line in table.splitlines() if " reformat " in line)
    assert reformat.split()[2] == "NCHW" and "NHWC" in reformat.split()[4]
    assert f"reformats: {len(_reformats(manifest))}" in table


# -- the CUDA pool template in NHWC ----------------------------------------------------------------

POOL_CASES = [(fn, ceil, pads, kernel, strides) for fn in ("max", "avg", "lp")
              for ceil, pads, kernel, strides in ((False, [0, 0, 0, 0], [3, 3], [2, 2]),
                                                  (True, [1, 0, 1, 1], [2, 3], [1, 2]))]


def _pool_params(x: np.ndarray, fn: str, ceil: bool, pads, kernel, strides) -> dict:
    params = {"fn": fn, "kernel": kernel, "strides": strides, "pads": pads,
              "dilations": [1, 1], "ceil_mode": ceil, "count_include_pad": fn == "avg" and ceil,
              "p": 2.0, "in_shapes": [list(x.shape)], "in_dtypes": ["float32"],
              "out_dtypes": ["float32"], "layout": "NHWC"}
    nchw = cpu_pool([x.transpose(0, 3, 1, 2)], {**params, "layout": "NCHW"})[0]
    params["out_shapes"] = [list(nchw.transpose(0, 2, 3, 1).shape)]
    return params, nchw.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("case", POOL_CASES)
def test_cuda_pool_nhwc_compiles(case):
    from ember.codegen.nvrtc import compile_cuda
    from ember.codegen.templates import emitter

    params, _ = _pool_params(_w(2, 7, 6, 5), *case)
    spec = emitter("pool")("pool_nhwc", params)
    assert "NHWC" in spec.source
    compile_cuda(spec.source, name="pool_nhwc", arch="sm_90")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("case", POOL_CASES)
def test_cuda_pool_nhwc_numbers_on_host(case, tmp_path):
    """The emitted kernel body, compiled as C with one thread, equals the numpy semantics."""
    from ember.codegen.templates import emitter

    x = _w(2, 7, 6, 5)
    params, want = _pool_params(x, *case)
    source = emitter("pool")("k", params).source
    source = ("#include <math.h>\n#include <stddef.h>\n#define __int_as_float(v) INFINITY\n"
              "#define __device__\n#define __forceinline__ static inline\n"
              "struct d { int x; }; static struct d blockIdx = {0}, blockDim = {1}, "
              "threadIdx = {0}, gridDim = {1};\n"
              + source.replace('extern "C" __global__ void', "void")
              .replace("__restrict__", "restrict"))
    (tmp_path / "k.c").write_text(source)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(tmp_path / "k.so"),
                    str(tmp_path / "k.c"), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(tmp_path / "k.so"))
    out = np.zeros(want.shape, np.float32)
    lib.k(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
