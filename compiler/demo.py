"""`ember demo`: the README's main job — compile one of ONNX's packaged models and check it.

At this stage the compiled nn IR runs on the CPU through the nn reference interpreter; the plan
build and GPU runtime take its place as they land.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np

from ember.compiler.interpret import interpret
from ember.compiler.models import light_model_case
from ember.compiler.onnx_importer import import_onnx
from ember.compiler.pipeline import resolve_passes, run_passes
from ember.errors import EmberError


def count_ops(module) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in module.walk():
        if op.name.startswith(("onnx.", "nn.")):
            counts[op.name] = counts.get(op.name, 0) + 1
    return counts


def demo(model: str = "resnet50", pipeline: str = "default", out: TextIO | None = None,
         rtol: float = 1e-3, atol: float = 1e-4) -> bool:
    out = out or sys.stdout
    path, inputs, expected = light_model_case(model)
    t0 = time.perf_counter()
    module = import_onnx(path)
    imported = sum(count_ops(module).values())
    t1 = time.perf_counter()
    run = run_passes(module, resolve_passes(pipeline))
    t2 = time.perf_counter()
    outputs = interpret(module, inputs)
    t3 = time.perf_counter()
    got = next(iter(outputs.values()))
    ok = got.shape == expected.shape and np.allclose(got, expected, rtol=rtol, atol=atol)
    err = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
    out.write(f"model      {path.name}\n")
    out.write(f"import     {imported} onnx ops in {t1 - t0:.3f} s\n")
    out.write(f"pipeline   {pipeline}: {', '.join(run.passes)} in {t2 - t1:.3f} s\n")
    ops = count_ops(module)
    out.write(f"nn ops     {sum(ops.values())}: " +
              ", ".join(f"{k.removeprefix('nn.')}×{v}" for k, v in sorted(ops.items())) + "\n")
    out.write(f"run (cpu)  {t3 - t2:.3f} s, nn reference interpreter\n")
    out.write(f"check      max |ember - stored| = {err:.2e} (rtol {rtol}, atol {atol}): "
              f"{'OK' if ok else 'MISMATCH'}\n")
    if not ok:
        raise EmberError(f"{path.name}: output differs from the stored output (max error {err})")
    return ok
