"""fuse-elementwise: elementwise chains built and run as one kernel, numbers unchanged."""

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, build_model
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

rng = np.random.default_rng(0)
F32 = onnx.TensorProto.FLOAT


def _model(nodes: list[tuple], inputs: dict[str, np.ndarray], outputs: list[str],
           initializers: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """A graph of (op_type, inputs, output, attrs) nodes, each named after its output."""
    graph = helper.make_graph(
        [helper.make_node(op, ins, [out], name=out, **attrs) for op, ins, out, attrs in nodes],
        "g",
        [helper.make_tensor_value_info(n, F32, a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(o, F32, None) for o in outputs],
        [onnx.numpy_helper.from_array(a, n) for n, a in (initializers or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


X = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
BIAS = rng.standard_normal((3, 1, 1)).astype(np.float32)
ROW = rng.standard_normal((5,)).astype(np.float32)

CASES = {
    # x -> relu -> add bias (broadcast weight) -> sigmoid -> mul x -> sub row (broadcast input)
    "chain": (_model([("Relu", ["x"], "r", {}), ("Add", ["r", "bias"], "a", {}),
                      ("Sigmoid", ["a"], "s", {}), ("Mul", ["s", "x"], "m", {}),
                      ("Sub", ["m", "row"], "y", {})],
                     {"x": X, "row": ROW}, ["y"], {"bias": BIAS}),
              {"x": X, "row": ROW}, 1),
    # a = relu(x); b = exp(a); c = add(a, b): relu is computed once, in the one kernel
    "diamond": (_model([("Relu", ["x"], "a", {}), ("Exp", ["a"], "b", {}),
                        ("Add", ["a", "b"], "y", {})], {"x": X}, ["y"]),
                {"x": X}, 1),
    # `a` feeds two outputs' chains: it stays a kernel of its own, each chain fuses
    "shared": (_model([("Tanh", ["x"], "a", {}), ("Neg", ["a"], "n", {}),
                       ("Mul", ["n", "x"], "y", {}), ("Abs", ["a"], "z", {})],
                      {"x": X}, ["y", "z"]),
               {"x": X}, 3),
    # an intermediate that is also a graph output is kept; one that needs broadcasting is too
    "kept": (_model([("Relu", ["x"], "y", {}), ("Exp", ["y"], "e", {}),
                     ("Abs", ["row"], "ar", {}), ("Mul", ["e", "ar"], "z", {})],
                    {"x": X, "row": ROW}, ["y", "z"]),
             {"x": X, "row": ROW}, 3),
    # the consumer reads w before the producer, which reads (x, w): the fused kernel's inputs
    # are (w, x), the reverse of the producer's own argument order
    "reordered": (_model([("Sub", ["x", "w"], "d", {}), ("Div", ["w", "d"], "y", {})],
                         {"x": X, "w": X + 3.0}, ["y"]),
                  {"x": X, "w": X + 3.0}, 1),
    # two fusible producers of one consumer, each a chain, sharing an input: one kernel
    "two_producers": (_model([("Relu", ["x"], "r", {}), ("Exp", ["r"], "e", {}),
                              ("Neg", ["w"], "n", {}), ("Mul", ["n", "x"], "m", {}),
                              ("Add", ["e", "m"], "y", {})],
                             {"x": X, "w": X * 0.5}, ["y"]),
                      {"x": X, "w": X * 0.5}, 1),
    # a non-elementwise op splits a chain in two
    "cumsum_between": (_model([("LeakyRelu", ["x"], "l", {"alpha": 0.1}),
                               ("CumSum", ["l", "axis"], "s", {}),
                               ("Exp", ["s"], "q", {}), ("Div", ["q", "x"], "y", {})],
                              {"x": X}, ["y"], {"axis": np.array(-1, np.int64)}),
                       {"x": X}, 2),
    # ... a softmax too, but the chain after it then becomes its epilogue (fuse-epilogues)
    "softmax_between": (_model([("LeakyRelu", ["x"], "l", {"alpha": 0.1}),
                                ("Softmax", ["l"], "s", {"axis": -1}),
                                ("Sqrt", ["s"], "q", {}), ("Div", ["q", "x"], "y", {})],
                               {"x": X}, ["y"]),
                        {"x": X}, 1),
}


def _elementwise_steps(manifest: dict) -> int:
    return sum(step["template"] == "elementwise" for step in manifest["steps"])


def _unfused_steps(model: onnx.ModelProto) -> int:
    """Elementwise steps without the pass: one per elementwise ONNX node."""
    return sum(node.op_type not in ("Softmax", "CumSum") for node in model.graph.node)


@pytest.mark.parametrize("case", sorted(CASES))
def test_numbers_unchanged(case):
    model, feeds, expected_steps = CASES[case]
    manifest, sections = build_model(model)
    assert _elementwise_steps(manifest) == expected_steps < _unfused_steps(model)
    got = Runtime("cpu").deserialize_cuda_engine(plan_bytes(manifest, sections))(feeds)
    want = ReferenceEvaluator(model).run(None, feeds)
    for out, expected in zip(model.graph.output, want, strict=True):
        np.testing.assert_allclose(got[out.name], expected, rtol=1e-5, atol=1e-6,
                                   err_msg=out.name)


def test_fused_origin_names_every_node():
    model, _, _ = CASES["chain"]
    manifest, _ = build_model(model)
    (step,) = manifest["steps"]
    assert step["origin"] == ["r", "a", "s", "m", "y"]
    assert [op["fn"] for op in step["params"]["region"]["ops"]] == [
        "relu", "add", "sigmoid", "mul", "sub"]
    model, _, _ = CASES["two_producers"]
    (step,) = build_model(model)[0]["steps"]
    assert step["origin"] == ["r", "e", "n", "m", "y"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_kernels_compile(case):
    """NVRTC compiles the fused regions (no GPU needed)."""
    model, _, _ = CASES[case]
    manifest, _ = build_model(model, BuilderConfig(target_arch="sm_90"))
    assert manifest["kernels"]
    on_host = [step["name"] for step in manifest["steps"] if step.get("device") == "cpu"]
    assert not on_host, on_host
