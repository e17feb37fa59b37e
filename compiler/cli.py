"""The `ember` command: subcommands in the style of trtexec and Polygraphy.

Each subcommand is a thin shell over a Python function of the same name; flag groups shared by
several subcommands are defined once, in compiler/flag_groups.py.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ember.compiler.flag_groups import add_build_flags as _add_precision_flags
from ember.compiler.flag_groups import add_input_flags, add_model_flags
from ember.compiler.flag_groups import build_options as _precision
from ember.errors import EmberError
from ember.runtime.printable import EscapingWriter, printable


def _add_pipeline_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("passes")
    which = group.add_mutually_exclusive_group()
    which.add_argument("--pipeline", help="a named pipeline (default: default)")
    which.add_argument("--passes", help="a comma-separated list of passes, e.g. a,b,c")
    group.add_argument("--stop-after", metavar="PASS", help="stop after this pass")


def _add_plugin_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugins", nargs="+", metavar="FILE.py", default=[],
                   help="Python files to run first, which register plugins (ember.plugin's "
                        "decorators: shape function, kernel, numpy reference)")


def _opt(args: argparse.Namespace) -> int:
    from ember.compiler.opt import opt

    opt(args.model, pipeline=args.pipeline, passes=args.passes,
        print_ir_after_all=args.print_ir_after_all, print_ir_before=args.print_ir_before,
        print_ir_after=args.print_ir_after, dump_dir=args.dump_dir, time_passes=args.time_passes,
        stop_after=args.stop_after, output=args.output, print_weights=args.print_weights)
    return 0


def _build(args: argparse.Namespace) -> int:
    from ember.compiler.commands import build

    with _warnings_as_lines("build", quiet=args.quiet):
        build(args.model, args.output, arch=args.arch, pipeline=args.pipeline or "default",
              shapes=args.shapes, verbose=args.verbose,
              autotune={"auto": None, "on": True, "off": False}[args.autotune],
              min_shapes=args.min_shapes, opt_shapes=args.opt_shapes,
              max_shapes=args.max_shapes, dump_dir=args.dump_dir,
              timing_cache=args.timing_cache, quiet=args.quiet, refit=args.refit,
              strip_weights=args.strip_weights, int8=args.int8, fp8=args.fp8,
              calib_data=args.calib_data, calibrator=args.calibrator,
              calib_cache=args.calib_cache, report=args.report,
              hardware_compatibility=args.hardware_compatibility, **_precision(args))
    return 0


@contextmanager
def _warnings_as_lines(command: str, quiet: bool = False) -> Iterator[None]:
    """The compiler's warnings as `ember COMMAND: warning: ...` lines on stderr, each message
    once (with how many times it came); none with `quiet` (-q: errors only)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            counts: dict[str, int] = {}
            for w in caught:
                counts[str(w.message)] = counts.get(str(w.message), 0) + 1
            for message, n in counts.items() if not quiet else ():
                times = f" ({n} times)" if n > 1 else ""
                print(f"ember {command}: warning: {message}{times}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from ember.compiler.commands import run
    from ember.compiler.flag_groups import input_data

    run(args.model, inputs=input_data(args), outputs=args.outputs, device=args.device,
        shapes=args.shapes, **_precision(args))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ember.compiler.demo import demo

    demo(args.model, pipeline=args.pipeline or "default", device=args.device)
    return 0


# xDSL's own passes, reused as they are
_REUSED = {"cse": "common subexpression elimination (xDSL's pass)",
           "dce": "dead code elimination: drops what reaches no output (xDSL's pass)"}


def _list_passes(args: argparse.Namespace) -> int:
    from ember.passes import PIPELINES, available_passes

    for name, factory in sorted(available_passes().items()):
        cls = factory()
        doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().splitlines()
        summary = _REUSED.get(name) or (doc[0].split(": ", 1)[-1] if doc else "")
        print(f"{name:20} {summary}")
    for name, names in PIPELINES.items():
        print(f"pipeline {name}: {','.join(names)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ember", description="ember: an inference compiler "
                                     "for NVIDIA GPUs (ONNX -> xDSL -> CUDA C -> plan)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("opt", help="run passes over a model and print the IR (like mlir-opt)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n"
                              "  ember opt model.onnx --pipeline default --print-ir-after-all\n"
                              "  ember opt model.onnx --passes convert-onnx-to-nn,fold-constants "
                              "--dump-dir stages/\n"
                              "  ember opt in.mlir --passes canonicalize,cse -o out.mlir")
    p.add_argument("model", help="an ONNX model or an .mlir file")
    _add_pipeline_flags(p)
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after each pass")
    p.add_argument("--print-ir-before", action="append", default=[], metavar="PASS",
                   help="print the IR before this pass (repeatable)")
    p.add_argument("--print-ir-after", action="append", default=[], metavar="PASS",
                   help="print the IR after this pass (repeatable)")
    p.add_argument("--dump-dir", metavar="DIR",
                   help="write the IR of each stage to a numbered .mlir file in DIR, with "
                        "DIR/pipeline.txt and the weights once in DIR/weights.npz (see ember "
                        "build --dump-dir)")
    p.add_argument("--print-weights", action="store_true",
                   help="print each weight's bytes in the printed IR's resource section "
                        "(elided by default; --dump-dir stages refer to DIR/weights.npz)")
    p.add_argument("--time-passes", action="store_true", help="print each pass's time to stderr")
    p.add_argument("-o", "--output", help="write the final IR here instead of stdout")
    _add_plugin_flags(p)
    p.set_defaults(run=_opt)

    p = sub.add_parser("build", help="compile an ONNX model into a plan file",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  ember build model.onnx -o model.plan\n"
                              "  ember build model.onnx -o model.plan --arch sm_90 --verbose\n"
                              "  ember build model.onnx -o model.plan --dump-dir stages/\n"
                              "  ember build model.onnx -o model.plan --timing-cache "
                              "model.cache -q\n"
                              "  ember build model.onnx -o model.plan --fp16 --layer-precisions "
                              "conv1:fp32 --precision-constraints obey\n"
                              "  ember build model.onnx -o model.plan --min-shapes x:1x3x224x224 "
                              "--opt-shapes x:8x3x224x224 --max-shapes x:32x3x224x224")
    p.add_argument("model", help="an ONNX model")
    p.add_argument("-o", "--output", required=True, help="the plan file to write")
    p.add_argument("--arch", help="compile CUDA kernels for this GPU (e.g. sm_90); "
                                  "works without a GPU. Default: a CPU-only plan")
    p.add_argument("--pipeline", help="the pipeline (default: default)")
    p.add_argument("--shapes", help="static shapes for symbolic inputs, e.g. x:1x3x224x224,m:1x128")
    for which, what in (("min", "smallest"), ("opt", "tuned-for"), ("max", "largest")):
        p.add_argument(f"--{which}-shapes", metavar="SHAPES",
                       help=f"the {what} shape of each dynamic input, e.g. x:1x3x224x224; with "
                            "all three, dims that vary stay dynamic (kernels take them at run "
                            "time)" if which == "min" else f"the {what} shape of each dynamic "
                            "input")
    loud = p.add_mutually_exclusive_group()
    loud.add_argument("--verbose", action="store_true",
                      help="print each step and its ONNX nodes, and where the build's time went")
    loud.add_argument("-q", "--quiet", action="store_true",
                      help="no progress bars and no summary (errors only)")
    p.add_argument("--autotune", choices=["auto", "on", "off"], default="auto",
                   help="time conv/matmul tactics on the GPU (auto: when --arch is the GPU here)")
    p.add_argument("--timing-cache", "--timingCacheFile", metavar="FILE",
                   help="read the autotuner's timing cache from FILE and write it back extended "
                        "(atomically); entries measured on another GPU or with other "
                        "NVRTC/ember versions are kept but not used (a warning says what "
                        "differs); an unreadable FILE is reported and rewritten. Default: "
                        "$EMBER_CACHE_DIR/timing.cache")
    p.add_argument("--dump-dir", metavar="DIR",
                   help="write each stage of the pipeline to DIR as a numbered .mlir file "
                        "(00-input.mlir first; ops carry their locations, the ONNX nodes they "
                        "came from), the pipeline to DIR/pipeline.txt and the weights "
                        "once to DIR/weights.npz, which the stages name in their resource "
                        "section; `ember-opt DIR/00-input.mlir -p \"$(cat DIR/pipeline.txt)\"` "
                        "prints the last stage again. Stage files already in DIR are removed")
    p.add_argument("--refit", action="store_true",
                   help="a refittable plan: `ember refit` gives it another model's weights")
    p.add_argument("--hardware-compatibility", "--hardwareCompatibilityLevel",
                   choices=["none", "ampere+", "sameComputeCapability"], default="none",
                   help="ampere+: sm_80 code (no Hopper wgmma), run on any GPU from sm_80 up "
                        "(JIT-compiling its PTX on another arch); the others: the --arch's "
                        "compute capability (ember's plans always are)")
    p.add_argument("--strip-weights", "--stripWeights", action="store_true",
                   help="leave the refittable weights out of the plan (refit it from the "
                        "ONNX model at deployment: `ember refit`)")
    _add_precision_flags(p, tf32=True)
    _add_plugin_flags(p)
    group = p.add_argument_group("INT8 (calibration writes Q/DQ nodes; a Q/DQ model needs none)")
    group.add_argument("--int8", action="store_true",
                       help="quantize: a model with Q/DQ nodes as they say, else calibrated")
    group.add_argument("--fp8", action="store_true",
                       help="BuilderFlag.FP8 (TensorRT 10's): plugins may take and give float8 "
                            "tensors (E4M3 Q/DQ nodes need no flag: they run on FP8 tensor "
                            "cores from sm_89 on)")
    group.add_argument("--calib-data", metavar="NPZ_OR_DIR",
                       help="calibration batches: an .npz of arrays by input name (samples along "
                            "the first axis, a multiple of the input's batch) or a folder of them")
    group.add_argument("--calibrator", metavar="NAME",
                       help="entropy (TensorRT's EntropyCalibration2, the default), minmax, or "
                            "percentile (or legacy: the 99.999th percentile of |x|)")
    group.add_argument("--calib-cache", metavar="FILE",
                       help="the calibration cache (TensorRT's text table): read when it exists "
                            "and matches the model (no batches run), written after calibrating")
    group.add_argument("--report", action="store_true",
                       help="after the build, print each output's error against FP32 and the "
                            "quantized layers that add the most (to pin with "
                            "--layer-precisions); inputs: the first calibration batch, else "
                            "seeded random ones")
    p.set_defaults(run=_build)

    p = sub.add_parser("run", help="run a plan (or an ONNX model) on inputs",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n"
                              "  ember run model.plan --inputs in.npz --outputs out.npz\n"
                              "  ember run dynamic.onnx --inputs in.npz  (built for their shapes)\n"
                              "  ember run dynamic.onnx --shapes x:4x3x224x224")
    add_model_flags(p, "a plan file, or an ONNX model to build first (its dynamic inputs "
                       "for the shapes of the inputs given)")
    add_input_flags(p)
    p.add_argument("--outputs", help="write the outputs here (.npz)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    _add_precision_flags(p, tf32=False)
    _add_plugin_flags(p)
    p.set_defaults(run=_run)

    from ember.compiler import inspect_cli

    inspect_cli.add_parser(sub, _add_precision_flags, _add_plugin_flags)

    p = sub.add_parser("demo", help="compile a built-in example model and check its output",
                       epilog="example: ember demo --model resnet50")
    p.add_argument("--model", default="resnet50",
                   help="one of ONNX's packaged light models (default: resnet50)")
    p.add_argument("--pipeline", help="the pipeline to compile with (default: default)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to run (default: the GPU if there is one)")
    p.set_defaults(run=_demo)

    from ember.compiler import compare

    _add_plugin_flags(compare.add_parser(sub))

    # `ember bench` parses trtexec's flags itself (compiler/bench.py): main() hands it argv
    sub.add_parser("bench", add_help=False, help="trtexec's command line: build or load, time "
                   "inferences, print trtexec's performance summary (ember bench --help)")

    from ember.compiler import debug, refit

    debug.add_parser(sub)
    refit.add_parser(sub)

    from ember.compiler import surgeon

    surgeon.add_parser(sub)

    p = sub.add_parser("passes", help="list the passes and pipelines",
                       description="List every registered pass with what it guarantees, then\n"
                       "the named pipelines (the names --passes and --pipeline take).",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n"
                              "  ember passes\n"
                              "  ember passes | grep '^pipeline default'\n"
                              "  then: ember opt model.onnx --passes convert-onnx-to-nn,"
                              "fold-constants,cse --print-ir-after-all\n"
                              "        ember build model.onnx -o model.plan --pipeline unoptimized")
    p.set_defaults(run=_list_passes)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    stdout = sys.stdout  # names from models and plans reach the terminal escaped
    sys.stdout = EscapingWriter(stdout)  # type: ignore[assignment]
    try:
        return _main(argv)
    finally:
        sys.stdout = stdout


def _main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    try:
        if command == "bench":
            from ember.compiler.bench import main as bench

            return bench(argv[1:], prog="ember bench")
        args = build_parser().parse_args(argv)
        if getattr(args, "plugins", None):
            from ember.compiler.plugins import load_plugin_files

            load_plugin_files(args.plugins)
        return args.run(args)
    except EmberError as e:
        print(f"ember {command}: error: {printable(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ember ... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a file that cannot be read or written: the user's to fix
        print(f"ember {command}: error: {printable(str(e))}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: one line, not a traceback (EMBER_TRACEBACK=1 shows it)
        import os

        if os.environ.get("EMBER_TRACEBACK"):
            raise
        print(f"ember {command}: internal error: {type(e).__name__}: {printable(str(e))} "
              "(a bug in ember: please report it with the command; EMBER_TRACEBACK=1 prints "
              "the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
