"""Where a tensor-core GEMM's time goes, on the GPU host: one-MatMul models (x an input of M x K,
w a K x N weight, FP16 I/O) built with tactics timed on this GPU, for each shape the time of
every candidate the autotuner timed (`ember inspect --explain`'s), ember's end-to-end time with
device I/O, and torch.matmul's (cuBLAS) in the same process. Giving one shape at several K
separates a tactic's time per k-tile (the slope) from its fixed cost (the intercept: launch,
prologue, epilogue).

    python tools/gemm_probe.py [--shapes 1024x3072x768,1024x3072x1536] [--repeats 20]
        [--save-plans DIR]

Needs PyTorch and a GPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# BERT-base b8's GEMMs (M = 1024 tokens), FFN1 at two more depths, and issue 10's 4096^3
DEFAULT = ("1024x2304x768,1024x768x768,1024x3072x768,1024x768x3072,"
           "1024x3072x1536,1024x3072x3072,4096x4096x4096")


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SystemExit(f"--shapes: '{item}' is not MxNxK")
        shapes.append(tuple(int(p) for p in parts))
    return shapes  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=DEFAULT, help="comma list of MxNxK")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--save-plans", type=Path,
                        help="write each shape's plan here as gemm_MxNxK.plan (for ncu)")
    args = parser.parse_args(argv)
    shapes = parse_shapes(args.shapes)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import torch
    from bench_kernels import _median, ember_engine, matmul_case, time_ember

    from ember.compiler.inspect_plan import PlanReport

    if not torch.cuda.is_available():
        raise SystemExit("gemm_probe.py needs a GPU (PyTorch sees none)")
    print(f"# {torch.cuda.get_device_name()}; FP16 I/O, FP32 accumulation", flush=True)
    rng = np.random.default_rng(0)
    for m, n, k in shapes:
        model, feed, flops, (x, w) = matmul_case(m, n, k, rng, "fp16")
        engine = ember_engine(model, "fp16")
        ms, _ = time_ember(engine, feed, args.repeats)
        tx = torch.from_numpy(x).cuda().half()
        tw = torch.from_numpy(w).cuda().half()
        tms = _median(lambda tx=tx, tw=tw: tx @ tw, torch.cuda.synchronize, args.repeats)
        print(f"{m}x{n}x{k}: ember {ms * 1e3:8.1f} us ({flops / ms / 1e9:6.1f} TFLOP/s)  "
              f"torch {tms * 1e3:8.1f} us ({flops / tms / 1e9:6.1f} TFLOP/s)", flush=True)
        plan = bytes(engine.serialize())
        if args.save_plans:
            args.save_plans.mkdir(parents=True, exist_ok=True)
            (args.save_plans / f"gemm_{m}x{n}x{k}.plan").write_bytes(plan)
        report = PlanReport(plan)
        for i, step in enumerate(report.manifest["steps"]):
            if step["template"] != "matmul":
                continue
            tactic = report.explain(i)["tactic"]
            times = tactic.get("times_us") or {}
            print(f"    chosen {tactic['chosen']}")
            for text, us in sorted(times.items(), key=lambda kv: (not isinstance(kv[1], float),
                                                                 kv[1] if isinstance(kv[1], float)
                                                                 else 0)):
                rate = f"{flops / us / 1e6:6.1f} TFLOP/s" if isinstance(us, float) else ""
                print(f"      {text:60s} {us if isinstance(us, str) else f'{us:8.1f} us'} "
                      f"{rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
