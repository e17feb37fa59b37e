"""ember against the engines its users would pick instead, same model, inputs and GPU, one process.

Models are built in PyTorch with seeded random weights and exported to ONNX (FP32 inputs and
outputs in every precision: ember casts at the edges): ResNet-50, MobileNetV2 (batch 1 and 32)
and a BERT-base encoder (seq 128, batch 1 and 8); `tiny` (a small CNN and a 2-layer BERT) is a
smoke test for the CPU. Each model runs in each `--precision` (precisions.py says what each
means to ember's builder and to PyTorch):

- fp32: ember strict (TF32 cleared); peers in float32 with TF32 off.
- tf32: ember with BuilderFlag.TF32; peers in float32 with TF32 on.
- fp16 / bf16: ember with BuilderFlag.FP16 / BF16; peers run the model in that dtype
  (channels-last for the CNNs).
- int8: the model quantized by onnxruntime's `quantize_static` (QDQ, symmetric int8, weights
  per channel, MinMax over 64 seeded random samples), built by ember with BuilderFlag.INT8 and
  FP16. PyTorch has no peer for it: the cell is ember alone, closed by ember's speed-up over
  its own fp16 cell of the run (issue 11's figure) and by ember's rel-L2 against onnxruntime
  (CPU) on the same QDQ model.

Peers: `eager` (PyTorch), `compile` (torch.compile in each of --compile-modes, made afresh per
model, batch and precision; its compilation and warm-up calls are not timed), `ort`
(onnxruntime, CPU provider, the FP32 model, timed once per model and batch). The figure to
beat is the best torch.compile mode; each model, batch and precision ends with a line giving
it and ember's time over it (ember with device I/O and a CUDA graph on the GPU). Every engine
also gets its TFLOP/s — the model's FLOPs (2 x the multiply-adds of its Conv/MatMul/Gemm nodes,
counted once from the ONNX graph) over its time — and their % of the matmul ceiling of that
precision measured at the start of the same run (ceilings.py). Accuracy: rel-L2 of every
engine's first output against PyTorch eager in FP32 (TF32 off). A table of the run closes it.

A failure (an engine that does not build or run) is printed where it happens, the run goes on
with the other engines and ends with the list of failures and exit status 1 (--fail-fast: stop
at the first). A precision whose ember builder flag is missing stops the run before it starts.

    python benchmarks/bench_models.py [--models resnet50,mobilenet_v2,bert] [--precision fp32,fp16]
        [--batches small,large] [--peers eager,compile,ort]
        [--compile-modes default,reduce-overhead] [--repeats 30] [--layers 10] [--device cuda]
    python benchmarks/bench_models.py --device cpu --models tiny --peers eager,ort --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import io
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from precisions import (
    build_engine,
    check_precisions,
    is_half,
    parse_precisions,
    set_torch_precision,
)

PEERS = ("eager", "compile", "ort")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# name -> (input kind, (small batch, large batch))
MODELS = {"resnet50": ("image", (1, 32)), "mobilenet_v2": ("image", (1, 32)),
          "bert": ("text", (1, 8)), "tiny_cnn": ("image", (1, 4)), "tiny_bert": ("text", (1, 2))}
ALIASES = {"tiny": ("tiny_cnn", "tiny_bert")}
BATCHES = ("small", "large")
# ONNX ops that multiply-add but are not counted: a model holding one is refused by model_flops
UNCOUNTED = ("ConvTranspose", "Einsum", "MatMulInteger", "ConvInteger", "QLinearConv",
             "QLinearMatMul", "If", "Loop", "Scan")


def parse_list(spec: str, choices: tuple[str, ...], option: str,
               aliases: Mapping[str, tuple[str, ...]] | None = None) -> tuple[str, ...]:
    """`a,b` -> ("a", "b") in order, without repeats, aliases expanded; an unknown name (or an
    empty list) is an error naming the option."""
    names: list[str] = []
    for item in (p.strip() for p in spec.split(",")):
        if item:
            names += (aliases or {}).get(item, (item,))
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        raise SystemExit(f"{option}: {'unknown ' + ', '.join(unknown) if unknown else 'empty'}; "
                         f"choose from {', '.join([*choices, *(aliases or {})])}")
    return tuple(names)


def parse_peers(spec: str) -> tuple[str, ...]:
    """`eager,compile,ort` -> the peers in that order; an unknown name is an error."""
    return parse_list(spec, PEERS, "--peers")


CALIBRATION_SAMPLES = 64


def quantized(onnx_bytes: bytes, kind: str, batch: int,
              samples: int = CALIBRATION_SAMPLES) -> bytes:
    """`onnx_bytes` quantized by onnxruntime's quantize_static as TensorRT wants it: QDQ format,
    symmetric int8 activations and weights (per output channel), MinMax ranges over `samples`
    seeded random inputs (whole batches of `batch`)."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    rng = np.random.default_rng(1)
    feeds = [inputs_for(kind, batch, rng) for _ in range(math.ceil(samples / batch))]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(feeds)

        def get_next(self):
            return next(self.batches, None)

    import logging

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice goes to the root logger
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fp32, qdq = Path(tmp) / "fp32.onnx", Path(tmp) / "qdq.onnx"
        fp32.write_bytes(onnx_bytes)
        quantize_static(fp32, qdq, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        out = qdq.read_bytes()
    print(f"# quantize_static (QDQ, {len(feeds) * batch} samples): "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    return out


def calibrated(model, batches: int = 4, batch: int = 8):
    """`model` with BatchNorm running statistics measured on a few seeded random batches, as
    after training. With seeded random weights and the default statistics (mean 0, var 1) the
    activations grow block after block, past FP16's range in MobileNetV2: every engine, torch
    in FP16 included, came out 1.0 rel-L2 from FP32 (session 5)."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches
    generator = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch, 3, 224, 224, generator=generator))
    return model.eval()


def build_torch(name: str):
    import torch

    torch.manual_seed(0)
    if name in ("resnet50", "mobilenet_v2"):
        import torchvision

        return calibrated(getattr(torchvision.models, name)(weights=None)), "image"
    if name == "tiny_cnn":
        nn = torch.nn
        return calibrated(nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))), "image"
    if name in ("bert", "tiny_bert"):
        from transformers import BertConfig, BertModel

        config = BertConfig() if name == "bert" else BertConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)

        class Encoder(torch.nn.Module):
            """BERT's encoder output from (input_ids, attention_mask), positionally."""

            def __init__(self) -> None:
                super().__init__()
                self.bert = BertModel(config)

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


def fold_small_constants(model):
    """`model` with every node whose outputs are all small constants (ember's
    `constant_values`: at most 65536 elements, inputs all constants, evaluated with
    onnx.reference) replaced by initializers: the exporter's shape arithmetic (ConstantOfShape,
    Equal, Where feeding an Expand), which ONNX shape inference does not propagate. The nodes
    of UNCOUNTED stay."""
    import onnx
    from onnx import numpy_helper

    from ember.compiler.onnx_control import constant_values

    graph = model.graph
    values = constant_values(graph)
    kept, folded = [], []
    for node in graph.node:
        outputs = [name for name in node.output if name]
        if node.op_type in UNCOUNTED or not all(name in values for name in outputs):
            kept.append(node)
            continue
        folded += [numpy_helper.from_array(values[name], name) for name in outputs]
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(kept)
    result.graph.initializer.extend(folded)
    return result


def model_flops(model: bytes) -> float:
    """2 x the multiply-adds of the model's Conv, MatMul and Gemm nodes, with shapes from ONNX
    shape inference (after fold_small_constants). A node of those whose shapes are unknown, or
    a node of UNCOUNTED, is an error (never a silent undercount)."""
    import onnx

    proto = fold_small_constants(onnx.load_from_string(model))
    proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    graph = proto.graph
    shapes: dict[str, list[int]] = {t.name: list(t.dims) for t in graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]

    def shape(node, name: str) -> list[int]:
        if name not in shapes:
            raise ValueError(f"model_flops: {node.op_type} node '{node.name}': the shape of "
                             f"'{name}' is unknown after ONNX shape inference")
        return shapes[name]

    total = 0
    for node in graph.node:
        if node.op_type in UNCOUNTED:
            raise ValueError(f"model_flops: {node.op_type} node '{node.name}' is not counted")
        if node.op_type == "Conv":  # Y [N, K, *spatial], W [K, C/group, *kernel]
            out, weight = shape(node, node.output[0]), shape(node, node.input[1])
            total += math.prod(out) * math.prod(weight[1:])
        elif node.op_type == "MatMul":  # Y [..., M, N] = A [..., M, K] @ B [..., K, N]
            a, out = shape(node, node.input[0]), shape(node, node.output[0])
            total += math.prod(out) * a[-1]
        elif node.op_type == "Gemm":  # Y [M, N] = op(A) op(B); op(A) [M, K]
            a, out = shape(node, node.input[0]), shape(node, node.output[0])
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            total += math.prod(out) * a[0 if trans_a else 1]
    return 2.0 * total


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


def rel_l2(ours: np.ndarray, reference: np.ndarray) -> float:
    """||ours - reference|| / ||reference|| (issue 10's accuracy measure)."""
    reference = np.asarray(reference, dtype=np.float64)
    return float(np.linalg.norm(np.asarray(ours, np.float64) - reference)
                 / max(float(np.linalg.norm(reference)), 1e-30))


def kernel_summary(engine) -> str:
    """ember's kernel count (and host steps of a GPU plan), as the inspector counts them."""
    layers = engine.create_engine_inspector().layers()
    host = sum(info["device"] == "cpu" for info in layers) if engine.device == "cuda" else 0
    return f"kernels: {len(layers)}" + (f" ({host} on the host)" if host else "")


def precision_counts(engine) -> dict[str, int]:
    """How many of ember's kernels write each precision, most first: {"fp16": 52, "fp32": 4}."""
    counts: dict[str, int] = {}
    for info in engine.create_engine_inspector().layers():
        counts[info["precision"]] = counts.get(info["precision"], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


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


@dataclass
class Cell:
    """One model, batch and precision: each engine's median ms, its rel-L2 against FP32 torch,
    and the engines that failed."""

    model: str
    batch: int
    precision: str
    flops: float
    device: str
    times: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    engine: object = None  # ember's engine, once built

    @property
    def label(self) -> str:
        return f"{self.model} b{self.batch} {self.precision}"


class Failures:
    """Where an engine fails: say so at once, remember it for the closing list (or, fail-fast,
    stop the run)."""

    def __init__(self, fail_fast: bool) -> None:
        self.fail_fast = fail_fast
        self.items: list[str] = []

    def attempt(self, cell: Cell, engine: str, fn: Callable[..., object],
                *args: object) -> object | None:
        try:
            return fn(*args)
        except Exception as error:
            if self.fail_fast:
                raise
            traceback.print_exc()
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            print(f"# FAILED {cell.label} {engine}: {reason}", flush=True)
            cell.failed[engine] = reason
            self.items.append(f"{cell.label} {engine}: {reason}")
            return None


def ember_ms(cell: Cell) -> tuple[str, float] | None:
    """ember's figure: device I/O with a CUDA graph on the GPU, host-to-host on the CPU (None
    where that one failed)."""
    name = "ember (device I/O, graph)" if cell.device == "cuda" else "ember"
    return (name, cell.times[name]) if name in cell.times else None


def bench_ember(cell: Cell, onnx_bytes: bytes, feed: dict[str, np.ndarray], repeats: int,
                layers: int, reference: np.ndarray, failures: Failures,
                format_choice: str | None = None) -> None:
    """ember's median ms into `cell`: host-to-host and, on the GPU, device I/O without and with a
    CUDA graph (each its own engine in the failure list), after a build through the builder API
    in the cell's precision."""
    engine = failures.attempt(cell, "ember", _ember_host, cell, onnx_bytes, feed, repeats,
                              reference, format_choice)
    if engine is None:
        return
    cell.engine = engine
    if cell.device == "cuda":
        for name, graph in (("ember (device I/O)", False), ("ember (device I/O, graph)", True)):
            ms = failures.attempt(cell, name, time_device_io, engine, feed, repeats, graph)
            if ms is not None:
                cell.times[name] = ms
        with_pdl = cell.times.get("ember (device I/O, graph)")
        if with_pdl is not None and engine.pdl_launches:  # what programmatic launch buys
            ms = failures.attempt(cell, "ember (device I/O, graph, no PDL)", time_device_io,
                                  engine, feed, repeats, True, False)
            if ms is not None:
                print(f"# {cell.label} ember device I/O + graph: {with_pdl:.3f} ms with "
                      f"programmatic dependent launch ({engine.pdl_launches} launches), "
                      f"{ms:.3f} ms without", flush=True)
    if layers:
        report = failures.attempt(cell, "ember --layers", slowest_layers, engine, feed, layers,
                                  min(repeats, 10))
        if report is not None:
            print("".join(f"# {line}\n" for line in str(report).splitlines()), end="",
                  flush=True)


def _ember_host(cell: Cell, onnx_bytes: bytes, feed: dict[str, np.ndarray], repeats: int,
                reference: np.ndarray, format_choice: str | None = None):
    """Build ember's engine, check its output and time it host-to-host; the engine."""
    from ember.compiler.progress import PhaseTimes

    start, phases = time.perf_counter(), PhaseTimes()
    engine, flags = build_engine(onnx_bytes, cell.precision, cell.device,
                                 format_choice=format_choice, monitor=phases)
    counts = precision_counts(engine)
    print(f"# {cell.label} ember: build {time.perf_counter() - start:.1f} s (flags {flags}), "
          f"{kernel_summary(engine)}; precisions written: "
          f"{', '.join(f'{p} {n}' for p, n in counts.items())}", flush=True)
    print(f"# {cell.label} ember build {phases.report()}", flush=True)
    if cell.precision != "fp32" and cell.precision not in counts:
        print(f"# WARNING {cell.label}: ember's plan has no {cell.precision} kernel (flags "
              f"{flags}): its times are those of another precision", flush=True)
    ctx = engine.create_execution_context()
    cell.errors["ember"] = rel_l2(next(iter(ctx.execute(feed).values())), reference)
    cell.times["ember"] = time_it(lambda: ctx.execute(feed), repeats)
    return engine


def time_device_io(engine, feed: dict[str, np.ndarray], repeats: int,
                   cuda_graph: bool = False, pdl: bool | None = None) -> float:
    """ember with inputs and outputs already on the GPU (TensorRT's execute_async_v3 path),
    optionally replaying its kernels as one CUDA graph; programmatic dependent launch where the
    plan allows unless `pdl` is False."""
    from ember.runtime import cuda

    ctx = engine.create_execution_context(cuda_graph=cuda_graph, pdl=pdl)
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


def bench_ort(onnx_bytes: bytes, feed: dict[str, np.ndarray], repeats: int,
              reference: np.ndarray) -> tuple[float, float]:
    """onnxruntime (CPU provider) on the FP32 model: median ms and rel-L2 against `reference`."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    error = rel_l2(sess.run(None, feed)[0], reference)
    return time_it(lambda: sess.run(None, feed), repeats), error


def _first(out) -> np.ndarray:
    return (out[0] if isinstance(out, tuple) else out).float().cpu().numpy()


def torch_inputs(feed: dict[str, np.ndarray], device: str, dtype, channels_last: bool) -> list:
    """The feed as torch tensors on `device`: floating ones in `dtype` (4-D ones channels-last
    where asked), integer ones as they are."""
    import torch

    targs = []
    for value in feed.values():
        tensor = torch.from_numpy(value).to(device)
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
            if channels_last and tensor.dim() == 4:
                tensor = tensor.contiguous(memory_format=torch.channels_last)
        targs.append(tensor)
    return targs


def torch_reference(model, feed: dict[str, np.ndarray], device: str) -> np.ndarray:
    """PyTorch eager in FP32 with TF32 off: the output every engine's rel-L2 is measured
    against."""
    import torch

    set_torch_precision("fp32")
    tm = copy.deepcopy(model).to(device)
    with torch.inference_mode():
        out = _first(tm(*torch_inputs(feed, device, torch.float32, False)))
    del tm
    return out


def bench_torch(cell: Cell, model, kind: str, feed: dict[str, np.ndarray], device: str,
                peers: tuple[str, ...], modes: tuple[str, ...], repeats: int,
                reference: np.ndarray, failures: Failures) -> None:
    """PyTorch eager and torch.compile (each of `modes`) in the cell's precision: a copy of the
    model in its dtype (channels-last for CNNs in fp16/bf16), TF32 as the precision says. Each
    torch.compile is made afresh (after `torch.compiler.reset()`, so no recompile from the
    previous batch or mode); its first call compiles, and that and three more warm-up calls are
    not timed. A mode that should replay CUDA graphs but skipped them is reported."""
    import torch

    dtype = set_torch_precision(cell.precision)
    channels_last = kind == "image" and is_half(cell.precision)
    tm = copy.deepcopy(model).to(device=device, dtype=dtype)
    if channels_last:
        tm = tm.to(memory_format=torch.channels_last)
    targs = torch_inputs(feed, device, dtype, channels_last)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def eager() -> None:
        cell.errors["torch eager"] = rel_l2(_first(tm(*targs)), reference)
        cell.times["torch eager"] = time_it(lambda: tm(*targs), repeats, sync)

    def compiled(mode: str) -> None:
        from torch._dynamo.utils import counters

        name = f"torch.compile {mode}"
        torch.compiler.reset()
        skips = counters["inductor"]["cudagraph_skips"]
        fn = torch.compile(tm, mode=mode)
        start = time.perf_counter()
        out = _first(fn(*targs))
        sync()
        print(f"# {cell.label} {name}: first call (compilation) "
              f"{time.perf_counter() - start:.1f} s", flush=True)
        cell.errors[name] = rel_l2(out, reference)
        cell.times[name] = time_it(lambda: fn(*targs), repeats, sync, warmup=3)
        skipped = counters["inductor"]["cudagraph_skips"] - skips
        if skipped and "no-cudagraphs" not in mode and mode != "default":
            print(f"# WARNING {cell.label} {name}: inductor skipped CUDA graphs {skipped}x "
                  "(its log says why); timed as it ran", flush=True)

    with torch.inference_mode():
        if "eager" in peers:
            failures.attempt(cell, "torch eager", eager)
        if "compile" in peers:
            for mode in modes:
                failures.attempt(cell, f"torch.compile {mode}", compiled, mode)
    torch.compiler.reset()


def best_compile(times: Mapping[str, float]) -> tuple[str, float] | None:
    """The fastest torch.compile mode of a cell: the figure to beat."""
    modes = [(name, ms) for name, ms in times.items() if name.startswith("torch.compile")]
    return min(modes, key=lambda item: item[1]) if modes else None


HEADER = (f"{'model':24} {'engine':30} {'median ms':>10} {'items/s':>10} {'TFLOP/s':>8} "
          f"{'% ceil':>7} {'vs ember':>9}")


def format_rows(cell: Cell, ceiling: float) -> list[str]:
    """One line per engine: median ms, items/s, TFLOP/s, % of the precision's matmul ceiling and
    `vs ember`, the engine's time over ember's (>1: ember is faster); a failed engine's line
    says FAILED."""
    ours = ember_ms(cell)
    rows = []
    for name, ms in cell.times.items():
        tflops = cell.flops / ms / 1e9
        ratio = f"{ms / ours[1]:8.2f}x" if ours else f"{'-':>9}"
        rows.append(f"{cell.label:24} {name:30} {ms:10.3f} {cell.batch / ms * 1e3:10.1f} "
                    f"{tflops:8.3g} {100 * tflops / ceiling:6.1f}% {ratio}")
    rows += [f"{cell.label:24} {name:30} FAILED" for name in cell.failed]
    return rows


def verdict(cell: Cell, ceiling: float, cells: list[Cell] = ()) -> str:
    """The cell's closing line: the figure to beat (the best torch.compile mode) and ember's time
    over it, with ember's TFLOP/s and % of the ceiling; an int8 cell's figure is ember's own fp16
    cell of the same model and batch in `cells` (its time over ember int8's: the speed-up)."""
    ours, best = ember_ms(cell), best_compile(cell.times)
    if ours is None:
        return f"# {cell.label}: ember FAILED"
    tflops = cell.flops / ours[1] / 1e9
    text = (f"# {cell.label}: {ours[0]} {ours[1]:.3f} ms, {tflops:.3g} TFLOP/s = "
            f"{100 * tflops / ceiling:.1f}% of the {cell.precision} matmul ceiling")
    if cell.precision == "int8":
        half = next((c for c in cells if (c.model, c.batch, c.precision)
                     == (cell.model, cell.batch, "fp16")), None)
        theirs = ember_ms(half) if half is not None else None
        if theirs is None:
            return text + "; no ember fp16 figure in this run to compare with (--precision " \
                          "fp16,int8 gives it)"
        return (text + f"; ember fp16 {theirs[1]:.3f} ms; speed-up of int8 over fp16 = "
                f"{theirs[1] / ours[1]:.2f}x")
    if best is None:
        return text + "; no torch.compile figure to beat (not asked for, or every mode FAILED)"
    return (text + f"; figure to beat: {best[0]} {best[1]:.3f} ms; ember / best torch.compile "
            f"= {ours[1] / best[1]:.2f}x")


def markdown_table(cells: list[Cell], ceilings: Mapping[str, float]) -> list[str]:
    """The run as one markdown table (RESULTS.md's): ember's figure, its TFLOP/s and % of the
    ceiling, each peer's ms, the best torch.compile mode and ember's time over it."""
    peers: list[str] = []
    for cell in cells:
        peers += [n for n in [*cell.times, *cell.failed]
                  if not n.startswith("ember") and n not in peers]
    head = ["model", "batch", "precision", "ember ms", "TFLOP/s", "% ceiling", *peers,
            "best torch.compile", "ember / best compile", "ember rel-L2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in cells:
        ours, best = ember_ms(cell), best_compile(cell.times)
        row = [cell.model, str(cell.batch), cell.precision]
        if ours:
            tflops = cell.flops / ours[1] / 1e9
            row += [f"{ours[1]:.3f}", f"{tflops:.3g}",
                    f"{100 * tflops / ceilings[cell.precision]:.1f}%"]
        else:
            row += ["FAILED", "-", "-"]
        row += [f"{cell.times[p]:.3f}" if p in cell.times
                else "FAILED" if p in cell.failed else "-" for p in peers]
        row += [f"{best[0].removeprefix('torch.compile ')} {best[1]:.3f}" if best else "-",
                f"{ours[1] / best[1]:.2f}x" if ours and best else "-",
                f"{cell.errors['ember']:.1e}" if "ember" in cell.errors else "-"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def print_cell(cell: Cell, ceiling: float, cells: list[Cell]) -> None:
    print("# " + cell.label + " accuracy, rel-L2 vs torch eager fp32: " + ", ".join(
        f"{engine} {error:.1e}" for engine, error in cell.errors.items()), flush=True)
    for line in format_rows(cell, ceiling):
        print(line, flush=True)
    print(verdict(cell, ceiling, cells), flush=True)
    cell.engine = None  # its GPU memory goes before the next build


def bench_int8(cell: Cell, onnx_bytes: bytes, kind: str, feed: dict[str, np.ndarray],
               repeats: int, layers: int, reference: np.ndarray, failures: Failures,
               format_choice: str | None = None) -> None:
    """An int8 cell: the model through quantize_static, ember on that QDQ model (INT8|FP16), and
    ember's output against onnxruntime's (CPU) on the same QDQ model."""
    qdq = failures.attempt(cell, "quantize_static", quantized, onnx_bytes, kind, cell.batch)
    if qdq is None:
        return
    bench_ember(cell, qdq, feed, repeats, layers, reference, failures, format_choice)
    ort = failures.attempt(cell, "onnxruntime (cpu, qdq)", bench_ort, qdq, feed,
                           max(1, min(repeats, 3)), reference)
    if ort is None:
        return
    cell.times["onnxruntime (cpu, qdq)"], cell.errors["onnxruntime (cpu, qdq)"] = ort
    engine = cell.engine
    if engine is not None:
        import onnxruntime

        ours = next(iter(engine.create_execution_context().execute(feed).values()))
        theirs = onnxruntime.InferenceSession(
            qdq, providers=["CPUExecutionProvider"]).run(None, feed)[0]
        print(f"# {cell.label} ember vs onnxruntime (cpu) on the same QDQ model: rel-L2 "
              f"{rel_l2(ours, theirs):.1e} (issue 11 asks <= 2e-2)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v2,bert",
                        help=f"any of {', '.join([*MODELS, *ALIASES])}")
    parser.add_argument("--precision", default="fp32",
                        help="a comma list of fp32, tf32, fp16, bf16, int8 (int8: say fp16 "
                             "too, for the speed-up over it)")
    parser.add_argument("--batches", default="small,large",
                        help="small (1) and/or large (32 for CNNs, 8 for BERT)")
    parser.add_argument("--peers", default="eager,compile,ort",
                        help="any of eager,compile,ort (compile: tens of seconds of build per "
                             "model, batch, precision and mode)")
    parser.add_argument("--compile-modes", default="default,reduce-overhead",
                        help=f"torch.compile modes, any of {', '.join(COMPILE_MODES)}")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--layers", type=int, default=0, metavar="N",
                        help="print ember's N slowest kernels per model, batch and precision")
    parser.add_argument("--format-choice", choices=("measured", "model", "preferred"),
                        help="how ember's GPU build picks each kernel's format "
                             "(BuilderConfig.format_choice; default: measured, as it autotunes)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cuda (default; an error where there is no GPU) or cpu (smoke test)")
    parser.add_argument("--cpu", action="store_true", help="the same as --device cpu")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at the first engine that fails")
    args = parser.parse_args(argv)
    models = parse_list(args.models, tuple(MODELS), "--models", ALIASES)
    precisions = parse_precisions(args.precision)
    batches = parse_list(args.batches, BATCHES, "--batches")
    peers = parse_peers(args.peers)
    modes = parse_list(args.compile_modes, COMPILE_MODES, "--compile-modes")
    check_precisions(precisions)
    device = "cpu" if args.cpu else args.device

    import torch
    from ceilings import copy_bandwidth, matmul_ceiling

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: PyTorch sees no GPU (--device cpu is the smoke test)")
    if device == "cuda":
        print(f"# GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}", flush=True)
    print(f"# copy bandwidth: {copy_bandwidth(device):.0f} GB/s", flush=True)
    ceilings: dict[str, float] = {}
    for precision in precisions:
        ceilings[precision], where = matmul_ceiling(precision, device)
        op = "torch._int_mm" if precision == "int8" else "torch.matmul"
        print(f"# {precision} matmul ceiling: {ceilings[precision]:.4g} TFLOP/s ({op} {where})",
              flush=True)
    failures = Failures(args.fail_fast)
    cells: list[Cell] = []
    rng = np.random.default_rng(0)
    print(HEADER, flush=True)
    for name in models:
        model, kind = build_torch(name)
        small, large = MODELS[name][1]
        for batch in [small] * ("small" in batches) + [large] * ("large" in batches):
            feed = inputs_for(kind, batch, rng)
            onnx_bytes = export(model, kind, feed)
            flops = model_flops(onnx_bytes)
            reference = torch_reference(model, feed, device)
            print(f"# {name} b{batch}: {flops / 1e9:.2f} GFLOP (2 x multiply-adds of its "
                  "Conv/MatMul/Gemm nodes)", flush=True)
            ort_cell, ort = Cell(name, batch, "fp32", flops, device), None
            if "ort" in peers:
                ort = failures.attempt(ort_cell, "onnxruntime (cpu)", bench_ort, onnx_bytes,
                                       feed, args.repeats, reference)
                if ort is not None:
                    ms, error = ort
                    print(f"# {name} b{batch} onnxruntime (cpu, fp32 model): {ms:.3f} ms, "
                          f"rel-L2 {error:.1e}", flush=True)
            for precision in precisions:
                cell = Cell(name, batch, precision, flops, device)
                cells.append(cell)
                if precision == "int8":
                    bench_int8(cell, onnx_bytes, kind, feed, args.repeats, args.layers,
                               reference, failures, args.format_choice)
                    print_cell(cell, ceilings[precision], cells)
                    continue
                bench_ember(cell, onnx_bytes, feed, args.repeats, args.layers, reference,
                            failures, args.format_choice)
                if "eager" in peers or "compile" in peers:
                    bench_torch(cell, model, kind, feed, device, peers, modes, args.repeats,
                                reference, failures)
                if ort is not None:
                    cell.times["onnxruntime (cpu)"], cell.errors["onnxruntime (cpu)"] = ort
                cell.failed.update(ort_cell.failed)
                print_cell(cell, ceilings[precision], cells)
    print(f"\n# the run: device {device}; " + ", ".join(
        f"{p} matmul ceiling {c:.4g} TFLOP/s" for p, c in ceilings.items()))
    print("\n".join(markdown_table(cells, ceilings)))
    if failures.items:
        print(f"\n# {len(failures.items)} FAILED:", *(f"FAILED {item}" for item in failures.items),
              sep="\n#   ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
