"""The channel-packed NC4HW4 format (assign-layouts `packed`): depthwise / pointwise / pool /
residual chains and MobileNetV2-like blocks, C % 4 == 0 and != 0, give the same numbers with the
format on and off (CPU executor) and match onnx.reference; NC4HW4 network I/O; the CUDA kernels
of its templates compile with NVRTC; `cuda` tests run the chains on the GPU."""

from __future__ import annotations

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.compiler.commands import layer_table
from ember.runtime.cpu_kernels.layout import pack, pack_depthwise_weight, reformat, unpack
from ember.runtime.cpu_kernels.linear import conv as cpu_conv
from ember.runtime.cpu_kernels.reduction import pool as cpu_pool
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from ember.runtime.trt_types import TensorFormat
from tests.onnx_cases import node_graph_model

rng = np.random.default_rng(7)
needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")


def _w(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _run(model, feeds, config: BuilderConfig | None = None, device: str = "cpu"):
    manifest, sections = build_model(model, config or BuilderConfig())
    engine = Runtime(device).deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine, engine(feeds)


def _packed(**kw) -> BuilderConfig:
    return BuilderConfig(packed_format=True, **kw)


def _packed_steps(manifest: dict) -> list[str]:
    """The templates of the steps that write NC4HW4 (reformats left out)."""
    formats = {b["id"]: b.get("format") for b in manifest["buffers"]}
    return [s["template"] for s in manifest["steps"] if "reformat" not in s["params"]
            and any(formats[o] == "NC4HW4" for o in s["outputs"])]


def _reformats(manifest: dict) -> list[str]:
    return [s["params"]["reformat"] for s in manifest["steps"] if "reformat" in s["params"]]


# -- graphs ----------------------------------------------------------------------------------------

def _dw(name: str, x: str, c: int, inits: dict, stride: int = 1, bias: bool = True) -> tuple:
    inits[f"{name}_w"] = _w(c, 1, 3, 3, scale=0.4)
    ins = [x, f"{name}_w"]
    if bias:
        inits[f"{name}_b"] = _w(c)
        ins.append(f"{name}_b")
    return ("Conv", ins, name, {"group": c, "pads": [1, 1, 1, 1], "strides": [stride, stride]})


def _pw(name: str, x: str, c: int, k: int, inits: dict) -> tuple:
    inits[f"{name}_w"] = _w(k, c, 1, 1, scale=1 / np.sqrt(c))
    inits[f"{name}_b"] = _w(k)
    return ("Conv", [x, f"{name}_w", f"{name}_b"], name, {})


def _clip(name: str, x: str, inits: dict) -> tuple:
    inits.setdefault("lo", np.array(0, np.float32))
    inits.setdefault("hi", np.array(6, np.float32))
    return ("Clip", [x, "lo", "hi"], name, {})


def _mbv2_block(i: int, x: str, c: int, expand: int, inits: dict) -> list[tuple]:
    """1x1 expand -> Clip -> depthwise 3x3 -> Clip -> 1x1 project -> + x."""
    e = c * expand
    return [_pw(f"b{i}e", x, c, e, inits), _clip(f"b{i}r", f"b{i}e", inits),
            _dw(f"b{i}d", f"b{i}r", e, inits), _clip(f"b{i}s", f"b{i}d", inits),
            _pw(f"b{i}p", f"b{i}s", e, c, inits), ("Add", [f"b{i}p", x], f"b{i}", {})]


def _graph(case: str, c: int):
    """(model, feeds) of a named chain over c channels."""
    inits: dict[str, np.ndarray] = {}
    x = _w(2, c, 9, 9)
    if case == "depthwise":
        nodes = [_dw("d0", "x", c, inits), ("Relu", ["d0"], "r0", {}),
                 _dw("d1", "r0", c, inits, stride=2, bias=False), ("Sigmoid", ["d1"], "r1", {}),
                 _dw("d2", "r1", c, inits), ("Mul", ["d2", "scale"], "y", {})]
        inits["scale"] = _w(c, 1, 1)
    elif case == "pointwise":
        nodes = [_pw("p0", "x", c, 12, inits), _dw("d0", "p0", 12, inits),
                 _dw("d1", "d0", 12, inits), _dw("d2", "d1", 12, inits),
                 _pw("p1", "d2", 12, c, inits), _dw("d3", "p1", c, inits),
                 ("MaxPool", ["d3"], "y", {"kernel_shape": [2, 2], "strides": [2, 2]})]
    elif case == "pool":
        nodes = [_dw("d0", "x", c, inits), _dw("d1", "d0", c, inits),
                 ("MaxPool", ["d1"], "mp", {"kernel_shape": [3, 3], "strides": [2, 2],
                                            "pads": [1, 1, 1, 1]}),
                 _dw("d2", "mp", c, inits),
                 ("AveragePool", ["d2"], "ap", {"kernel_shape": [2, 2], "ceil_mode": 1}),
                 ("GlobalAveragePool", ["ap"], "y", {})]
    elif case == "residual":
        nodes = [_dw("d0", "x", c, inits), ("Add", ["d0", "x"], "s0", {}),
                 _dw("d1", "s0", c, inits), ("Add", ["d1", "s0"], "s1", {}),
                 _dw("d2", "s1", c, inits), ("Add", ["d2", "bias"], "s2", {}),
                 ("Concat", ["s2", "s1"], "y", {"axis": 1})]
        inits["bias"] = _w(1, c, 1, 1)
    elif case == "mobilenet":
        nodes = [n for i in range(3) for n in _mbv2_block(i, "x" if i == 0 else f"b{i - 1}", c,
                                                          4 if i else 6, inits)]
        nodes.append(("Identity", ["b2"], "y", {}))
    else:
        raise KeyError(case)
    return node_graph_model(nodes, {"x": x}, ["y"], inits, opset=17), {"x": x}


CASES = [(case, c) for case in ("depthwise", "pointwise", "pool", "residual", "mobilenet")
         for c in (8, 6)]


@pytest.mark.parametrize("case,c", CASES)
def test_packed_same_numbers(case, c):
    model, feeds = _graph(case, c)
    manifest, _, got = _run(model, feeds, _packed())
    _, _, off = _run(model, feeds, BuilderConfig(packed_format=False))
    (want,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got["y"], off["y"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4)
    packed = _packed_steps(manifest)
    if c % 4 == 0 or case in ("pointwise", "mobilenet"):  # depthwise over 12 / 24 channels
        assert packed.count("conv") >= 3, layer_table(manifest)
    if case == "pointwise":  # the last depthwise conv (over c) and the pool run packed too
        assert packed.count("conv") == 6 and "pool" in packed, layer_table(manifest)
        assert len(_reformats(manifest)) <= 3, layer_table(manifest)
    assert all(s["format"] == "NCHW" for s in manifest["inputs"] + manifest["outputs"]
               if len(s["shape"]) == 4)


def test_mobilenet_block_stays_packed():
    """Expand / depthwise / project convs, the clips and residual adds all run packed: one
    reformat in, one out; the depthwise weights are packed [C4, 3, 3, 4] at compile time."""
    model, feeds = _graph("mobilenet", 8)
    manifest, _, _ = _run(model, feeds, _packed())
    assert sorted(_reformats(manifest)) == ["NC4HW4->NCHW", "NCHW->NC4HW4"], layer_table(manifest)
    convs = [s["params"] for s in manifest["steps"] if s["template"] == "conv"]
    assert len(convs) == 9 and all(p["layout"] == "NC4HW4" for p in convs)
    dws = [p for p in convs if p.get("weight_layout") == "C4RS4"]
    assert len(dws) == 3
    assert dws[0]["in_shapes"][:2] == [[2, 12, 9, 9, 4], [12, 3, 3, 4]]
    assert dws[0]["channels"] == 48
    table = layer_table(manifest)
    assert "NC4HW4" in table and " reformat " in table


def test_packed_off_by_default_and_single_depthwise_not_worth_it():
    model, feeds = _graph("mobilenet", 8)
    manifest, _, _ = _run(model, feeds)
    assert "NC4HW4" not in str(manifest["steps"])
    inits: dict = {}
    one = node_graph_model([_dw("y", "x", 8, inits)], feeds, ["y"], inits, opset=17)
    manifest, _, _ = _run(one, feeds, _packed())
    assert _reformats(manifest) == [] and _packed_steps(manifest) == []


@pytest.mark.parametrize("c", [8, 6])
def test_nc4hw4_io(c):
    """NC4HW4 I/O allowed: a single depthwise conv over C % 4 == 0 channels runs packed, fed
    [N, C4, H, W, 4] (no reformat); over 6 channels it does not prefer NC4HW4: I/O stays NCHW."""
    inits: dict = {}
    x = _w(2, c, 9, 9)
    model = node_graph_model([_dw("d", "x", c, inits), ("Relu", ["d"], "y", {})], {"x": x},
                             ["y"], inits, opset=17)
    config = _packed()
    config.set_allowed_io_formats("NCHW", "CHW4")
    assert config.allowed_io_formats == ("NCHW", "NC4HW4")
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    if c % 4:
        manifest, engine, got = _run(model, {"x": x}, config)
        assert engine.get_tensor_format("x") == TensorFormat.LINEAR
        assert _packed_steps(manifest) == []
        np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4)
        return
    manifest, engine, got = _run(model, {"x": pack(x)}, config)
    assert engine.get_tensor_format("x") == engine.get_tensor_format("y") == TensorFormat.CHW4
    assert manifest["inputs"][0]["shape"] == [2, 2, 9, 9, 4]
    assert _reformats(manifest) == []
    np.testing.assert_allclose(unpack(got["y"], c), want, rtol=1e-4, atol=1e-4)


# -- numpy semantics -------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [1, 4, 6, 9])
def test_pack_unpack_reformat(c):
    x = _w(2, c, 3, 5)
    p = pack(x)
    assert p.shape == (2, -(-c // 4), 3, 5, 4)
    assert p[:, 0, 1, 2, 0].tolist() == x[:, 0, 1, 2].tolist()
    if c % 4:
        assert not p[:, -1, :, :, c % 4:].any()  # pad lanes zero
    np.testing.assert_array_equal(unpack(p, c), x)
    nhwc = x.transpose(0, 2, 3, 1)
    params = {"channels": c}
    np.testing.assert_array_equal(reformat([x], {**params, "reformat": "NCHW->NC4HW4"})[0], p)
    np.testing.assert_array_equal(reformat([p], {**params, "reformat": "NC4HW4->NHWC"})[0], nhwc)
    np.testing.assert_array_equal(reformat([nhwc], {**params, "reformat": "NHWC->NC4HW4"})[0], p)


def test_cpu_conv_and_pool_packed_match_nchw():
    x, w, b = _w(1, 6, 7, 7), _w(6, 1, 3, 3), _w(6)
    base = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "groups": 6}
    (want,) = cpu_conv([x, w, b], base)
    (got,) = cpu_conv([pack(x), pack_depthwise_weight(w), b],
                      {**base, "layout": "NC4HW4", "channels": 6, "weight_layout": "C4RS4"})
    np.testing.assert_allclose(unpack(got, 6), want, rtol=1e-6)
    (got,) = cpu_conv([pack(x), w, b], {**base, "layout": "NC4HW4", "channels": 6})
    np.testing.assert_allclose(unpack(got, 6), want, rtol=1e-6)
    pool = {"fn": "max", "kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
            "dilations": [1, 1], "ceil_mode": False}
    (want,) = cpu_pool([x], pool)
    (got,) = cpu_pool([pack(x)], {**pool, "layout": "NC4HW4"})
    np.testing.assert_array_equal(unpack(got, 6), want)


# -- on the GPU (the lead's runs) ------------------------------------------------------------------

@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case,c", CASES)
def test_packed_chains_on_gpu(case, c):
    from ember.compiler.builder import detect_arch

    model, feeds = _graph(case, c)
    arch = detect_arch()
    # the policy's packed regions (choose-formats finds these small chains not worth their
    # reformats): the packed kernels are what is checked here
    manifest, engine, got = _run(model, feeds, _packed(target_arch=arch,
                                                       format_choice="preferred"), device="cuda")
    assert engine.device == "cuda"
    assert all(s.get("device", "cuda") == "cuda" for s in manifest["steps"]), \
        layer_table(manifest)
    _, _, off = _run(model, feeds, BuilderConfig(target_arch=arch, packed_format=False),
                     device="cuda")
    (want,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["y"], off["y"], rtol=1e-4, atol=1e-5)
    if c % 4 == 0 or case in ("pointwise", "mobilenet"):
        assert _packed_steps(manifest).count("conv") >= 3, layer_table(manifest)


# -- the CUDA kernels' C on the host (no GPU needed): one thread walks the grid-stride loop --------

_HOST_PRELUDE = """#include <math.h>
#include <stddef.h>
#define __device__
#define __forceinline__ static inline
#define __int_as_float(v) INFINITY
#define __longlong_as_double(v) INFINITY
typedef struct { float x, y, z, w; } float4;
static float4 make_float4(float x, float y, float z, float w) {
    float4 r = {x, y, z, w}; return r;
}
struct d { int x; }; static struct d blockIdx = {0}, blockDim = {1}, threadIdx = {0},
gridDim = {1};
"""


def _host_run(template: str, params: dict, inputs: list[np.ndarray], out_shape, out_dtype,
              tmp_path) -> np.ndarray:
    import ctypes
    import shutil
    import subprocess

    from ember.codegen.templates import emitter

    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    src = emitter(template)("k", params).source
    src = _HOST_PRELUDE + src.replace('extern "C" __global__ void', "void") \
        .replace("__restrict__", "restrict")
    (tmp_path / "k.c").write_text(src)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(tmp_path / "k.so"),
                    str(tmp_path / "k.c"), "-lm"], check=True, capture_output=True)
    lib = ctypes.CDLL(str(tmp_path / "k.so"))
    out = np.full(out_shape, np.nan, out_dtype)
    args = [np.ascontiguousarray(a).ctypes.data_as(ctypes.c_void_p) for a in inputs]
    lib.k(*args, out.ctypes.data_as(ctypes.c_void_p))
    return out


@pytest.mark.parametrize("label,c", [("NCHW->NC4HW4", 6), ("NC4HW4->NCHW", 6),
                                     ("NHWC->NC4HW4", 9), ("NC4HW4->NHWC", 8)])
def test_cuda_reformat_numbers_on_host(label, c, tmp_path):
    src, _ = label.split("->")
    logical = _w(2, c, 3, 5)
    x = reformat([logical], {"reformat": f"NCHW->{src}", "channels": c})[0] \
        if src != "NCHW" else logical
    (want,) = reformat([x], {"reformat": label, "channels": c})
    params = {"reformat": label, "channels": c, "in_shapes": [list(x.shape)],
              "in_dtypes": ["float32"], "out_shapes": [list(want.shape)],
              "out_dtypes": ["float32"]}
    got = _host_run("reformat", params, [x], want.shape, np.float32, tmp_path)
    np.testing.assert_array_equal(got, want)


CONV_HOST = {
    # depthwise, packed weights, vectorized: C = 6 (pad lanes), stride 2, bias, residual epilogue
    "depthwise_vectorized": (6, 6, 6, 2, True),
    "depthwise_c8_no_bias": (8, 8, 8, 1, False),
    # grouped, 2 output channels per group: scalar direct, OIHW weights
    "grouped_direct": (6, 12, 3, 1, True),
}


@pytest.mark.parametrize("case", sorted(CONV_HOST))
def test_cuda_conv_packed_direct_numbers_on_host(case, tmp_path):
    c, k, groups, stride, bias = CONV_HOST[case]
    x, w, b = _w(2, c, 7, 7), _w(k, c // groups, 3, 3), _w(k)
    base = {"strides": [stride, stride], "pads": [1, 1, 1, 1], "dilations": [1, 1],
            "groups": groups}
    (want,) = cpu_conv([x, w, b] if bias else [x, w], base)
    depthwise = groups == c == k
    wp = pack_depthwise_weight(w) if depthwise else w
    residual = pack(_w(*want.shape))
    params = {**base, "layout": "NC4HW4", "channels": c,
              "in_shapes": [list(pack(x).shape), list(wp.shape)] + ([[k]] if bias else []),
              "in_dtypes": ["float32"] * (3 if bias else 2),
              "out_shapes": [list(pack(want).shape)], "out_dtypes": ["float32"],
              "epilogue": {"ops": [{"fn": "add", "args": [0, 1], "dtype": "float32"}],
                           "result": 2, "in_shapes": [list(residual.shape)],
                           "in_dtypes": ["float32"]}}
    if depthwise:
        params["weight_layout"] = "C4RS4"
    inputs = [pack(x), wp] + ([b] if bias else []) + [residual]
    got = _host_run("conv", params, inputs, residual.shape, np.float32, tmp_path)
    if depthwise:
        from ember.codegen.templates import emitter
        assert "float4" in emitter("conv")("k", params).source
    np.testing.assert_allclose(unpack(got, k), want + unpack(residual, k), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn,dtype", [(fn, dt) for fn in ("max", "avg", "lp")
                                      for dt in ("float32", "float64")])
def test_cuda_pool_packed_numbers_on_host(fn, dtype, tmp_path):
    x = _w(2, 6, 7, 6).astype(dtype)
    pool = {"fn": fn, "kernel": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1],
            "dilations": [1, 1], "ceil_mode": True, "count_include_pad": fn == "avg",
            "p": 2.0}
    (want,) = cpu_pool([x], pool)
    params = {**pool, "layout": "NC4HW4", "in_shapes": [list(pack(x).shape)],
              "in_dtypes": [dtype], "out_shapes": [list(pack(want).shape)],
              "out_dtypes": [dtype]}
    got = _host_run("pool", params, [pack(x)], pack(want).shape, dtype, tmp_path)
    np.testing.assert_allclose(unpack(got, 6), want, rtol=1e-5, atol=1e-6)
