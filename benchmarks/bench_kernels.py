"""ember's conv and matmul kernels alone, against PyTorch (cuBLAS / cuDNN) on the same GPU, in each
--precision (precisions.py says what each means to ember's builder and to PyTorch):

- fp32 (strict, TF32 off on both sides): the GEMM shapes of BERT-base (batch 8, seq 128) and
  ResNet-50's and MobileNetV2's convs at batch 32.
- tf32, fp16, bf16 (the tensor-core cases, issue 10's targets): a single GEMM 4096³ and
  ResNet-50's 3×3 conv at batch 32 (56×56, 64→64, pad 1) with NHWC allowed at the plan's I/O,
  against torch.matmul and F.conv2d (channels-last, cuDNN) in the same dtype. With `--io model`
  (the default) the one-node ONNX model's input, weight and output are in the precision's dtype,
  so the plan should be the kernel alone; `--io fp32` keeps them FP32 and lets ember cast at the
  edges (the casts are then in the timing). ember's layer table is printed for each, so a
  reformat or cast in the plan is seen.

Each case: ember's median time with device I/O (execute_async_v3, 10 launches per sample),
torch's median time, the TFLOP/s of each, `ratio` = torch ms / ember ms (ember's share of
torch's TFLOP/s; issue 10's target for the fp16 GEMM and conv: >= 0.80), and the rel-L2 of each
output against an FP32 product (TF32 off) of the same rounded inputs. A case that fails is
printed as FAILED; the run goes on and exits 1.

    python benchmarks/bench_kernels.py [--precision fp32,fp16,bf16] [--io model|fp32]
        [--repeats 20] [--sweep]

`--sweep` also times every GEMM tile of `gemm_tiles` (TILES and SWEEP_TILES) on each fp32 case,
the data behind `choose_tile`'s efficiencies.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from precisions import (
    ONNX_TYPE,
    build_engine,
    check_precisions,
    numpy_dtype,
    parse_precisions,
    set_torch_precision,
)

# (M tokens, N, K): x [M, K] @ w [K, N]
MATMULS = [(1024, 768, 768), (1024, 2304, 768), (1024, 3072, 768), (1024, 768, 3072),
           (128, 768, 768), (4096, 4096, 4096)]
# (batch, in channels, size, out channels, kernel, stride, groups)
CONVS = [(32, 64, 56, 64, 3, 1, 1), (32, 128, 28, 128, 3, 1, 1), (32, 256, 14, 256, 3, 1, 1),
         (32, 512, 7, 512, 3, 1, 1), (32, 256, 56, 64, 1, 1, 1), (32, 64, 56, 256, 1, 1, 1),
         (32, 3, 224, 64, 7, 2, 1), (32, 144, 56, 144, 3, 1, 144), (32, 32, 112, 32, 3, 1, 32)]
# the tensor-core cases of tf32/fp16/bf16: issue 10's GEMM and ResNet-50 conv
TC_MATMULS = [(4096, 4096, 4096)]
TC_CONVS = [(32, 64, 56, 64, 3, 1, 1)]


def _model(nodes, inputs, inits, out_shape: list[int], elem_type: int = TensorProto.FLOAT):
    """A one-node model; opset 17 unless its tensors are bfloat16 (opset 22: Conv takes
    bfloat16 from there on)."""
    graph = helper.make_graph(nodes, "k", inputs,
                              [helper.make_tensor_value_info("y", elem_type, out_shape)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    opset = 22 if elem_type == TensorProto.BFLOAT16 else 17
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def matmul_case(m, n, k, rng, precision: str = "fp32", io: str = "model"):
    """A one-MatMul model (x an input, w a weight) in `precision`'s dtype (`io` "model") or in
    FP32; its feed, FLOPs and the FP32 arrays torch starts from."""
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    dtype, elem = _io_types(precision, io)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                   [helper.make_tensor_value_info("x", elem, [m, k])], {"w": w.astype(dtype)},
                   [m, n], elem)
    return model, {"x": x.astype(dtype)}, 2.0 * m * n * k, (x, w)


def conv_case(n, c, h, k, r, s, g, rng, precision: str = "fp32", io: str = "model"):
    """A one-Conv model (NCHW in ONNX, pad r // 2) as matmul_case makes a MatMul."""
    w = (rng.standard_normal((k, c // g, r, r)) / np.sqrt(c // g * r * r)).astype(np.float32)
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    dtype, elem = _io_types(precision, io)
    oh = (h + 2 * (r // 2) - r) // s + 1
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], strides=[s, s], group=g,
                                     pads=[r // 2] * 4)],
                   [helper.make_tensor_value_info("x", elem, [n, c, h, h])],
                   {"w": w.astype(dtype)}, [n, k, oh, oh], elem)
    return (model, {"x": x.astype(dtype)}, 2.0 * n * k * oh * oh * (c // g) * r * r,
            (x, w, s, r // 2, g))


def _io_types(precision: str, io: str) -> tuple[np.dtype, int]:
    """The numpy dtype and ONNX element type of a case's tensors."""
    if io == "fp32":
        return np.dtype(np.float32), TensorProto.FLOAT
    return numpy_dtype(precision), getattr(TensorProto, ONNX_TYPE[precision])


def ember_engine(model, precision: str, io_formats: tuple[str, ...] = ()):
    engine, _ = build_engine(model.SerializeToString(), precision, "cuda", io_formats)
    return engine


def engine_feed(engine, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed in the formats and dtypes the engine's inputs take (NCHW or NHWC); any other
    format, or a dtype other than the model's, is an error."""
    out = {}
    for name, value in feed.items():
        fmt, dtype = engine.tensors[name].format, engine.tensors[name].dtype
        if dtype != value.dtype:
            raise ValueError(f"input '{name}': the plan takes {dtype}, the model declared "
                             f"{value.dtype}")
        if fmt == "NHWC":
            value = np.ascontiguousarray(value.transpose(0, 2, 3, 1))
        elif fmt not in ("NCHW", "", "plain") and value.ndim == 4:
            raise ValueError(f"input '{name}' is {fmt}; this benchmark feeds NCHW or NHWC")
        out[name] = value
    return out


def time_ember(engine, feed, repeats: int) -> tuple[float, np.ndarray]:
    """ember's median ms with device I/O (execute_async_v3) and its output "y" (NCHW)."""
    from ember.runtime import cuda

    ctx = engine.create_execution_context()
    bufs = {}
    for name in engine.input_names + engine.output_names:
        shape, dtype = engine.get_tensor_shape(name), engine.get_tensor_dtype(name)
        bufs[name] = cuda.DeviceBuffer(max(int(np.prod(shape)) * dtype.itemsize, 1))
        if name in feed:
            bufs[name].upload(feed[name])
        ctx.set_tensor_address(name, bufs[name].ptr)
    stream = cuda.Stream()
    out = ctx.execute(feed)["y"]
    if engine.tensors["y"].format == "NHWC":
        out = out.transpose(0, 3, 1, 2)
    return _median(lambda: ctx.execute_async_v3(stream.handle), stream.synchronize,
                   repeats), out


def _median(fn, sync, repeats: int, inner: int = 10) -> float:
    fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples) * 1e3


def sweep_config(arch: str, tile: str):
    """A strict FP32 build for `arch` with one GEMM tile forced on every conv/matmul
    (select-tactics' `tile` option), not autotuned."""
    from ember.compiler.builder import BuilderConfig

    return BuilderConfig(target_arch=arch, autotune=False, forced_tile=tile)


def sweep_tiles() -> list[str]:
    """Every GEMM tile of `gemm_tiles` (TILES, then SWEEP_TILES) as select-tactics spells it."""
    from ember.codegen.templates import gemm_tiles

    tiles = [t for t, _, _ in gemm_tiles.TILES] + list(gemm_tiles.SWEEP_TILES)
    return [",".join(str(v) for v in (t.bm, t.bn, t.bk, t.tm, t.tn)) for t in tiles]


def sweep(model, feed, flops: float, torch_ms: float, repeats: int) -> None:
    """Time the case once per GEMM tile; a case whose kernel has no FP32 GEMM tile (a direct
    conv) prints the build's reason instead."""
    from ember.codegen.templates.gemm_tiles import parse_tile
    from ember.compiler.builder import build_model, detect_arch
    from ember.errors import EmberError
    from ember.runtime.engine import Runtime
    from ember.runtime.plan import plan_bytes

    arch = detect_arch()
    for tile in sweep_tiles():
        try:
            plan = plan_bytes(*build_model(model, sweep_config(arch, tile)))
        except EmberError as e:
            print(f"    no sweep: {e}", flush=True)
            return
        ms, _ = time_ember(Runtime("cuda").deserialize_cuda_engine(plan), feed, repeats)
        print(f"    {str(parse_tile(tile)):34} {ms:9.3f} {flops / ms / 1e9:8.1f} "
              f"{torch_ms / ms:6.2f}", flush=True)


def rel_l2(ours, reference) -> float:
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.linalg.norm(ours - reference) / max(np.linalg.norm(reference), 1e-30))


def run_case(label: str, case, kind: str, precision: str, io_formats: tuple[str, ...],
             repeats: int, sweep_tiles: bool, show_plan: bool) -> None:
    """Time one case on both sides and print its line (and, `show_plan`, ember's layers)."""
    import torch
    import torch.nn.functional as F

    model, feed, flops, targs = case
    engine = ember_engine(model, precision, io_formats)
    if show_plan:
        table = engine.create_engine_inspector().get_engine_information()
        print("".join(f"#   {line}\n" for line in table.splitlines()), end="", flush=True)
    ms, out = time_ember(engine, engine_feed(engine, feed), repeats)
    dtype = set_torch_precision(precision)
    channels_last = precision != "fp32" and kind == "conv"
    tt = []
    for a in targs:
        if isinstance(a, np.ndarray):
            t = torch.from_numpy(a).cuda().to(dtype)
            if channels_last:
                t = t.contiguous(memory_format=torch.channels_last)
            a = t
        tt.append(a)
    if kind == "mm":
        def fn(tt=tt):
            return tt[0] @ tt[1]
    else:
        def fn(tt=tt):
            return F.conv2d(tt[0], tt[1], stride=tt[2], padding=tt[3], groups=tt[4])
    theirs = fn().double().cpu().numpy()
    # the reference: the same rounded inputs multiplied in FP32 with TF32 off
    set_torch_precision("fp32")
    ref = fn([a.float() if isinstance(a, torch.Tensor) else a for a in tt]).double().cpu().numpy()
    set_torch_precision(precision)
    tms = _median(fn, torch.cuda.synchronize, repeats)
    print(f"{label:40} {ms:9.3f} {flops / ms / 1e9:8.1f} {tms:9.3f} {flops / tms / 1e9:8.1f} "
          f"{tms / ms:6.2f} {rel_l2(out, ref):8.1e} {rel_l2(theirs, ref):8.1e}", flush=True)
    if sweep_tiles:
        sweep(model, feed, flops, tms, repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32,fp16,bf16",
                        help="a comma list of fp32, tf32, fp16, bf16")
    parser.add_argument("--io", choices=("model", "fp32"), default="model",
                        help="the tensor-core cases' ONNX I/O dtype: the precision's, or FP32")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sweep", action="store_true", help="time every GEMM tile per fp32 case")
    args = parser.parse_args()
    precisions = parse_precisions(args.precision)
    if "int8" in precisions:
        raise SystemExit("--precision int8: bench_kernels.py has no int8 cases (their Q/DQ "
                         "models are not written yet); bench_models.py benchmarks int8 models")
    check_precisions(precisions)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench_kernels.py needs a GPU (PyTorch sees none)")
    print(f"# GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; tensor-core cases' "
          f"I/O: {args.io}", flush=True)
    print(f"{'case':40} {'ember ms':>9} {'TFLOP/s':>8} {'torch ms':>9} {'TFLOP/s':>8} "
          f"{'ratio':>6} {'ember err':>8} {'torch err':>8}")
    rng = np.random.default_rng(0)
    failed = []
    for precision in precisions:
        tc = precision != "fp32"
        if tc:
            cases = [(f"{precision} matmul {m}x{n}x{k}", matmul_case(m, n, k, rng, precision,
                                                                   args.io), "mm")
                     for m, n, k in TC_MATMULS]
            cases += [(f"{precision} conv n{c[0]} c{c[1]} h{c[2]} k{c[3]} r{c[4]} NHWC",
                       conv_case(*c, rng, precision, args.io), "conv") for c in TC_CONVS]
        else:
            cases = [("fp32 matmul {}x{}x{}".format(*c), matmul_case(*c, rng), "mm")
                     for c in MATMULS]
            cases += [("fp32 conv n{} c{} h{} k{} r{} s{} g{}".format(*c), conv_case(*c, rng),
                       "conv") for c in CONVS]
        for label, case, kind in cases:
            io_formats = ("NHWC",) if tc and kind == "conv" else ()
            try:
                run_case(label, case, kind, precision, io_formats, args.repeats,
                         args.sweep and not tc, show_plan=tc)
            except Exception as error:
                traceback.print_exc()
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                print(f"{label:40} FAILED: {reason}", flush=True)
                failed.append(f"{label}: {reason}")
    print("# ratio = torch ms / ember ms (ember's share of torch's TFLOP/s; issue 10's target for "
          "the fp16 GEMM 4096^3 and the conv: >= 0.80); err = rel-L2 against FP32 (TF32 off) on "
          "the same rounded inputs")
    if failed:
        print(f"# {len(failed)} FAILED:", *(f"FAILED {item}" for item in failed), sep="\n#   ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
