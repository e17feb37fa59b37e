"""What `ember build` and `ember run` do, as Python functions (the CLI is a thin shell on these)."""

from __future__ import annotations

import os
import sys
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

import numpy as np

from ember.compiler.builder import (
    BuilderConfig,
    BuilderFlag,
    build_model,
    pipeline_for,
    precision_config,
)
from ember.compiler.flag_groups import InputData, InputSpec, check_feed, load_inputs
from ember.compiler.pipeline import pipeline_text
from ember.errors import EmberError
from ember.runtime.files import atomic_path
from ember.runtime.logger import Logger, Severity


def parse_shapes(spec: str) -> dict[str, tuple[int, ...]]:
    """trtexec's `--shapes=input:1x3x224x224,mask:1x128` -> {name: dims}."""
    shapes = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, dims = item.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.split("x"))
        except ValueError:
            raise EmberError(f"--shapes: '{item}' is not NAME:D0xD1x..., e.g. x:1x3x224x224") \
                from None
    return shapes


def profile_from_flags(shapes: str | None = None, min_shapes: str | None = None,
                       opt_shapes: str | None = None, max_shapes: str | None = None):
    """trtexec's shape flags as an optimization profile (None without any): `--shapes` fixes
    each named input's shape; `--min-shapes/--opt-shapes/--max-shapes` (all three, naming the
    same inputs) give each a range, and the plan keeps the dims that vary symbolic."""
    from ember.compiler.builder import OptimizationProfile

    ranges = [min_shapes, opt_shapes, max_shapes]
    if not shapes and not any(ranges):
        return None
    profile = OptimizationProfile()
    for name, dims in parse_shapes(shapes or "").items():
        profile.set_shape(name, dims, dims, dims)
    if any(ranges):
        if not all(ranges):
            raise EmberError("--min-shapes, --opt-shapes and --max-shapes go together: give "
                             "all three")
        lo, opt, hi = (parse_shapes(r) for r in ranges)  # type: ignore[arg-type]
        if not set(lo) == set(opt) == set(hi):
            raise EmberError(f"--min/--opt/--max-shapes must name the same inputs; they name "
                             f"{sorted(lo)}, {sorted(opt)} and {sorted(hi)}")
        for name in lo:
            if name in profile.shapes:
                raise EmberError(f"input '{name}' is in --shapes and in --min/--max-shapes")
            profile.set_shape(name, lo[name], opt[name], hi[name])
    return profile


def build(model: str | os.PathLike, output: str | os.PathLike, *, arch: str | None = None,
          pipeline: str = "default", shapes: str | None = None, verbose: bool = False,
          out: TextIO | None = None, autotune: bool | None = None,
          min_shapes: str | None = None, opt_shapes: str | None = None,
          max_shapes: str | None = None, dump_dir: str | os.PathLike | None = None,
          timing_cache: str | os.PathLike | None = None, quiet: bool = False,
          refit: bool = False, strip_weights: bool = False,
          int8: bool = False, calib_data: str | os.PathLike | None = None,
          calibrator: str | None = None, calib_cache: str | os.PathLike | None = None,
          report: bool = False, hardware_compatibility: str = "none", fp8: bool = False,
          **precision) -> dict:
    """ONNX -> plan file (written atomically: a failed build leaves no file). `dump_dir`: write
    each stage of the pipeline there, with `pipeline.txt` and the weights (`StageDump`).
    `timing_cache`: a timing cache file the build reads and writes back extended (atomically;
    see codegen/timing_cache.py). Progress bars on stderr when it is a terminal; `quiet`: no
    bars and no summary.
    `precision`: fp16, bf16, tf32 (allowed unless tf32=False, as trtexec), layer_precisions,
    layer_output_types, precision_constraints (`ember.compile`'s meanings). `refit`: a plan
    `ember refit` can give new weights (BuilderFlag.REFIT); `strip_weights`: one without its
    refittable weights (STRIP_PLAN), refit at deployment. `int8`: quantize (a model without
    Q/DQ nodes is calibrated on `calib_data`, an .npz or a folder of them, with `calibrator`
    "entropy" / "minmax" / "percentile", or from the cache file `calib_cache`, which a
    calibration writes). `fp8`: BuilderFlag.FP8 (plugins with float8 inputs and outputs
    allowed, as TensorRT 10 means it). `hardware_compatibility`: "ampere+" (TensorRT's
    AMPERE_PLUS: sm_80 code that runs on any GPU from sm_80 up), "none" or
    "sameComputeCapability" (the arch's own). `report` (with `int8`): print each output's
    and each quantized layer's error against FP32 after the build
    (`compiler/int8_report.py`; inputs: the first calibration batch, else seeded random ones
    of `shapes`/the model's shapes)."""
    from ember.codegen import timing_cache as tc
    from ember.compiler.progress import PhaseTimes, terminal_bars
    from ember.runtime.plan import write_plan

    out = out or sys.stdout
    start = time.perf_counter()
    config = BuilderConfig(pipeline=pipeline, target_arch=arch, autotune=autotune)
    config.progress_monitor = terminal_bars(quiet)
    if verbose and not quiet:  # where the time went, in the summary
        config.progress_monitor = PhaseTimes(config.progress_monitor)
    if timing_cache is not None:
        config.set_timing_cache(tc.load(timing_cache), ignore_mismatch=True)
    precision_config(config, **{"tf32": True, **precision})
    levels = _compatibility_levels()
    if hardware_compatibility not in levels:
        raise EmberError(f"hardware compatibility {hardware_compatibility!r}: one of "
                         f"{', '.join(levels)}")
    config.hardware_compatibility_level = levels[hardware_compatibility]
    for flag, on in ((BuilderFlag.REFIT, refit), (BuilderFlag.STRIP_PLAN, strip_weights),
                     (BuilderFlag.FP8, fp8)):
        if on:
            config.set_flag(flag)
    profile = profile_from_flags(shapes, min_shapes, opt_shapes, max_shapes)
    if profile is not None:
        config.add_optimization_profile(profile)
    int8_config(config, int8, calib_data, calibrator, calib_cache)
    if report and not int8:
        raise EmberError("--report reports an INT8 build's error against FP32: give --int8")
    source = model
    if report:  # calibrate once, here: the report reads the Q/DQ model the plan is built from
        from ember.compiler.calibrate import DataCalibrator

        calibrator = config.int8_calibrator  # (--calib-data's, when given)
        batches = calibrator.batches if isinstance(calibrator, DataCalibrator) else []
        source, float_model, calibrated = _quantized_for_report(model, config)
        feeds = _report_inputs(float_model, batches[0] if batches else None, shapes)
    formats: list[str] = []  # what choose-formats decided (GPU builds), for --verbose
    ran: list = []  # the passes the build ran, with their options (wildcards expanded)

    def record(index: int, p, module) -> None:
        ran.append(p)
        if p.name == "choose-formats":
            from ember.passes.choose_formats import format_report

            formats.append(format_report(module))

    manifest, sections = build_model(source, config, dump_dir=dump_dir,
                                     after_pass=record if verbose else None)
    write_plan(output, manifest, sections)
    if config.timing_cache is not None:
        tc.update_file(config.timing_cache, timing_cache)
    seconds = time.perf_counter() - start
    if quiet:
        return manifest
    if verbose:
        out.write(f"pipeline: {pipeline_text(ran)}\n")
        out.write("".join(formats))
        out.write(layer_table(manifest))
        out.write(config.progress_monitor.report(
            [p.name for p in pipeline_for(config)]) + "\n")
    out.write(f"built {output}: {len(manifest['steps'])} steps, arena "
              f"{manifest['arena_bytes'] / 2**20:.1f} MiB (activations "
              f"{manifest['activation_bytes'] / 2**20:.1f} MiB), weights "
              f"{manifest['weights_bytes'] / 2**20:.1f} MiB, "
              f"{_target_text(manifest)}, {seconds:.2f} s\n")
    if manifest.get("symbols"):
        from ember.compiler.inspect_plan import symbols_text

        out.write("dynamic dims (min, opt, max; the arena is planned for max): "
                  + symbols_text(manifest) + "\n")
    tuned = manifest.get("autotune")
    if tuned:
        failed = (f", {tuned['failed']} candidate(s) failed to launch (not chosen)"
                  if tuned.get("failed") else "")
        if tuned.get("rejected"):
            failed += (f", {tuned['rejected']} rejected for results that disagree with the "
                       "reference tactic")
        out.write(f"autotuned {tuned['steps']} step(s): {tuned['timed']} kernel(s) timed, "
                  f"{tuned['cached']} from the timing cache{failed}\n")
    host = [s["name"] for s in manifest["steps"] if s.get("device") == "cpu"]
    if arch and host:
        out.write(f"{len(host)} step(s) have no CUDA kernel yet and run on the host: "
                  f"{', '.join(host)}\n")
    if report:
        from ember.compiler.int8_report import int8_report

        out.write(int8_report(float_model, source, feeds, config, calibrated=calibrated))
    return manifest


def _target_text(manifest: dict) -> str:
    """"CUDA sm_90", "CUDA sm_80 (ampere+)" or "CPU only": what the plan's code runs on."""
    target = manifest.get("target") or {}
    if target.get("device") != "cuda":
        return "CPU only"
    compatible = f" ({target['compatibility']})" if target.get("compatibility") else ""
    return f"CUDA {target.get('arch')}{compatible}"


def _compatibility_levels() -> dict:
    from ember.compiler.trt_names import HardwareCompatibilityLevel as Level

    return {"none": Level.NONE, "ampere+": Level.AMPERE_PLUS,
            "sameComputeCapability": Level.SAME_COMPUTE_CAPABILITY}


def _quantized_for_report(model, config: BuilderConfig):
    """(the Q/DQ model an INT8 build compiles, the float model it stands for, whether
    calibration wrote the Q/DQ nodes): a model with Q/DQ nodes and that model without them, or
    the calibrated model and the model as given. The config's calibrator has then done its
    work: the build reads the Q/DQ model."""
    from ember.compiler.builder import expand_layer_patterns
    from ember.compiler.calibrate import QDQ_OPS, int8_model
    from ember.compiler.int8_report import without_qdq
    from ember.compiler.onnx_importer import load_model

    proto, _ = load_model(model)
    if any(n.op_type in QDQ_OPS for n in proto.graph.node):
        return proto, without_qdq(proto), False
    qdq = int8_model(proto, config.int8_calibrator, profiles=config.profiles,
                     exclude=sorted(expand_layer_patterns(proto, config).layer_precisions))
    config.int8_calibrator = None
    return qdq, proto, True


def _report_inputs(model, first: dict[str, np.ndarray] | None,
                   shapes: str | None) -> dict[str, np.ndarray]:
    """The report's inputs: the calibration data's `first` arrays (their first sample(s), as
    many as the model's batch), else seeded random inputs. Checked before the build."""
    from ember.compiler.debug import graph_inputs, seeded_inputs

    if first is not None:
        feeds = {}
        for vi in graph_inputs(model):
            dims = [d.dim_value if d.HasField("dim_value") else 0
                    for d in vi.type.tensor_type.shape.dim]
            if vi.name not in first:
                raise EmberError(f"--report: the calibration data has no array '{vi.name}' "
                                 f"(it has {', '.join(map(repr, first)) or 'none'})")
            array = np.asarray(first[vi.name])
            feeds[vi.name] = array[:dims[0]] if dims and dims[0] else array
        return feeds
    return seeded_inputs(model, shapes=parse_shapes(shapes) if shapes else None)


def int8_config(config: BuilderConfig, int8: bool, calib_data: str | os.PathLike | None = None,
                calibrator: str | None = None, calib_cache: str | os.PathLike | None = None
                ) -> BuilderConfig:
    """`--int8 [--calib-data PATH] [--calibrator NAME] [--calib-cache FILE]` on `config`."""
    given = [f for f, v in (("--calib-data", calib_data), ("--calibrator", calibrator),
                            ("--calib-cache", calib_cache)) if v is not None]
    if not int8:
        if given:
            raise EmberError(f"{', '.join(given)} calibrate an INT8 build: give --int8")
        return config
    from ember.compiler.builder import BuilderFlag
    from ember.compiler.calibrate import ALGORITHMS, DataCalibrator, load_calibration_data

    config.set_flag(BuilderFlag.INT8)
    if calibrator is not None and calibrator not in ALGORITHMS:
        raise EmberError(f"--calibrator {calibrator!r}: one of {', '.join(ALGORITHMS)}")
    if calib_data is not None or calib_cache is not None:
        config.int8_calibrator = DataCalibrator(
            load_calibration_data(calib_data) if calib_data is not None else [],
            ALGORITHMS[calibrator] if calibrator else None, cache=calib_cache)
    elif calibrator is not None:
        raise EmberError(f"--calibrator {calibrator}: give the data to calibrate on "
                         "(--calib-data) or a cache (--calib-cache)")
    return config


def layer_table(manifest: dict) -> str:
    """One line per kernel, then `reformats: R` and `kernels: N`: the runtime's engine inspector
    prints it (`ember.runtime.inspector`), so `ember inspect` shows the same table."""
    from ember.runtime.inspector import layer_table as table

    return table(manifest)


def engine_inputs(engine) -> tuple[list[InputSpec], dict[str, tuple[int, ...]]]:
    """An engine's inputs as the input-data flags read them (a dynamic dim None) and the shape
    of random ones: the input's, or a dynamic one's opt shape in the first profile."""
    specs, shapes = [], {}
    for name in engine.input_names:
        dtype, shape = engine.tensors[name].dtype, tuple(engine.get_tensor_shape(name))
        specs.append(InputSpec(name, np.dtype(dtype), tuple(None if d == -1 else d
                                                            for d in shape)))
        shapes[name] = tuple(engine.get_tensor_profile_shape(name, 0)[1]) if -1 in shape \
            else shape
    return specs, shapes


def load_engine(path: str | os.PathLike, device: str = "auto",
                input_shapes: Mapping[str, tuple[int, ...]] | None = None, **precision):
    """A plan file, or an ONNX model built on the fly (strict FP32 unless `precision` allows
    more, as `ember.compile`); an ONNX model's dynamic inputs are built for their shapes in
    `input_shapes` (`build_for_shapes`)."""
    from ember.runtime.engine import Runtime

    if Path(path).suffix == ".onnx":
        return build_for_shapes(path, input_shapes or {}, device, **precision)
    if input_shapes:
        raise EmberError(f"{path} is a plan, built already for its shapes: input shapes "
                         "(--shapes) apply when building an ONNX model")
    _refuse_precision_for_plan(path, precision)
    return Runtime(_ErrorsRaised(), device=device).load(path)


class _ErrorsRaised(Logger):
    """Warnings to stderr; an error is raised, and the CLI prints it once (not logged first)."""

    def log(self, severity: Severity, msg: str) -> None:
        if severity > Severity.ERROR:
            super().log(severity, msg)


def build_for_shapes(model, input_shapes: Mapping[str, tuple[int, ...]],
                     device: str = "auto", **options):
    """`ember.compile` with each dynamic input of `model` fixed at its shape in
    `input_shapes` (an optimization profile with min = opt = max; a static input's shape is
    checked when the engine runs). A dynamic input without a shape is an error naming it."""
    from ember.compiler.builder import OptimizationProfile
    from ember.compiler.builder import compile as compile_model
    from ember.compiler.flag_groups import input_shapes as fill_shapes
    from ember.compiler.flag_groups import model_inputs
    from ember.compiler.onnx_importer import load_model

    proto, _ = load_model(model)
    specs = model_inputs(proto)
    dynamic = [s for s in specs if s.dynamic]
    if not dynamic:
        return compile_model(proto, device=device, **options)
    shapes = fill_shapes(dynamic, {k: v for k, v in input_shapes.items()
                                   if k in {s.name for s in dynamic}})
    profile = OptimizationProfile()
    for name, shape in shapes.items():
        profile.set_shape(name, shape, shape, shape)
    return compile_model(proto, device=device, profiles=[profile], **options)


def _refuse_precision_for_plan(path: str | os.PathLike, precision: dict) -> None:
    """Precision flags build an ONNX model; a plan was built already (never ignore them)."""
    given = sorted(k for k, v in precision.items() if v or (k == "tf32" and v is not None))
    if given:
        raise EmberError(f"{path} is a plan, built already: precision options "
                         f"({', '.join(given)}) apply when building an ONNX model")


def run(model: str | os.PathLike, *, inputs: str | os.PathLike | InputData | None = None,
        outputs: str | os.PathLike | None = None, device: str = "auto",
        shapes: str | None = None, out: TextIO | None = None,
        **precision) -> dict[str, np.ndarray]:
    """Run a plan (or an ONNX model, built strict FP32 unless `precision` says otherwise, its
    dynamic inputs for the shapes of `inputs`, else of `shapes`: "x:1x3x224x224,...").
    `inputs`: a file of inputs by name (.npz or .json), or the input-data flags as read
    (`flag_groups.InputData`: a file, or the seed and ranges of random inputs); default:
    random inputs, as `InputData()` makes them."""
    out = out or sys.stdout
    data = inputs if isinstance(inputs, InputData) else \
        InputData(path=None if inputs is None else str(inputs))
    feed = load_inputs(data.path) if data.path is not None else None
    given = parse_shapes(shapes) if shapes else {}
    if feed is not None and given:
        raise EmberError("--shapes gives the shapes of random inputs; --inputs gives inputs "
                         "with their shapes: give one")
    if feed is not None and Path(model).suffix == ".onnx":
        given = {k: np.shape(v) for k, v in feed.items()}
    engine = load_engine(model, device, given, **precision)
    specs, opt = engine_inputs(engine)
    feed = data.feed(specs, opt) if feed is None else check_feed(feed, specs, str(data.path))
    start = time.perf_counter()
    result = engine(feed)
    seconds = time.perf_counter() - start
    for name, value in result.items():
        summary = (f"mean {value.mean():.6g} std {value.std():.6g} min {value.min():.6g} "
                   f"max {value.max():.6g}" if value.size and value.dtype != bool else "")
        out.write(f"{name}: {value.dtype}{list(value.shape)} {summary}\n")
    out.write(f"ran on {engine.device} in {seconds * 1e3:.2f} ms\n")
    if outputs is not None:
        save_npz(outputs, result)
    return result


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Arrays by name from an .npz file (as `np.savez` writes them)."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise EmberError(f"cannot read inputs from {path}: {e}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise EmberError(f"{path}: expected an .npz of arrays by input name (np.savez), "
                         "not a single array")
    with data:
        try:
            return {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise EmberError(f"cannot read inputs from {path}: {e}") from None


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays by name as an .npz, atomically (names like 'file' are fine here)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
        for name, array in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
