"""save_models.py DIR [--models resnet50,bert]: the benchmark's models at its large batches
(ResNet-50 and MobileNetV2 32, BERT 8) as bench_models.py makes them (torchvision models with
calibrated BatchNorm statistics, HuggingFace BERT-base), written as DIR/<model>.onnx (FP32),
DIR/<model>_qdq.onnx (onnxruntime's quantize_static QDQ form, 64 calibration samples, as the
benchmark's int8 cells) and DIR/<model>_in.npz (a seeded input batch, for `ember run
--load-inputs`): the inputs of `tools/gpu_check.sh` PARTS=ncu, which builds and profiles them.
Needs torch (the GPU host has it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_models as bm  # noqa: E402

BATCHES = {"resnet50": 32, "mobilenet_v2": 32, "bert": 8}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--models", default="resnet50,bert")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in BATCHES]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)} (one of {', '.join(BATCHES)})")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        model, kind = bm.build_torch(name)
        feed = bm.inputs_for(kind, BATCHES[name], np.random.default_rng(0))
        onnx_bytes = bm.export(model, kind, feed)
        (args.out / f"{name}.onnx").write_bytes(onnx_bytes)
        (args.out / f"{name}_qdq.onnx").write_bytes(bm.quantized(onnx_bytes, kind,
                                                                  BATCHES[name]))
        np.savez(args.out / f"{name}_in.npz", **feed)
        print(f"{name}: {args.out}/{name}.onnx, {name}_qdq.onnx, {name}_in.npz", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
