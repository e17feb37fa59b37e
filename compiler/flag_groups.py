"""Flag groups shared by ember's subcommands, defined once (as Polygraphy composes its argument
groups): model loading, input data, tolerances, build config. Each group is an `add_*_flags(p)`
that declares its flags on an argparse parser and a function that reads them back from the
parsed namespace; a malformed value raises `FlagError` (bad usage: exit status 2).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ember.errors import EmberError

if TYPE_CHECKING:  # the CLI imports this module at start: onnx is imported where used
    import onnx


class FlagError(EmberError):
    """A flag's value is malformed or names what is not there (bad usage: exit status 2)."""


# -- model loading ---------------------------------------------------------------------------

@dataclass(frozen=True)
class InputSpec:
    """One network input as a model declares it: a dim is an int, or None where dynamic."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    @property
    def dynamic(self) -> bool:
        return any(d is None for d in self.shape)


def add_model_flags(p: argparse.ArgumentParser, what: str = "an ONNX model") -> None:
    """The model (positional) and `--shapes` for its dynamic inputs."""
    p.add_argument("model", help=what)
    group = p.add_argument_group("model")
    group.add_argument("--shapes", "--input-shapes", metavar="SHAPES",
                       help="shapes of the model's dynamic inputs, e.g. "
                            "x:1x3x224x224,mask:1x128 (the build is for these shapes)")


def parse_shapes(spec: str | None) -> dict[str, tuple[int, ...]]:
    """`x:1x3x224x224,mask:1x128` -> {name: dims} (trtexec's `--shapes` spelling)."""
    from ember.compiler.commands import parse_shapes as parse

    try:
        return parse(spec) if spec else {}
    except EmberError as e:
        raise FlagError(str(e)) from None


def model_inputs(model: onnx.ModelProto) -> list[InputSpec]:
    """The model's inputs (initializers listed as graph inputs are weights, not inputs)."""
    import onnx

    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tensor = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                     for d in tensor.shape.dim)
        specs.append(InputSpec(vi.name, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(
            tensor.elem_type)), dims))
    return specs


def input_shapes(specs: Sequence[InputSpec], shapes: Mapping[str, tuple[int, ...]]
                 ) -> dict[str, tuple[int, ...]]:
    """Each input's concrete shape: the model's, or `shapes` (`--shapes`), which must fit the
    model's static dims and give every dynamic input's."""
    names = {s.name for s in specs}
    unknown = sorted(set(shapes) - names)
    if unknown:
        raise FlagError(f"--shapes names {', '.join(unknown)}, which the model has no input "
                        f"of; its inputs are {', '.join(sorted(names))}")
    out = {}
    for s in specs:
        given = shapes.get(s.name)
        if given is None:
            if s.dynamic:
                raise FlagError(f"input {s.name} has dynamic dims {_dims_text(s.shape)}: give "
                                f"its shape (--shapes {s.name}:"
                                f"{'x'.join('1' if d is None else str(d) for d in s.shape)}) "
                                "or the inputs")
            out[s.name] = tuple(s.shape)  # type: ignore[arg-type]
            continue
        if len(given) != len(s.shape) or any(d is not None and d != g
                                             for d, g in zip(s.shape, given, strict=True)):
            raise FlagError(f"--shapes {s.name}:{'x'.join(map(str, given))} does not fit the "
                            f"model's input {s.name} {_dims_text(s.shape)}")
        out[s.name] = tuple(given)
    return out


def _dims_text(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


# -- input data ------------------------------------------------------------------------------

def add_input_flags(p: argparse.ArgumentParser) -> None:
    """Where inputs come from: a file, or seeded random values in a range."""
    group = p.add_argument_group("input data")
    group.add_argument("--load-inputs", "--inputs", dest="load_inputs", metavar="FILE",
                       help="inputs by name from an .npz (np.savez) or a .json file ({name: "
                            "nested list}, or Polygraphy's --save-inputs JSON); default: "
                            "seeded random ones")
    group.add_argument("--seed", type=int, default=None,
                       help="seed of the random inputs (default: 1, Polygraphy's)")
    group.add_argument("--input-range", nargs="+", metavar="RANGE",
                       help="range of the random values: lo,hi for every input and/or "
                            "name:lo,hi for one (default 0,1: floats uniform in [lo, hi), "
                            "integers in [lo, hi]); [lo,hi] too, e.g. [-1,1] (a bare -1,1 "
                            "reads as a flag: write --input-range=-1,1)")


@dataclass(frozen=True)
class InputData:
    """The input-data flags as read: `load(path)` or `generate(specs, shapes)` by seed/range."""

    path: str | None = None
    seed: int = 1
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    default_range: tuple[float, float] = (0.0, 1.0)

    def range_of(self, name: str) -> tuple[float, float]:
        return self.ranges.get(name, self.default_range)

    def feed(self, specs: Sequence[InputSpec],
             shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
        """The loaded inputs (checked against `specs`), or random ones of `shapes` (each
        input's concrete shape, as `input_shapes` gives them; default: the model's)."""
        names = [s.name for s in specs]
        unknown = sorted(set(self.ranges) - set(names))
        if unknown:
            raise FlagError(f"--input-range names {', '.join(unknown)}, which the model has no "
                            f"input of; its inputs are {', '.join(names)}")
        if self.path is not None:
            return check_feed(load_inputs(self.path), specs, self.path)
        shapes = shapes if shapes is not None else input_shapes(specs, {})
        rng = np.random.default_rng(self.seed)
        feed = {}
        for s in specs:
            lo, hi = self.range_of(s.name)
            shape = shapes[s.name]
            if s.dtype == np.bool_:
                feed[s.name] = rng.integers(0, 2, shape).astype(bool)
            elif np.issubdtype(s.dtype, np.integer):
                if lo != math.floor(lo) or hi != math.floor(hi):
                    raise FlagError(f"--input-range for integer input {s.name} must be whole "
                                    f"numbers, not {lo:g},{hi:g}")
                feed[s.name] = rng.integers(int(lo), int(hi), shape, endpoint=True
                                            ).astype(s.dtype)
            else:
                feed[s.name] = rng.uniform(lo, hi, shape).astype(s.dtype)
        return feed


def input_data(args: argparse.Namespace) -> InputData:
    """Read `add_input_flags`' flags."""
    ranges: dict[str, tuple[float, float]] = {}
    default = (0.0, 1.0)
    for item in args.input_range or []:
        name, _, bounds = item.rpartition(":")
        if bounds.startswith("[") and bounds.endswith("]"):  # Polygraphy's --val-range spelling
            bounds = bounds[1:-1]
        try:
            lo_text, hi_text = bounds.split(",")
            lo, hi = float(lo_text), float(hi_text)
        except ValueError:
            raise FlagError(f"--input-range: '{item}' is not lo,hi or name:lo,hi (e.g. 0,1 or "
                            "x:-1,1)") from None
        if not lo <= hi:
            raise FlagError(f"--input-range: '{item}': lo must not exceed hi")
        if name:
            ranges[name] = (lo, hi)
        else:
            default = (lo, hi)
    for flag, given in (("--input-range", args.input_range), ("--seed", args.seed)):
        if args.load_inputs is not None and given is not None:
            raise FlagError(f"{flag} is for random inputs; --load-inputs gives them: give one")
    return InputData(args.load_inputs, 1 if args.seed is None else args.seed, ranges, default)


def load_inputs(path: str) -> dict[str, np.ndarray]:
    """Arrays by name from .npz, or .json ({name: nested list}, or Polygraphy's `--save-inputs`
    JSON: a list of feeds, of which there must be one)."""
    if Path(path).suffix in (".npz", ".npy"):  # load_npz says an .npy is a single array
        from ember.compiler.commands import load_npz

        return load_npz(path)
    if Path(path).suffix != ".json":
        raise FlagError(f"--load-inputs {path}: expected an .npz or a .json file")
    try:
        text = Path(path).read_text()
        data = json.loads(text)
    except (OSError, ValueError) as e:
        raise FlagError(f"cannot read inputs from {path}: {e}") from None
    if "polygraphy_class" in text:
        from polygraphy.json import load_json

        data = load_json(path)
    if isinstance(data, list):
        if len(data) != 1:
            raise FlagError(f"{path} holds {len(data)} feeds; ember compares one (save one "
                            "iteration)")
        data = data[0]
    if not isinstance(data, Mapping):
        raise FlagError(f"{path}: expected {{input name: array}}")
    try:
        return {str(k): np.asarray(v) for k, v in data.items()}
    except ValueError as e:
        raise FlagError(f"{path}: {e}") from None


def check_feed(feed: Mapping[str, np.ndarray], specs: Sequence[InputSpec],
               where: str) -> dict[str, np.ndarray]:
    """Loaded inputs must name exactly the model's inputs, with fitting ranks and static dims;
    values are cast to the input's dtype when they convert exactly (JSON gives float64/int64)."""
    names = {s.name for s in specs}
    missing, extra = sorted(names - set(feed)), sorted(set(feed) - names)
    if missing or extra:
        raise FlagError(f"{where}: " + "; ".join(
            ([f"missing input(s) {', '.join(missing)}"] if missing else []) +
            ([f"no model input is named {', '.join(extra)}"] if extra else [])))
    out = {}
    for s in specs:
        value = np.asarray(feed[s.name])
        if value.ndim != len(s.shape) or any(
                d is not None and d != v for d, v in zip(s.shape, value.shape, strict=True)):
            raise FlagError(f"{where}: input {s.name} has shape {list(value.shape)}; the model "
                            f"wants {_dims_text(s.shape)}")
        cast = value.astype(s.dtype)
        if value.dtype != s.dtype and not np.array_equal(cast, value):
            raise FlagError(f"{where}: input {s.name} is {value.dtype}; the model wants "
                            f"{s.dtype}")
        out[s.name] = cast
    return out


# -- tolerances ------------------------------------------------------------------------------

ERROR_STATS = ("elemwise", "max", "mean", "median")


def add_tolerance_flags(p: argparse.ArgumentParser, *, atol: float = 1e-5, rtol: float = 1e-5,
                        note: str = "") -> None:
    """Polygraphy's comparison tolerances, in its spellings: a default and per-output values
    (`atol`, `rtol`: the defaults the help states, Polygraphy's 1e-5 unless a command has its
    own; `tolerances` must read them with the same)."""
    group = p.add_argument_group("tolerances (an output passes where abs error <= atol OR rel "
                                 "error <= rtol, as Polygraphy checks)")
    group.add_argument("--atol", "--abs-tol", nargs="+", metavar="TOL",
                       help="absolute tolerance: a value and/or name:value per output "
                            f"(default {atol:g}{note})")
    group.add_argument("--rtol", "--rel-tol", nargs="+", metavar="TOL",
                       help="relative tolerance (abs error / |expected|): a value and/or "
                            f"name:value per output (default {rtol:g}{note})")
    group.add_argument("--check-error-stat", nargs="+", metavar="STAT",
                       help="which error to hold to the tolerances: elemwise (each element, "
                            "the default), max, mean or median; and/or name:stat per output")


@dataclass(frozen=True)
class Tolerances:
    """Per-output atol, rtol and error statistic, with defaults (Polygraphy's: 1e-5, 1e-5,
    elemwise)."""

    atol: float = 1e-5
    rtol: float = 1e-5
    stat: str = "elemwise"
    per_output: Mapping[str, dict[str, float | str]] = field(default_factory=dict)

    def of(self, name: str) -> tuple[float, float, str]:
        """(atol, rtol, stat) for output `name`."""
        own = self.per_output.get(name, {})
        return (float(own.get("atol", self.atol)), float(own.get("rtol", self.rtol)),
                str(own.get("stat", self.stat)))

    def names(self) -> set[str]:
        return set(self.per_output)

    def text(self) -> str:
        """As a report states it: "atol 1e-05 rtol 1e-05 (elemwise)", then per-output ones."""
        own = "".join(f"; {name}: atol {a:g} rtol {r:g} ({stat})"
                      for name in sorted(self.per_output)
                      for a, r, stat in [self.of(name)])
        return f"atol {self.atol:g} rtol {self.rtol:g} ({self.stat}){own}"


def tolerances(args: argparse.Namespace, *, atol: float = 1e-5, rtol: float = 1e-5
               ) -> Tolerances:
    """Read `add_tolerance_flags`' flags (`atol`, `rtol`: the defaults where none is given)."""
    defaults: dict[str, float | str] = {"atol": atol, "rtol": rtol, "stat": "elemwise"}
    per_output: dict[str, dict[str, float | str]] = {}
    for key, flag, items in (("atol", "--atol", args.atol), ("rtol", "--rtol", args.rtol),
                             ("stat", "--check-error-stat", args.check_error_stat)):
        for item in items or []:
            name, _, text = item.rpartition(":")
            value: float | str
            if key == "stat":
                if text not in ERROR_STATS:
                    raise FlagError(f"{flag}: '{item}': the statistic is one of "
                                    f"{', '.join(ERROR_STATS)}")
                value = text
            else:
                try:
                    value = float(text)
                except ValueError:
                    raise FlagError(f"{flag}: '{item}' is not a number or name:number") \
                        from None
                if not value >= 0:
                    raise FlagError(f"{flag}: '{item}': a tolerance is at least 0")
            if name:
                per_output.setdefault(name, {})[key] = value
            else:
                defaults[key] = value
    return Tolerances(float(defaults["atol"]), float(defaults["rtol"]), str(defaults["stat"]),
                      per_output)


# -- build config ----------------------------------------------------------------------------

def add_build_flags(p: argparse.ArgumentParser, *, tf32: bool) -> None:
    """trtexec's precision flags (its spellings too). `tf32`: whether TF32 is allowed by
    default (trtexec's `build`: yes, `--noTF32` clears it; Polygraphy's `run`: no, `--tf32`)."""
    group = p.add_argument_group("precision (a layer MAY run in an allowed precision)")
    group.add_argument("--fp16", action="store_true", help="allow FP16")
    group.add_argument("--bf16", action="store_true", help="allow BF16")
    which = group.add_mutually_exclusive_group()
    which.add_argument("--tf32", dest="tf32", action="store_true", default=None,
                       help="allow TF32 for FP32 conv/matmul" + (" (the default)" if tf32
                                                                 else ""))
    which.add_argument("--noTF32", "--no-tf32", dest="tf32", action="store_false",
                       help="strict FP32: no TF32" + ("" if tf32 else " (the default)"))
    group.add_argument("--layer-precisions", "--layerPrecisions", metavar="SPEC",
                       help="per-layer precisions by ONNX node name, e.g. conv1:fp32,fc:fp16; "
                            "as trtexec, a name may hold one '*' (*:fp16 every layer a "
                            "precision can change, conv*:fp32 those named conv...); read left "
                            "to right, a full name beats a pattern")
    group.add_argument("--layer-output-types", "--layerOutputTypes", metavar="SPEC",
                       help="per-layer output types, e.g. conv1:fp16 (one type: each of "
                            "the layer's floating-point outputs, as trtexec; one per output: "
                            "split:fp16+fp32, as many as the layer has); one '*' per name as "
                            "in --layer-precisions")
    group.add_argument("--precision-constraints", "--precisionConstraints",
                       choices=["obey", "prefer", "none"], default=None,
                       help="obey: per-layer precisions or an error; prefer: where possible, "
                            "else a warning; none (default): hints, followed as prefer")


def build_options(args: argparse.Namespace) -> dict:
    """The precision flags given, as `ember.compile` / `commands.build` keywords (tf32 only
    when --tf32 / --noTF32 was: each command has its own default)."""
    flags = {"fp16": args.fp16, "bf16": args.bf16,
             "layer_precisions": args.layer_precisions,
             "layer_output_types": args.layer_output_types,
             "precision_constraints": args.precision_constraints}
    return flags if args.tf32 is None else {**flags, "tf32": args.tf32}


__all__ = ["ERROR_STATS", "FlagError", "InputData", "InputSpec", "Tolerances",
           "add_build_flags", "add_input_flags", "add_model_flags", "add_tolerance_flags",
           "build_options", "check_feed", "input_data", "input_shapes", "load_inputs",
           "model_inputs", "parse_shapes", "tolerances"]
