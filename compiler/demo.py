"""`ember demo`: the README's main job — build one of ONNX's packaged models into a plan, run it
(on the GPU when there is one, else on the CPU) and check it against its stored output."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np

from ember.compiler.builder import BuilderConfig, build_model, detect_arch
from ember.compiler.models import light_model_case
from ember.errors import EmberError


def demo(model: str = "resnet50", pipeline: str = "default", device: str = "auto",
         out: TextIO | None = None, rtol: float = 1e-3, atol: float = 1e-4,
         repeats: int = 10) -> bool:
    from ember.runtime.engine import Engine
    from ember.runtime.plan import plan_bytes, read_plan

    out = out or sys.stdout
    path, inputs, expected = light_model_case(model)
    arch = detect_arch() if device != "cpu" else None
    t0 = time.perf_counter()
    manifest, sections = build_model(path, BuilderConfig(pipeline=pipeline, target_arch=arch))
    plan = plan_bytes(manifest, sections)
    t1 = time.perf_counter()
    engine = Engine(read_plan(plan), device)
    context = engine.create_execution_context()
    got = next(iter(context.execute(inputs).values()))  # warm-up, and the checked result
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        context.execute(inputs)
        times.append(time.perf_counter() - start)
    ok = got.shape == expected.shape and np.allclose(got, expected, rtol=rtol, atol=atol)
    err = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
    out.write(f"model     {path.name}\n")
    out.write(f"build     {len(manifest['steps'])} steps, plan {len(plan) / 2**20:.1f} MiB "
              f"({'CUDA ' + arch if arch else 'CPU only'}) in {t1 - t0:.2f} s\n")
    out.write(f"memory    arena {manifest['arena_bytes'] / 2**20:.1f} MiB for "
              f"{manifest['activation_bytes'] / 2**20:.1f} MiB of activations\n")
    out.write(f"run       {engine.device}: median {np.median(times) * 1e3:.2f} ms "
              f"over {repeats} runs (host to host)\n")
    out.write(f"check     max |ember - stored| = {err:.2e} (rtol {rtol}, atol {atol}): "
              f"{'OK' if ok else 'MISMATCH'}\n")
    if not ok:
        raise EmberError(f"{path.name}: output differs from the stored output (max error {err})")
    return ok
