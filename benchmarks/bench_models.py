"""ember against the engines its users would pick instead, same model, inputs and GPU, one process.

Models are built in PyTorch with seeded random weights and exported to ONNX: ResNet-50,
MobileNetV2 (batch 1 and 32) and a BERT-base encoder (seq 128, batch 1 and 8). FP32, TF32 off
everywhere. Prints median latency and throughput per engine, ember's ratio to each peer, ember's
kernel count per model and, with --layers N, ember's N slowest kernels (per-layer profiler).

Peers: `eager` (PyTorch), `compile` (torch.compile, default mode; compiled afresh per model and
batch, the compilation and warm-up calls untimed), `ort` (onnxruntime, CPU provider).

    python benchmarks/bench_models.py [--models resnet50,mobilenet_v2,bert]
        [--peers eager,compile,ort] [--repeats 30] [--layers 10] [--cpu]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable, Mapping

import numpy as np

PEERS = ("eager", "compile", "ort")


def parse_peers(spec: str) -> tuple[str, ...]:
    """`eager,compile,ort` -> the peers in that order; an unknown name is an error."""
    peers = tuple(p.strip() for p in spec.split(",") if p.strip())
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise SystemExit(f"--peers: unknown {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    return peers


def build_torch(name: str):
    import torch

    torch.manual_seed(0)
    if name in ("resnet50", "mobilenet_v2"):
        import torchvision

        return getattr(torchvision.models, name)(weights=None).eval(), "image"
    if name == "bert":
        from transformers import BertConfig, BertModel

        class Encoder(torch.nn.Module):
            """BERT-base's encoder output from (input_ids, attention_mask), positionally."""

            def __init__(self) -> None:
                super().__init__()
                self.bert = BertModel(BertConfig())

            def forward(self, input_ids, attention_mask):
                return self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]

        return Encoder().eval(), "text"
    raise SystemExit(f"unknown model {name}")


def inputs_for(kind: str, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if kind == "image":
        return {"x": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}
    return {"input_ids": rng.integers(0, 30522, (batch, 128)).astype(np.int64),
            "attention_mask": np.ones((batch, 128), np.int64)}


def export(model, kind: str, feed: dict[str, np.ndarray]) -> bytes:
    import torch

    args = tuple(torch.from_numpy(v) for v in feed.values())
    buf = io.BytesIO()
    torch.onnx.export(model, args, buf, input_names=list(feed), output_names=["y"],
                      opset_version=17, dynamo=False)
    return buf.getvalue()


def time_it(fn: Callable[[], object], repeats: int, sync: Callable[[], object] = lambda: None,
            warmup: int = 1) -> float:
    """Median milliseconds of `repeats` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs|."""
    theirs = np.asarray(theirs, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(ours, np.float64) - theirs))
                 / max(float(np.max(np.abs(theirs))), 1e-30))


def kernel_summary(engine) -> str:
    """ember's kernel count (and host steps of a GPU plan), as the inspector counts them."""
    layers = engine.create_engine_inspector().layers()
    host = sum(info["device"] == "cpu" for info in layers) if engine.device == "cuda" else 0
    return f"kernels: {len(layers)}" + (f" ({host} on the host)" if host else "")


def slowest_layers(engine, feed: Mapping[str, np.ndarray], top: int, runs: int = 10) -> str:
    """ember's `top` slowest kernels over `runs` profiled runs (ember.Profiler; on the GPU, CUDA
    events around each launch), after one unprofiled warm-up run."""
    import ember

    ctx = engine.create_execution_context()
    ctx.execute(feed)
    ctx.profiler = profiler = ember.Profiler()
    for _ in range(runs):
        ctx.execute(feed)
    return profiler.report(top=top)


def bench_ember(onnx_bytes: bytes, feed: dict[str, np.ndarray], device: str,
                repeats: int) -> tuple[dict[str, float], np.ndarray, object]:
    """ember's median ms (host-to-host; on the GPU also device I/O, with and without a CUDA
    graph), its first output and the engine."""
    import ember

    times: dict[str, float] = {}
    engine = ember.compile(onnx_bytes, device=device)
    ctx = engine.create_execution_context()
    times["ember"] = time_it(lambda: ctx.execute(feed), repeats)
    ours = next(iter(ctx.execute(feed).values()))
    if engine.device == "cuda":
        times["ember (device I/O)"] = _time_bound(engine, feed, repeats)
        times["ember (device I/O, graph)"] = _time_bound(engine, feed, repeats, cuda_graph=True)
    return times, ours, engine


def bench_ort(onnx_bytes: bytes, feed: dict[str, np.ndarray], repeats: int,
              ours: np.ndarray | None = None) -> dict[str, float]:
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    if ours is not None:
        error = relative_error(ours, sess.run(None, feed)[0])
        print(f"# ember vs onnxruntime: max |diff| / max |ort| = {error:.2e}", flush=True)
    return {"onnxruntime (cpu)": time_it(lambda: sess.run(None, feed), repeats)}


def bench_torch(model, feed: dict[str, np.ndarray], device: str, peers: tuple[str, ...],
                repeats: int, ours: np.ndarray) -> dict[str, float]:
    """PyTorch eager and torch.compile on the same inputs; each checked against ember's output.
    torch.compile is made afresh for this model and batch (after `torch.compiler.reset()`, so no
    dynamic-shape recompile from the previous batch); its first call compiles, and that and two
    more warm-up calls are not timed."""
    import torch

    times: dict[str, float] = {}
    tm = model.to(device)
    targs = [torch.from_numpy(v).to(device) for v in feed.values()]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def first(out):
        return (out[0] if isinstance(out, tuple) else out).float().cpu().numpy()

    with torch.inference_mode():
        error = relative_error(ours, first(tm(*targs)))
        print(f"# ember vs torch: max |diff| / max |torch| = {error:.2e}", flush=True)
        if "eager" in peers:
            times["torch eager"] = time_it(lambda: tm(*targs), repeats, sync)
        if "compile" in peers:
            torch.compiler.reset()
            compiled = torch.compile(tm)
            start = time.perf_counter()
            out = first(compiled(*targs))
            sync()
            seconds = time.perf_counter() - start
            print(f"# torch.compile: first call (compilation) {seconds:.1f} s; ember vs "
                  f"compiled: max |diff| / max |torch| = {relative_error(ours, out):.2e}",
                  flush=True)
            times["torch.compile"] = time_it(lambda: compiled(*targs), repeats, sync, warmup=3)
    model.to("cpu")  # the next batch exports from the CPU again
    return times


def bench_one(model, onnx_bytes: bytes, feed: dict[str, np.ndarray], device: str,
              peers: tuple[str, ...], repeats: int, layers: int = 0,
              label: str = "") -> dict[str, float]:
    """Median ms per engine for one model and batch; prints ember's kernel count (and with
    `layers`, its slowest kernels)."""
    times, ours, engine = bench_ember(onnx_bytes, feed, device, repeats)
    print(f"# {label} ember {kernel_summary(engine)}", flush=True)
    if layers:
        report = slowest_layers(engine, feed, layers, runs=min(repeats, 10))
        print("".join(f"# {line}\n" for line in report.splitlines()), end="", flush=True)
    if model is not None and ("eager" in peers or "compile" in peers):
        times.update(bench_torch(model, feed, device, peers, repeats, ours))
    if "ort" in peers:
        times.update(bench_ort(onnx_bytes, feed, repeats, ours))
    return times


def _time_bound(engine, feed: dict[str, np.ndarray], repeats: int,
                cuda_graph: bool = False) -> float:
    """ember with inputs and outputs already on the GPU (TensorRT's execute_async_v3 path),
    optionally replaying its kernels as one CUDA graph."""
    from ember.runtime import cuda

    ctx = engine.create_execution_context(cuda_graph=cuda_graph)
    buffers = []
    for name in engine.input_names + engine.output_names:
        shape, dtype = engine.get_tensor_shape(name), engine.get_tensor_dtype(name)
        buf = cuda.DeviceBuffer(max(int(np.prod(shape)) * dtype.itemsize, 1))
        if name in feed:
            buf.upload(feed[name])
        ctx.set_tensor_address(name, buf.ptr)
        buffers.append(buf)
    stream = cuda.Stream()
    return time_it(lambda: ctx.execute_async_v3(stream.handle), repeats, stream.synchronize)


HEADER = f"{'model':18} {'engine':26} {'median ms':>10} {'items/s':>10} {'ember speedup':>14}"


def format_rows(label: str, batch: int, times: Mapping[str, float]) -> list[str]:
    """One line per engine; `ember speedup` is the engine's time over ember's (host-to-host)."""
    return [f"{label:18} {name:26} {ms:10.2f} {batch / ms * 1e3:10.1f} "
            f"{ms / times['ember']:13.2f}x" for name, ms in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v2,bert")
    parser.add_argument("--peers", default="eager,ort",
                        help="any of eager,compile,ort (compile: minutes of build per model)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--layers", type=int, default=0, metavar="N",
                        help="print ember's N slowest kernels per model and batch (profiler)")
    parser.add_argument("--cpu", action="store_true", help="compare with onnxruntime on the CPU")
    args = parser.parse_args(argv)
    peers = parse_peers(args.peers)

    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")  # TF32 off for torch.compile's kernels too
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    rng = np.random.default_rng(0)
    print(HEADER, flush=True)
    for name in args.models.split(","):
        model, kind = build_torch(name)
        for batch in ((1, 8) if kind == "text" else (1, 32)):
            feed = inputs_for(kind, batch, rng)
            onnx_bytes = export(model, kind, feed)
            label = f"{name} b{batch}"
            times = bench_one(model, onnx_bytes, feed, device, peers, args.repeats,
                              args.layers, label)
            for line in format_rows(label, batch, times):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
