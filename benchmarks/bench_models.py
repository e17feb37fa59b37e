"""ember against the engines its users would pick instead, same model, inputs and GPU, one process.

Models are built in PyTorch with seeded random weights and exported to ONNX: ResNet-50,
MobileNetV2 (batch 1 and 32) and a BERT-base encoder (seq 128, batch 1 and 8). FP32, TF32 off
everywhere. Prints median latency and throughput per engine, and ember's ratio to each peer.

    python benchmarks/bench_models.py [--models resnet50,mobilenet_v2,bert]
        [--peers eager,compile,ort] [--repeats 50] [--cpu]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time

import numpy as np


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


def time_it(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def bench_one(model, onnx_bytes: bytes, feed: dict[str, np.ndarray], device: str, peers: str,
              repeats: int) -> dict[str, float]:
    """Median ms per engine for one model and batch."""
    import onnxruntime as ort
    import torch

    import ember

    times: dict[str, float] = {}
    engine = ember.compile(onnx_bytes, device=device)
    ctx = engine.create_execution_context()
    times["ember"] = time_it(lambda: ctx.execute(feed), repeats)
    ours = next(iter(ctx.execute(feed).values()))
    if engine.device == "cuda":
        times["ember (device I/O)"] = _time_bound(engine, feed, repeats)
        times["ember (device I/O, graph)"] = _time_bound(engine, feed, repeats, cuda_graph=True)
    tm = model.to(device)
    targs = [torch.from_numpy(v).to(device) for v in feed.values()]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        theirs = tm(*targs)
        theirs = (theirs[0] if isinstance(theirs, tuple) else theirs).float().cpu().numpy()
        error = float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-30))
        print(f"# ember vs torch: max |diff| / max |torch| = {error:.2e}", flush=True)
        if "eager" in peers:
            times["torch eager"] = time_it(lambda: tm(*targs), repeats, sync)
        if "compile" in peers:
            compiled = torch.compile(tm)
            times["torch.compile"] = time_it(lambda: compiled(*targs), repeats, sync)
    model.to("cpu")  # the next batch exports from the CPU again
    if "ort" in peers:
        sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        times["onnxruntime (cpu)"] = time_it(lambda: sess.run(None, feed), repeats)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v2,bert")
    parser.add_argument("--peers", default="eager,ort")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cpu", action="store_true", help="compare with onnxruntime on the CPU")
    args = parser.parse_args()

    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    rng = np.random.default_rng(0)
    print(f"{'model':18} {'engine':26} {'median ms':>10} {'items/s':>10} {'ember speedup':>14}",
          flush=True)
    for name in args.models.split(","):
        model, kind = build_torch(name)
        for batch in ((1, 8) if kind == "text" else (1, 32)):
            feed = inputs_for(kind, batch, rng)
            onnx_bytes = export(model, kind, feed)
            times = bench_one(model, onnx_bytes, feed, device, args.peers, args.repeats)
            for engine_name, ms in times.items():
                print(f"{name + ' b' + str(batch):18} {engine_name:26} {ms:10.2f} "
                      f"{batch / ms * 1e3:10.1f} {ms / times['ember']:13.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
