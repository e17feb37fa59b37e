"""What dynamic shapes cost: one plan with a dynamic batch (an optimization profile; kernels take
the batch as an argument) against static plans built for each batch, same model, GPU and run.

ResNet-50 (batch 1..32, opt 8) and a BERT-base encoder (seq 128, batch 1..8, opt 4), exported
from PyTorch with a dynamic batch axis, and `bert_seq`: BERT-base with dynamic batch (1..8,
opt 4) and sequence (16..128, opt 128) axes. FP32. Times are medians with device I/O and a CUDA
graph (execute_async_v3 after set_input_shape), as bench_models.py times ember.

    python benchmarks/bench_dynamic.py [--models resnet50,bert,bert_seq] [--repeats 20]
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
from bench_models import build_torch, inputs_for, relative_error, time_it

SETTINGS = {"image": ((1, 8, 32), (1, 8, 32)), "text": ((1, 4, 8), (1, 8))}
# bert_seq: (batch, seq) ranges and the shapes timed
SEQ_RANGE = ((1, 16), (4, 128), (8, 128))
SEQ_SHAPES = ((1, 128), (8, 128), (8, 64), (4, 16))


def text_inputs(batch: int, seq: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"input_ids": rng.integers(0, 30522, (batch, seq)).astype(np.int64),
            "attention_mask": np.ones((batch, seq), np.int64)}


def export_dynamic(model, kind: str, feed: dict[str, np.ndarray], seq: bool = False) -> bytes:
    import torch

    args = tuple(torch.from_numpy(v) for v in feed.values())
    axes = {name: {0: "batch", **({1: "sequence"} if seq else {})} for name in [*feed, "y"]}
    buf = io.BytesIO()
    torch.onnx.export(model, args, buf, input_names=list(feed), output_names=["y"],
                      opset_version=17, dynamo=False, dynamic_axes=axes)
    return buf.getvalue()


def build(onnx_bytes: bytes, feed_shapes: dict | None = None):
    """A CUDA engine: static, or with a profile {name: (min, opt, max)}."""
    import ember
    from ember.compiler.builder import BuilderConfig, OptimizationProfile, build_model, detect_arch
    from ember.runtime.plan import plan_bytes

    config = BuilderConfig(target_arch=detect_arch())
    if feed_shapes:
        profile = OptimizationProfile()
        for name, (lo, opt, hi) in feed_shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    manifest, sections = build_model(onnx_bytes, config)
    host = [s["name"] for s in manifest["steps"] if s.get("device") == "cpu"]
    variants = sum(bool(s.get("cuda", {}).get("variants")) for s in manifest["steps"])
    engine = ember.Runtime(device="cuda").deserialize_cuda_engine(plan_bytes(manifest, sections))
    return engine, f"{len(manifest['steps'])} steps ({variants} with a small-batch kernel)", host


def time_bound(engine, feed: dict[str, np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    """Median ms of execute_async_v3 on device buffers (CUDA graph), and the first output."""
    from ember.runtime import cuda

    ctx = engine.create_execution_context(cuda_graph=True)
    for name, value in feed.items():
        ctx.set_input_shape(name, value.shape)
    buffers = {}
    for name in engine.input_names + engine.output_names:
        shape = ctx.get_tensor_shape(name)
        dtype = engine.get_tensor_dtype(name)
        buf = cuda.DeviceBuffer(max(int(np.prod(shape)) * dtype.itemsize, 1))
        if name in feed:
            buf.upload(np.ascontiguousarray(feed[name]))
        ctx.set_tensor_address(name, buf.ptr)
        buffers[name] = (buf, shape, dtype)
    stream = cuda.Stream()
    ms = time_it(lambda: ctx.execute_async_v3(stream.handle), repeats, stream.synchronize,
                 warmup=2)
    buf, shape, dtype = buffers[engine.output_names[0]]
    out = np.empty(shape, dtype)
    cuda.copy_dtoh(out, buf.ptr, stream)
    stream.synchronize()
    return ms, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,bert,bert_seq")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'model':10} {'batch':>6} {'static ms':>10} {'dynamic ms':>11} {'dyn/static':>10} "
          f"{'max rel diff':>12}", flush=True)
    for name in args.models.split(","):
        seq = name == "bert_seq"
        model, kind = build_torch("bert" if seq else name)
        (lo, opt, hi), batches = SETTINGS[kind]
        if seq:
            (lo, opt, hi), batches = SEQ_RANGE, SEQ_SHAPES
            example = text_inputs(*opt, rng)
            ranges = {n: (lo, opt, hi) for n in example}
        else:
            example = inputs_for(kind, opt, rng)
            ranges = {n: ((lo, *v.shape[1:]), (opt, *v.shape[1:]), (hi, *v.shape[1:]))
                      for n, v in example.items()}
        onnx_bytes = export_dynamic(model, kind, example, seq)
        try:
            dynamic, steps, host = build(onnx_bytes, ranges)
        except Exception as e:  # noqa: BLE001 - report and go on with the next model
            print(f"# {name}: the dynamic build failed: {type(e).__name__}: {e}", flush=True)
            continue
        print(f"# {name}: dynamic plan {steps}, {len(host)} on the host {host[:5]}, "
              f"range {lo}..{hi}, tuned for {opt}", flush=True)
        for batch in batches:
            feed = text_inputs(*batch, rng) if seq else inputs_for(kind, batch, rng)
            static, ssteps, _ = build(onnx_bytes, {n: (v.shape,) * 3 for n, v in feed.items()})
            t_static, y_static = time_bound(static, feed, args.repeats)
            t_dynamic, y_dynamic = time_bound(dynamic, feed, args.repeats)
            shape = "x".join(map(str, batch)) if seq else str(batch)
            print(f"{name:10} {shape:>6} {t_static:10.2f} {t_dynamic:11.2f} "
                  f"{t_dynamic / t_static:9.2f}x {relative_error(y_dynamic, y_static):12.1e}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
