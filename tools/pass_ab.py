"""What one pass buys on a model: the plan built with the build's whole pipeline and again
without the named pass(es), both run on the same inputs, compared (outputs) and timed (on the
GPU: device I/O, replayed as a CUDA graph; medians), with each plan's steps by template.

    python tools/pass_ab.py model.onnx --without fuse-attention-kernels [--int8] [--fp16]
        [--device cuda|cpu] [--arch sm_90] [--repeats 50] [--load-inputs inputs.npz]

The builds go through `build_model(..., passes=pipeline_for(config) minus the named passes)`:
the same passes and options as `ember build` otherwise (on the GPU: the GPU present's arch,
tactics timed on it; `--device cpu --arch sm_90`: plans for that arch, tactics from the cost
model, run by the CPU executor, as the tests run GPU plans without a GPU). A name that is
not in the build's pipeline is an error naming the pipeline's passes. Inputs: `--load-inputs`
(an .npz of the model's inputs), else seeded random ones (integer inputs all ones, as
tools/qdq_model.py makes them).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_models import time_device_io, time_it  # noqa: E402
from qdq_model import random_feed  # noqa: E402


def _config(args: argparse.Namespace, arch: str | None):
    from ember.compiler.builder import BuilderConfig, BuilderFlag

    config = BuilderConfig(target_arch=arch, autotune=args.device == "cuda")
    for flag, on in ((BuilderFlag.INT8, args.int8), (BuilderFlag.FP16, args.fp16)):
        if on:
            config.set_flag(flag)
    return config


def _time(engine, feed: dict[str, np.ndarray], device: str, repeats: int) -> float:
    """Median ms of one inference: on the GPU with inputs and outputs on the device, replayed
    as a CUDA graph (the models benchmark's own timing); on the CPU the executor's run."""
    if device == "cpu":
        ctx = engine.create_execution_context()
        return time_it(lambda: ctx.execute(feed), repeats)
    return time_device_io(engine, feed, repeats, cuda_graph=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--without", required=True,
                        help="a comma list of pass names to leave out of the second build")
    parser.add_argument("--int8", action="store_true")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--arch", help="the plans' target (default: the GPU present with "
                        "--device cuda, none with --device cpu: CPU plans)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--load-inputs", type=Path)
    args = parser.parse_args(argv)

    from ember.compiler.builder import build_model, detect_arch, pipeline_for
    from ember.errors import EmberError
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    arch = args.arch
    if args.device == "cuda" and arch is None:
        arch = detect_arch()
        if arch is None:
            parser.error("--device cuda: no GPU visible (--device cpu runs the plans on the CPU)")
    model = onnx.load(args.model)
    feed = dict(np.load(args.load_inputs)) if args.load_inputs else \
        random_feed(model, np.random.default_rng(1))
    config = _config(args, arch)
    try:
        everything = pipeline_for(config)
    except EmberError as e:
        parser.error(str(e))
    names = [n for n in args.without.split(",") if n]
    present = [p.name for p in everything]
    missing = [n for n in names if n not in present]
    if missing:
        parser.error(f"not in this build's pipeline: {', '.join(missing)} (its passes: "
                     f"{', '.join(present)})")
    results = {}
    for label, passes in (("with", everything),
                          (f"without {','.join(names)}",
                           [p for p in everything if p.name not in names])):
        start = time.perf_counter()
        try:
            manifest, sections = build_model(model, _config(args, arch), passes=list(passes))
        except EmberError as e:
            print(f"pass_ab: the build {label}: {e}", file=sys.stderr)
            return 1
        engine = Runtime(args.device).deserialize_cuda_engine(plan_bytes(manifest, sections))
        outputs = engine.create_execution_context().execute(feed)
        ms = _time(engine, feed, args.device, args.repeats)
        steps = Counter(s["template"] for s in manifest["steps"])
        results[label] = outputs
        print(f"{label}: {ms:.4f} ms (median of {args.repeats}, {args.device}"
              f"{', CUDA graph' if args.device == 'cuda' else ''}); built in "
              f"{time.perf_counter() - start:.1f} s; {len(manifest['steps'])} steps: "
              + ", ".join(f"{t} {n}" for t, n in sorted(steps.items())), flush=True)
    (a, b) = results.values()
    for name in a:
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        rel = np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)
        print(f"output {name}: rel-L2 between the two plans {rel:.3g}, "
              f"{np.mean(x == y):.4%} of values equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
