"""The GPU's two ceilings through PyTorch (TF32 off): cuBLAS SGEMM rates at BERT-base's GEMM
shapes (batch 8, seq 128) and a large square one, cuDNN FP32 conv rates at ResNet-50's conv
shapes (batch 32), and device-to-device copy bandwidth (bytes read + written).

    python benchmarks/ceilings.py      # on the GPU host
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GEMMS = [(4096, 4096, 4096), (1024, 768, 768), (1024, 3072, 768), (1024, 768, 3072),
         (128, 768, 768)]
# (batch, in channels, size, out channels, kernel, stride)
CONVS = [(32, 64, 56, 64, 3, 1), (32, 128, 28, 128, 3, 1), (32, 256, 14, 256, 3, 1),
         (32, 512, 7, 512, 3, 1), (32, 256, 56, 64, 1, 1), (32, 64, 56, 256, 1, 1),
         (32, 3, 224, 64, 7, 2)]


def bench_ms(fn, n: int = 50) -> float:
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


def main() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for m, n, k in GEMMS:
        a, b = torch.randn(m, k, device="cuda"), torch.randn(k, n, device="cuda")
        t = bench_ms(lambda a=a, b=b: a @ b)
        print(f"sgemm {m}x{n}x{k}: {t * 1e3:.1f} us {2 * m * n * k / t / 1e9:.1f} TFLOPS")
    for n, c, h, k, r, s in CONVS:
        x, w = torch.randn(n, c, h, h, device="cuda"), torch.randn(k, c, r, r, device="cuda")
        t = bench_ms(lambda x=x, w=w, r=r, s=s: F.conv2d(x, w, stride=s, padding=r // 2))
        oh = (h + 2 * (r // 2) - r) // s + 1
        print(f"conv n{n} c{c} h{h} k{k} r{r} s{s}: {t * 1e3:.1f} us "
              f"{2 * n * k * oh * oh * c * r * r / t / 1e9:.1f} TFLOPS")
    x = torch.empty(256 * 2**20, device="cuda")
    y = torch.empty_like(x)
    t = bench_ms(lambda: y.copy_(x))
    print(f"copy {2 * x.numel() * 4 / (t * 1e-3) / 1e9:.0f} GB/s")


if __name__ == "__main__":
    main()
