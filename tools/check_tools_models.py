"""Issue 13's tool checks on the benchmark models, for the GPU host: `polygraphy run MODEL --ember
--ember-device DEVICE --onnxrt` and `ember compare MODEL --backends ...` on ResNet-50 and
MobileNetV2 (exported by torch, as benchmarks/bench_models.py exports them; batch 1) and BERT-base
(benchmarks/bert_onnx.py, batch 1 x seq 128). Each command runs as a user runs it (a subprocess);
a line per command says whether it passed and how long it took; the exit status is the number of
commands that failed. Both sides compute in FP32 with other summation orders, so the commands
pass `--atol 1e-4 --rtol 1e-4` (Polygraphy's default 1e-5 fails ResNet-50's logits of magnitude
40 by 2e-5). The models are written with the IR version the installed onnxruntime reads
(`--onnxrt` loads the file itself; torch may export a newer one).

    python tools/check_tools_models.py [--models resnet50,mobilenet_v2,bert] [--device cuda]
        [--dir /tmp/ember-tools]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


TOLERANCES = ["--atol", "1e-4", "--rtol", "1e-4"]


def export(name: str, out: Path) -> Path:
    path = out / f"{name}.onnx"
    if path.exists():
        return path
    if name == "bert":
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bert_onnx.py"), str(path),
                        "--batch", "1", "--seq", "128"], check=True)
    else:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import bench_models
        import numpy as np

        model, kind = bench_models.build_torch(name)
        feed = bench_models.inputs_for(kind, 1, np.random.default_rng(0))
        path.write_bytes(bench_models.export(model, kind, feed))
    import onnx

    from ember.compiler.ort_compat import for_onnxruntime

    model = onnx.load(str(path))
    readable = for_onnxruntime(model)
    if readable is not model:
        onnx.save(readable, str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v2,bert")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dir", default="/tmp/ember-tools")
    args = parser.parse_args(argv)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    backends = "ember-cuda,ember-cpu,onnxruntime" if args.device == "cuda" else \
        "ember-cpu,onnxruntime"
    failed = 0
    for name in args.models.split(","):
        model = export(name, out)
        for what, command in (
                ("polygraphy run --ember --onnxrt",
                 ["polygraphy", "run", str(model), "--ember", "--ember-device", args.device,
                  "--onnxrt", *TOLERANCES]),
                (f"ember compare --backends {backends}",
                 [sys.executable, "-m", "ember.compiler.cli", "compare", str(model),
                  "--backends", backends, *TOLERANCES])):
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            took = time.perf_counter() - start
            ok = done.returncode == 0
            failed += not ok
            print(f"{name}: {what}: {'PASSED' if ok else 'FAILED'} ({took:.1f} s)", flush=True)
            if not ok:
                print("\n".join((done.stdout + done.stderr).splitlines()[-15:]), flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
