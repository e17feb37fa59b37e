"""`ember compare`: run one model on several backends with the same inputs (ember on the GPU or
on its CPU executor, onnxruntime, onnx.reference) and hold each one's outputs to the tolerances
against one of them, as `polygraphy run` does; PASS/FAIL is the exit status. `--per-layer`
also compares the tensors that survive ember's fusion, each mapped back to its ONNX node, and
names the first layer that diverges.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ember.compiler.flag_groups import (
    FlagError,
    InputData,
    Tolerances,
    add_build_flags,
    add_input_flags,
    add_model_flags,
    add_tolerance_flags,
    build_options,
    input_data,
    input_shapes,
    model_inputs,
    parse_shapes,
    tolerances,
)
from ember.errors import EmberError

if TYPE_CHECKING:  # the CLI builds this parser at start: onnx is imported where used
    import onnx

BACKENDS = ("ember-cuda", "ember-cpu", "onnxruntime", "reference")

EXAMPLES = """examples:
  ember compare model.onnx                      (ember vs onnxruntime, Polygraphy's tolerances)
  ember compare model.onnx --backends ember-cuda,ember-cpu,onnxruntime,reference
  ember compare model.onnx --fp16 --atol 1e-2 --rtol 1e-2 --check-error-stat median
  ember compare model.onnx --load-inputs in.npz --per-layer
  ember compare bert.onnx --shapes input_ids:1x128,attention_mask:1x128 --seed 3 \\
      --input-range input_ids:0,30521 attention_mask:1,1"""


# -- error statistics --------------------------------------------------------------------------

# |abs error| histogram: exactly 0, below 1e-8, one bin per decade up to 1, then 1 and above
_DECADES = [10.0 ** k for k in range(-8, 1)]
_BIN_LABELS = (["0", "< 1e-8"] + [f"[{a:.0e}, {b:.0e})".replace("e-0", "e-").replace("e+00", "")
                                   for a, b in zip(_DECADES, _DECADES[1:], strict=False)]
               + [">= 1"])


def _histogram(absdiff: np.ndarray) -> list[int]:
    nonzero = np.nan_to_num(absdiff[absdiff != 0], nan=np.inf)
    bins = np.bincount(np.searchsorted(_DECADES, nonzero, side="right"),
                       minlength=len(_DECADES) + 1)
    return [int(np.count_nonzero(absdiff == 0))] + bins.tolist()


@dataclass
class OutputComparison:
    """One tensor of one backend held against the same tensor of the reference backend."""

    name: str
    backend: str
    against: str
    shape: tuple[int, ...]
    dtype: str
    atol: float
    rtol: float
    stat: str
    passed: bool
    max_abs: float = 0.0
    mean_abs: float = 0.0
    median_abs: float = 0.0
    max_rel: float = 0.0
    mean_rel: float = 0.0
    median_rel: float = 0.0
    mismatches: int = 0
    histogram: list[int] = field(default_factory=list)
    problem: str = ""  # a shape mismatch or a missing tensor: no statistics

    def verdict(self) -> str:
        """Why it passed or failed, in one line."""
        if self.problem:
            return self.problem
        if self.stat == "elemwise":
            return (f"elemwise: {self.mismatches} of {int(np.prod(self.shape, dtype=np.int64))}"
                    f" element(s) over atol {self.atol:g} and rtol {self.rtol:g}")
        abs_err, rel_err = (getattr(self, f"{self.stat}_{k}") for k in ("abs", "rel"))
        return (f"{self.stat} abs error {abs_err:.3g} {'<=' if abs_err <= self.atol else '>'} "
                f"atol {self.atol:g}, {self.stat} rel error {rel_err:.3g} "
                f"{'<=' if rel_err <= self.rtol else '>'} rtol {self.rtol:g}")


def compare_arrays(name: str, got: np.ndarray, expected: np.ndarray, tol: Tolerances,
                   backend: str = "", against: str = "") -> OutputComparison:
    """Hold `got` to `expected` as Polygraphy does: rel error = abs error / |expected| (an
    expected 0 counts as 2e-16), equal infinities agree (Polygraphy's
    `--infinities-compare-equal`); `stat` elemwise fails where any element is over both atol and
    rtol (NaN fails), max/mean/median fail where the statistic is over both."""
    atol, rtol, stat = tol.of(name)
    got, expected = np.asarray(got), np.asarray(expected)
    result = OutputComparison(name, backend, against, tuple(expected.shape),
                              str(expected.dtype), atol, rtol, stat, passed=False)
    if got.shape != expected.shape:
        result.problem = f"shape {list(got.shape)} where {against} has {list(expected.shape)}"
        return result
    if got.dtype == np.bool_ and expected.dtype == np.bool_:
        absdiff = np.logical_xor(got, expected).astype(np.float64)
    else:
        with np.errstate(invalid="ignore"):  # inf - inf: equal infinities are set to 0 below
            absdiff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        absdiff[got == expected] = 0.0  # as Polygraphy's --infinities-compare-equal
    denominator = np.abs(expected.astype(np.float64))
    denominator[denominator == 0] = np.finfo(np.float64).eps
    with np.errstate(invalid="ignore"):  # inf / inf: NaN, which fails
        reldiff = absdiff / denominator
    if absdiff.size:
        for kind, diff in (("abs", absdiff), ("rel", reldiff)):
            setattr(result, f"max_{kind}", float(np.max(diff)))
            setattr(result, f"mean_{kind}", float(np.mean(diff)))
            setattr(result, f"median_{kind}", float(np.median(diff)))
        result.histogram = _histogram(absdiff)
    mismatch = (np.isnan(absdiff) | (absdiff > atol)) & (np.isnan(reldiff) | (reldiff > rtol))
    result.mismatches = int(np.count_nonzero(mismatch))
    if stat == "elemwise":
        result.passed = result.mismatches == 0
    else:
        abs_err, rel_err = getattr(result, f"{stat}_abs"), getattr(result, f"{stat}_rel")
        result.passed = bool(abs_err <= atol or rel_err <= rtol)
    return result


def _histogram_lines(counts: Sequence[int], width: int = 30) -> list[str]:
    labels = _BIN_LABELS
    used = [i for i, c in enumerate(counts) if c]
    if not used:
        return []
    top = max(counts)
    lines = []
    for i in range(used[0], used[-1] + 1):
        bar = "#" * max(1, round(width * counts[i] / top)) if counts[i] else ""
        lines.append(f"      {labels[i]:>12} | {bar:{width}} {counts[i]}")
    return lines


# -- backends ----------------------------------------------------------------------------------

@dataclass
class BackendRun:
    """What one backend gave: outputs by name, and for ember its plan's steps."""

    outputs: dict[str, np.ndarray]
    seconds: float
    steps: list[Mapping[str, Any]] | None = None
    note: str = ""


def run_backend(name: str, model: onnx.ModelProto, feed: Mapping[str, np.ndarray],
                precision: Mapping[str, Any] | None = None) -> BackendRun:
    """Run `model` on one backend. ember builds for the feed's shapes (`precision`: the build's
    options, e.g. fp16=True); onnxruntime runs on its CPU provider; `reference` is
    onnx.reference.ReferenceEvaluator."""
    if name.startswith("ember-"):
        from ember.compiler.commands import build_for_shapes

        start = time.perf_counter()
        engine = build_for_shapes(model, {k: v.shape for k, v in feed.items()},
                                  device=name.removeprefix("ember-"), **(precision or {}))
        built = time.perf_counter() - start
        start = time.perf_counter()
        outputs = engine(dict(feed))
        return BackendRun(outputs, time.perf_counter() - start, list(engine.steps),
                          f"built {len(engine.steps)} steps in {built:.2f} s")
    if precision and any(precision.values()):
        raise FlagError(f"backend {name} was given ember build options")
    if name not in ("onnxruntime", "reference"):
        raise FlagError(f"unknown backend '{name}'; the backends are {', '.join(BACKENDS)}")
    start = time.perf_counter()
    try:
        if name == "onnxruntime":
            import onnxruntime as ort

            from ember.compiler.ort_compat import for_onnxruntime

            session = ort.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            values = [_ort_value(v, o.type) for v, o in zip(
                session.run(names, dict(feed)), session.get_outputs(), strict=True)]
        else:
            from onnx.reference import ReferenceEvaluator

            evaluator = ReferenceEvaluator(model)
            names = list(evaluator.output_names)
            values = evaluator.run(None, dict(feed))
    except Exception as e:  # the peer's own failure (an op it lacks, say): named, one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EmberError(f"backend {name} cannot run the model: {first[:400]} (leave it out: "
                         f"--backends)") from None
    return BackendRun(dict(zip(names, (np.asarray(v) for v in values), strict=True)),
                      time.perf_counter() - start)


# ops onnxruntime's CPU provider runs on (or fuses into) its u8 x s8 integer kernels
INT8_ON_ONNXRUNTIME = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                       "ConvInteger", "MatMulInteger")


# onnxruntime's float8 outputs come back as their bytes (uint8): their ml_dtypes types
_ORT_FLOAT8 = {"tensor(float8e4m3fn)": "float8_e4m3fn", "tensor(float8e4m3fnuz)":
               "float8_e4m3fnuz", "tensor(float8e5m2)": "float8_e5m2",
               "tensor(float8e5m2fnuz)": "float8_e5m2fnuz"}


def _ort_value(value: Any, onnx_type: str) -> Any:
    """An onnxruntime output as its values: a float8 tensor's bytes viewed as ml_dtypes' type
    (compared with ember's and onnx.reference's float8 arrays by value, not by byte)."""
    name = _ORT_FLOAT8.get(onnx_type)
    value = np.asarray(value)
    if name is None or value.dtype != np.uint8:
        return value
    import ml_dtypes  # (an onnx dependency)

    return value.view(getattr(ml_dtypes, name))


# -- per layer ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """A tensor that survives ember's fusion: the ONNX node writing it and the ember step (the
    fused kernel, with the ONNX nodes it covers) that computes it."""

    tensor: str
    node: str
    op_type: str
    step: str = ""
    origin: tuple[str, ...] = ()


def surviving_tensors(model: onnx.ModelProto, steps: Sequence[Mapping[str, Any]]
                      ) -> list[Layer]:
    """The ONNX tensors a plan's steps write: of the ONNX nodes fused into a step, the outputs
    that a node outside the step reads or that are graph outputs. In ONNX node order (a
    topological order)."""
    graph = model.graph
    readers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.name)
    graph_outputs = {o.name for o in graph.output}
    step_of: dict[str, Mapping[str, Any]] = {}
    for step in steps:
        for node_name in step.get("origin", ()):
            step_of.setdefault(node_name, step)
    layers = []
    for node in graph.node:
        step = step_of.get(node.name)
        if not node.name or step is None:  # folded into weights, or not in the plan
            continue
        inside = set(step.get("origin", ()))
        for name in node.output:
            if name and (name in graph_outputs or readers.get(name, set()) - inside):
                layers.append(Layer(name, node.name, node.op_type, step["name"],
                                    tuple(step.get("origin", ()))))
    return layers


def named_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model`, or a copy whose unnamed nodes are named `<OpType>_<index>` (ember's plan maps
    each kernel back to ONNX nodes by name, so per-layer comparison needs them named)."""
    if all(node.name for node in model.graph.node):
        return model
    import onnx

    from ember.compiler.surgeon import name_unnamed

    named = onnx.ModelProto.FromString(model.SerializeToString())
    name_unnamed(named.graph.node, lambda node: node.op_type)
    return named


def layers_of(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]], device: str,
              precision: Mapping[str, Any] | None = None) -> list[Layer]:
    """The tensors that survive fusion when ember builds `model` for these input shapes on
    `device` ("cpu", "cuda", "auto") with these build options (one build, to read its plan)."""
    from ember.compiler.commands import build_for_shapes

    engine = build_for_shapes(model, {k: tuple(v) for k, v in shapes.items()}, device,
                              **(precision or {}))
    return surviving_tensors(model, engine.steps)


def with_outputs(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` with these tensors marked as graph outputs too (types by ONNX shape
    inference)."""
    import onnx

    marked = onnx.ModelProto.FromString(model.SerializeToString())
    have = {o.name for o in marked.graph.output}
    produced = {name for node in marked.graph.node for name in node.output if name}
    unknown = [n for n in names if n not in produced and n not in have]
    if unknown:
        raise EmberError(f"cannot mark {', '.join(repr(n) for n in unknown)} as output(s): no "
                         "node of the model writes such a tensor")
    todo = [n for n in dict.fromkeys(names) if n not in have]
    if not todo:
        return marked
    inferred = onnx.shape_inference.infer_shapes(marked)
    infos = {vi.name: vi for vi in inferred.graph.value_info}
    for name in todo:
        info = infos.get(name)
        if info is None:
            raise EmberError(f"ONNX shape inference gives no type for tensor "
                             f"'{name}', so it cannot be marked as an output")
        marked.graph.output.append(info)
    return marked


# -- the comparison ----------------------------------------------------------------------------

@dataclass
class CompareResult:
    """Every comparison made; `passed` when each output (and, per layer, each layer) passed."""

    against: str
    outputs: list[OutputComparison]
    layers: dict[str, list[tuple[Layer, OutputComparison]]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.outputs) and all(
            c.passed for pairs in self.layers.values() for _, c in pairs)

    def first_diverging(self, backend: str) -> tuple[Layer, OutputComparison] | None:
        """The first layer (ONNX node order) of `backend` that fails its tolerance."""
        return next(((layer, c) for layer, c in self.layers.get(backend, []) if not c.passed),
                    None)


def default_backends() -> tuple[str, ...]:
    """ember on the GPU when there is one, else its CPU executor; and onnxruntime."""
    from ember.compiler.builder import detect_arch

    return ("ember-cuda" if detect_arch() else "ember-cpu", "onnxruntime")


def compare(model: str | onnx.ModelProto, *, backends: Sequence[str] | None = None,
            against: str | None = None, feed: Mapping[str, np.ndarray] | None = None,
            inputs: InputData | None = None, shapes: Mapping[str, tuple[int, ...]] | None = None,
            tol: Tolerances | None = None, per_layer: bool = False,
            precision: Mapping[str, Any] | None = None,
            out: TextIO | None = None) -> CompareResult:
    """Run `model` on each backend with the same inputs (`feed`, else made by `inputs` for
    `shapes`) and compare each backend's outputs with `against`'s (default: onnxruntime where
    listed, else reference, else the first backend). `precision`: ember's build options.
    `per_layer`: also compare every tensor that survives ember's fusion (marked as an output
    on every side) and name the first diverging layer."""
    from ember.compiler.onnx_importer import load_model

    out = out or sys.stdout
    tol = tol or Tolerances()
    backends = list(backends or default_backends())
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise FlagError(f"unknown backend(s) {', '.join(unknown) or '(none given)'}; the "
                        f"backends are {', '.join(BACKENDS)}")
    if len(set(backends)) != len(backends):
        raise FlagError(f"--backends lists a backend twice: {','.join(backends)}")
    if len(backends) < 2:
        raise FlagError("compare needs two backends or more (--backends a,b)")
    if against is None:
        against = next((b for b in ("onnxruntime", "reference") if b in backends), backends[0])
    elif against not in backends:
        raise FlagError(f"--against {against} is not among --backends {','.join(backends)}")
    proto, source = load_model(model)
    specs = model_inputs(proto)
    if feed is None:
        inputs = inputs or InputData()
        feed = inputs.feed(specs, None if inputs.path else input_shapes(specs, shapes or {}))
        how = (f"from {inputs.path}" if inputs.path else
               f"random, seed {inputs.seed}, " + ", ".join(
                   f"{s.name} in [{inputs.range_of(s.name)[0]:g}, "
                   f"{inputs.range_of(s.name)[1]:g}]" for s in specs))
    else:
        how = "given"
    out.write(f"ember compare {source}: {', '.join(b for b in backends if b != against)} "
              f"against {against}\n")
    out.write("inputs (" + how + "): " + ", ".join(
        f"{k} {v.dtype}{list(v.shape)}" for k, v in feed.items()) + "\n")
    unused = sorted(tol.names() - {o.name for o in proto.graph.output})
    if unused and not per_layer:
        raise FlagError(f"tolerances name {', '.join(unused)}, which the model has no output "
                        "of")

    marked: dict[str, list[Layer]] = {}
    # marks change onnxruntime's Q/DQ fusion: its per-layer values need a second look
    qdq_on_onnxruntime = per_layer and "onnxruntime" in backends and any(
        n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)
    if per_layer:
        proto = named_nodes(proto)
        for b in backends:
            if b.startswith("ember-"):
                marked[b] = layers_of(proto, {k: v.shape for k, v in feed.items()},
                                      b.removeprefix("ember-"), precision)
        if not marked:
            raise FlagError("--per-layer maps layers through ember's plan: list an ember "
                            "backend")
        if qdq_on_onnxruntime:
            out.write("note: marking a Q/DQ model's tensors as outputs changes how onnxruntime "
                      "fuses it (a marked DequantizeLinear output keeps its conv off "
                      "QLinearConv), so onnxruntime's layers here may differ from its own "
                      "unmarked run by an int8 step; the first diverging layer is checked "
                      "again with only its tensor marked\n")
    if "onnxruntime" in backends and any(n.op_type in INT8_ON_ONNXRUNTIME
                                         for n in proto.graph.node):
        from ember.compiler.ort_compat import saturating_int8_kernels

        if saturating_int8_kernels():
            out.write("note: this CPU has AVX2 without VNNI, where onnxruntime's fused INT8 "
                      "kernels clip u8 x s8 pair sums to int16 (its \"u8s8 saturation\"): its "
                      "results on this quantized model can differ from the model's arithmetic "
                      "(ember's) by more than an int8 step\n")
    union = list(dict.fromkeys(layer.tensor for layers in marked.values() for layer in layers))
    runs: dict[str, BackendRun] = {}
    for b in backends:
        names = [layer.tensor for layer in marked[b]] if b in marked else union
        runs[b] = run_backend(b, with_outputs(proto, names) if per_layer else proto, feed,
                              precision if b.startswith("ember-") else None)
        note = f"{runs[b].note}, " if runs[b].note else ""
        out.write(f"{b}: {note}ran in {runs[b].seconds * 1e3:.1f} ms\n")

    result = CompareResult(against, [])
    expected = runs[against].outputs
    graph_outputs = [o.name for o in proto.graph.output]
    for b in backends:
        if b == against:
            continue
        got = runs[b].outputs
        for name in graph_outputs:
            if name not in got or name not in expected:
                c = OutputComparison(name, b, against, (), "", *tol.of(name), passed=False,
                                     problem=f"missing from {b if name not in got else against}")
            else:
                c = compare_arrays(name, got[name], expected[name], tol, b, against)
            result.outputs.append(c)
            _print_output(c, out)
        if per_layer:
            # the tensors of this pair's ember plan (of the first ember backend's, for a pair
            # with no ember side)
            steps = runs[b].steps or runs[against].steps or next(
                (r.steps for r in runs.values() if r.steps), [])
            layers = surviving_tensors(proto, steps) if steps else []
            names = [layer.tensor for layer in layers
                     if layer.tensor in got and layer.tensor in expected]
            pairs = [(layer, compare_arrays(layer.tensor, got[layer.tensor],
                                            expected[layer.tensor], tol, b, against))
                     for layer in layers if layer.tensor in names]
            result.layers[b] = pairs
            first = result.first_diverging(b)
            _print_layers(b, against, pairs, first, out)
            if first is not None and qdq_on_onnxruntime and "onnxruntime" in (b, against):
                _recheck_alone(first[0].tensor, b, against, runs, proto, feed, tol, out)
    n = len(result.outputs)
    out.write(f"{'PASS' if result.passed else 'FAIL'}: {sum(c.passed for c in result.outputs)} "
              f"of {n} output comparison(s) passed"
              + ("".join(f"; {b}: {sum(c.passed for _, c in pairs)} of {len(pairs)} layers"
                         for b, pairs in result.layers.items())) + "\n")
    return result


def _recheck_alone(tensor: str, backend: str, against: str, runs: dict[str, BackendRun],
                   proto: onnx.ModelProto, feed: Mapping[str, np.ndarray], tol: Tolerances,
                   out: TextIO) -> None:
    """onnxruntime run again with only `tensor` marked (its Q/DQ fusion as unmarked but for
    that tensor), compared with the other side's value of it."""
    alone = run_backend("onnxruntime", with_outputs(proto, [tensor]), feed).outputs
    mine = backend == "onnxruntime"
    got = alone[tensor] if mine else runs[backend].outputs[tensor]
    expected = runs[against].outputs[tensor] if mine else alone[tensor]
    c = compare_arrays(tensor, got, expected, tol, backend, against)
    out.write(f"    checked with only '{tensor}' marked on onnxruntime: {c.verdict()} "
              f"({'PASS: an artefact of the marks' if c.passed else 'FAIL: it stands'})\n")


def _print_output(c: OutputComparison, out: TextIO) -> None:
    out.write(f"[{c.backend} vs {c.against}] {c.name} {c.dtype}{list(c.shape)}: "
              f"{'PASS' if c.passed else 'FAIL'} ({c.verdict()})\n")
    if c.problem:
        return
    out.write(f"    abs error: max {c.max_abs:.3g}  mean {c.mean_abs:.3g}  "
              f"median {c.median_abs:.3g}\n")
    out.write(f"    rel error: max {c.max_rel:.3g}  mean {c.mean_rel:.3g}  "
              f"median {c.median_rel:.3g}\n")
    lines = _histogram_lines(c.histogram)
    if lines:
        out.write("    abs error histogram (elements per range):\n" + "\n".join(lines) + "\n")


def _tail(name: str, width: int) -> str:
    """A long name's end (where ONNX exporters put the op: .../self/query/MatMul)."""
    return name if len(name) <= width else "…" + name[len(name) - width + 1:]


def _print_layers(backend: str, against: str, pairs: list[tuple[Layer, OutputComparison]],
                  first: tuple[Layer, OutputComparison] | None, out: TextIO) -> None:
    out.write(f"per layer, {backend} vs {against}: {len(pairs)} tensor(s) that survive ember's "
              "fusion, in ONNX node order\n")
    out.write(f"    {'step':16} {'ONNX node (+ others fused into the kernel)':44} "
              f"{'tensor':32} {'max abs':>9} {'max rel':>9}\n")
    for layer, c in pairs:
        others = len(layer.origin) - 1 if layer.node in layer.origin else len(layer.origin)
        node = _tail(layer.node, 40 if others else 44) + (f" +{others}" if others else "")
        out.write(f"    {layer.step or '-':16} {node:44} {_tail(layer.tensor, 32):32} "
                  f"{c.max_abs:9.2g} {c.max_rel:9.2g}  {'PASS' if c.passed else 'FAIL'}\n")
    if first is None:
        out.write(f"no layer of {backend} diverges\n")
        return
    layer, c = first
    out.write(f"first diverging layer of {backend}: step {layer.step} (ONNX node(s) "
              f"{', '.join(layer.origin) or layer.node}), tensor '{layer.tensor}' written by "
              f"ONNX node '{layer.node}' ({layer.op_type}): {c.verdict()}\n")


# -- the subcommand ----------------------------------------------------------------------------

def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("compare", help="run a model on ember, onnxruntime and onnx.reference "
                       "and compare the outputs (exit status 0 PASS, 1 FAIL, 2 bad usage)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    add_model_flags(p)
    p.add_argument("--backends", metavar="LIST",
                   help=f"comma-separated, from {', '.join(BACKENDS)} (default: ember-cuda "
                        "where there is a GPU, else ember-cpu; and onnxruntime)")
    p.add_argument("--against", metavar="BACKEND",
                   help="the backend the others are compared with (default: onnxruntime where "
                        "listed, else reference, else the first)")
    p.add_argument("--per-layer", action="store_true",
                   help="also compare each tensor that survives ember's fusion (marked as an "
                        "output on every side), each mapped to its step and ONNX nodes, and "
                        "name the first diverging layer (on a Q/DQ model against onnxruntime, "
                        "checked again with only its tensor marked: the marks change "
                        "onnxruntime's fusion)")
    add_input_flags(p)
    add_tolerance_flags(p)
    add_build_flags(p, tf32=False)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """`ember compare`: 0 when everything passed, 1 when something failed, 2 on bad usage."""
    try:
        data = input_data(args)
        if args.shapes and data.path:
            raise FlagError("--shapes gives the shapes of random inputs; --load-inputs gives "
                            "inputs with their shapes: give one")
        result = compare(args.model, backends=args.backends.split(",") if args.backends
                         else None, against=args.against, inputs=data,
                         shapes=parse_shapes(args.shapes), tol=tolerances(args),
                         per_layer=args.per_layer, precision=build_options(args))
    except FlagError as e:
        print(f"ember compare: error: {e}", file=sys.stderr)
        return 2
    return 0 if result.passed else 1


__all__ = ["BACKENDS", "CompareResult", "Layer", "OutputComparison", "add_parser",
           "compare", "compare_arrays", "layers_of", "named_nodes", "run", "run_backend",
           "surviving_tensors", "with_outputs"]
