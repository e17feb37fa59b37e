"""Property: random graphs of fusible ops compute the same numbers built with every optimization
(the default pipeline, layouts, elementwise and epilogue fusion) and built with none
(`BuilderConfig(optimize=False)`: one kernel per nn op), and both match onnx.reference.

The graphs are what the optimizing passes rewrite: conv (+bias, +BatchNorm, after a zero Pad),
pools after Pads, Gemm/MatMul (through last-two-dim transposes), activations written as ONNX
exports spell them (SiLU as x·sigmoid(x), GELU in its erf and tanh forms), constants added and
multiplied, residual adds, transpose pairs and reshape chains. The CPU property runs everywhere;
the `cuda` one runs it on the GPU executor.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, numpy_helper
from onnx import helper as h
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model, detect_arch
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F = TensorProto.FLOAT
ACTIVATIONS = ["Relu", "Clip", "Sigmoid", "SiLU", "HardSwish", "Tanh", "GeluErf", "GeluTanh",
               "LeakyRelu"]
KINDS_4D = ["conv", "conv", "pool", "act", "act", "const", "residual", "transpose_pair",
            "reshape_chain", "matmul", "flatten_gemm"]
KINDS_2D = ["gemm", "matmul", "act", "act", "const", "residual", "transpose_pair",
            "reshape_chain"]


class _Graph:
    """Nodes and initializers of a graph under construction; `value` is the current tensor."""

    def __init__(self, shape: tuple[int, ...], rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.values = [("x", shape)]
        self.value, self.shape = "x", shape

    def name(self, prefix: str) -> str:
        return f"{prefix}{len(self.nodes)}_{len(self.inits)}"

    def const(self, array: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape: int, fan_in: int = 1) -> str:
        w = self.rng.standard_normal(shape) / math.sqrt(max(fan_in, 1))
        return self.const(w.astype(np.float32), "w")

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...] | None = None,
             **attrs) -> str:
        out = self.name("v")
        self.nodes.append(h.make_node(op, inputs, [out], name=out, **attrs))
        if shape is not None:  # a new current value
            self.value, self.shape = out, tuple(shape)
            self.values.append((out, self.shape))
        return out


def _activation(g: _Graph, kind: str) -> None:
    x, s = g.value, g.shape
    if kind == "Clip":
        g.node("Clip", [x, g.const(np.float32(0)), g.const(np.float32(6))], s)
    elif kind == "SiLU":
        g.node("Mul", [x, g.node("Sigmoid", [x])], s)
    elif kind == "GeluErf":
        e = g.node("Erf", [g.node("Div", [x, g.const(np.float32(math.sqrt(2)))])])
        half = g.node("Mul", [x, g.const(np.float32(0.5))])
        g.node("Mul", [half, g.node("Add", [e, g.const(np.float32(1))])], s)
    elif kind == "GeluTanh":
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, g.const(np.float32(0.044715))])])
        t = g.node("Tanh", [g.node("Mul", [inner, g.const(np.float32(math.sqrt(2 / math.pi)))])])
        half = g.node("Mul", [x, g.const(np.float32(0.5))])
        g.node("Mul", [half, g.node("Add", [t, g.const(np.float32(1))])], s)
    elif kind == "LeakyRelu":
        g.node("LeakyRelu", [x], s, alpha=float(g.rng.uniform(0.01, 0.3)))
    else:
        g.node(kind, [x], s)


def _conv(g: _Graph, draw) -> None:
    n, c, hh, ww = g.shape
    x = g.value
    if draw(st.booleans()):  # an explicit zero pad of the spatial dims (fold-pad)
        p = [draw(st.integers(0, 2)) for _ in range(4)]
        x = g.node("Pad", [x, g.const(np.array([0, 0, p[0], p[1], 0, 0, p[2], p[3]], np.int64))])
        hh, ww = hh + p[0] + p[2], ww + p[1] + p[3]
    m = c if draw(st.booleans()) else draw(st.integers(1, 4))
    groups = c if (m == c and c > 1 and draw(st.booleans())) else 1
    k = draw(st.integers(1, min(3, hh, ww)))
    stride = draw(st.sampled_from([1, 1, 2]))
    pad = draw(st.integers(0, k // 2))
    ins = [x, g.weight(m, c // groups, k, k, fan_in=c // groups * k * k)]
    if draw(st.booleans()):
        ins.append(g.const((0.1 * g.rng.standard_normal(m)).astype(np.float32), "b"))
    out = (n, m, (hh + 2 * pad - k) // stride + 1, (ww + 2 * pad - k) // stride + 1)
    g.node("Conv", ins, out, kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2,
           group=groups)
    if draw(st.booleans()):  # BatchNorm after the conv (fold-batch-norm)
        stats = [g.rng.uniform(0.5, 1.5, m), 0.2 * g.rng.standard_normal(m),
                 0.2 * g.rng.standard_normal(m), g.rng.uniform(0.5, 2.0, m)]
        g.node("BatchNormalization", [g.value, *(g.const(a.astype(np.float32)) for a in stats)],
               out, epsilon=1e-5)


def _pool(g: _Graph, draw) -> None:
    n, c, hh, ww = g.shape
    x = g.value
    fn = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    padded = draw(st.booleans())
    p = [0] * 4
    if padded:  # -inf before max, zeros before avg (what each pool's own pads mean)
        p = [draw(st.integers(0, 1)) for _ in range(4)]
        fill = np.float32(-np.inf if fn == "MaxPool" else 0)
        x = g.node("Pad", [x, g.const(np.array([0, 0, p[0], p[1], 0, 0, p[2], p[3]], np.int64)),
                           g.const(fill)])
        hh, ww = hh + p[0] + p[2], ww + p[1] + p[3]
        if fn == "MaxPool" and max(p) >= min(3, hh, ww):
            x, p, hh, ww = g.value, [0] * 4, g.shape[2], g.shape[3]
    # a max window wider than the pads: none sees only -inf
    k = draw(st.integers(1 + (fn == "MaxPool" and max(p)), min(3, hh, ww)))
    stride = draw(st.sampled_from([1, 2]))
    attrs = {"kernel_shape": [k, k], "strides": [stride] * 2}
    if fn == "AveragePool":
        attrs["count_include_pad"] = int(padded or draw(st.booleans()))
    g.node(fn, [x], (n, c, (hh - k) // stride + 1, (ww - k) // stride + 1), **attrs)


def _transpose_pair(g: _Graph, draw) -> None:
    rank = len(g.shape)
    perm = list(draw(st.permutations(range(rank))))
    inverse = [perm.index(i) for i in range(rank)]
    t = g.node("Transpose", [g.value], perm=perm)
    if draw(st.booleans()):  # something between the two: they cannot cancel
        t = g.node("Relu", [t])
    g.node("Transpose", [t], g.shape, perm=inverse)


def _reshape_chain(g: _Graph, draw) -> None:
    s = g.shape
    flat = int(np.prod(s))
    middle = [(s[0], flat // s[0]), (flat,), (s[0], s[1], flat // (s[0] * s[1]))][
        : 3 if len(s) == 4 else 2]
    x = g.value
    for target in draw(st.lists(st.sampled_from(middle), min_size=1, max_size=3)):
        x = g.node("Reshape", [x, g.const(np.array(target, np.int64))])
    g.node("Reshape", [x, g.const(np.array(s, np.int64))], s)


def _matmul(g: _Graph, draw) -> None:
    s = g.shape
    k = draw(st.integers(1, 5))
    x = g.value
    if len(s) == 4 and draw(st.booleans()):  # through a swap of the last two dims (transpose_a)
        x = g.node("Transpose", [x], perm=[0, 1, 3, 2])
        s = (s[0], s[1], s[3], s[2])
    if len(s) == 2 and draw(st.booleans()):  # W · xᵀ, transposed back (transpose_b)
        xt = g.node("Transpose", [x], perm=[1, 0])
        y = g.node("MatMul", [g.weight(k, s[1], fan_in=s[1]), xt])
        g.node("Transpose", [y], (s[0], k), perm=[1, 0])
        return
    g.node("MatMul", [x, g.weight(s[-1], k, fan_in=s[-1])], (*s[:-1], k))


def _gemm(g: _Graph, draw) -> None:
    n, f = g.shape
    k = draw(st.integers(1, 6))
    trans_b = draw(st.booleans())
    w = g.weight(*((k, f) if trans_b else (f, k)), fan_in=f)
    ins = [g.value, w]
    if draw(st.booleans()):
        ins.append(g.const((0.1 * g.rng.standard_normal(k)).astype(np.float32), "b"))
    g.node("Gemm", ins, (n, k), transB=int(trans_b), alpha=draw(st.sampled_from([1.0, 0.5])))


def _constant(g: _Graph, draw) -> None:
    s = g.shape
    shapes = [(), s, s[1:], (s[-1],)] + ([(s[1], 1, 1)] if len(s) == 4 else [])
    c = g.rng.standard_normal(draw(st.sampled_from(shapes))).astype(np.float32)
    op = draw(st.sampled_from(["Add", "Mul"]))
    g.node(op, [g.value, g.const(c)], s)


@st.composite
def graphs(draw) -> tuple[onnx.ModelProto, np.ndarray]:
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(3, 7)),
             draw(st.integers(3, 7)))
    g = _Graph(shape, np.random.default_rng(draw(st.integers(0, 2**16))))
    for _ in range(draw(st.integers(2, 7))):
        four_d = len(g.shape) == 4
        kind = draw(st.sampled_from(KINDS_4D if four_d else KINDS_2D))
        if kind == "conv":
            _conv(g, draw)
        elif kind == "pool":
            _pool(g, draw)
        elif kind == "act":
            _activation(g, draw(st.sampled_from(ACTIVATIONS)))
        elif kind == "const":
            _constant(g, draw)
        elif kind == "residual":
            earlier = [v for v, s in g.values[:-1] if s == g.shape]
            if earlier:
                g.node("Add", [g.value, draw(st.sampled_from(earlier))], g.shape)
        elif kind == "transpose_pair":
            _transpose_pair(g, draw)
        elif kind == "reshape_chain":
            _reshape_chain(g, draw)
        elif kind == "matmul":
            _matmul(g, draw)
        elif kind == "gemm":
            _gemm(g, draw)
        elif kind == "flatten_gemm":
            g.node("Flatten", [g.value], (g.shape[0], int(np.prod(g.shape[1:]))), axis=1)
            _gemm(g, draw)
    if g.value == "x":
        g.node("Relu", ["x"], g.shape)
    outputs = [g.values[-1]]
    if len(g.values) > 2 and draw(st.booleans()):  # an intermediate output: fusion keeps it
        outputs.append(draw(st.sampled_from(g.values[1:-1])))
    graph = h.make_graph(g.nodes, "random", [h.make_tensor_value_info("x", F, shape)],
                         [h.make_tensor_value_info(o, F, s) for o, s in outputs], g.inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 20)])
    x = g.rng.standard_normal(shape).astype(np.float32)
    return model, x


def _run(model: onnx.ModelProto, x: np.ndarray, device: str, **config) -> dict[str, np.ndarray]:
    manifest, sections = build_model(model, BuilderConfig(**config))
    engine = Runtime(device=device).deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine.create_execution_context().execute({"x": x})


def _check(model: onnx.ModelProto, x: np.ndarray, device: str = "cpu",
           arch: str | None = None) -> None:
    onnx.checker.check_model(model)
    names = [o.name for o in model.graph.output]
    want = dict(zip(names, ReferenceEvaluator(model).run(None, {"x": x}), strict=True))
    fast = _run(model, x, device, target_arch=arch)
    plain = _run(model, x, device, target_arch=arch, optimize=False)
    for name in names:
        assert fast[name].shape == plain[name].shape == want[name].shape
        np.testing.assert_allclose(fast[name], plain[name], rtol=1e-5, atol=1e-6,
                                   err_msg=f"optimized vs unoptimized, output {name}")
        # onnx.reference sums convs/matmuls in float32, ember in float64
        np.testing.assert_allclose(fast[name], want[name], rtol=1e-4, atol=1e-5,
                                   err_msg=f"ember vs onnx.reference, output {name}")


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(graphs())
def test_optimized_equals_unoptimized_on_cpu(case):
    _check(*case)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(graphs())
def test_optimized_equals_unoptimized_on_gpu(case):
    _check(*case, device="cuda", arch=detect_arch())
