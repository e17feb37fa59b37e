"""float16 / bfloat16 kernels: every template that opted into half storage (computing in float)
emits a CUDA kernel for a tiny model of each half type instead of a host fallback, and NVRTC
compiles it for sm_90 with no GPU and no cuda_fp16.h; on a GPU (`cuda` marker) each plan's result
equals the CPU executor's within one unit in the last place of the storage type (exactly for
copies). A template that has not opted in still refuses halves, naming them, and runs on the host.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ember.codegen.emit_cuda import emit_step
from ember.codegen.nvrtc import compile_cuda
from ember.codegen.scalar_c import (
    HALF_PRELUDE,
    c_literal,
    c_type,
    compute_type,
    load_float,
    round_to,
    scalar_expr,
    storage_type,
    store_from_float,
)
from ember.codegen.templates import KernelSpec, grid_1d, grid_stride_loop, signature, source
from ember.codegen.templates.elementwise import epilogue_dtypes, epilogue_lines
from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model
from ember.errors import UnsupportedError
from ember.runtime.cpu_kernels import KERNELS
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes
from tests.onnx_cases import attention_nodes

F, I64 = TensorProto.FLOAT, TensorProto.INT64
HALVES = {"float16": (TensorProto.FLOAT16, np.dtype(np.float16)),
          "bfloat16": (TensorProto.BFLOAT16, np.dtype(ml_dtypes.bfloat16))}
needs_gpu = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")


def _model(nodes, inputs, outputs, inits=(), opset: int = 21) -> onnx.ModelProto:
    """inputs: [(name, shape, elem)]; outputs: [(name, elem)]; inits: [(name, array)]."""
    graph = helper.make_graph(
        nodes, "half_case",
        [helper.make_tensor_value_info(n, e, s) for n, s, e in inputs],
        [helper.make_tensor_value_info(n, e, None) for n, e in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@dataclass(frozen=True)
class Case:
    """A model over one half type `h` (its TensorProto elem) and `np_h` (its numpy dtype): the
    templates its steps must run as on the GPU, how inputs are drawn, the tolerance in units in
    the last place (0: bit-exact, the copies) and the half types it is built for."""

    build: Callable[[int, np.dtype], onnx.ModelProto]
    templates: tuple[str, ...]
    data: str = "normal"   # normal | grid (k/2, |k| <= 3: sums exact) | pow2 | positive
    ulps: int = 1
    config: dict = field(default_factory=dict)
    dtypes: tuple[str, ...] = ("bfloat16", "float16")


def _one(op: str, shapes, inits=(), out=None, opset: int = 21, **attrs):
    """One node over half inputs x0.. (and initializers `inits(np_h)`), result y."""
    def build(h, np_h):
        names = [f"x{i}" for i in range(len(shapes))]
        weights = list(inits(np_h)) if callable(inits) else list(inits)
        node = helper.make_node(op, names + [n for n, _ in weights], ["y"], **attrs)
        return _model([node], [(n, s, h) for n, s in zip(names, shapes, strict=True)],
                      [("y", h if out is None else out)], weights, opset)
    return build


def _w(np_h, *shape, seed: int = 1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np_h)


def _chain(h, np_h):
    # x + b (row broadcast) -> sigmoid -> * x -> tanh -> max -> min: even last dim, the paired
    # path (Clip is not used: its legalization asks np.finfo about bfloat16, which fails)
    nodes = [helper.make_node("Add", ["x0", "b"], ["a"]),
             helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Mul", ["s", "x0"], ["m"]),
             helper.make_node("Tanh", ["m"], ["t"]),
             helper.make_node("Max", ["t", "lo"], ["u"]),
             helper.make_node("Min", ["u", "hi"], ["y"])]
    return _model(nodes, [("x0", [3, 8], h)], [("y", h)],
                  [("b", _w(np_h, 8)), ("lo", np.array(-0.5, np_h)),
                   ("hi", np.array(0.75, np_h))])


def _odd(h, np_h):
    # an odd last dim (one element per thread), a column broadcast and erf / exp / div / pow
    nodes = [helper.make_node("Erf", ["x0"], ["e"]),
             helper.make_node("Div", ["e", "x1"], ["d"]),
             helper.make_node("LeakyRelu", ["d"], ["r"], alpha=0.1),
             helper.make_node("Exp", ["r"], ["x"]),
             helper.make_node("Pow", ["x", "p"], ["y"])]
    return _model(nodes, [("x0", [4, 5], h), ("x1", [4, 1], h)], [("y", h)],
                  [("p", np.array(1.5, np_h))])


def _dynamic(h, np_h):
    # a symbolic batch: the pair count is an expression over the kernel's size argument
    nodes = [helper.make_node("Mul", ["x0", "s"], ["m"]),
             helper.make_node("Gelu", ["m"], ["y"])]
    return _model(nodes, [("x0", ["N", 6], h)], [("y", h)], [("s", _w(np_h, 6))], opset=20)


def _where(h, np_h):
    nodes = [helper.make_node("Less", ["x0", "x1"], ["c"]),
             helper.make_node("Where", ["c", "x0", "x1"], ["y"])]
    return _model(nodes, [("x0", [4, 6], h), ("x1", [6], h)], [("y", h)])


def _casts(h, np_h):
    # float32 -> half -> relu -> float32 and -> int32, int64 -> half: the edges of an FP16 plan
    other = HALVES["bfloat16" if h == TensorProto.FLOAT16 else "float16"][0]
    nodes = [helper.make_node("Cast", ["x0"], ["c"], to=h),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=F),
             helper.make_node("Cast", ["c"], ["i"], to=TensorProto.INT32),
             helper.make_node("Cast", ["c"], ["o"], to=other),
             helper.make_node("Cast", ["x1"], ["z"], to=h)]
    return _model(nodes, [("x0", [3, 10], F), ("x1", [7], I64)],
                  [("y", F), ("i", TensorProto.INT32), ("o", other), ("z", h)])


def _attention(h, np_h):
    """Q, K, V [2, 5, 16] split into 2 heads of 8, scores / sqrt(8) + mask, softmax, PV, merge:
    fuse-attention makes one attention step."""
    b, s, heads, d = 2, 5, 2, 8
    n = attention_nodes()
    mask = np.zeros((b, 1, 1, s), np_h)
    mask[0, ..., 3:] = -10000.0
    return _model(n, [(x, [b, s, heads * d], h) for x in "qkv"], [("y", h)],
                  [("heads", np.array([b, s, heads, d])), ("merged", np.array([b, s, heads * d])),
                   ("sqrt_d", np.array(np.sqrt(d), np_h)), ("mask", mask)], opset=17)


def _reduce(op: str, axes=(0, 2), shape=(3, 4, 5)):
    return _one(op, [list(shape)], inits=[("axes", np.array(axes))], keepdims=0)


CASES: dict[str, Case] = {
    "elementwise_pairs": Case(_chain, ("elementwise",)),
    "elementwise_odd": Case(_odd, ("elementwise",), data="positive"),
    "elementwise_where": Case(_where, ("elementwise",)),
    "elementwise_dynamic": Case(_dynamic, ("elementwise",), config={"profiles": [
        OptimizationProfile({"x0": ((1, 6), (2, 6), (4, 6))})]}),
    "elementwise_casts": Case(_casts, ("elementwise",)),
    "softmax": Case(_one("Softmax", [[2, 3, 40]], axis=1), ("softmax",)),
    "log_softmax": Case(_one("LogSoftmax", [[2, 70]], axis=-1), ("softmax",)),
    "layer_norm": Case(_one("LayerNormalization", [[2, 3, 64]], axis=-1,
                            inits=lambda t: [("s", _w(t, 64)), ("b", _w(t, 64, seed=2))]),
                       ("layer_norm",)),
    "group_norm": Case(_one("GroupNormalization", [[2, 6, 4, 4]], num_groups=3,
                            inits=lambda t: [("s", _w(t, 6)), ("b", _w(t, 6, seed=2))]),
                       ("group_norm",)),
    "instance_norm": Case(_one("InstanceNormalization", [[2, 3, 5, 5]],
                               inits=lambda t: [("s", _w(t, 3)), ("b", _w(t, 3, seed=2))]),
                          ("group_norm",)),
    # unoptimized: the batch norm stays one kernel (fold-batch-norm makes it elementwise)
    "batch_norm": Case(_one("BatchNormalization", [[2, 6, 3, 3]],
                            inits=lambda t: [("s", _w(t, 6)), ("b", _w(t, 6, seed=2)),
                                             ("m", _w(t, 6, seed=3)),
                                             ("v", np.abs(_w(t, 6, seed=4)) + t.type(0.5))]),
                       ("batch_norm",), config={"optimize": False}),
    "lrn": Case(_one("LRN", [[1, 10, 4, 4]], size=5, alpha=1e-2, beta=0.75, bias=1.0), ("lrn",)),
    "maxpool": Case(_one("MaxPool", [[1, 3, 9, 9]], kernel_shape=[3, 3], strides=[2, 2]),
                    ("pool",), ulps=0),
    "avgpool_pad": Case(_one("AveragePool", [[1, 3, 9, 9]], kernel_shape=[3, 3], strides=[2, 2],
                             pads=[1, 1, 1, 1]), ("pool",)),
    "lppool": Case(_one("LpPool", [[1, 2, 8, 8]], kernel_shape=[2, 2], strides=[2, 2], p=2),
                   ("pool",)),
    "global_avgpool": Case(_one("GlobalAveragePool", [[1, 8, 5, 5]]), ("reduce",), data="grid"),
    "global_maxpool": Case(_one("GlobalMaxPool", [[1, 8, 5, 5]]), ("reduce",), ulps=0),
    "reduce_sum": Case(_reduce("ReduceSum"), ("reduce",), data="grid"),
    # the innermost dim kept, enough outputs for one thread each (GlobalAveragePool in NHWC)
    "reduce_mean_per_thread": Case(_reduce("ReduceMean", axes=(1, 2), shape=(2, 3, 5, 1100)),
                                   ("reduce",), data="grid"),
    "reduce_log_sum_exp_per_thread": Case(
        _reduce("ReduceLogSumExp", axes=(0, 1), shape=(3, 4, 2100)), ("reduce",), data="grid",
        ulps=2),
    "reduce_mean": Case(_reduce("ReduceMean"), ("reduce",), data="grid"),
    "reduce_max": Case(_reduce("ReduceMax", axes=(1,)), ("reduce",), ulps=0),
    "reduce_min": Case(_reduce("ReduceMin"), ("reduce",), ulps=0),
    "reduce_prod": Case(_reduce("ReduceProd", axes=(1,)), ("reduce",), data="pow2"),
    "reduce_l2": Case(_reduce("ReduceL2"), ("reduce",), data="grid"),
    # the reference rounds each exp to the storage type before summing: 2 units of slack
    "reduce_log_sum_exp": Case(_reduce("ReduceLogSumExp", axes=(2,)), ("reduce",), data="grid",
                               ulps=2),
    "argmax": Case(_one("ArgMax", [[3, 7, 5]], out=I64, axis=1), ("arg_reduce",), data="grid",
                   ulps=0),
    "argmin_last": Case(_one("ArgMin", [[3, 7, 5]], out=I64, axis=-1, keepdims=0,
                             select_last_index=1), ("arg_reduce",), data="grid", ulps=0),
    "cumsum": Case(_one("CumSum", [[4, 5]], inits=[("axis", np.array(1))]), ("cumsum",),
                   data="grid", ulps=0),
    "cumsum_exclusive_reverse": Case(_one("CumSum", [[4, 5]], inits=[("axis", np.array(0))],
                                          exclusive=1, reverse=1), ("cumsum",), data="grid",
                                     ulps=0),
    # fuse-attention reads its scale constant only when numpy calls it floating, which bfloat16
    # is not: bfloat16 attention is tested on the template itself (_direct_cases)
    "attention": Case(_attention, ("attention",), dtypes=("float16",)),
    "einsum": Case(_one("Einsum", [[2, 3, 4], [2, 4, 5]], equation="bij,bjk->bik"),
                   ("einsum",), data="grid", ulps=0),
    "resize_linear": Case(_one("Resize", [[1, 2, 4, 5]], inits=[
        ("r", np.array([], np.float32)), ("s", np.array([1, 1, 2, 1.6], np.float32))],
        mode="linear"), ("resize",)),
    "resize_nearest": Case(_one("Resize", [[1, 2, 4, 5]], inits=[
        ("r", np.array([], np.float32)), ("s", np.array([1, 1, 2, 1.5], np.float32))],
        mode="nearest"), ("resize",), ulps=0),
    "transpose": Case(_one("Transpose", [[2, 3, 4, 5]], perm=[0, 2, 3, 1]), ("transpose",),
                      ulps=0),
    # shared-memory tiles with ragged edges both ways (NCHW -> NHWC and back), and the
    # per-element kernel for a perm that is not two swapped groups
    "transpose_tiled_to_nhwc": Case(_one("Transpose", [[2, 40, 9, 7]], perm=[0, 2, 3, 1]),
                                    ("transpose",), ulps=0),
    "transpose_tiled_to_nchw": Case(_one("Transpose", [[2, 9, 7, 40]], perm=[0, 3, 1, 2]),
                                    ("transpose",), ulps=0),
    "transpose_tiled_2d": Case(_one("Transpose", [[70, 33]], perm=[1, 0]), ("transpose",),
                               ulps=0),
    "transpose_per_element": Case(_one("Transpose", [[2, 3, 4, 5]], perm=[0, 2, 1, 3]),
                                  ("transpose",), ulps=0),
    "concat": Case(_one("Concat", [[1, 4, 3, 3], [1, 2, 3, 3], [1, 5, 3, 3]], axis=1),
                   ("concat",), ulps=0),
    "slice": Case(_one("Slice", [[6, 7]], inits=[("st", np.array([1, -1])),
                                                 ("en", np.array([5, -8])),
                                                 ("ax", np.array([0, 1])),
                                                 ("sp", np.array([2, -2]))]), ("slice",), ulps=0),
    "gather": Case(_one("Gather", [[5, 4]], inits=[("i", np.array([[0, -1, 2], [4, 1, 1]]))],
                        axis=0), ("gather",), ulps=0),
    "gather_elements": Case(_one("GatherElements", [[3, 4]], inits=[
        ("i", np.array([[0, -1], [-4, 3], [2, -2]]))], axis=1), ("gather_elements",), ulps=0),
    "pad_constant": Case(_one("Pad", [[3, 4]], inits=lambda t: [
        ("p", np.array([1, 2, 1, 3])), ("v", np.array(1.3, t))], mode="constant"),
        ("pad",), ulps=0),
    "pad_reflect": Case(_one("Pad", [[3, 4]], inits=[("p", np.array([2, 2, 1, 3]))],
                             mode="reflect"), ("pad",), ulps=0),
    "expand": Case(_one("Expand", [[3, 1]], inits=[("s", np.array([2, 3, 4]))]), ("expand",),
                   ulps=0),
    "tile": Case(_one("Tile", [[2, 3]], inits=[("r", np.array([2, 3]))]), ("tile",), ulps=0),
    "trilu": Case(_one("Trilu", [[2, 4, 5]], inits=[("k", np.array(1))], upper=1), ("trilu",),
                  ulps=0),
}


@functools.cache
def _build(case: str, dtype: str) -> tuple[onnx.ModelProto, dict, dict]:
    h, np_h = HALVES[dtype]
    model = CASES[case].build(h, np_h)
    manifest, sections = build_model(model, BuilderConfig(target_arch="sm_90", autotune=False,
                                                          **CASES[case].config))
    return model, manifest, sections


def _feeds(model: onnx.ModelProto, data: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value if d.HasField("dim_value") else 3
                 for d in vi.type.tensor_type.shape.dim]
        elem = vi.type.tensor_type.elem_type
        if elem == I64:
            feeds[vi.name] = rng.integers(-20, 20, shape).astype(np.int64)
            continue
        if data == "grid":
            x = rng.integers(-3, 4, shape) / 2
        elif data == "pow2":
            x = rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], shape)
        elif data == "positive":
            x = np.abs(rng.standard_normal(shape)) + 0.1
        else:
            x = rng.standard_normal(shape)
        feeds[vi.name] = x.astype(helper.tensor_dtype_to_np_dtype(elem))
    return feeds


def _ordered(x: np.ndarray) -> np.ndarray:
    """A 2-byte float's bit pattern as an int ordered like its value (±0 both 0), so that the
    difference of two is their distance in units in the last place."""
    bits = x.view(np.uint16).astype(np.int64)
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def assert_within_ulps(got: np.ndarray, want: np.ndarray, ulps: int, what: str = "") -> None:
    """got == want up to `ulps` units in the last place of their (2-byte float) dtype; NaN
    where the other is NaN. Other dtypes: exactly (NaN equal to NaN)."""
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, want.dtype,
                                                                 got.shape, want.shape)
    if got.dtype.itemsize != 2 or got.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    g32, w32 = got.astype(np.float32), want.astype(np.float32)
    assert np.array_equal(np.isnan(g32), np.isnan(w32)), what
    ok = ~np.isnan(w32)
    dist = np.abs(_ordered(got[ok]) - _ordered(want[ok]))
    worst = int(dist.max()) if dist.size else 0
    assert worst <= ulps, (f"{what}: {worst} ulps apart (allowed {ulps}); got {g32[ok]}, "
                           f"want {w32[ok]}")


# -- emission and NVRTC, no GPU needed ------------------------------------------------------------

MODEL_CASES = [(case, dtype) for case in sorted(CASES) for dtype in CASES[case].dtypes]


@pytest.mark.parametrize("case,dtype", MODEL_CASES)
def test_half_case_builds_cuda_kernels(case, dtype):
    """Every step runs as a CUDA kernel of the case's template (none falls back to the host),
    with half pointers in its signature; build_model compiled each with NVRTC for sm_90."""
    _, manifest, sections = _build(case, dtype)
    on_host = [(s["name"], s.get("fallback")) for s in manifest["steps"] if s.get("device")]
    assert not on_host, on_host
    assert {s["template"] for s in manifest["steps"]} == set(CASES[case].templates)
    by_name = {k["name"]: k for k in manifest["kernels"]}
    half_t = storage_type(dtype)
    saw_half = False
    for step in manifest["steps"]:
        kernel = by_name[step["cuda"]["kernel"]]
        blob = sections["cubin"][kernel["cubin_offset"]:kernel["cubin_offset"]
                                 + kernel["cubin_size"]]
        assert blob.startswith(b"\x7fELF"), step["name"]
        text = sections["cuda_source"][kernel["source_offset"]:kernel["source_offset"]
                                       + kernel["source_size"]].decode()
        assert "#include" not in text  # no cuda_fp16.h: NVRTC wheels without headers compile it
        saw_half |= f"{half_t}* __restrict__" in text
    assert saw_half


def test_direct_cases_compile_for_halves():
    """Templates the small models do not reach (fill needs a run-time shape, reformat a layout
    change around a half kernel, bfloat16 attention a fusion) emit and compile too; see also
    their GPU test below."""
    for dtype in HALVES:
        for template, params in _direct_cases(dtype).items():
            name, spec = emit_step({"name": template, "template": template, "params": params})
            assert f"{storage_type(dtype)}* __restrict__ out0" in spec.source
            assert compile_cuda(spec.source, name=name, arch="sm_90").cubin


def test_helper_api_spellings():
    assert (storage_type("float16"), storage_type("bfloat16")) == ("ember_half", "ember_bf16")
    assert storage_type("float32") == "float" and storage_type("int64") == "long long"
    assert compute_type("bfloat16") == "float" and compute_type("float64") == "double"
    assert load_float("in0[i]", "float16") == "ember_load(in0[i])"
    assert load_float("in0[i]", "float32") == "in0[i]"
    assert store_from_float("acc", "bfloat16") == "ember_to_bf16(acc)"
    assert store_from_float("acc", "float32") == "(float)acc"
    assert store_from_float("a + b", "int32") == "(int)(a + b)"
    assert round_to("x", "float16") == "ember_round_half(x)" and round_to("x", "float32") == "x"
    # a half op computes in float and rounds after each op; a cast to a half rounds too
    assert scalar_expr("add", ["a", "b"], ["float16"] * 2, "float16") == \
        "ember_round_half((a + b))"
    assert scalar_expr("exp", ["a"], ["bfloat16"], "bfloat16") == "ember_round_bf16(expf(a))"
    assert scalar_expr("cast", ["a"], ["float32"], "float16") == "ember_round_half((float)(a))"
    assert scalar_expr("lt", ["a", "b"], ["float16"] * 2, "bool") == "(a < b)"
    # literals of a half: the float of the value rounded to it (1/3 in float16: 0.333251953125)
    assert c_literal(1 / 3, "float16") == "0.333251953125f"
    assert c_literal(1 / 3, "bfloat16") == "0.333984375f"
    assert c_literal(float("inf"), "bfloat16") == "__int_as_float(0x7f800000)"
    assert "cvt.rn.f16.f32" in HALF_PRELUDE and "cvt.f32.f16" in HALF_PRELUDE


def test_c_type_still_refuses_halves():
    for dtype in HALVES:
        with pytest.raises(UnsupportedError, match=dtype):
            c_type(dtype)


def test_a_template_not_converted_still_falls_back_with_the_reason():
    """dequantize has not opted in: a float16 DequantizeLinear runs on the host, its reason
    naming the template and the type, while the half Relu after it runs as a kernel."""
    nodes = [helper.make_node("DequantizeLinear", ["q", "s"], ["d"], name="dq"),
             helper.make_node("Relu", ["d"], ["y"], name="relu")]
    model = _model(nodes, [("q", [2, 6], TensorProto.INT8)], [("y", TensorProto.FLOAT16)],
                   [("s", np.array(0.5, np.float16))])
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90"))
    dq, relu = manifest["steps"]
    assert dq["device"] == "cpu"
    assert "dequantize" in dq["fallback"] and "float16" in dq["fallback"]
    assert "device" not in relu and relu["cuda"]["kernel"].startswith("elementwise_")
    with pytest.raises(UnsupportedError, match="float16"):
        build_model(model, BuilderConfig(target_arch="sm_90", allow_cpu_fallback=False))


def test_cpu_executor_runs_the_cases():
    """The reference side of the GPU test runs (and reads halves) on any machine."""
    for case, dtype in MODEL_CASES:
        if case in ("elementwise_pairs", "softmax", "cumsum", "attention"):
            model, manifest, sections = _build(case, dtype)
            feeds = _feeds(model, CASES[case].data)
            engine = Runtime(device="cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))
            out = engine.create_execution_context().execute(feeds)
            assert out["y"].dtype == HALVES[dtype][1]


# -- on the GPU -----------------------------------------------------------------------------------

@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("case,dtype", MODEL_CASES)
def test_half_case_on_gpu_matches_cpu_executor(case, dtype):
    model, manifest, sections = _build(case, dtype)
    plan = plan_bytes(manifest, sections)
    feeds = _feeds(model, CASES[case].data)
    gpu = Runtime(device="cuda").deserialize_cuda_engine(plan)
    assert gpu.device == "cuda"
    got = gpu.create_execution_context().execute(feeds)
    want = Runtime(device="cpu").deserialize_cuda_engine(plan).create_execution_context() \
        .execute(feeds)
    assert set(got) == set(want)
    for name in want:
        assert_within_ulps(got[name], want[name], CASES[case].ulps, f"{case} {dtype} {name}")


def _direct_cases(dtype: str) -> dict[str, dict]:
    def p(ins, outs, in_dtypes, **props):
        return {**props, "in_shapes": ins, "in_dtypes": in_dtypes, "out_shapes": outs,
                "out_dtypes": [dtype]}
    return {"fill": p([[2]], [[3, 4]], ["int64"], value=-1.3),
            "reformat": p([[2, 6, 3, 5]], [[2, 2, 3, 5, 4]], [dtype], reformat="NCHW->NC4HW4",
                          channels=6),
            # packed QKV [2, 9, 3·2·8] with a boolean key mask [2, 1, 1, 9]
            "attention": p([[2, 9, 48], [2, 9, 48], [2, 9, 48], [2, 1, 1, 9]], [[2, 9, 16]],
                           [dtype, dtype, dtype, "bool"], num_heads=2, head_dim=8, scale=0.35,
                           k_offset=16, v_offset=32, masked_value=-1e4)}


def _direct_inputs(template: str, params: dict, np_h: np.dtype) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if template == "fill":
        return [np.array([3, 4], np.int64)]
    inputs = [rng.standard_normal(s).astype(np_h) for s in params["in_shapes"][:3]]
    if template == "attention":
        mask = np.ones(params["in_shapes"][3], bool)
        mask[0, ..., 6:] = False
        inputs.append(mask)
    return inputs


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", sorted(HALVES))
def test_direct_cases_on_gpu_match_their_cpu_kernels(dtype):
    """One launch of each kernel on its own against the template's numpy kernel (exact for the
    copies, one unit in the last place for attention)."""
    np_h = HALVES[dtype][1]
    for template, params in _direct_cases(dtype).items():
        name, spec = emit_step({"name": template, "template": template, "params": params})
        inputs = _direct_inputs(template, params, np_h)
        want = KERNELS[template](inputs, params)[0]
        got = _launch(spec, name, inputs, params["out_shapes"][0], np_h)
        assert_within_ulps(got, np.ascontiguousarray(want).astype(np_h),
                           1 if template == "attention" else 0, f"{template} {dtype}")


def _launch(spec: KernelSpec, name: str, inputs: list[np.ndarray], out_shape: list[int],
            out_dtype: np.dtype) -> np.ndarray:
    """Run one kernel (pointer arguments: the inputs, then the result) on the GPU."""
    from ember.runtime import cuda

    device = cuda.default_device()
    compiled = compile_cuda(spec.source, name=name, arch=device.arch)
    function = cuda.Module.load(compiled.cubin, compiled.ptx, name=name).function(name)
    got = np.full(out_shape, np.nan, out_dtype)
    buffers = [cuda.DeviceBuffer(a.nbytes) for a in (*inputs, got)]
    for buffer, a in zip(buffers, (*inputs, got), strict=True):
        buffer.upload(a)
    args = cuda.pack_args([("ptr", b.ptr) for b in buffers])
    cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, None, args)
    device.synchronize()
    return buffers[-1].download(got)


# -- the epilogue contract a GEMM kernel relies on ------------------------------------------------

def _epilogue_kernel(dtype: str) -> tuple[KernelSpec, dict]:
    """A stand-in for a half GEMM: its float accumulator `acc` (here 3·x), then
    `epilogue_lines(params, "acc", "i", indent)` (+ bias row, relu), then the store of `acc` by
    `store_from_float` — as matmul / conv do for a float16 / bfloat16 result."""
    params = {"in_shapes": [[4, 6]], "in_dtypes": [dtype], "out_shapes": [[4, 6]],
              "out_dtypes": [dtype],
              "epilogue": {"ops": [{"fn": "add", "args": [0, 1], "dtype": dtype},
                                   {"fn": "relu", "args": [2], "dtype": dtype}],
                           "result": 3, "in_shapes": [[6]], "in_dtypes": [dtype]}}
    body = [grid_stride_loop(24, "int"),
            f"        float acc = {load_float('in0[i]', dtype)} * 3.0f;",
            *epilogue_lines(params, "acc", "i", "        "),
            f"        out0[i] = {store_from_float('acc', dtype)};",
            "    }"]
    sig = signature("epilogue_contract", [dtype, *epilogue_dtypes(params)], [dtype], halves=True)
    grid, block = grid_1d(24)
    return KernelSpec(source("epilogue contract", [], sig, body), grid, block), params


def _epilogue_reference(x: np.ndarray, bias: np.ndarray, params: dict) -> np.ndarray:
    """The CPU executor's order: the kernel's result rounded to its type, then the region."""
    result = (x.astype(np.float64) * 3).astype(x.dtype)
    region = {k: params["epilogue"][k] for k in ("ops", "result")}
    return KERNELS["elementwise"]([result, bias], {**params, "region": region})[0]


@pytest.mark.parametrize("dtype", sorted(HALVES))
def test_epilogue_lines_on_a_half_result_compile(dtype):
    spec, _ = _epilogue_kernel(dtype)
    assert f"const {storage_type(dtype)}* __restrict__ in1" in spec.source  # the bias
    assert compile_cuda(spec.source, name="epilogue_contract", arch="sm_90").cubin


@needs_gpu
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", sorted(HALVES))
def test_epilogue_lines_on_a_half_result_match_the_cpu_order(dtype):
    np_h = HALVES[dtype][1]
    spec, params = _epilogue_kernel(dtype)
    rng = np.random.default_rng(0)
    x, bias = rng.standard_normal((4, 6)).astype(np_h), rng.standard_normal(6).astype(np_h)
    got = _launch(spec, "epilogue_contract", [x, bias], [4, 6], np_h)
    assert_within_ulps(got, _epilogue_reference(x, bias, params), 1, dtype)
