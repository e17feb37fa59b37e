"""Kernels per model with ember's default build: ONNX's 9 light_* models and tests/models/bert_tiny
(with its kernels per encoder layer: steps whose ONNX nodes lie under `/encoder/layer.K/`).

    python tools/kernel_counts.py [--arch sm_90] [--pipeline default] [--models resnet50,bert_tiny]

Without --arch the plan is a CPU one, as `ember build model.onnx` makes it; the layout pass
chooses formats by target, so give --arch for the GPU build's counts (NVRTC, no GPU needed).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BERT_TINY = Path(__file__).resolve().parent.parent / "tests" / "models" / "bert_tiny.onnx"
_ENCODER_LAYER = re.compile(r"/encoder/layer\.(\d+)/")


def kernels_per_encoder_layer(steps: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """Encoder layer index -> its kernels: a step counts for each layer its ONNX nodes name."""
    counts: Counter[int] = Counter()
    for step in steps:
        layers = {int(m.group(1)) for name in step.get("origin", [])
                  for m in _ENCODER_LAYER.finditer(name)}
        counts.update(layers)
    return dict(sorted(counts.items()))


def models(selected: str | None) -> list[tuple[str, Path]]:
    from ember.compiler.models import LIGHT_MODELS, light_model_path

    every = [(f"light_{n}", light_model_path(n)) for n in LIGHT_MODELS]
    every.append(("bert_tiny", BERT_TINY))
    if not selected:
        return every
    wanted = {s.strip().removeprefix("light_") for s in selected.split(",") if s.strip()}
    picked = [(name, path) for name, path in every if name.removeprefix("light_") in wanted]
    unknown = wanted - {name.removeprefix("light_") for name, _ in picked}
    if unknown:
        raise SystemExit(f"unknown model(s): {', '.join(sorted(unknown))}; choose from "
                         f"{', '.join(n for n, _ in every)}")
    return picked


def count(path: Path, arch: str | None, pipeline: str) -> dict[str, Any]:
    """Build `path` and count its kernels, reformats and (BERT) kernels per encoder layer."""
    from ember.compiler.builder import BuilderConfig, build_model
    from ember.runtime.inspector import EngineInspector

    start = time.perf_counter()
    manifest, _ = build_model(path, BuilderConfig(pipeline=pipeline, target_arch=arch))
    layers = EngineInspector(manifest).layers()
    return {"kernels": len(layers),
            "reformats": sum("reformat" in info for info in layers),
            "host": sum(info["device"] == "cpu" for info in layers) if arch else 0,
            "per_layer": kernels_per_encoder_layer(manifest["steps"]),
            "seconds": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", help="build CUDA kernels for this GPU (e.g. sm_90)")
    parser.add_argument("--pipeline", default="default")
    parser.add_argument("--models", help="comma-separated (default: the 9 light models and "
                                         "bert_tiny)")
    args = parser.parse_args(argv)
    chosen = models(args.models)
    print(f"# ember default build, pipeline {args.pipeline}, "
          f"{'CUDA ' + args.arch if args.arch else 'CPU plan'}", flush=True)
    for name, path in chosen:
        c = count(path, args.arch, args.pipeline)
        extra = [f"reformats {c['reformats']}"]
        if c["host"]:
            extra.append(f"on the host {c['host']}")
        if c["per_layer"]:
            extra.append("per encoder layer: " + ", ".join(
                f"layer.{k} {n}" for k, n in c["per_layer"].items()))
        print(f"{name:22} kernels: {c['kernels']:<4} ({'; '.join(extra)}; "
              f"{c['seconds']:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
