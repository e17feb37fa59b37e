"""fuse-normalization: layer norm, RMS norm, softmax / log-softmax and group / instance norm
written out op by op (as PyTorch exports them before opset 17) build to one kernel whose numbers
match onnx.reference / numpy float64, with a symbolic batch too; near-misses stay as they were
and still match; the RMS kernel agrees with numpy and compiles with NVRTC; on the GPU (where
there is one) the fused kernels match as well."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import lower
from ember.runtime.cpu_kernels.reduction import layer_norm
from ember.runtime.cuda import cuda_available
from ember.runtime.engine import Runtime
from ember.runtime.plan import plan_bytes

F = TensorProto.FLOAT
rng = np.random.default_rng(0)


def _w(*shape: int, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale + offset).astype(np.float32)


def _model(nodes: list[tuple], shape: list, inits: dict[str, np.ndarray], opset: int = 13,
           extra_inputs: dict[str, list] | None = None,
           outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    """A graph of (op, inputs, output, attrs) nodes reading "x" of `shape` (a str is symbolic)."""
    ins = {"x": shape, **(extra_inputs or {})}
    graph = helper.make_graph(
        [helper.make_node(op, i, [out], name=out, **attrs) for op, i, out, attrs in nodes], "norm",
        [helper.make_tensor_value_info(n, F, s) for n, s in ins.items()],
        [helper.make_tensor_value_info(o, F, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(a), k) for k, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _scalars(**values: float) -> dict[str, np.ndarray]:
    return {k: np.array(v, np.float32) for k, v in values.items()}


def _reduce(op: str, x: str, out: str, axes: list[int], opset: int) -> list[tuple]:
    """A ReduceX node, axes as an attribute (opset < 18; < 13 for ReduceSum) or an input."""
    if opset >= 18 or (op == "ReduceSum" and opset >= 13):
        return [("Constant", [], f"{out}_axes",
                 {"value": numpy_helper.from_array(np.array(axes, np.int64))}),
                (op, [x, f"{out}_axes"], out, {})]
    return [(op, [x], out, {"axes": axes})]


# -- the forms -------------------------------------------------------------------------------


def layer_norm_model(shape: list, axes: list[int], form: str = "torch", affine: bool = True,
                     opset: int = 13) -> onnx.ModelProto:
    """x - mean, its mean square (+ eps), and a division by the root. form: torch (Pow 2, Sqrt,
    Div), rsqrt (d·d, · Reciprocal(Sqrt)), pow (Pow(., -0.5))."""
    d = len(axes)
    inits = _scalars(two=2.0, eps=1e-5, neg_half=-0.5)
    if affine:
        inits |= {"g": _w(*shape[len(shape) - d:], scale=0.5, offset=1.0),
                  "b": _w(*shape[len(shape) - d:], scale=0.5)}
    n = [*_reduce("ReduceMean", "x", "m", axes, opset), ("Sub", ["x", "m"], "d", {})]
    n.append(("Pow", ["d", "two"], "sq", {}) if form == "torch" else ("Mul", ["d", "d"], "sq", {}))
    n += [*_reduce("ReduceMean", "sq", "v", axes, opset), ("Add", ["v", "eps"], "ve", {})]
    if form == "torch":
        n += [("Sqrt", ["ve"], "s", {}), ("Div", ["d", "s"], "n", {})]
    elif form == "rsqrt":
        n += [("Sqrt", ["ve"], "s", {}), ("Reciprocal", ["s"], "r", {}),
              ("Mul", ["r", "d"], "n", {})]
    else:
        n += [("Pow", ["ve", "neg_half"], "r", {}), ("Mul", ["d", "r"], "n", {})]
    if affine:
        n += [("Mul", ["n", "g"], "ng", {}), ("Add", ["ng", "b"], "y", {})]
    else:
        n[-1] = (*n[-1][:2], "y", n[-1][3])
    return _model(n, shape, inits, opset)


def rms_norm_model(shape: list, form: str = "t5", opset: int = 13) -> onnx.ModelProto:
    """T5 / LLaMA: x · 1 / Sqrt(mean(x^2) + eps), weight · that; or x / Sqrt(mean(x·x) + eps)."""
    inits = {**_scalars(two=2.0, eps=1e-6, one=1.0), "w": _w(shape[-1], scale=0.5, offset=1.0)}
    n = [("Pow", ["x", "two"], "sq", {}) if form == "t5" else ("Mul", ["x", "x"], "sq", {}),
         *_reduce("ReduceMean", "sq", "v", [-1], opset), ("Add", ["v", "eps"], "ve", {}),
         ("Sqrt", ["ve"], "s", {})]
    if form == "t5":
        n += [("Div", ["one", "s"], "r", {}), ("Mul", ["x", "r"], "n", {}),
              ("Mul", ["w", "n"], "y", {})]
    else:
        n += [("Div", ["x", "s"], "n", {}), ("Mul", ["n", "w"], "y", {})]
    return _model(n, shape, inits, opset)


def softmax_model(shape: list, axis: int, stable: bool = True, log: bool = False,
                  opset: int = 13) -> onnx.ModelProto:
    n = []
    t = "x"
    if stable:
        n += [*_reduce("ReduceMax", "x", "mx", [axis], opset), ("Sub", ["x", "mx"], "t", {})]
        t = "t"
    n += [("Exp", [t], "e", {}), *_reduce("ReduceSum", "e", "s", [axis], opset)]
    n += [("Log", ["s"], "l", {}), ("Sub", [t, "l"], "y", {})] if log \
        else [("Div", ["e", "s"], "y", {})]
    return _model(n, shape, {}, opset)


def group_norm_model(shape: list, groups: int, form: str = "decomposed",
                     opset: int = 13) -> onnx.ModelProto:
    """PyTorch's GroupNorm export: Reshape [0, G, -1], the normalization of the last dim
    (decomposed: written out; instance: InstanceNormalization of G channels with unit
    parameters), Reshape to Shape(x), · γ[C, 1, ...] + β[C, 1, ...]."""
    c, spatial = shape[1], len(shape) - 2
    inits = {**_scalars(two=2.0, eps=1e-5), "split": np.array([0, groups, -1], np.int64),
             "ones": np.ones(groups, np.float32), "zeros": np.zeros(groups, np.float32),
             "g": _w(c, *[1] * spatial, scale=0.5, offset=1.0), "b": _w(c, *[1] * spatial)}
    n = [("Reshape", ["x", "split"], "r", {})]
    if form == "decomposed":
        n += [*_reduce("ReduceMean", "r", "m", [-1], opset), ("Sub", ["r", "m"], "d", {}),
              ("Pow", ["d", "two"], "sq", {}), *_reduce("ReduceMean", "sq", "v", [-1], opset),
              ("Add", ["v", "eps"], "ve", {}), ("Sqrt", ["ve"], "s", {}),
              ("Div", ["d", "s"], "n", {})]
    else:
        n += [("InstanceNormalization", ["r", "ones", "zeros"], "n", {"epsilon": 1e-5})]
    n += [("Shape", ["x"], "xs", {}), ("Reshape", ["n", "xs"], "nb", {}),
          ("Mul", ["nb", "g"], "ng", {}), ("Add", ["ng", "b"], "y", {})]
    return _model(n, shape, inits, opset)


def instance_norm_model(shape: list, opset: int = 13) -> onnx.ModelProto:
    """Mean and variance over the spatial dims written out, then · γ + β per channel."""
    model = layer_norm_model(shape, list(range(2, len(shape))), "rsqrt", affine=False,
                             opset=opset)
    c = shape[1]
    model.graph.node[-1].output[0] = model.graph.node[-1].name = "n"
    model.graph.node.extend([helper.make_node("Mul", ["n", "g"], ["ng"], name="ng"),
                             helper.make_node("Add", ["ng", "b"], ["y"], name="y")])
    model.graph.initializer.extend([
        numpy_helper.from_array(_w(c, *[1] * (len(shape) - 2), offset=1.0), "g"),
        numpy_helper.from_array(_w(1, c, *[1] * (len(shape) - 2)), "b")])
    return model


# case -> (model builder taking the input shape, shapes, the fused step's template, params)
FORMS = {
    "layer_norm_torch": (lambda s: layer_norm_model(s, [-1]), [[2, 5, 16], [3, 7, 64]],
                         "layer_norm", {"axis": -1}),
    "layer_norm_rsqrt_opset18": (lambda s: layer_norm_model(s, [-1], "rsqrt", opset=18),
                                 [[4, 32], [2, 3, 100]], "layer_norm", {"axis": -1}),
    "layer_norm_pow_two_dims": (lambda s: layer_norm_model(s, [-2, -1], "pow"),
                                [[2, 3, 8], [1, 4, 6, 10]], "layer_norm", {"axis": -2}),
    "layer_norm_no_affine": (lambda s: layer_norm_model(s, [-1], affine=False),
                             [[3, 12]], "layer_norm", {"axis": -1}),
    "rms_norm_t5": (lambda s: rms_norm_model(s), [[2, 5, 16], [1, 3, 512]], "layer_norm",
                    {"rms": True, "axis": -1}),
    "rms_norm_div_opset18": (lambda s: rms_norm_model(s, "div", opset=18), [[6, 24]],
                             "layer_norm", {"rms": True, "axis": -1}),
    "softmax_stable": (lambda s: softmax_model(s, -1), [[4, 10], [2, 3, 257]], "softmax",
                       {"log": False, "axis": -1}),
    "softmax_stable_axis1_opset11": (lambda s: softmax_model(s, 1, opset=11), [[2, 6, 5]],
                                     "softmax", {"log": False, "axis": 1}),
    "softmax_unstable": (lambda s: softmax_model(s, -1, stable=False), [[3, 9]], "softmax",
                         {"log": False, "axis": -1}),
    "log_softmax_stable": (lambda s: softmax_model(s, -1, log=True), [[4, 10]], "softmax",
                           {"log": True, "axis": -1}),
    "log_softmax_unstable_opset18": (lambda s: softmax_model(s, 1, False, True, opset=18),
                                     [[4, 7, 3]], "softmax", {"log": True, "axis": 1}),
    "group_norm_decomposed": (lambda s: group_norm_model(s, 2), [[2, 4, 3, 3], [1, 6, 5, 7]],
                              "group_norm", {"groups": 2}),
    "group_norm_instance_form": (lambda s: group_norm_model(s, 3, "instance"),
                                 [[2, 6, 4, 4], [3, 12, 10]], "group_norm", {"groups": 3}),
    "instance_norm": (instance_norm_model, [[2, 4, 3, 3], [1, 5, 16]], "group_norm", {}),
}
CASES = [(form, shape) for form, (_, shapes, _, _) in FORMS.items() for shape in shapes]


def _ids(case: tuple) -> str:
    return f"{case[0]}-{'x'.join(map(str, case[1]))}"


def _feeds(model: onnx.ModelProto, shape: list[int]) -> dict[str, np.ndarray]:
    return {"x": _w(*shape, scale=2.0, offset=0.5)}


def _run(model: onnx.ModelProto, feeds: dict, config: BuilderConfig | None = None,
         device: str = "cpu") -> tuple[dict, dict]:
    manifest, sections = build_model(model, config)
    engine = Runtime(device=device).deserialize_cuda_engine(plan_bytes(manifest, sections))
    return manifest, engine.create_execution_context().execute(feeds)


def _check_step(manifest: dict, template: str, params: dict, shape: list[int]) -> None:
    (step,) = manifest["steps"]
    assert step["template"] == template, [s["template"] for s in manifest["steps"]]
    for key, want in params.items():
        got = step["params"].get(key)
        if key == "axis":
            want %= len(shape)
        assert got == want, (key, got, want)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_form_is_one_kernel_matching_reference(case):
    form, shape = case
    make, _, template, params = FORMS[form]
    model = make(shape)
    feeds = _feeds(model, shape)
    manifest, got = _run(model, feeds)
    _check_step(manifest, template, params, shape)
    assert sorted(manifest["steps"][0]["origin"]) == sorted(
        n.name for n in model.graph.node if n.op_type not in ("Constant", "Shape"))
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got["y"], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_symbolic_batch(form):
    """A symbolic batch: the pass fuses before any profile (nn level); a profile builds it."""
    make, shapes, template, params = FORMS[form]
    shape = shapes[0]
    model = make(["N", *shape[1:]])
    module = lower(import_onnx(model), "default")
    ops = [op.name for op in module.walk() if op.name.startswith("nn.")]
    assert f"nn.{template}" in ops and "nn.reduce" not in ops, ops
    profile = OptimizationProfile()
    profile.set_shape("x", [1, *shape[1:]], [3, *shape[1:]], [8, *shape[1:]])
    config = BuilderConfig(profiles=[profile])
    feeds = _feeds(model, [3, *shape[1:]])
    manifest, got = _run(model, feeds, config)
    _check_step(manifest, template, params, shape)
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got["y"], expected, rtol=1e-4, atol=1e-5)


def test_group_norm_matches_float64():
    """Against PyTorch's GroupNorm definition in float64 (not the op-by-op float32 graph)."""
    model, shape, groups = group_norm_model([2, 6, 5, 5], 3), [2, 6, 5, 5], 3
    feeds = _feeds(model, shape)
    _, got = _run(model, feeds)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    x = feeds["x"].astype(np.float64).reshape(2, groups, -1)
    n = ((x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5))
    want = n.reshape(shape) * inits["g"] + inits["b"]
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-5)


# -- near-misses -------------------------------------------------------------------------------

def _near_miss(name: str) -> tuple[onnx.ModelProto, dict]:
    shape = [2, 3, 8]
    if name == "runtime_eps":
        model = layer_norm_model(shape, [-1])
        model.graph.initializer.remove(next(t for t in model.graph.initializer
                                            if t.name == "eps"))
        model.graph.input.append(helper.make_tensor_value_info("eps", F, []))
        return model, {"eps": np.array(1e-5, np.float32)}
    if name == "centred_also_output":
        model = layer_norm_model(shape, [-1])
        model.graph.output.append(helper.make_tensor_value_info("d", F, None))
        return model, {}
    if name == "variance_other_axis":  # mean over the last dim, variance over dim 1
        model = layer_norm_model(shape, [-1])
        node = next(n for n in model.graph.node if n.name == "v")
        node.attribute[0].ints[:] = [1]
        return model, {}
    if name == "softmax_sum_two_axes":
        model = softmax_model(shape, -1, stable=False)
        node = next(n for n in model.graph.node if n.name == "s_axes")
        node.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array([1, 2], np.int64)))
        return model, {}
    if name == "exp_also_output":
        model = softmax_model(shape, -1)
        model.graph.output.append(helper.make_tensor_value_info("e", F, None))
        return model, {}
    raise KeyError(name)


@pytest.mark.parametrize("name", ["runtime_eps", "centred_also_output", "variance_other_axis",
                                  "softmax_sum_two_axes", "exp_also_output"])
def test_near_miss_left_alone(name):
    model, extra = _near_miss(name)
    feeds = {**_feeds(model, [2, 3, 8]), **extra}
    manifest, got = _run(model, feeds)
    templates = [s["template"] for s in manifest["steps"]]
    assert not {"layer_norm", "softmax", "group_norm"} & set(templates), templates
    assert len(templates) > 1
    expected = ReferenceEvaluator(model).run(None, feeds)
    for output, want in zip(model.graph.output, expected, strict=True):
        np.testing.assert_allclose(got[output.name], want, rtol=1e-4, atol=1e-5)


def test_written_out_softmax_inside_attention_becomes_attention():
    """fuse-normalization runs first, so fuse-attention finds the nn.softmax it anchors on."""
    from tests.passes.test_fuse_attention import _attention_feeds, _attention_model

    model = _attention_model("div_add")
    nodes = list(model.graph.node)
    at = next(i for i, n in enumerate(nodes) if n.op_type == "Softmax")
    written = [helper.make_node(op, ins, [out], name=out, **attrs) for op, ins, out, attrs in [
        ("ReduceMax", ["masked"], "mx", {"axes": [-1]}), ("Sub", ["masked", "mx"], "t", {}),
        ("Exp", ["t"], "e", {}), *_reduce("ReduceSum", "e", "s", [-1], opset=17),
        ("Div", ["e", "s"], "probs", {})]]
    del model.graph.node[:]
    model.graph.node.extend(nodes[:at] + written + nodes[at + 1:])
    feeds = _attention_feeds()
    manifest, got = _run(model, feeds)
    templates = [s["template"] for s in manifest["steps"]]
    assert "attention" in templates and "softmax" not in templates, templates
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got["y"], expected, rtol=1e-4, atol=1e-5)


def test_other_pipelines_leave_the_chain():
    """The unoptimized build (the differential tests' baseline) keeps the ops as written."""
    model = layer_norm_model([2, 3, 8], [-1])
    manifest, _ = build_model(model, BuilderConfig(optimize=False))
    assert "layer_norm" not in [s["template"] for s in manifest["steps"]]


# -- the RMS kernel ------------------------------------------------------------------------------

def test_rms_kernel_against_numpy():
    x, w, b = _w(3, 4, 10), _w(4, 10), _w(10)
    (got,) = layer_norm([x, w, b], {"axis": 1, "epsilon": 1e-3, "rms": True})
    xf = x.astype(np.float64)
    want = xf / np.sqrt(np.mean(xf * xf, axis=(1, 2), keepdims=True) + 1e-3) * w + b
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert got.dtype == np.float32


@pytest.mark.parametrize("form", ["rms_norm_t5", "layer_norm_torch", "group_norm_decomposed",
                                  "softmax_stable"])
def test_fused_step_compiles_for_the_gpu(form):
    make, shapes, template, _ = FORMS[form]
    manifest, _ = build_model(make(shapes[0]), BuilderConfig(target_arch="sm_90"))
    (step,) = manifest["steps"]
    assert step["template"] == template and step.get("device") != "cpu", step


# -- on the GPU ----------------------------------------------------------------------------------

@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU visible")
@pytest.mark.cuda
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_form_on_the_gpu(case):
    from ember.compiler.builder import detect_arch

    form, shape = case
    make, _, template, params = FORMS[form]
    model = make(shape)
    feeds = _feeds(model, shape)
    manifest, got = _run(model, feeds, BuilderConfig(target_arch=detect_arch()), "cuda")
    _check_step(manifest, template, params, shape)
    assert manifest["steps"][0].get("device") != "cpu"
    (expected,) = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(got["y"], expected, rtol=1e-4, atol=1e-5)
