"""`ember debug`: find what makes a build's output wrong — the pass (`bisect`), the tactic
(`tactics`), or the layers that must stay FP32 (`precision`). This module holds what the three
share: seeded inputs, the reference run (onnxruntime or onnx.reference), the error figures and
the check against a tolerance, and the CLI shell that registers them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from ember.compiler.flag_groups import Tolerances
from ember.errors import EmberError

REFERENCES = ("auto", "onnxruntime", "onnx-reference")


@dataclass
class OutputError:
    """How far one output is from the reference."""

    name: str
    max_abs: float
    max_rel: float
    mismatched: int       # elements outside the tolerance
    size: int
    passed: bool
    problem: str = ""     # a missing output or a shape that differs
    nan: int = 0          # NaN elements where the reference has a number

    def text(self) -> str:
        if self.problem:
            return f"{self.name}: {self.problem}"
        nan = f" ({self.nan} NaN)" if self.nan else ""
        return (f"{self.name}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, "
                f"{self.mismatched}/{self.size} outside{nan}")


def output_errors(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray],
                  tolerance: Tolerances) -> list[OutputError]:
    """Each reference output's error figures, held to `tolerance` by Polygraphy's rule as
    `ember compare` holds them (`compare.compare_arrays`: an element fails where its abs error
    is over atol AND its rel error over rtol; or the --check-error-stat statistic)."""
    from ember.compiler.compare import compare_arrays

    errors = []
    for name, ref in want.items():
        if name not in got:
            errors.append(OutputError(name, math.inf, math.inf, 0, 0, False, "missing"))
            continue
        a = np.asarray(got[name])
        b = np.asarray(ref)
        if a.shape != b.shape:
            errors.append(OutputError(name, math.inf, math.inf, b.size, b.size, False,
                                      f"shape {list(a.shape)}, the reference's {list(b.shape)}"))
            continue
        if a.dtype == bool or b.dtype == bool or not np.issubdtype(b.dtype, np.number):
            bad = int(np.count_nonzero(a != b))
            errors.append(OutputError(name, float(bad > 0), float(bad > 0), bad, b.size,
                                      bad == 0))
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            held = compare_arrays(name, a, b, tolerance)
            nan = int(np.count_nonzero(np.isnan(a.astype(np.float64))
                                       & ~np.isnan(b.astype(np.float64))))
        errors.append(OutputError(name, held.max_abs, held.max_rel, held.mismatches, b.size,
                                  held.passed, nan=nan))
    return errors


def _finite_max(x: np.ndarray) -> float:
    """The largest error, a NaN counting as infinite."""
    return float(np.max(np.where(np.isnan(x), np.inf, x))) if x.size else 0.0


def passed(errors: Sequence[OutputError]) -> bool:
    return all(e.passed for e in errors)


def errors_text(errors: Sequence[OutputError]) -> str:
    return "; ".join(e.text() for e in errors)


def load_onnx(model: str | onnx.ModelProto) -> onnx.ModelProto:
    from ember.compiler.onnx_importer import load_model

    proto, _ = load_model(model)
    return proto


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def with_static_shapes(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
                       ) -> onnx.ModelProto:
    """A copy of `model` whose inputs have the given shapes (the interpreter and the plan run
    at these)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for vi in model.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            if len(dims) != len(shapes[vi.name]):
                raise EmberError(f"input '{vi.name}' has rank {len(dims)}, the shape given "
                                 f"{list(shapes[vi.name])} has rank {len(shapes[vi.name])}")
            for d, n in zip(dims, shapes[vi.name], strict=True):
                d.Clear()
                d.dim_value = int(n)
    return model


def seeded_inputs(model: onnx.ModelProto, seed: int = 0,
                  shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Random inputs by name (float: standard normal; bool: coin flips; integers: 0..9), the
    shapes from the model or `shapes` (which every input with a dynamic dim needs)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    shapes = dict(shapes or {})
    rng = np.random.default_rng(seed)
    feeds = {}
    unknown = sorted(set(shapes) - {vi.name for vi in graph_inputs(model)})
    if unknown:
        raise EmberError(f"--shapes names {', '.join(unknown)}, which the model has no input "
                         f"of (its inputs: {', '.join(vi.name for vi in graph_inputs(model))})")
    for vi in graph_inputs(model):
        t = vi.type.tensor_type
        if vi.name in shapes:
            shape = tuple(shapes[vi.name])
        else:
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            if None in dims:
                raise EmberError(f"input '{vi.name}' has dynamic dims "
                                 f"{[d.dim_param or '?' for d in t.shape.dim]}: give its shape "
                                 "with --shapes, e.g. x:1x3x224x224")
            shape = tuple(dims)
        dtype = np.dtype(tensor_dtype_to_np_dtype(t.elem_type))
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[vi.name] = rng.integers(0, 10, shape).astype(dtype)
    return feeds


def reference_outputs(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                      reference: str = "auto") -> tuple[dict[str, np.ndarray], str]:
    """The model's outputs by name from onnxruntime or onnx.reference ("auto": onnxruntime
    where it is installed), and the name of the one used."""
    if reference not in REFERENCES:
        raise EmberError(f"--reference must be one of {', '.join(REFERENCES)}, not "
                         f"{reference!r}")
    names = [o.name for o in model.graph.output]
    if reference in ("auto", "onnxruntime"):
        try:
            import onnxruntime
        except ImportError:
            if reference == "onnxruntime":
                raise EmberError("--reference onnxruntime: onnxruntime is not installed "
                                 "(pip install onnxruntime, or --reference onnx-reference)") \
                    from None
        else:
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # its warnings (unused initializers) are not ours
            try:
                from ember.compiler.ort_compat import for_onnxruntime

                session = onnxruntime.InferenceSession(for_onnxruntime(model).SerializeToString(),
                                                       options,
                                                       providers=["CPUExecutionProvider"])
                values = session.run(names, dict(feeds))
            except Exception as e:  # onnxruntime's own exception types
                raise EmberError(f"onnxruntime cannot run the model: {e}") from None
            return dict(zip(names, values, strict=True)), "onnxruntime"
    from onnx.reference import ReferenceEvaluator

    try:
        values = ReferenceEvaluator(model).run(None, dict(feeds))
    except Exception as e:  # onnx.reference raises whatever its op implementations raise
        raise EmberError(f"onnx.reference cannot run the model: {type(e).__name__}: {e}") \
            from None
    return dict(zip(names, values, strict=True)), "onnx-reference"


Runner = Callable[[bytes, Mapping[str, np.ndarray]], dict[str, np.ndarray]]


def engine_runner(device: str) -> Runner:
    """Load a plan on `device` ("cpu" or "cuda") and run it once."""
    def run(plan: bytes, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ember.runtime.engine import Runtime

        engine = Runtime(device=device).deserialize_cuda_engine(plan)
        with np.errstate(all="ignore"):
            return engine.create_execution_context().execute(dict(feeds))

    return run


# -- the CLI ------------------------------------------------------------------------------------

def add_common_flags(p: argparse.ArgumentParser, *, atol: float, rtol: float,
                     note: str = "") -> None:
    """The flag groups `ember run` / `ember compare` use (flag_groups: the model and --shapes,
    input data, Polygraphy's tolerances, the build's precision flags), the reference and
    --json. The tolerances' defaults are the subcommand's own (`atol`, `rtol`: a whole build
    held to the reference, FP32 reassociation included, not one output)."""
    from ember.compiler.flag_groups import (
        add_build_flags,
        add_input_flags,
        add_model_flags,
        add_tolerance_flags,
    )

    add_model_flags(p)
    add_input_flags(p)
    p.add_argument_group("reference").add_argument(
        "--reference", choices=REFERENCES, default="auto",
        help="what computes the expected outputs (auto: onnxruntime where it is installed, "
             "else onnx.reference)")
    add_tolerance_flags(p, atol=atol, rtol=rtol, note=note)
    add_build_flags(p, tf32=False)
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def inputs_from_args(args: argparse.Namespace, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The inputs the input-data flags give (flag_groups: --load-inputs, else random ones by
    --seed and --input-range, of the model's shapes or --shapes)."""
    from ember.compiler.flag_groups import (
        FlagError,
        input_data,
        input_shapes,
        model_inputs,
        parse_shapes,
    )

    data = input_data(args)
    specs = model_inputs(model)
    if data.path is not None:
        if args.shapes:
            raise FlagError("--shapes is for random inputs; --load-inputs gives them, shapes "
                            "and all: give one")
        return data.feed(specs)
    return data.feed(specs, input_shapes(specs, parse_shapes(args.shapes)))


def tolerance_from_args(args: argparse.Namespace, atol: float, rtol: float) -> Tolerances:
    """The tolerance flags (flag_groups.tolerances) with this subcommand's defaults."""
    from ember.compiler.flag_groups import tolerances

    return tolerances(args, atol=atol, rtol=rtol)


def refuse_build_flags(args: argparse.Namespace, why: str,
                       flags: Sequence[str] = ("fp16", "bf16", "tf32", "layer_precisions",
                                               "layer_output_types", "precision_constraints")
                       ) -> None:
    """The precision flags among `flags` that were given are an error saying `why` they have
    no effect here."""
    given = [f"--{f.replace('_', '-')}" for f in flags
             if getattr(args, f) is not None and getattr(args, f) is not False]
    if given:
        from ember.compiler.flag_groups import FlagError

        raise FlagError(f"{', '.join(given)}: {why}")


@dataclass
class Report:
    """What a debug command found: `status` 0 (found, or nothing wrong) or 1 (the check
    fails), its text and its JSON."""

    status: int
    text: str
    data: dict[str, Any] = field(default_factory=dict)


def as_json(value: Any) -> Any:
    """Dataclasses and infinities in a form json writes (inf as the string "inf")."""
    if hasattr(value, "__dataclass_fields__"):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


_EPILOG = {
    "bisect": "examples:\n  ember debug bisect model.onnx\n"
              "  ember debug bisect model.onnx --arch sm_90 --atol 1e-3 --json\n"
              "  ember debug bisect model.onnx -p 'convert-onnx-to-nn,fold-constants,"
              "convert-nn-to-kernel'\n"
              "exit status: 0 a pass is named, or every stage matches; 1 no pass diverges "
              "but the plan on the device does; 2 bad usage",
    "tactics": "examples (on a GPU):\n  ember debug tactics model.onnx\n"
               "  ember debug tactics model.onnx --fp16 --atol 1e-2 --rtol 1e-2 --json\n"
               "exit status: 0 a bad tactic is named, or the build matches; 1 the outputs "
               "are wrong and excluding no single tactic fixes them; 2 bad usage (or no GPU)",
    "precision": "examples:\n  ember debug precision model.onnx --fp16 --atol 1e-3 --rtol 1e-3\n"
                 "  then: ember build model.onnx -o model.plan --fp16 --layer-precisions "
                 "NODE:fp32,... --precision-constraints obey\n"
                 "exit status: 0 a set is found (maybe empty); 1 even every layer in FP32 "
                 "misses the tolerance; 2 bad usage",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `ember debug` and its subcommands."""
    from ember.compiler import debug_bisect, debug_precision, debug_tactics

    p = sub.add_parser("debug", help="find the pass, tactic or layer precision that makes a "
                       "build's output wrong",
                       description=textwrap.fill(
                           "Find what makes a build's output differ from the reference "
                           "(onnxruntime or onnx.reference) on seeded random inputs. Exit "
                           "status: 0 found (or nothing wrong), 1 the check fails, 2 bad "
                           "usage.", 79),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples (ember debug SUBCOMMAND --help for each one's flags):\n"
                              "  ember debug bisect model.onnx --fp16\n"
                              "  ember debug precision model.onnx --fp16 --atol 1e-3 --rtol 1e-3\n"
                              "  ember debug tactics model.onnx --check-error-stat mean "
                              "(on a GPU)\n"
                              "  ember debug bisect model.onnx --load-inputs inputs.json "
                              "--atol 1e-4 logits:1e-3 --json")
    which = p.add_subparsers(dest="debug_command", required=True, metavar="SUBCOMMAND")
    for name, module in (("bisect", debug_bisect), ("tactics", debug_tactics),
                         ("precision", debug_precision)):
        q = which.add_parser(name, help=module.HELP, description=textwrap.fill(module.HELP, 79),
                             formatter_class=argparse.RawDescriptionHelpFormatter,
                             epilog=_EPILOG[name])
        module.add_flags(q)
        add_common_flags(q, atol=module.ATOL, rtol=module.RTOL,
                         note=getattr(module, "TOLERANCE_NOTE", ""))
        q.set_defaults(run=run, debug_run=module.run)


def run(args: argparse.Namespace) -> int:
    """Run a debug subcommand: its report on stdout; a bad input is one line on stderr and
    exit status 2 (never a traceback)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            report = args.debug_run(args)
    except EmberError as e:
        message = " ".join(str(e).split())
        print(f"ember debug {args.debug_command}: error: {message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(report.data), indent=2))
    else:
        print(report.text)
    return report.status
