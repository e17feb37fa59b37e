"""Every Hopper GEMM tactic on its own, on the GPU host: for each shape and operand type, the
matmul kernel of each cp.async wgmma tile named in TACTICS and of every TMA-fed tile
(`gemm_tma.TMA_TILES`) is compiled (all at once, NVRTC threads), launched alone on random
operands, checked against numpy (float64 for FP16, exact int64 for INT8 with int32 results) and
timed with CUDA events; then torch.matmul (FP16) and torch._int_mm (INT8) on the same shapes.

    python tools/tactic_probe.py [--shapes 1024x3072x768,4096x4096x4096] [--dtypes float16,int8]
        [--repeats 50]

Times exclude launch overhead (back-to-back launches on one stream). Needs a GPU; torch only
for its own rows.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

# cp.async wgmma tiles compared against the TMA-fed ones (the best of gemm_wgmma.WGMMA_TILES at
# BERT's shapes and 4096^3)
TACTICS = [{"wgmma": t} for t in ([128, 256, 4], [128, 192, 4], [128, 128, 3], [128, 64, 4])]
DEFAULT = "1024x3072x768,1024x768x768,1024x768x3072,4096x4096x4096,300x264x208"


def _params(m: int, n: int, k: int, dtype: str) -> dict:
    return {"in_shapes": [[m, k], [n, k]], "in_dtypes": [dtype] * 2, "out_shapes": [[m, n]],
            "out_dtypes": ["int32" if dtype == "int8" else dtype], "transpose_b": True}


def _operands(m: int, n: int, k: int, dtype: str, rng: np.random.Generator):
    if dtype == "int8":
        a = rng.integers(-128, 128, (m, k)).astype(np.int8)
        b = rng.integers(-128, 128, (n, k)).astype(np.int8)
        return a, b, a.astype(np.int64) @ b.astype(np.int64).T, np.int32
    import ml_dtypes

    t = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    a = (rng.standard_normal((m, k)) * 0.5).astype(t)
    b = (rng.standard_normal((n, k)) * 0.5).astype(t)
    return a, b, a.astype(np.float64) @ b.astype(np.float64).T, t


def _run(spec, kernel, name: str, inputs: list, out_shape, out_dtype, repeats: int):
    from ember.runtime import cuda
    from ember.runtime.tensor_maps import arguments

    module = cuda.Module.load(kernel.cubin, kernel.ptx, name=name)
    function = module.function(name)
    if spec.shared_bytes > 48 * 1024:
        function.set_max_dynamic_shared(spec.shared_bytes)
    bufs = [cuda.DeviceBuffer(x.nbytes) for x in inputs]
    bufs.append(cuda.DeviceBuffer(int(np.prod(out_shape)) * np.dtype(out_dtype).itemsize))
    for buf, x in zip(bufs, inputs, strict=False):
        buf.upload(np.ascontiguousarray(x))
    ptrs = [b.ptr for b in bufs]
    args = cuda.pack_args([("ptr", p) for p in ptrs] + arguments(spec.tensor_maps, ptrs, name))
    stream = cuda.Stream()

    def launch() -> None:
        cuda.launch(function, spec.grid, spec.block, spec.shared_bytes, stream, args)

    launch()
    stream.synchronize()
    got = bufs[-1].download(np.empty(out_shape, out_dtype))  # synchronous
    for _ in range(5):
        launch()
    start, end = cuda.Event(), cuda.Event()
    start.record(stream)
    for _ in range(repeats):
        launch()
    end.record(stream)
    us = start.elapsed_ms(end) / repeats * 1e3
    regs = function.num_regs
    module.unload()
    return got, us, regs


def _torch_rows(shapes, dtypes, repeats: int) -> None:
    try:
        import torch
    except ImportError:
        return
    for m, n, k in shapes:
        for dtype in dtypes:
            if dtype == "int8":
                if m <= 16 or k % 8 or n % 8:
                    continue
                x = torch.randint(-128, 127, (m, k), device="cuda", dtype=torch.int8)
                w = torch.randint(-128, 127, (n, k), device="cuda", dtype=torch.int8).t()

                def fn(x=x, w=w):
                    return torch._int_mm(x, w)
            else:
                t = getattr(torch, dtype)
                x = torch.randn(m, k, device="cuda", dtype=t)
                w = torch.randn(k, n, device="cuda", dtype=t)

                def fn(x=x, w=w):
                    return x @ w
            for _ in range(5):
                fn()
            torch.cuda.synchronize()
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(repeats):
                fn()
            end.record()
            torch.cuda.synchronize()
            us = start.elapsed_time(end) / repeats * 1e3
            print(f"torch {dtype} {m}x{n}x{k}: {us:8.1f} us {2.0 * m * n * k / us / 1e6:6.0f} "
                  "T/s", flush=True)


def main(argv: list[str] | None = None) -> int:
    from ember.codegen.emit_cuda import emit_step
    from ember.codegen.nvrtc import compile_many
    from ember.codegen.templates import gemm_tma
    from ember.compiler.builder import detect_arch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=DEFAULT, help="comma list of MxNxK")
    parser.add_argument("--dtypes", default="float16,int8")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from gemm_probe import parse_shapes

    shapes = parse_shapes(args.shapes)
    dtypes = [d for d in args.dtypes.split(",") if d]
    if any(d not in ("float16", "bfloat16", "int8") for d in dtypes):
        raise SystemExit(f"--dtypes: {args.dtypes!r}: float16, bfloat16, int8")
    if detect_arch() != "sm_90":
        raise SystemExit("tactic_probe.py times Hopper tactics: it needs an sm_90 GPU")
    tactics = TACTICS + [gemm_tma.TmaGemm(t).tactic() for t, _ in gemm_tma.TMA_TILES]
    cases = [(m, n, k, d) for d in dtypes for m, n, k in shapes if d != "int8" or k % 16 == 0]
    emitted = {}
    for m, n, k, d in cases:
        for tactic in tactics:
            step = {"name": "mm", "template": "matmul",
                    "params": {**_params(m, n, k, d), "tactic": tactic}}
            emitted[(m, n, k, d, str(tactic))] = emit_step(step)
    start = time.time()
    names = list(dict.fromkeys((name, spec.source) for name, spec in emitted.values()))
    compiled = dict(zip((nm for nm, _ in names), compile_many(names, "sm_90"), strict=True))
    print(f"# compiled {len(names)} kernels in {time.time() - start:.1f} s", flush=True)
    rng = np.random.default_rng(0)
    failed = 0
    for m, n, k, d in cases:
        a, b, want, out_dtype = _operands(m, n, k, d, rng)
        rows = []
        for tactic in tactics:
            name, spec = emitted[(m, n, k, d, str(tactic))]
            got, us, regs = _run(spec, compiled[name], name, [a, b], (m, n), out_dtype,
                                 max(5, args.repeats if m * n * k < 2**34 else 10))
            err = float(np.linalg.norm(got.astype(np.float64) - want)
                        / max(np.linalg.norm(want), 1e-30))
            ok = err == 0 if d == "int8" else err < (2e-3 if d == "float16" else 8e-3)
            failed += not ok
            rows.append((us, tactic, err, regs, ok))
        print(f"{d} {m}x{n}x{k}:", flush=True)
        for us, tactic, err, regs, ok in sorted(rows, key=lambda r: r[0]):
            print(f"   {str(tactic):45s} {us:8.1f} us {2.0 * m * n * k / us / 1e6:6.0f} T/s "
                  f"rel-L2 {err:.1e} regs {regs}{'' if ok else '  WRONG'}", flush=True)
    _torch_rows(shapes, dtypes, args.repeats)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
