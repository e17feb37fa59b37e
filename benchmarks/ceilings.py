"""The GPU's two ceilings through PyTorch, in each benchmark precision: the matmul rate of a
large torch.matmul (the best of 4096³ and 8192³) and device-to-device copy bandwidth (bytes
read + written); bench_models.py measures both in its own run and gives each model's TFLOP/s
as a % of the first. Run alone, it also prints cuBLAS rates at BERT-base's GEMM shapes (batch
8, seq 128) and cuDNN conv rates at ResNet-50's conv shapes (batch 32; channels-last in
fp16/bf16) in each precision.

    python benchmarks/ceilings.py [--precision fp32,tf32,fp16,bf16]     # on the GPU host
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from precisions import parse_precisions, set_torch_precision

GEMMS = [(4096, 4096, 4096), (1024, 768, 768), (1024, 3072, 768), (1024, 768, 3072),
         (128, 768, 768)]
# (batch, in channels, size, out channels, kernel, stride)
CONVS = [(32, 64, 56, 64, 3, 1), (32, 128, 28, 128, 3, 1), (32, 256, 14, 256, 3, 1),
         (32, 512, 7, 512, 3, 1), (32, 256, 56, 64, 1, 1), (32, 64, 56, 256, 1, 1),
         (32, 3, 224, 64, 7, 2)]
# the square matmuls whose best rate is the ceiling; a CPU run (a smoke test) takes a small one
CEILING_SIZES = {"cuda": (4096, 8192), "cpu": (512,)}


def bench_ms(fn, n: int = 50, device: str = "cuda") -> float:
    """Mean milliseconds of `n` back-to-back calls after one warm-up (CUDA events on the GPU)."""
    fn()
    if device != "cuda":
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) * 1e3 / n
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


def matmul_ceiling(precision: str, device: str = "cuda") -> tuple[float, str]:
    """The best TFLOP/s (int8: TOP/s) of a square torch.matmul in `precision` (TF32 as it says;
    int8: torch._int_mm, int8 x int8 -> int32, its second operand column-major) over
    CEILING_SIZES, and which size gave it."""
    dtype = set_torch_precision(precision)
    best, where = 0.0, ""
    for size in CEILING_SIZES[device]:
        if precision == "int8":
            a = torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
            b = _column_major(size, size, device)
            op = torch._int_mm
        else:
            a = torch.randn(size, size, device=device).to(dtype)
            b = torch.randn(size, size, device=device).to(dtype)
            op = torch.matmul
        ms = bench_ms(lambda a=a, b=b, op=op: op(a, b), n=20 if device == "cuda" else 3,
                      device=device)
        tflops = 2 * size**3 / ms / 1e9
        if tflops > best:
            best, where = tflops, f"{size}^3"
        del a, b
    return best, where


def _column_major(k: int, n: int, device: str) -> torch.Tensor:
    """A K x N int8 matrix stored column-major (the transposed view of a contiguous N x K one):
    the layout cuBLASLt's int8 tensor-core GEMMs take. A row-major one sends torch._int_mm to a
    slow kernel (pytorch/pytorch#165230; session 31's H100 runs gave a row-major 8192^3 130
    TOP/s, under ember's own INT8 models' rate)."""
    return torch.randint(-128, 128, (n, k), dtype=torch.int8, device=device).t()


def copy_bandwidth(device: str = "cuda") -> float:
    """GB/s of a device-to-device copy of 1 GiB (256 MiB on the CPU), read + written."""
    x = torch.empty((256 if device == "cuda" else 64) * 2**20, device=device)
    y = torch.empty_like(x)
    ms = bench_ms(lambda: y.copy_(x), n=50 if device == "cuda" else 3, device=device)
    return 2 * x.numel() * 4 / (ms * 1e-3) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32,tf32,fp16,bf16")
    precisions = parse_precisions(parser.parse_args().precision)
    for precision in precisions:
        tflops, where = matmul_ceiling(precision)
        print(f"{precision} matmul ceiling: {tflops:.1f} TFLOP/s ({where})")
        if precision == "int8":  # cuBLAS's int8 GEMMs through torch._int_mm; no int8 conv
            for m, n, k in GEMMS:
                a = torch.randint(-128, 128, (m, k), dtype=torch.int8, device="cuda")
                b = _column_major(k, n, "cuda")
                t = bench_ms(lambda a=a, b=b: torch._int_mm(a, b))
                print(f"int8 gemm {m}x{n}x{k}: {t * 1e3:.1f} us "
                      f"{2 * m * n * k / t / 1e9:.1f} TOP/s")
            continue
        dtype = set_torch_precision(precision)
        half = precision in ("fp16", "bf16")
        for m, n, k in GEMMS:
            a = torch.randn(m, k, device="cuda").to(dtype)
            b = torch.randn(k, n, device="cuda").to(dtype)
            t = bench_ms(lambda a=a, b=b: a @ b)
            print(f"{precision} gemm {m}x{n}x{k}: {t * 1e3:.1f} us "
                  f"{2 * m * n * k / t / 1e9:.1f} TFLOP/s")
        fmt = torch.channels_last if half else torch.contiguous_format
        for n, c, h, k, r, s in CONVS:
            x = torch.randn(n, c, h, h, device="cuda").to(dtype).to(memory_format=fmt)
            w = torch.randn(k, c, r, r, device="cuda").to(dtype).to(memory_format=fmt)
            t = bench_ms(lambda x=x, w=w, r=r, s=s: F.conv2d(x, w, stride=s, padding=r // 2))
            oh = (h + 2 * (r // 2) - r) // s + 1
            print(f"{precision} conv n{n} c{c} h{h} k{k} r{r} s{s}: {t * 1e3:.1f} us "
                  f"{2 * n * k * oh * oh * c * r * r / t / 1e9:.1f} TFLOP/s")
    print(f"copy {copy_bandwidth():.0f} GB/s")


if __name__ == "__main__":
    main()
