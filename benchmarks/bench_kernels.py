"""ember's conv and matmul kernels alone, against PyTorch (cuDNN / cuBLAS, TF32 off) on the same
GPU: the GEMM shapes of BERT-base (batch 8, seq 128) and ResNet-50's and MobileNetV2's convs at
batch 32. Prints the median time and TFLOP/s of each and ember's ratio.

    python benchmarks/bench_kernels.py [--repeats 20] [--sweep]

`--sweep` also times every GEMM tile of `gemm_tiles` (TILES and SWEEP_TILES) on each case, the
data behind `choose_tile`'s efficiencies.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from onnx import TensorProto, helper, numpy_helper

# (M tokens, N, K): x [M, K] @ w [K, N]
MATMULS = [(1024, 768, 768), (1024, 2304, 768), (1024, 3072, 768), (1024, 768, 3072),
           (128, 768, 768), (4096, 4096, 4096)]
# (batch, in channels, size, out channels, kernel, stride, groups)
CONVS = [(32, 64, 56, 64, 3, 1, 1), (32, 128, 28, 128, 3, 1, 1), (32, 256, 14, 256, 3, 1, 1),
         (32, 512, 7, 512, 3, 1, 1), (32, 256, 56, 64, 1, 1, 1), (32, 64, 56, 256, 1, 1, 1),
         (32, 3, 224, 64, 7, 2, 1), (32, 144, 56, 144, 3, 1, 144), (32, 32, 112, 32, 3, 1, 32)]


def _model(nodes, inputs, inits):
    graph = helper.make_graph(nodes, "k", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def matmul_case(m, n, k, rng):
    w = rng.standard_normal((k, n)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])], {"w": w})
    return model, {"x": x}, 2.0 * m * n * k, (x, w)


def conv_case(n, c, h, k, r, s, g, rng):
    w = (rng.standard_normal((k, c // g, r, r)) / np.sqrt(c // g * r * r)).astype(np.float32)
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], strides=[s, s], group=g,
                                     pads=[r // 2] * 4)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, h])],
                   {"w": w})
    oh = (h + 2 * (r // 2) - r) // s + 1
    return model, {"x": x}, 2.0 * n * k * oh * oh * (c // g) * r * r, (x, w, s, r // 2, g)


def time_ember(model, feed, repeats: int) -> tuple[float, np.ndarray]:
    import ember
    from ember.runtime import cuda

    engine = ember.compile(model.SerializeToString(), device="cuda")
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


def sweep(model, feed, flops: float, torch_ms: float, repeats: int) -> None:
    """Time the case once per GEMM tile (the direct conv tactic ignores the tile)."""
    from ember.codegen.templates import gemm_tiles

    tiles = [t for t, _, _ in gemm_tiles.TILES] + list(gemm_tiles.SWEEP_TILES)
    try:
        for tile in tiles:
            gemm_tiles.forced_tile = tile
            ms, _ = time_ember(model, feed, repeats)
            print(f"    {str(tile):34} {ms:9.3f} {flops / ms / 1e9:8.1f} "
                  f"{torch_ms / ms:6.2f}", flush=True)
    finally:
        gemm_tiles.forced_tile = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--sweep", action="store_true", help="time every GEMM tile per case")
    args = parser.parse_args()
    import torch
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rng = np.random.default_rng(0)
    print(f"{'case':34} {'ember ms':>9} {'TFLOP/s':>8} {'torch ms':>9} {'TFLOP/s':>8} "
          f"{'ratio':>6} {'rel err':>8}")
    cases = [("matmul {}x{}x{}".format(*c), matmul_case(*c, rng), "mm") for c in MATMULS]
    cases += [("conv n{} c{} h{} k{} r{} s{} g{}".format(*c), conv_case(*c, rng), "conv")
              for c in CONVS]
    for label, (model, feed, flops, targs), kind in cases:
        ms, out = time_ember(model, feed, args.repeats)
        tt = [torch.from_numpy(a).cuda() if isinstance(a, np.ndarray) else a for a in targs]
        if kind == "mm":
            fn = lambda tt=tt: tt[0] @ tt[1]  # noqa: E731
        else:
            fn = lambda tt=tt: F.conv2d(tt[0], tt[1], stride=tt[2], padding=tt[3],  # noqa: E731
                                        groups=tt[4])
        ref = fn().double().cpu().numpy()
        err = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
        tms = _median(fn, torch.cuda.synchronize, args.repeats)
        print(f"{label:34} {ms:9.3f} {flops / ms / 1e9:8.1f} {tms:9.3f} "
              f"{flops / tms / 1e9:8.1f} {tms / ms:6.2f} {err:8.1e}", flush=True)
        if args.sweep:
            sweep(model, feed, flops, tms, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
