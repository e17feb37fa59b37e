"""Programmatic dependent launch on and off, one engine, one process: for each model, batch and
precision of bench_models.py, ember's engine is built once (tactics timed on this GPU) and timed
with device I/O and a CUDA graph as bench_models.py times it, alternately with EMBER_PDL=1 (the
default: sm_90 kernels launched with programmatic stream serialization) and EMBER_PDL=0 (each
kernel after the one before has finished), `--rounds` times each; the best median of each is
printed with their ratio, and how far apart their outputs are (exit 1 past rel-L2 1e-3).

    python benchmarks/bench_pdl.py [--cells resnet50:32:fp16,bert:8:fp16,bert:8:int8]
        [--repeats 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="resnet50:32:fp16,bert:8:fp16,bert:8:int8",
                        help="model:batch:precision, comma-separated")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import bench_models as bm
    from precisions import build_engine

    exported: dict[tuple[str, int], tuple[bytes, str, dict]] = {}
    failed = False
    for cell in filter(None, args.cells.split(",")):
        name, batch, precision = cell.split(":")
        key = (name, int(batch))
        if key not in exported:
            model, kind = bm.build_torch(name)
            feed = bm.inputs_for(kind, int(batch), np.random.default_rng(0))
            exported[key] = (bm.export(model, kind, feed), kind, feed)
        onnx_bytes, kind, feed = exported[key]
        if precision == "int8":
            onnx_bytes = bm.quantized(onnx_bytes, kind, int(batch))
        engine, _ = build_engine(onnx_bytes, precision, "cuda")
        best: dict[str, float] = {}
        outputs = {}
        for _ in range(args.rounds):
            for pdl in ("1", "0"):
                os.environ["EMBER_PDL"] = pdl
                ms = bm._time_bound(engine, feed, args.repeats, True)
                best[pdl] = min(best.get(pdl, ms), ms)
                ctx = engine.create_execution_context(cuda_graph=True)
                outputs[pdl] = next(iter(ctx.execute(feed).values()))
        os.environ.pop("EMBER_PDL")
        a, b = (np.asarray(outputs[p], np.float64) for p in ("1", "0"))
        diff = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
        print(f"{name} b{batch} {precision}: ember (device I/O, graph) PDL on {best['1']:.3f} ms, "
              f"off {best['0']:.3f} ms, on / off = {best['1'] / best['0']:.3f}; outputs "
              f"{'identical' if diff == 0 else f'differ (rel-L2 {diff:.1e})'}", flush=True)
        failed |= diff > 1e-3
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
