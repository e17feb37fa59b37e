"""How long a plan takes to load: ResNet-50 (ONNX's light model, ~100 MiB of weights) read and
verified (`read_plan`), made an Engine, given an execution context, and run once — each phase
timed on its own, N times in one process with the file in the page cache (issue 14's budget:
load + context <= 100 ms on the GPU). A first, untimed load warms the process (CUDA context,
imports); its figure is printed too.

    python benchmarks/bench_load.py [--plan FILE | --arch sm_90 [--save FILE]]
                                    [--device cuda|cpu] [-n 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

PHASES = ("read_plan", "engine", "context", "load+context", "first execute")


def build_plan(path: str, arch: str | None) -> None:
    """Build light ResNet-50 for `arch` (None: a CPU plan) into `path`; no autotuning, so the
    build is the same with or without the GPU it names."""
    import onnx

    from ember.compiler.builder import BuilderConfig, build_model
    from ember.compiler.models import light_model_path
    from ember.runtime.plan import write_plan

    model = onnx.load(str(light_model_path("resnet50")))
    manifest, sections = build_model(model, BuilderConfig(target_arch=arch, autotune=False))
    write_plan(path, manifest, sections)


def feeds(engine) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {name: rng.standard_normal(engine.get_tensor_shape(name)).astype(
        engine.tensors[name].dtype) for name in engine.input_names}


def load_once(path: str, device: str) -> dict[str, float]:
    """One load of `path` on `device`, each phase in ms; the engine is freed before returning."""
    from ember.runtime.engine import Engine
    from ember.runtime.plan import read_plan

    times: dict[str, float] = {}
    start = time.perf_counter()
    plan = read_plan(path)
    read = time.perf_counter()
    engine = Engine(plan, device, allow_rejit=True)
    made = time.perf_counter()
    context = engine.create_execution_context()
    ready = time.perf_counter()
    context.execute(feeds(engine))
    ran = time.perf_counter()
    times["read_plan"] = (read - start) * 1e3
    times["engine"] = (made - read) * 1e3
    times["context"] = (ready - made) * 1e3
    times["load+context"] = (ready - start) * 1e3
    times["first execute"] = (ran - ready) * 1e3
    del context, engine
    plan.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", help="time this plan file instead of building ResNet-50")
    parser.add_argument("--arch", help="build target (default: the GPU present, else a CPU "
                        "plan); 'cpu' for a CPU plan on a GPU machine")
    parser.add_argument("--device", choices=("cuda", "cpu"),
                        help="executor to load on (default: cuda where a GPU is present)")
    parser.add_argument("--save", help="keep the built plan at this path")
    parser.add_argument("-n", "--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    from ember.runtime.cuda import cuda_available, gpu_arch

    device = args.device or ("cuda" if cuda_available() else "cpu")
    if device == "cuda":
        if not cuda_available():
            parser.error("--device cuda: no GPU is visible")
        from ember.runtime.cuda import default_device

        default_device()  # the CUDA context is the process's, not the load's
    with tempfile.TemporaryDirectory() as tmp:
        path = args.plan
        if path is None:
            arch = args.arch if args.arch is not None else gpu_arch()
            arch = None if arch == "cpu" else arch
            path = args.save or os.path.join(tmp, "resnet50.plan")
            start = time.perf_counter()
            build_plan(path, arch)
            print(f"built light ResNet-50 for {arch or 'the CPU'} in "
                  f"{time.perf_counter() - start:.1f} s")
        with open(path, "rb") as f:  # into the page cache
            while f.read(1 << 24):
                pass
        print(f"plan {path}: {os.path.getsize(path) / 2**20:.1f} MiB, device {device}")
        first = load_once(path, device)
        runs = [load_once(path, device) for _ in range(args.repeats)]
    print(f"first load in the process: load+context {first['load+context']:.1f} ms")
    print(f"{'phase (ms)':<16}{'median':>9}{'min':>9}   ({args.repeats} loads)")
    for phase in PHASES:
        values = [r[phase] for r in runs]
        print(f"{phase:<16}{statistics.median(values):>9.1f}{min(values):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
