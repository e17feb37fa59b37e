"""ONNX's node test cases (onnx.backend.test.case.node) through the whole plan path:
build_model -> plan bytes -> Runtime(device) -> execute (CPU, or CUDA with kernels built for the
GPU present: `--device cuda`), outputs checked against the stored
ones (rtol 1e-3, atol 1e-5 for floats; exact for ints and bools; dtype and shape exact).

A case whose build rejects run-time parameters (or the non-static shapes they cause) is built
again with those inputs' values as constants (initializers); such cases are counted and listed
as "const-params". Prints pass / unsupported / fail per op type and in total.

    python tools/backend_conformance.py [--filter 'test_conv*'] [--verbose] [--jobs N]
        [--device cuda] [--symbolic] [--arch sm_90]

`--symbolic` builds each case with dynamic shapes: every input dim 0 of size ≥ 2 becomes a
symbol (one per distinct size) whose optimization profile is [1, size, size], so kernels take it
as an argument, and runs it at the stored size. A case whose shapes cannot stay symbolic (an
unknown dim) counts as unsupported. `--arch` builds CUDA kernels for that arch without running
them on a GPU (run on the CPU): the summary then counts the steps left on the host, by template
and reason.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

_PARAMETER_ERRORS = ("run-time parameters", "non-static shape", "shapes must be static",
                     "cannot plan", "unknown dim", "dynamic dims")


def _array(x):
    from onnx import numpy_helper

    if hasattr(x, "data_type"):
        return numpy_helper.to_array(x)
    return np.asarray(x) if isinstance(x, np.generic) else x  # 0-d data comes as numpy scalars


def _op_type(case) -> str:
    nodes = case.model.graph.node
    if len(nodes) == 1:
        return nodes[0].op_type
    stem = case.name.removeprefix("test_").replace("_", "").lower()
    matches = [n.op_type for n in nodes if stem.startswith(n.op_type.lower())]
    return max(matches, key=len) if matches else nodes[-1].op_type


def _with_constants(model, names: list[str], values: dict[str, np.ndarray]):
    """`model` with the graph inputs `names` turned into initializers of `values`."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    keep = [vi for vi in model.graph.input if vi.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    model.graph.initializer.extend(numpy_helper.from_array(values[n], n) for n in names)
    return model


def _compare(name: str, have: np.ndarray, want: np.ndarray) -> str | None:
    if have.dtype != want.dtype:
        return f"{name}: dtype {have.dtype} != {want.dtype}"
    if have.shape != want.shape:
        return f"{name}: shape {have.shape} != {want.shape}"
    if np.issubdtype(want.dtype, np.floating) or want.dtype.name == "bfloat16" \
            or want.dtype.name.startswith(("float8", "float4")):  # ml_dtypes' floats
        have, want = have.astype(np.float64), want.astype(np.float64)
        if not np.allclose(have, want, rtol=1e-3, atol=1e-5, equal_nan=True):
            return f"{name}: max abs diff {np.nanmax(np.abs(have - want.astype(have.dtype)))}"
    elif not np.array_equal(have, want):
        return f"{name}: values differ"
    return None


DEVICE = "cpu"
SYMBOLIC = False
ARCH: str | None = None


def _build(model, datasets=None):
    from ember.compiler.builder import BuilderConfig, build_model, detect_arch

    arch = detect_arch() if DEVICE == "cuda" else ARCH
    config = BuilderConfig(target_arch=arch, autotune=False if ARCH else None)
    if SYMBOLIC and datasets:
        model, profile = _symbolic(model, datasets[0][0])
        if profile.shapes:
            config.add_optimization_profile(profile)
    return build_model(model, config)


def _symbolic(model, inputs):
    """The model with each input's dim 0 (size ≥ 2) named "d<size>", and a profile [1, size]."""
    import onnx

    from ember.compiler.builder import OptimizationProfile

    model = onnx.ModelProto.FromString(model.SerializeToString())
    profile = OptimizationProfile()
    for vi in model.graph.input:
        value = inputs.get(vi.name)
        if (value is None or not vi.type.HasField("tensor_type") or value.ndim == 0
                or value.shape[0] < 2):
            continue
        dim = vi.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = f"d{value.shape[0]}"
        shape = tuple(value.shape)
        profile.set_shape(vi.name, (1, *shape[1:]), shape, shape)
    return model, profile


def run_case(case) -> tuple[str, str, str, str]:
    """(case name, op type, status, detail): status is pass, pass-const, unsupported or fail."""
    warnings.filterwarnings("ignore")
    from ember.errors import EmberError, UnsupportedError
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    op = _op_type(case)
    model = case.model
    inits = {t.name for t in model.graph.initializer}
    in_names = [vi.name for vi in model.graph.input if vi.name not in inits]
    out_names = [vi.name for vi in model.graph.output]
    datasets = []
    for inputs, outputs in case.data_sets:
        ins, outs = [_array(x) for x in inputs], [_array(x) for x in outputs]
        if not all(isinstance(a, np.ndarray) for a in ins + outs):
            return case.name, op, "unsupported", "sequence/optional values"
        datasets.append((dict(zip(in_names, ins, strict=False)), outs))
    const = False
    try:
        try:
            manifest, sections = _build(model, datasets)
        except EmberError as e:
            if isinstance(e, UnsupportedError) or not any(s in str(e) for s in
                                                          _PARAMETER_ERRORS):
                raise
            if len(datasets) != 1 or len(in_names) < 2:
                raise
            # the parameters are run-time inputs: compile with their values as constants
            params = in_names[1:]
            model = _with_constants(model, params, datasets[0][0])
            datasets = [({n: v for n, v in d.items() if n not in params}, o) for d, o in datasets]
            manifest, sections = _build(model, datasets)
            const = True
    except EmberError as e:
        return case.name, op, "unsupported", f"{type(e).__name__}: {str(e).splitlines()[0]}"
    except Exception as e:  # a compiler crash
        return case.name, op, "fail", f"build crashed: {type(e).__name__}: {e}"
    try:
        engine = Runtime(device=DEVICE).deserialize_cuda_engine(plan_bytes(manifest, sections))
        for inputs, outputs in datasets:
            got = engine.create_execution_context().execute(inputs)
            for name, want in zip(out_names, outputs, strict=True):
                problem = _compare(name, np.asarray(got[name]), want)
                if problem:
                    return case.name, op, "fail", problem
    except Exception as e:
        return case.name, op, "fail", f"run: {type(e).__name__}: {str(e).splitlines()[0][:150]}"
    host = [f"{s['template']}: {s.get('fallback', '').split(': ', 2)[-1][:90]}"
            for s in manifest["steps"] if s.get("device") == "cpu"]
    return (case.name, op, "pass-const" if const else "pass",
            f"host steps {len(host)}|" + "|".join(host) if host else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default="*")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0: one per CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--symbolic", action="store_true",
                        help="dynamic dim 0 on every input (see the module docstring)")
    parser.add_argument("--arch", help="build CUDA kernels for this arch, run on the CPU")
    args = parser.parse_args()
    global DEVICE, SYMBOLIC, ARCH
    DEVICE, SYMBOLIC, ARCH = args.device, args.symbolic, args.arch
    warnings.filterwarnings("ignore")
    from onnx.backend.test.case.node import collect_testcases

    cases = [c for c in collect_testcases(None) if fnmatch.fnmatch(c.name, args.filter)]
    jobs = args.jobs or None
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(run_case, cases, chunksize=8))
    per_op: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    details: dict[str, list[str]] = collections.defaultdict(list)
    host_fallback = 0
    reasons: collections.Counter = collections.Counter()
    for name, op, status, detail in results:
        per_op[op][status] += 1
        if status.startswith("pass") and detail.startswith("host steps"):
            host_fallback += 1
            reasons.update(detail.split("|")[1:])
        elif status != "pass":
            details[status].append(f"{name}: {detail}" if detail else name)
    total = collections.Counter()
    print(f"{'op type':<28} {'pass':>5} {'const':>5} {'unsup':>5} {'fail':>5}")
    for op in sorted(per_op):
        c = per_op[op]
        total.update(c)
        print(f"{op:<28} {c['pass']:>5} {c['pass-const']:>5} {c['unsupported']:>5} "
              f"{c['fail']:>5}")
    passed = total["pass"] + total["pass-const"]
    print(f"{'TOTAL':<28} {total['pass']:>5} {total['pass-const']:>5} {total['unsupported']:>5} "
          f"{total['fail']:>5}")
    print(f"passed {passed} of {len(cases)} ({total['pass-const']} with run-time parameter "
          f"inputs compiled as constants); unsupported {total['unsupported']}; "
          f"failed {total['fail']}")
    if DEVICE == "cuda" or ARCH:
        print(f"{host_fallback} of the passing cases ran some steps on the host (no CUDA kernel "
              f"for their template yet)")
        for reason, count in reasons.most_common(40 if args.verbose else 15):
            print(f"  {count:4d}  {reason}")
    for status in ("pass-const", "fail", "unsupported"):
        items = details.get(status, [])
        if not items:
            continue
        print(f"\n{status} ({len(items)}):")
        for line in items if args.verbose or status == "fail" else items[:20]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
