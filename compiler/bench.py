"""`ember bench` (installed also as `ember-trtexec`): trtexec's command line over ember. It builds
an ONNX model into a plan (`--onnx`, `--saveEngine`) or loads one (`--loadEngine`), times
inferences on the GPU or the CPU executor and prints trtexec's `=== Performance summary ===` in
its line format, so a trtexec command line (and the scripts that read its log) port by changing
the program name. A flag ember cannot honour is an error naming it, never ignored.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ember.errors import EmberError

EXAMPLES = """examples (trtexec's own spellings):
  ember-trtexec --onnx=model.onnx --saveEngine=model.plan --skipInference
  ember-trtexec --loadEngine=model.plan --iterations=20 --warmUp=0 --duration=0
  ember-trtexec --onnx=model.onnx --minShapes=x:1x3x224x224 --optShapes=x:8x3x224x224 \\
      --maxShapes=x:32x3x224x224 --shapes=x:4x3x224x224 --fp16
  ember-trtexec --loadEngine=model.plan --useCudaGraph --dumpProfile --separateProfileRun
  ember bench --onnx=model.onnx --device=cpu --loadInputs=x:x.bin --exportOutput=out.json"""

# trtexec flags ember knows and does not implement: each is an error saying so
NOT_IMPLEMENTED = {
    "--streams": "use --infStreams (trtexec's newer name)",
    "--threads": "each --infStreams stream runs on its own thread already",
    "--batch": "ember plans have explicit shapes: use --shapes",
    "--workspace": "TensorRT 10's trtexec dropped it: use --memPoolSize=workspace:N",
    "--useDLACore": "ember has no DLA",
    "--allowGPUFallback": "ember has no DLA; its counterpart, BuilderFlag.GPU_FALLBACK for "
                          "layers placed on the CPU, is set through the Python API",
    "--int4": "ember has no INT4",
    "--sparsity": "ember has no structured sparsity",
    "--setPluginsToSerialize": "a plan carries no plugin code: each plugin's CUDA kernel is "
                               "compiled into it, and the process that loads it registers the "
                               "numpy reference the CPU executor runs (--plugins=FILE.py)",
    "--profilingVerbosity": "ember's profile always names each step's ONNX nodes",
    "--dumpOutput": "use --exportOutput",
    "--exposeDMA": "", "--useManagedMemory": "", "--noCudaGraph": "",
    "--refit": "", "--versionCompatible": "", "--hardwareCompatibilityLevel": "",
    "--tacticSources": "", "--saveTimingCache": "", "--maxAuxStreams": "",
    "--directIO": "", "--preview": "", "--safe": "", "--consistency": "",
}
# GPU-only flags -> what they would act on (on the CPU executor each is reported n/a)
GPU_ONLY = {"useCudaGraph": "no launches to capture", "noDataTransfers": "no transfers to skip",
            "useSpinWait": "no GPU to wait on", "noPDL": "no kernel launches"}
PERCENTILES = "90,95,99"  # trtexec's default --percentile
# builder-side flags (argparse dest -> trtexec's spelling): with --loadEngine, an error
BUILD_FLAGS = {f: f for f in ("saveEngine", "minShapes", "optShapes", "maxShapes", "fp16", "bf16",
                              "int8", "fp8", "calib", "best", "stronglyTyped", "inputIOFormats",
                              "outputIOFormats", "memPoolSize", "timingCacheFile",
                              "noBuilderCache", "errorOnTimingCacheMiss",
                              "builderOptimizationLevel")}
BUILD_FLAGS.update(tf32="noTF32", layer_precisions="layerPrecisions",
                   layer_output_types="layerOutputTypes",
                   precision_constraints="precisionConstraints")
# trtexec's plugin-library flags: ember's take Python files that register plugins
PLUGIN_FLAGS = ("plugins", "staticPlugins", "dynamicPlugins")
# trtexec's I/O formats -> ember's (those ember has)
IO_FORMATS = {"chw": "NCHW", "linear": "NCHW", "hwc": "NHWC", "chw4": "NC4HW4"}
IO_TYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int32": "int32",
            "int64": "int64", "int8": "int8", "uint8": "uint8", "bool": "bool"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage text: the CLI prints it
        raise EmberError(message)


def build_parser(prog: str = "ember-trtexec") -> argparse.ArgumentParser:
    from ember.compiler.cli import _add_precision_flags  # the flag group every subcommand shares

    p = _Parser(prog=prog, allow_abbrev=False, description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    g = p.add_argument_group("model (one of)")
    g.add_argument("--onnx", metavar="FILE", help="build this ONNX model")
    g.add_argument("--loadEngine", metavar="FILE", help="load a plan built before")
    g = p.add_argument_group("build")
    g.add_argument("--saveEngine", metavar="FILE", help="write the built plan here")
    g.add_argument("--skipInference", action="store_true", help="build (or load) only")
    g.add_argument("--shapes", metavar="SPEC",
                   help="input shapes to run, e.g. x:4x3x224x224 (also the build's, without "
                        "--minShapes/--optShapes/--maxShapes)")
    for which in ("min", "opt", "max"):
        g.add_argument(f"--{which}Shapes", metavar="SPEC",
                       help=f"the optimization profile's {which} shapes, e.g. x:1x3x224x224")
    g.add_argument("--int8", action="store_true",
                   help="INT8: a Q/DQ model as its nodes say, else calibrated from --calib")
    g.add_argument("--calib", metavar="FILE",
                   help="the INT8 calibration cache (ember build --int8 --calib-data DIR "
                        "--calib-cache FILE writes one)")
    g.add_argument("--fp8", action="store_true",
                   help="BuilderFlag.FP8 (TensorRT 10's): plugins may take and give float8 "
                        "tensors; E4M3 Q/DQ nodes need no flag")
    g.add_argument("--best", action="store_true", help="--int8 --fp16 (TF32 stays allowed)")
    g.add_argument("--stronglyTyped", action="store_true",
                   help="a strongly typed network (TensorRT's STRONGLY_TYPED): each layer "
                        "computes in its tensors' types as the model gives them (FP16 where "
                        "FP16, FP32 where FP32, casts as written; TF32 stays a math mode); "
                        "flags that would change types (--fp16 --bf16 --int8 --best "
                        "--layerPrecisions --layerOutputTypes --precisionConstraints) are "
                        "errors")
    _add_precision_flags(p, tf32=True)  # --fp16 --bf16 --noTF32 --layerPrecisions ...
    g = p.add_argument_group("I/O formats and builder options")
    g.add_argument("--inputIOFormats", metavar="SPEC",
                   help="type:format per input, e.g. fp32:chw,fp32:hwc (chw, hwc, chw4)")
    g.add_argument("--outputIOFormats", metavar="SPEC", help="type:format per output")
    g.add_argument("--memPoolSize", metavar="SPEC",
                   help="pool:size,... as trtexec: size in MiB, or with a B/K/M/G suffix "
                        "(base 2; decimals rounded down to bytes), e.g. workspace:64 or "
                        "workspace:512K; ember has the workspace pool (split-K scratch), the "
                        "others (dlaSRAM, dlaLocalDRAM, dlaGlobalDRAM, tacticSharedMem) are "
                        "errors naming them")
    g.add_argument("--timingCacheFile", metavar="FILE",
                   help="load the timing cache from FILE and save it back extended (default: "
                        "$EMBER_CACHE_DIR/timing.cache)")
    g.add_argument("--noBuilderCache", action="store_true",
                   help="no timing cache: time every kernel, keep nothing")
    g = p.add_argument_group("plugins")
    g.add_argument("--plugins", action="append", default=[], metavar="FILE.py",
                   help="a Python file run first, which registers plugins with ember.plugin "
                        "(shape function, kernel, numpy reference); may repeat")
    for flag in PLUGIN_FLAGS[1:]:
        g.add_argument(f"--{flag}", action="append", default=[], metavar="FILE.py",
                       help=f"as --plugins (trtexec's --{flag} loads a shared library; ember's "
                            "plugins are Python)")
    g.add_argument("--errorOnTimingCacheMiss", action="store_true",
                   help="a kernel the timing cache cannot answer is an error naming it")
    g.add_argument("--builderOptimizationLevel", type=int, metavar="N",
                   help="0: one kernel per op, no fusion or layout choice; 1-2: no autotuning; "
                        "3: the default")
    g = p.add_argument_group("inference")
    g.add_argument("--warmUp", type=float, default=200.0, metavar="MS",
                   help="run this long before timing (default 200 ms)")
    g.add_argument("--iterations", type=int, default=10, metavar="N",
                   help="time at least N inferences (default 10)")
    g.add_argument("--duration", type=float, default=3.0, metavar="S",
                   help="time for at least S seconds (default 3)")
    g.add_argument("--avgRuns", type=int, default=10, metavar="N",
                   help="print averages over N consecutive runs (default 10)")
    g.add_argument("--useCudaGraph", action="store_true", help="replay a captured CUDA graph")
    g.add_argument("--noDataTransfers", action="store_true", help="no H2D/D2H copies")
    g.add_argument("--useSpinWait", action="store_true",
                   help="poll for the GPU instead of blocking")
    g.add_argument("--noPDL", action="store_true",
                   help="no programmatic dependent launch: by default (sm_90+ plans) each "
                        "kernel's blocks start while the one before finishes, and wait for it "
                        "in the kernel; with this flag each starts after the one before")
    g.add_argument("--infStreams", type=int, default=1, metavar="N",
                   help="N execution contexts run at once, each on its stream and thread")
    g.add_argument("--loadInputs", metavar="SPEC",
                   help="name:file,... (raw bytes in the input's dtype and shape, or .npy)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="(ember's own) where to run; auto: the GPU if there is one")
    g = p.add_argument_group("reporting")
    g.add_argument("--exportOutput", metavar="FILE", help="the outputs as JSON")
    g.add_argument("--dumpProfile", action="store_true",
                   help="each step's time, share, TFLOP/s, GB/s and %% of the roofline")
    g.add_argument("--exportProfile", metavar="FILE", help="the per-step profile as JSON")
    g.add_argument("--plot", metavar="FILE",
                   help="(ember's own) draw the per-step profile as a chart (.png, .svg, .pdf; "
                        "profiles the run as --dumpProfile does)")
    g.add_argument("--exportTimes", metavar="FILE", help="each inference's times as JSON")
    g.add_argument("--exportLayerInfo", metavar="FILE", help="the engine's layers as JSON")
    g.add_argument("--dumpLayerInfo", action="store_true", help="print the engine's layers")
    g.add_argument("--percentile", default=PERCENTILES, metavar="P,...",
                   help=f"the summary's percentiles, each in [0, 100] (default {PERCENTILES})")
    g.add_argument("--separateProfileRun", action="store_true",
                   help="profile in runs of their own, after the timed ones")
    g.add_argument("--peakTflops", type=float, metavar="T",
                   help="(ember's own) the roofline's compute peak (default: the GPU's, for "
                        "the step's precision; none on the CPU)")
    g.add_argument("--peakBandwidth", type=float, metavar="GBPS",
                   help="(ember's own) the roofline's memory bandwidth in GB/s")
    g.add_argument("--verbose", action="store_true", help="build details and [V] lines")
    return p


def parse_args(argv: Sequence[str], prog: str = "ember-trtexec") -> argparse.Namespace:
    """trtexec's flags; an unknown or unimplemented one is an EmberError naming it."""
    args, extra = build_parser(prog).parse_known_args(list(argv))
    for arg in extra:
        name = arg.split("=", 1)[0]
        if name in NOT_IMPLEMENTED:
            why = NOT_IMPLEMENTED[name]
            raise EmberError(f"{name}: trtexec's flag is not implemented by ember"
                             + (f" ({why})" if why else ""))
        if name.startswith("-"):
            raise EmberError(f"{name}: unknown flag (see --help)")
        raise EmberError(f"unexpected argument {arg!r}: give the model with --onnx=FILE or "
                         "--loadEngine=FILE")
    return args


# -- logging in trtexec's form ---------------------------------------------------------------------
class Log:
    """trtexec's log lines: `[MM/DD/YYYY-HH:MM:SS] [I] text`; [V] lines only when verbose."""

    def __init__(self, out: TextIO, verbose: bool) -> None:
        self.out, self.verbose = out, verbose

    def __call__(self, text: str = "", level: str = "I") -> None:
        if level == "V" and not self.verbose:
            return
        stamp = time.strftime("%m/%d/%Y-%H:%M:%S")
        for line in text.split("\n"):
            self.out.write(f"[{stamp}] [{level}] {line}\n")


def _num(x: float) -> str:
    """A number as C++'s ostream prints a float (6 significant digits)."""
    return f"{x:g}"


# -- building ------------------------------------------------------------------------------------
def _refuse_build_flags(args: argparse.Namespace) -> None:
    given = [f"--{'tf32' if args.tf32 and dest == 'tf32' else flag}"
             for dest, flag in BUILD_FLAGS.items()
             if getattr(args, dest) is not None and (getattr(args, dest) is not False
                                                     or dest == "tf32")]
    if given:
        raise EmberError(f"{', '.join(given)}: build flag(s) with --loadEngine, a plan built "
                         "already; they apply with --onnx")


def _refuse_unsupported(args: argparse.Namespace) -> None:
    if args.calib and not (args.int8 or args.best):
        raise EmberError(f"--calib={args.calib}: a calibration cache is for an INT8 build: give "
                         "--int8")
    if args.calib and not Path(args.calib).is_file():
        raise EmberError(f"--calib={args.calib}: no such calibration cache (`ember build --int8 "
                         "--calib-data DIR --calib-cache FILE` writes one)")
    if args.noBuilderCache and (args.timingCacheFile or args.errorOnTimingCacheMiss):
        other = "--timingCacheFile" if args.timingCacheFile else "--errorOnTimingCacheMiss"
        raise EmberError(f"--noBuilderCache with {other}: without a timing cache there is none "
                         "to load, save or miss")
    level = args.builderOptimizationLevel
    if level is not None and not 0 <= level <= 3:
        raise EmberError(f"--builderOptimizationLevel={level}: ember has levels 0 (no fusion), "
                         "1-2 (no autotuning) and 3 (the default); none searches further")
    if args.stronglyTyped:
        # trtexec drops --fp16/--bf16/--int8 here with a warning (and refuses --best); ember
        # ignores no flag: each is an error
        mixed = [f"--{BUILD_FLAGS[f]}" for f in ("fp16", "bf16", "int8", "best",
                                                 "layer_precisions", "layer_output_types",
                                                 "precision_constraints")
                 if getattr(args, f)]
        if mixed:
            raise EmberError(f"--stronglyTyped with {', '.join(mixed)}: a strongly typed "
                             "network takes its types from the model, not from precision "
                             "flags (a Q/DQ model runs INT8 as its nodes say without --int8)")


# trtexec's --memPoolSize pool names -> TensorRT's MemoryPoolType member names
MEMORY_POOLS = {"workspace": "WORKSPACE", "dlaSRAM": "DLA_MANAGED_SRAM",
                "dlaLocalDRAM": "DLA_LOCAL_DRAM", "dlaGlobalDRAM": "DLA_GLOBAL_DRAM",
                "tacticSharedMem": "TACTIC_SHARED_MEMORY"}
# trtexec's size suffixes (base 2, either case); a bare number is MiB
SIZE_UNITS = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_memory_pools(spec: str) -> dict[str, int]:
    """trtexec's `--memPoolSize=pool:size[,pool:size...]` -> {MemoryPoolType name: bytes}: a
    size is MiB unless it ends in B, K, M or G (base 2), decimals are rounded down to whole
    bytes; later entries for a pool override earlier ones."""
    pools: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, size = item.partition(":")
        if not sep or not name or not size:
            raise EmberError(f"--memPoolSize: '{item}' is not POOL:SIZE (e.g. workspace:1024)")
        if name not in MEMORY_POOLS:
            raise EmberError(f"--memPoolSize: unknown memory pool '{name}' (trtexec's pools: "
                             f"{', '.join(MEMORY_POOLS)})")
        unit = SIZE_UNITS.get(size[-1].upper()) if not size[-1].isdigit() else SIZE_UNITS["M"]
        number = size if size[-1].isdigit() else size[:-1]
        try:
            value = float(number) if unit is not None else math.nan
        except ValueError:
            value = math.nan
        if unit is None or not math.isfinite(value):
            raise EmberError(f"--memPoolSize: '{item}': the size is a number of MiB, or one "
                             "with a B, K, M or G suffix (e.g. 0.5M, 256K)")
        if value < 0:
            raise EmberError(f"--memPoolSize: '{item}': a pool size is at least 0")
        pools[MEMORY_POOLS[name]] = int(value * unit)
    return pools


def _set_memory_pools(config, spec: str, log: Log) -> None:
    """--memPoolSize onto `config.set_memory_pool_limit` (which refuses the pools ember lacks,
    naming them)."""
    from ember.compiler.builder import MemoryPoolType

    for name, size in parse_memory_pools(spec).items():
        try:
            config.set_memory_pool_limit(MemoryPoolType[name], size)
        except EmberError as e:
            raise type(e)(f"--memPoolSize={spec}: {e}") from None
        log(f"Memory pool limit: {name} {size} bytes")


def _parse_io_formats(spec: str, flag: str, names: list[str]) -> dict[str, tuple[str, set[str]]]:
    """trtexec's `type:fmt[+fmt],...` (one entry per tensor, or one for all) -> {tensor:
    (numpy dtype name, ember formats)}."""
    entries = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, sep, fmts = item.partition(":")
        if not sep or kind not in IO_TYPES:
            raise EmberError(f"--{flag}: '{item}' is not TYPE:FORMAT with TYPE one of "
                             f"{', '.join(IO_TYPES)}")
        formats = set()
        for f in fmts.split("+"):
            if f.lower() not in IO_FORMATS:
                raise EmberError(f"--{flag}: format '{f}' is not one ember has (chw, hwc, "
                                 "chw4)")
            formats.add(IO_FORMATS[f.lower()])
        entries.append((IO_TYPES[kind], formats))
    if len(entries) == 1:
        entries *= len(names)
    if len(entries) != len(names):
        raise EmberError(f"--{flag}: {len(entries)} entries for {len(names)} tensor(s) "
                         f"({', '.join(names)})")
    return dict(zip(names, entries, strict=True))


def build(args: argparse.Namespace, arch: str | None, log: Log) -> tuple[dict, dict]:
    """The plan trtexec's build flags ask for: (manifest, sections)."""
    import onnx

    from ember.compiler.builder import (
        BuilderConfig,
        build_model,
        check_memory_limits,
        check_strongly_typed,
        precision_config,
    )
    from ember.compiler.commands import profile_from_flags

    _refuse_unsupported(args)
    from ember.codegen import timing_cache
    from ember.compiler.builder import BuilderFlag
    from ember.compiler.progress import terminal_bars

    config = BuilderConfig(target_arch=arch)
    config.progress_monitor = terminal_bars()
    if args.noBuilderCache:
        config.set_flag(BuilderFlag.DISABLE_TIMING_CACHE)
    if args.errorOnTimingCacheMiss:
        config.set_flag(BuilderFlag.ERROR_ON_TIMING_CACHE_MISS)
    if args.fp8:
        config.set_flag(BuilderFlag.FP8)
    precision_config(config, fp16=args.fp16 or args.best, bf16=args.bf16,
                     tf32=args.tf32 is not False,
                     layer_precisions=args.layer_precisions,
                     layer_output_types=args.layer_output_types,
                     precision_constraints=args.precision_constraints)
    ranges = (args.minShapes, args.optShapes, args.maxShapes)
    profile = profile_from_flags(None if any(ranges) else args.shapes, *ranges)
    if profile is not None:
        config.add_optimization_profile(profile)
    if args.int8 or args.best:
        _int8(config, args)
    if args.memPoolSize:
        _set_memory_pools(config, args.memPoolSize, log)
    if args.stronglyTyped:  # the Builder's rule for a STRONGLY_TYPED network's config
        check_strongly_typed(config, "the flags")
        log("Strongly typed network: each layer computes in its tensors' types as the model "
            "gives them")
    level = args.builderOptimizationLevel
    if level == 0:
        config.optimize = False
    elif level in (1, 2):
        config.autotune = False
    wanted: dict[str, tuple[str, set[str]]] = {}
    if args.inputIOFormats or args.outputIOFormats:
        graph = onnx.load(args.onnx, load_external_data=False).graph
        inits = {t.name for t in graph.initializer}
        types = {vi.name: onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
                 for vi in [*graph.input, *graph.output]}
        for flag, names in (("inputIOFormats",
                             [vi.name for vi in graph.input if vi.name not in inits]),
                            ("outputIOFormats", [vi.name for vi in graph.output])):
            spec = getattr(args, flag)
            if spec:
                for name, (dtype, formats) in _parse_io_formats(spec, flag, names).items():
                    if np.dtype(dtype) != types[name]:
                        raise EmberError(f"--{flag}: '{name}' is {types[name]} in the model; "
                                         f"ember cannot make it {dtype} (I/O types follow the "
                                         "model)")
                    wanted[name] = (flag, formats)
        config.set_allowed_io_formats(*sorted({f for _, fs in wanted.values() for f in fs}
                                              | {"NCHW"}))
    start = time.perf_counter()
    ran: list = []  # the passes the build ran, with their options (wildcards expanded)
    with warnings.catch_warnings(record=True) as caught:  # trtexec's [W] lines
        warnings.simplefilter("always")
        try:
            if args.timingCacheFile:
                config.set_timing_cache(timing_cache.load(args.timingCacheFile), True)
            manifest, sections = build_model(
                args.onnx, config,
                after_pass=(lambda i, p, module: ran.append(p)) if log.verbose else None)
            check_memory_limits(manifest, config)
        finally:
            for w in caught:
                log(str(w.message), "W")
    if args.timingCacheFile:
        timing_cache.update_file(config.timing_cache, args.timingCacheFile)
        log(f"Saved the timing cache to {args.timingCacheFile}")
    for t in [*manifest["inputs"], *manifest["outputs"]]:
        if t["name"] in wanted:
            flag, formats = wanted[t["name"]]
            got = t.get("format") or "NCHW"
            if got not in formats:
                raise EmberError(f"--{flag}: the builder chose {got} for '{t['name']}', not "
                                 f"{'/'.join(sorted(formats))}: ember allows I/O formats, it "
                                 "cannot force one")
    log(f"Engine built in {time.perf_counter() - start:g} sec.")
    if log.verbose:
        from ember.compiler.pipeline import pipeline_text
        from ember.runtime.inspector import layer_table

        log(f"Pipeline: {pipeline_text(ran)}", "V")
        log(layer_table(manifest).rstrip("\n"), "V")
    return manifest, sections


def _int8(config, args: argparse.Namespace) -> None:
    """--int8 / --best: a Q/DQ model as it is; else calibrated from the --calib cache (trtexec
    would use placeholder scales without one: ember refuses)."""
    import onnx

    from ember.compiler.calibrate import QDQ_OPS
    from ember.compiler.commands import int8_config

    flag = "--int8" if args.int8 else "--best"
    if not args.calib:
        graph = onnx.load(args.onnx, load_external_data=False).graph
        if not any(n.op_type in QDQ_OPS for n in graph.node):
            raise EmberError(f"{flag}: {args.onnx} has no Q/DQ nodes and no calibration cache "
                             "was given (--calib=FILE); trtexec would build with placeholder "
                             "scales, ember does not guess them")
    int8_config(config, True, calib_cache=args.calib)


# -- inputs --------------------------------------------------------------------------------------
def _load_inputs(spec: str | None, engine, shapes: Mapping[str, tuple[int, ...]]
                 ) -> dict[str, np.ndarray]:
    """--loadInputs (raw bytes as trtexec reads them, or .npy) and random data for the rest
    (uniform in [-1, 1] for floats, as trtexec)."""
    given: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        name, sep, path = item.rpartition(":")
        if not sep or not name:
            raise EmberError(f"--loadInputs: '{item}' is not NAME:FILE")
        if name not in engine.input_names:
            raise EmberError(f"--loadInputs: the engine has no input '{name}' (inputs: "
                             f"{', '.join(engine.input_names)})")
        given[name] = path
    rng = np.random.default_rng(0)
    feed = {}
    for name in engine.input_names:
        dtype, shape = engine.tensors[name].dtype, shapes[name]
        if name in given:
            path = given[name]
            try:
                if path.endswith(".npy"):
                    array = np.load(path, allow_pickle=False)
                else:
                    array = np.fromfile(path, dtype=np.uint8).view(dtype)
            except (OSError, ValueError) as e:
                raise EmberError(f"--loadInputs: cannot read '{path}' for '{name}': {e}") \
                    from None
            if array.size != math.prod(shape) or array.dtype != dtype:
                raise EmberError(f"--loadInputs: '{path}' holds {array.size} {array.dtype} "
                                 f"value(s); '{name}' takes {math.prod(shape)} {dtype} "
                                 f"({'x'.join(map(str, shape))})")
            feed[name] = np.ascontiguousarray(array.reshape(shape))
        elif np.issubdtype(dtype, np.floating):
            feed[name] = rng.uniform(-1, 1, shape).astype(dtype)
        elif dtype == np.bool_:
            feed[name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feed[name] = rng.integers(0, 10, shape).astype(dtype)
    return feed


def _run_shapes(engine, spec: str | None) -> dict[str, tuple[int, ...]]:
    """Each input's shape for the runs: --shapes, else the profile's opt shape."""
    from ember.compiler.commands import parse_shapes

    given = parse_shapes(spec) if spec else {}
    unknown = set(given) - set(engine.input_names)
    if unknown:
        raise EmberError(f"--shapes names unknown input(s) {sorted(unknown)}; the engine's "
                         f"inputs are {engine.input_names}")
    shapes = {}
    for name in engine.input_names:
        shape = engine.get_tensor_shape(name)
        if name in given:
            shapes[name] = given[name]
        elif -1 in shape:
            shapes[name] = tuple(engine.get_tensor_profile_shape(name, 0)[1])
        else:
            shapes[name] = tuple(shape)
    return shapes


# -- timing --------------------------------------------------------------------------------------
@dataclass
class InferenceTime:
    """One inference, in ms since the benchmark's start; None: not measured (n/a)."""

    enq_start: float
    enq_end: float
    compute_start: float
    compute_end: float
    h2d_start: float | None = None
    h2d_end: float | None = None
    d2h_start: float | None = None
    d2h_end: float | None = None

    @property
    def enqueue(self) -> float:
        return self.enq_end - self.enq_start

    @property
    def compute(self) -> float:
        return self.compute_end - self.compute_start

    @property
    def h2d(self) -> float | None:
        return None if self.h2d_start is None else self.h2d_end - self.h2d_start  # type: ignore

    @property
    def d2h(self) -> float | None:
        return None if self.d2h_start is None else self.d2h_end - self.d2h_start  # type: ignore

    @property
    def latency(self) -> float:
        return (self.h2d or 0.0) + self.compute + (self.d2h or 0.0)


class LayerTimes:
    """An IProfiler keeping every step's every time (trtexec's profile has medians)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        with self._lock:
            self.times.setdefault(layer_name, []).append(ms)


class _CpuRunner:
    """One execution context on the CPU executor: execute() is the whole inference."""

    def __init__(self, engine, feed: Mapping[str, np.ndarray], clock: Callable[[], float]) -> None:
        self.context = engine.create_execution_context()
        self.feed, self.clock = feed, clock
        self.outputs: dict[str, np.ndarray] = {}

    def infer(self) -> InferenceTime:
        start = self.clock()
        self.outputs = self.context.execute(self.feed)
        end = self.clock()
        return InferenceTime(start, end, start, end)

    def close(self) -> None:
        pass


class _CudaRunner:
    """One execution context on its own stream, on device buffers bound with
    set_tensor_address (TensorRT's path): events time H2D, compute and D2H."""

    def __init__(self, engine, feed: Mapping[str, np.ndarray], clock: Callable[[], float],
                 *, cuda_graph: bool, transfers: bool, spin: bool, pdl: bool = True) -> None:
        from ember.runtime import cuda

        self.cuda = cuda
        self.context = engine.create_execution_context(cuda_graph=cuda_graph, pdl=pdl)
        self.feed, self.clock, self.transfers, self.spin = feed, clock, transfers, spin
        self.stream = cuda.Stream()
        for name, array in feed.items():
            self.context.set_input_shape(name, array.shape)
        self.inputs = {}
        for name in engine.input_names:
            buf = cuda.DeviceBuffer(max(feed[name].nbytes, 16))
            buf.upload(feed[name])
            self.inputs[name] = buf
            self.context.set_tensor_address(name, buf.ptr)
        self.outputs: dict[str, np.ndarray] = {}
        self.out_buffers = {}
        self.found: list[str] = []  # outputs whose length a run finds: sized at their bound
        for name in engine.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            if -1 in shape:
                self.found.append(name)
                shape = tuple(max(d, 0) for d in shape)
            host = np.empty(shape, engine.tensors[name].dtype)
            buf = cuda.DeviceBuffer(max(self.context.get_max_output_size(name), 16))
            self.outputs[name], self.out_buffers[name] = host, buf
            self.context.set_tensor_address(name, buf.ptr)
        self.events = [cuda.Event() for _ in range(4)]
        self.origin = cuda.Event()
        self.stream.synchronize()
        self.origin_ms = clock()
        self.origin.record(self.stream)

    def infer(self) -> InferenceTime:
        cuda, stream, ev = self.cuda, self.stream, self.events
        stream.device.set_current()  # each --infStreams stream runs on a thread of its own
        ev[0].record(stream)
        if self.transfers:
            for name, buf in self.inputs.items():
                cuda.copy_htod(buf.ptr, self.feed[name], stream)
        ev[1].record(stream)
        enq_start = self.clock()
        self.context.execute_async_v3(stream.handle)
        enq_end = self.clock()
        for name in self.found:  # known once the host step that binds it has run
            shape = tuple(self.context.get_tensor_shape(name))
            if shape != self.outputs[name].shape:
                self.outputs[name] = np.empty(shape, self.outputs[name].dtype)
        ev[2].record(stream)
        if self.transfers:
            for name, buf in self.out_buffers.items():
                cuda.copy_dtoh(self.outputs[name], buf.ptr, stream)
        ev[3].record(stream)
        if self.spin:
            while not ev[3].query():
                pass
        stream.synchronize()
        at = [self.origin_ms + self.origin.elapsed_ms(e) for e in ev]
        if not self.transfers:  # no copies: the transfers took no time (not an event pair's
            at[0], at[3] = at[1], at[2]  # few-microsecond resolution)
        return InferenceTime(enq_start, enq_end, at[1], at[2], at[0], at[1], at[2], at[3])

    def read_outputs(self) -> dict[str, np.ndarray]:
        for name, buf in self.out_buffers.items():
            buf.download(self.outputs[name])
        return self.outputs

    def close(self) -> None:
        self.stream.close()
        for buf in [*self.inputs.values(), *self.out_buffers.values()]:
            buf.free()


@dataclass
class Trace:
    warmups: int = 0
    warmup_ms: float = 0.0
    timings: list[InferenceTime] = field(default_factory=list)
    walltime_ms: float = 0.0


def run_benchmark(runners: list, *, warmup_ms: float, iterations: int, duration_s: float,
                  clock: Callable[[], float]) -> Trace:
    """Each runner on its own thread: warm up for `warmup_ms`, then infer until `iterations`
    inferences in all and `duration_s` have passed. Times from the end of the warm-up."""
    trace = Trace()
    lock = threading.Lock()
    barrier = threading.Barrier(len(runners))
    errors: list[BaseException] = []
    marks: dict[str, float] = {}

    def loop(runner) -> None:
        try:
            start = clock()
            while clock() - start < warmup_ms:
                runner.infer()
                with lock:
                    trace.warmups += 1
            barrier.wait()
            with lock:
                marks.setdefault("start", clock())
            while True:
                with lock:
                    done = (len(trace.timings) >= iterations
                            and clock() - marks["start"] >= duration_s * 1e3)
                if done:
                    break
                t = runner.infer()
                with lock:
                    trace.timings.append(t)
        except BaseException as e:  # noqa: B036 - re-raised on the calling thread
            errors.append(e)
            barrier.abort()

    begin = clock()
    threads = [threading.Thread(target=loop, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    if real or errors:
        raise (real or errors)[0]
    end = clock()
    trace.warmup_ms = marks.get("start", end) - begin
    trace.walltime_ms = end - marks.get("start", end)
    return trace


# -- statistics in trtexec's manner ------------------------------------------------------------
def percentile(sorted_values: Sequence[float], p: float) -> float:
    """trtexec's percentile: the value with int((1 - p/100) * n) values above it."""
    n = len(sorted_values)
    exclude = int((1 - p / 100) * n)
    return sorted_values[max(n - 1 - exclude, 0)]


def median(sorted_values: Sequence[float]) -> float:
    n, m = len(sorted_values), len(sorted_values) // 2
    return sorted_values[m] if n % 2 else (sorted_values[m - 1] + sorted_values[m]) / 2


def parse_percentiles(spec: str) -> tuple[float, ...]:
    try:
        values = tuple(float(p) for p in spec.split(","))
    except ValueError:
        raise EmberError(f"--percentile={spec}: not a comma-separated list of numbers") from None
    if not all(0 <= p <= 100 for p in values):
        raise EmberError(f"--percentile={spec}: each percentile must be in [0, 100]")
    return values


def perf_string(values: Sequence[float | None], why_na: str,
                percentiles: Sequence[float] = (90.0, 95.0, 99.0)) -> str:
    """`min = .. ms, max = .. ms, mean = .. ms, median = .. ms, percentile(90%) = .. ms, ...`;
    `n/a (why)` where the figure was not measured."""
    if not values or any(v is None for v in values):
        return f"n/a ({why_na})"
    v = sorted(values)  # type: ignore[type-var]
    text = (f"min = {_num(v[0])} ms, max = {_num(v[-1])} ms, mean = {_num(sum(v) / len(v))} ms, "
            f"median = {_num(median(v))} ms")
    return text + "".join(f", percentile({_num(p)}%) = {_num(percentile(v, p))} ms"
                          for p in percentiles)


def report(trace: Trace, log: Log, *, device: str, avg_runs: int, streams: int,
           cuda_graph: bool, percentiles: Sequence[float] = (90.0, 95.0, 99.0)) -> None:
    """trtexec's prolog, trace averages and `=== Performance summary ===`."""
    t = trace.timings
    cpu = device == "cpu"
    log(f"Warmup completed {trace.warmups} queries over {_num(trace.warmup_ms)} ms")
    log(f"Timing trace has {len(t)} queries over {_num(trace.walltime_ms / 1e3)} s")
    log("")
    log("=== Trace details ===")
    log(f"Trace averages of {avg_runs} runs:")
    for i in range(0, len(t) - avg_runs + 1, avg_runs):
        chunk = t[i:i + avg_runs]
        log(f"Average on {avg_runs} runs - GPU latency: "
            f"{_num(sum(x.compute for x in chunk) / avg_runs)} ms - Host latency: "
            f"{_num(sum(x.latency for x in chunk) / avg_runs)} ms (enqueue "
            f"{_num(sum(x.enqueue for x in chunk) / avg_runs)} ms)")
    log("")
    why = "the CPU executor: no transfers"
    log("=== Performance summary ===")
    log(f"Throughput: {_num(len(t) / (trace.walltime_ms / 1e3)) if trace.walltime_ms else 0} qps")
    log(f"Latency: {perf_string([x.latency for x in t], why, percentiles)}")
    log(f"Enqueue Time: {perf_string([x.enqueue for x in t], why, percentiles)}")
    log(f"H2D Latency: {perf_string([x.h2d for x in t], why, percentiles)}")
    log(f"GPU Compute Time: {perf_string([x.compute for x in t], why, percentiles)}")
    log(f"D2H Latency: {perf_string([x.d2h for x in t], why, percentiles)}")
    log(f"Total Host Walltime: {_num(trace.walltime_ms / 1e3)} s")
    compute = sum(x.compute for x in t) / len(t) if t else 0.0
    log(f"Total GPU Compute Time: {_num(compute * len(t) / 1e3)} s")
    if cpu:
        log("Device: the CPU executor (numpy): GPU Compute Time and Enqueue Time are each "
            "inference's executor time; H2D/D2H Latency and CUDA graphs are n/a")
    if streams > 1:
        log("* Multiple inference streams are used. Latencies may not be accurate since "
            "inferences may run in parallel. Please use \"Throughput\" as the performance "
            "metric instead.", "W")
    if cuda_graph and not cpu:
        log("CUDA graph: each context replays its captured launches", "V")
    log("Explanations of the performance metrics are printed in the verbose logs.")
    log("", "V")
    log("=== Explanations of the performance metrics ===", "V")
    log("Total Host Walltime: from when the first query (after warmups) is enqueued to when "
        "the last query is completed.", "V")
    log("GPU Compute Time: the GPU latency to execute the kernels for a query.", "V")
    log("Latency: H2D Latency + GPU Compute Time + D2H Latency.", "V")


# -- per-step profile ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Peaks:
    """A roofline: FLOP/s (integer ops for "int8") by math unit and bytes/s."""

    flops: dict[str, float]
    bandwidth: float | None
    source: str


# FLOPs per clock per multiprocessor (dense): FP32 SIMT, TF32 and FP16/BF16 tensor cores
_PER_SM_CLOCK = {(8, 0): {"fp32": 128, "tf32": 1024, "fp16": 2048, "int8": 4096},
                 (9, 0): {"fp32": 256, "tf32": 2048, "fp16": 4096, "int8": 8192, "fp8": 8192}}


def gpu_peaks() -> Peaks:
    """The GPU's roofline from its attributes: multiprocessors x max clock x the per-SM rate of
    its arch (A100- and H100-class known), memory clock x bus width x 2 (DDR)."""
    from ember.runtime import cuda

    dev = cuda.default_device()
    attr = cuda.cu.CUdevice_attribute
    clock_hz = dev.attribute(attr.CU_DEVICE_ATTRIBUTE_CLOCK_RATE) * 1e3
    mem_hz = dev.attribute(attr.CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE) * 1e3
    bus_bytes = dev.attribute(attr.CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH) / 8
    rates = _PER_SM_CLOCK.get(dev.compute_capability, {})
    return Peaks({k: v * dev.multiprocessor_count * clock_hz for k, v in rates.items()},
                 2 * mem_hz * bus_bytes or None, dev.name)


def profile_rows(engine, times: LayerTimes, values: Mapping[str, int],
                 peaks: Peaks | None) -> list[dict[str, Any]]:
    """One row per step (plan order): trtexec's timeMs/averageMs/medianMs/percentage, and the
    step's FLOPs, bytes, TFLOP/s, GB/s and % of the roofline (None where unknown)."""
    from ember.runtime.step_costs import step_cost

    steps = [s for s in engine.manifest["steps"] if s["name"] in times.times]
    total = sum(sum(times.times[s["name"]]) for s in steps)
    rows = []
    for step in steps:
        ts = sorted(times.times[step["name"]])
        avg = sum(ts) / len(ts)
        cost = step_cost(step, values)
        seconds = avg / 1e3
        row: dict[str, Any] = {
            "name": step["name"], "timeMs": sum(ts), "averageMs": avg, "medianMs": median(ts),
            "percentage": 100.0 * sum(ts) / total if total else 0.0,
            "template": step.get("template", ""), "origin": list(step.get("origin", [])),
            "flops": cost.flops, "bytes": cost.bytes, "math": cost.math,
            "tflops": cost.flops / seconds / 1e12 if cost.flops is not None and seconds else None,
            "gbps": cost.bytes / seconds / 1e9 if cost.bytes is not None and seconds else None,
            "rooflinePercent": None}
        peak = peaks.flops.get(cost.math) if peaks else None
        if peaks and peak and peaks.bandwidth and seconds and cost.flops is not None \
                and cost.bytes is not None:
            bound = max(cost.flops / peak, cost.bytes / peaks.bandwidth)
            row["rooflinePercent"] = 100.0 * bound / seconds
        rows.append(row)
    return rows


def profile_text(rows: list[dict[str, Any]], count: int, peaks: Peaks | None) -> str:
    """trtexec's `=== Profile (N iterations ) ===` table, with ember's roofline columns."""
    def opt(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    lines = [f"=== Profile ({count} iterations ) ===",
             f"{'Time(ms)':>11}{'Avg.(ms)':>13}{'Median(ms)':>13}{'Time(%)':>10}"
             f"{'TFLOP/s':>10}{'GB/s':>10}{'Roofline(%)':>13}   Layer"]
    for r in rows:
        lines.append(f"{r['timeMs']:11.2f}{r['averageMs']:13.4f}{r['medianMs']:13.4f}"
                     f"{r['percentage']:10.1f}{opt(r['tflops'], '.4g'):>10}"
                     f"{opt(r['gbps'], '.4g'):>10}{opt(r['rooflinePercent'], '.3g'):>13}   "
                     f"{r['name']}")
    total = sum(r["timeMs"] for r in rows)
    lines.append(f"{total:11.2f}{total / count if count else 0:13.4f}"
                 f"{sum(r['medianMs'] for r in rows):13.4f}{100.0:10.1f}{'':33}   Total")
    lines.append("roofline: " + (
        f"{peaks.source}: " + ", ".join(f"{k} {v / 1e12:g} TFLOP/s"
                                       for k, v in peaks.flops.items())
        + (f", {peaks.bandwidth / 1e9:g} GB/s" if peaks.bandwidth else "")
        if peaks else "n/a (no peaks known for this device: give --peakTflops and "
                      "--peakBandwidth)"))
    return "\n".join(lines)


# -- exports -------------------------------------------------------------------------------------
def _write_json(path: str, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def export_times(path: str, timings: list[InferenceTime]) -> None:
    _write_json(path, [{"startEnqMs": t.enq_start, "endEnqMs": t.enq_end,
                        "startH2dMs": t.h2d_start, "endH2dMs": t.h2d_end,
                        "startComputeMs": t.compute_start, "endComputeMs": t.compute_end,
                        "startD2hMs": t.d2h_start, "endD2hMs": t.d2h_end,
                        "h2dMs": t.h2d, "computeMs": t.compute, "d2hMs": t.d2h,
                        "latencyMs": t.latency} for t in timings])


def export_output(path: str, outputs: Mapping[str, np.ndarray]) -> None:
    """trtexec's form: [{"name", "dimensions": "1x1000", "values": [...]}]."""
    _write_json(path, [{"name": name, "dimensions": "x".join(map(str, a.shape)),
                        "values": np.asarray(a, dtype=np.float64 if a.dtype.kind == "f"
                                             else a.dtype).reshape(-1).tolist()}
                       for name, a in outputs.items()])


# -- the command ---------------------------------------------------------------------------------
def bench(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """What `ember bench ARGS` does (see the module docstring); 0 when it passed."""
    from ember.runtime.engine import Engine
    from ember.runtime.plan import plan_bytes, read_plan, write_plan

    out = out or sys.stdout
    log = Log(out, args.verbose)
    if bool(args.onnx) == bool(args.loadEngine):
        raise EmberError("give the model with --onnx=FILE (build it) or --loadEngine=FILE (a "
                         "plan), one of them")
    for name in ("iterations", "avgRuns", "infStreams"):
        if getattr(args, name) < 1:
            raise EmberError(f"--{name}={getattr(args, name)}: must be at least 1")
    for name in ("warmUp", "duration"):
        if getattr(args, name) < 0:
            raise EmberError(f"--{name}={getattr(args, name)}: must not be negative")
    if args.separateProfileRun and not (args.dumpProfile or args.exportProfile or args.plot):
        raise EmberError("--separateProfileRun: profiles nothing without --dumpProfile, "
                         "--exportProfile or --plot")
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise EmberError(f"--plot={args.plot}: give a .png, .svg or .pdf file")
    percentiles = parse_percentiles(args.percentile)
    if (args.peakTflops is None) != (args.peakBandwidth is None):
        raise EmberError("--peakTflops and --peakBandwidth go together (a roofline needs both)")
    from ember.compiler.plugins import load_plugin_files

    for flag in PLUGIN_FLAGS:  # before the build reads the model or the plan is run
        for path in getattr(args, flag):
            log(f"Loading supplied plugin library: {path}")
            load_plugin_files([path], f"--{flag}")
    device = args.device
    if device == "cuda":
        from ember.runtime.cuda import cuda_available

        if not cuda_available():
            raise EmberError("--device=cuda: no GPU is visible")
    if args.onnx:
        arch = None
        if device != "cpu":
            from ember.compiler.builder import detect_arch

            arch = detect_arch()
        manifest, sections = build(args, arch, log)
        data = plan_bytes(manifest, sections)
        if args.saveEngine:
            write_plan(args.saveEngine, manifest, sections)
            log(f"Engine saved to {args.saveEngine}")
        engine = Engine(read_plan(data), device)
    else:
        _refuse_build_flags(args)
        from ember.runtime.engine import Runtime

        engine = Runtime(device).load(args.loadEngine)
        log(f"Engine loaded from {args.loadEngine}")
    if args.exportLayerInfo:
        Path(args.exportLayerInfo).write_text(
            engine.create_engine_inspector().get_engine_information("json"))
    if args.dumpLayerInfo:
        log("Layer Information:")
        log(engine.create_engine_inspector().get_engine_information("text").rstrip("\n"))
    if args.skipInference:
        log("Skipped inference phase since --skipInference is added.")
        return 0
    on = engine.device
    if on == "cpu":
        for flag, why in GPU_ONLY.items():
            if getattr(args, flag):
                log(f"--{flag}: n/a on the CPU executor ({why})", "W")
    else:
        arch = engine.manifest.get("target", {}).get("arch")
        log("Programmatic dependent launch: " + (
            "off (--noPDL)" if args.noPDL else
            f"on ({engine.pdl_launches} kernel launch(es))" if engine.pdl_launches else
            f"n/a (no kernel of this plan, built for {arch}, waits for the one before it; "
            "sm_90+ plans' kernels do)"))
    shapes = _run_shapes(engine, args.shapes)
    feed = _load_inputs(args.loadInputs, engine, shapes)
    log(f"Selected Device: {_device_name(on)}")
    log("Input shapes: " + ", ".join(f"{n}: {'x'.join(map(str, s))}" for n, s in shapes.items()))
    origin = time.perf_counter()

    def clock() -> float:
        return (time.perf_counter() - origin) * 1e3

    runners = []
    try:
        for _ in range(args.infStreams):
            if on == "cpu":
                runners.append(_CpuRunner(engine, feed, clock))
            else:
                runners.append(_CudaRunner(engine, feed, clock, cuda_graph=args.useCudaGraph,
                                           transfers=not args.noDataTransfers,
                                           spin=args.useSpinWait,
                                           pdl=not args.noPDL))
        profiling = bool(args.dumpProfile or args.exportProfile or args.plot)
        times = LayerTimes()
        if profiling and not args.separateProfileRun:
            for r in runners:
                r.context.profiler = times
        log("Starting inference")
        trace = run_benchmark(runners, warmup_ms=args.warmUp, iterations=args.iterations,
                              duration_s=args.duration, clock=clock)
        report(trace, log, device=on, avg_runs=args.avgRuns, streams=args.infStreams,
               cuda_graph=args.useCudaGraph, percentiles=percentiles)
        if profiling:
            if args.separateProfileRun:
                times = LayerTimes()
                runners[0].context.profiler = times
                for _ in range(max(args.iterations, 1)):
                    runners[0].infer()
                runners[0].context.profiler = None
            values = {**_symbol_values(engine, shapes),
                      **runners[0].context.data_dependent_values}
            peaks = (Peaks({k: args.peakTflops * 1e12
                            for k in ("fp32", "tf32", "fp16", "int8", "fp8")},
                           args.peakBandwidth * 1e9, "given")
                     if args.peakTflops is not None else gpu_peaks() if on == "cuda" else None)
            if peaks is not None and not peaks.flops:
                peaks = None
            rows = profile_rows(engine, times, values, peaks)
            count = max((len(v) for v in times.times.values()), default=0)
            if args.dumpProfile:
                log("")
                log(profile_text(rows, count, peaks))
            if args.exportProfile:
                _write_json(args.exportProfile, [{"count": count}, *rows])
            if args.plot:
                from ember.compiler.profile_plot import plot_profile

                plot_profile(rows, count, args.plot, title=f"ember bench on the {on.upper()}")
                log(f"Per-step profile drawn to {args.plot}")
        if args.exportTimes:
            export_times(args.exportTimes, trace.timings)
        if args.exportOutput:
            last = runners[0]
            export_output(args.exportOutput, last.read_outputs() if on == "cuda"
                          else last.outputs)
    finally:
        for r in runners:
            r.close()
    return 0


def _symbol_values(engine, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int]:
    """The plan's symbols at these input shapes (the profile's step costs need them)."""
    from ember.errors import InputError
    from ember.runtime.symbolic import symbol_values

    if not engine.symbols:
        return {}
    specs = [(n, engine.tensors[n].spec) for n in engine.input_names]
    return symbol_values(specs, shapes, dict(engine.symbols), InputError)


def _device_name(device: str) -> str:
    if device == "cpu":
        return "the CPU executor (numpy)"
    from ember.runtime import cuda

    dev = cuda.default_device()
    return f"{dev.name} ({dev.arch}, {dev.multiprocessor_count} SMs)"


def main(argv: Sequence[str] | None = None, prog: str = "ember-trtexec") -> int:
    """The `ember-trtexec` console script (and `ember bench`): trtexec's `&&&& RUNNING` /
    `&&&& PASSED` / `&&&& FAILED` lines around the run; an error is one line on stderr."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = " ".join([prog, *argv])
    try:
        args = parse_args(argv, prog)
        print(f"&&&& RUNNING ember.trtexec # {command}", flush=True)
        status = bench(args)
    except (EmberError, OSError) as e:  # OSError: a file to read or write (--export*, ...)
        print(f"{prog}: error: {e}", file=sys.stderr)
        print(f"&&&& FAILED ember.trtexec # {command}")
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"&&&& PASSED ember.trtexec # {command}")
    return status


if __name__ == "__main__":
    sys.exit(main())
