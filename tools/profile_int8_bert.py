"""Where an INT8 BERT's time goes, on the GPU host: the benchmark's BERT-base (batch 8, seq 128,
quantized by onnxruntime as `benchmarks/bench_models.py` quantizes it) built INT8+FP16 with
tactics timed on this GPU, then
- the time per template (profiler means over 5 runs),
- layer 0's steps (and the embeddings'): dtypes, shapes, time, tactic, and for each matmul the
  times of the candidates the autotuner timed (`ember inspect --explain`'s),
- rel-L2 against onnxruntime's CPU run of the same QDQ model, for the INT8+FP16 plan and an
  INT8 plan with FP32 elsewhere.
Needs PyTorch (the model comes from it) and a GPU.

    python tools/profile_int8_bert.py [--batch 8] [--layer 0] [--save-plan q.plan]

--save-plan writes the INT8+FP16 plan (tactics timed on this GPU), e.g. for
`tools/sass_check.py q.plan` to show its INT8 wgmma kernels issue IGMMA.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--layer", type=int, default=0, help="the encoder layer to list")
    parser.add_argument("--save-plan", type=Path, help="write the INT8+FP16 plan here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_models as bm
    import onnx
    import onnxruntime as ort
    from precisions import build_engine

    import ember
    from ember.compiler.builder import detect_arch
    from ember.compiler.inspect_plan import PlanReport
    from ember.compiler.ort_compat import for_onnxruntime

    model, kind = bm.build_torch("bert")
    feed = bm.inputs_for(kind, args.batch, np.random.default_rng(0))
    qdq = bm.quantized(bm.export(model, kind, feed), kind, args.batch)
    engine, _ = build_engine(qdq, "int8", "cuda")
    context = engine.create_execution_context()
    context.profiler = profiler = ember.Profiler()
    for _ in range(5):
        context.execute(feed)
    plan = bytes(engine.serialize())
    report = PlanReport(plan)
    if args.save_plan:
        args.save_plan.write_bytes(plan)
    steps = report.manifest["steps"]
    layers = {layer.name: layer for layer in profiler.layers()}
    total: dict[str, float] = collections.defaultdict(float)
    count: collections.Counter[str] = collections.Counter()
    for step in steps:
        layer = layers.get(step["name"])
        total[step["template"]] += layer.mean_ms if layer else 0.0
        count[step["template"]] += 1
    for template, ms in sorted(total.items(), key=lambda kv: -kv[1]):
        print(f"{template:14s} {count[template]:4d} steps {ms:.3f} ms")
    print(f"== layer {args.layer}'s steps (and the embeddings')")
    for i, step in enumerate(steps):
        if not any(f"layer.{args.layer}/" in o or "embeddings" in o
                   for o in step.get("origin", [])):
            continue
        params, layer = step["params"], layers.get(step["name"])
        print(i, step["name"], step["template"], params.get("in_dtypes"), "->",
              params.get("out_dtypes"), params.get("in_shapes"),
              f"{layer.mean_ms * 1000:.1f} us" if layer else "", params.get("tactic") or "")
        if step["template"] == "matmul":
            tactic = report.explain(i)["tactic"]
            print("    ", tactic.get("times_us") or tactic)
    want = ort.InferenceSession(for_onnxruntime(onnx.load_from_string(qdq)).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)[0]
    got16 = next(iter(context.execute(feed).values()))
    print(f"== INT8+FP16 vs onnxruntime on the QDQ model: rel-L2 {rel(got16, want):.3e}")
    builder = ember.Builder()
    network = builder.create_network()
    if not ember.OnnxParser(network).parse(qdq):
        raise SystemExit("the QDQ model did not parse")
    config = builder.create_builder_config()
    config.set_flag(ember.BuilderFlag.INT8)
    config.target_arch = detect_arch()
    plan = builder.build_serialized_network(network, config)
    got32 = next(iter(ember.Runtime("cuda").deserialize_cuda_engine(plan)
                      .create_execution_context().execute(feed).values()))
    print(f"== INT8 (TF32/FP32 elsewhere) vs onnxruntime on the QDQ model: rel-L2 "
          f"{rel(got32, want):.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
