"""Property: random small graphs of foundation ops import, legalize, verify, fold, and compute
what ONNX's reference evaluator computes (through the default pipeline and legalization alone)."""

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.interpret import interpret
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import lower

UNARY = ["Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Erf", "Softplus", "LeakyRelu", "HardSwish",
         "Gelu", "Elu", "HardSigmoid"]
BINARY = ["Add", "Sub", "Mul", "Max", "Min"]
KINDS = ["unary", "binary", "transpose", "reduce", "reshape", "softmax", "concat", "conv",
         "matmul", "slice"]


@st.composite
def graphs(draw):
    rank = draw(st.integers(2, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    values = [("x", shape)]
    nodes, inits = [], []
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))

    def fresh(prefix):
        return f"{prefix}{len(nodes)}"

    for _ in range(draw(st.integers(1, 6))):
        name, shp = values[-1] if draw(st.booleans()) else draw(st.sampled_from(values))
        kind = draw(st.sampled_from(KINDS))
        out = fresh("v")
        if kind == "unary":
            nodes.append(h.make_node(draw(st.sampled_from(UNARY)), [name], [out]))
            new = shp
        elif kind == "binary":
            other_shape = tuple(d if draw(st.booleans()) else 1 for d in shp)[
                draw(st.integers(0, len(shp) - 1)):]
            w = fresh("w")
            inits.append(numpy_helper.from_array(
                rng.standard_normal(other_shape).astype(np.float32), w))
            nodes.append(h.make_node(draw(st.sampled_from(BINARY)), [name, w], [out]))
            new = shp
        elif kind == "transpose":
            perm = draw(st.permutations(range(len(shp))))
            nodes.append(h.make_node("Transpose", [name], [out], perm=list(perm)))
            new = tuple(shp[p] for p in perm)
        elif kind == "reduce":
            axis = draw(st.integers(0, len(shp) - 1))
            op = draw(st.sampled_from(["ReduceSum", "ReduceMean", "ReduceMax"]))
            a = fresh("axes")
            inits.append(numpy_helper.from_array(np.array([axis], np.int64), a))
            nodes.append(h.make_node(op, [name, a], [out], keepdims=1))
            new = tuple(1 if i == axis else d for i, d in enumerate(shp))
        elif kind == "reshape":
            new = (int(np.prod(shp[:-1])), shp[-1])
            s = fresh("shape")
            inits.append(numpy_helper.from_array(np.array([-1, shp[-1]], np.int64), s))
            nodes.append(h.make_node("Reshape", [name, s], [out]))
        elif kind == "softmax":
            nodes.append(h.make_node("Softmax", [name], [out],
                                     axis=draw(st.integers(-len(shp), len(shp) - 1))))
            new = shp
        elif kind == "concat":
            axis = draw(st.integers(0, len(shp) - 1))
            nodes.append(h.make_node("Concat", [name, name], [out], axis=axis))
            new = tuple(2 * d if i == axis else d for i, d in enumerate(shp))
        elif kind == "slice":
            axis = draw(st.integers(0, len(shp) - 1))
            ints = [fresh("s"), fresh("e"), fresh("a")]
            for n, v in zip(ints, [0, max(1, shp[axis] // 2), axis], strict=True):
                inits.append(numpy_helper.from_array(np.array([v], np.int64), n))
            nodes.append(h.make_node("Slice", [name, *ints], [out]))
            new = tuple(max(1, d // 2) if i == axis else d for i, d in enumerate(shp))
        elif kind == "conv" and len(shp) == 4:
            k = draw(st.integers(1, 3))
            w = fresh("w")
            inits.append(numpy_helper.from_array(
                rng.standard_normal((2, shp[1], k, k)).astype(np.float32), w))
            nodes.append(h.make_node("Conv", [name, w], [out], pads=[k // 2] * 4))
            new = (shp[0], 2, shp[2] + 2 * (k // 2) - k + 1, shp[3] + 2 * (k // 2) - k + 1)
        elif kind == "matmul":
            w = fresh("w")
            inits.append(numpy_helper.from_array(
                rng.standard_normal((shp[-1], 3)).astype(np.float32), w))
            nodes.append(h.make_node("MatMul", [name, w], [out]))
            new = (*shp[:-1], 3)
        else:
            continue
        values.append((out, new))
    if not nodes:
        nodes.append(h.make_node("Relu", ["x"], ["v0"]))
        values.append(("v0", shape))
    graph = h.make_graph(nodes, "random", [h.make_tensor_value_info("x", T.FLOAT, shape)],
                         [h.make_tensor_value_info(values[-1][0], T.FLOAT, values[-1][1])],
                         inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 20)])
    x = rng.standard_normal(shape).astype(np.float32)
    return model, x


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graph_matches_reference(case):
    model, x = case
    onnx.checker.check_model(model)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    for pipeline in ("legalize", "default"):
        module = lower(import_onnx(model), pipeline)
        module.verify()
        got = next(iter(interpret(module, {"x": x}).values()))
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
