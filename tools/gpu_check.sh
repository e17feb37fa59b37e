#!/usr/bin/env bash
# The one GPU-host script: install ember there, run the `cuda` tests, the GPU demo, the GPU
# conformance sweep (CONFORMANCE=0 skips it; SYMBOLIC=0 skips its dynamic-shape run), the
# dynamic-vs-static benchmark (DYNAMIC=0 skips it) and the benchmarks (BENCH=0 skips them), in one
# call of the device tool (about 6 minutes on an H100; PEERS=eager,ort skips torch.compile):
#   device run, carry [".gpu-wheels"], command "bash tools/gpu_check.sh"
# `.gpu-wheels` (git-ignored) holds the pure-Python wheels the host lacks; make it here with
#   pip download --no-deps -d .gpu-wheels xdsl immutabledict ordered-set lit filecheck
set -uo pipefail
OUT=${OUT:-/tmp/ember-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --find-links .gpu-wheels xdsl lit filecheck 2>&1 | tail -2
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import cuda.bindings, numpy, onnx; print('cuda-bindings', cuda.bindings.__version__, 'numpy', numpy.__version__, 'onnx', onnx.__version__)"
echo "== pytest -m cuda"
python3 -m pytest -m cuda -q -p no:cacheprovider -rs tests 2>&1 | tee "$OUT/cuda_tests.log" | tail -25
echo "== demo on the GPU"
python3 -m ember.compiler.cli demo --device cuda 2>&1 | tee "$OUT/demo.log"
if [ -f tools/backend_conformance.py ] && [ "${CONFORMANCE:-1}" = 1 ]; then
  echo "== conformance on the GPU"
  python3 tools/backend_conformance.py --device cuda > "$OUT/conformance_cuda.log" 2>&1
  tail -5 "$OUT/conformance_cuda.log"
fi
if [ -f tools/backend_conformance.py ] && [ "${SYMBOLIC:-1}" = 1 ]; then
  echo "== conformance on the GPU with dynamic dim 0 (kernels take it as an argument)"
  python3 tools/backend_conformance.py --device cuda --symbolic > "$OUT/conformance_symbolic.log" 2>&1
  grep -A12 "^passed" "$OUT/conformance_symbolic.log"
  grep -A12 "^fail (" "$OUT/conformance_symbolic.log"
fi
if [ "${DYNAMIC:-1}" = 1 ]; then
  echo "== dynamic batch vs static plans (benchmarks/bench_dynamic.py)"
  (cd benchmarks && python3 -W ignore bench_dynamic.py --repeats 10 2>&1 \
    | grep -vE 'torch.onnx.export|Warning' | tee "$OUT/bench_dynamic.log")
fi
if [ "${BENCH:-1}" = 1 ]; then
  echo "== benchmarks (benchmarks/RESULTS.md)"
  python3 -W ignore benchmarks/bench_models.py --models resnet50,mobilenet_v2,bert \
    --peers "${PEERS:-eager,compile,ort}" --repeats 10 2>&1 | grep -vE 'torch.onnx.export|Warning' \
    | tee "$OUT/bench.log" | grep -E "^(resnet|mobilenet|bert)"
  echo "== kernels alone vs cuBLAS/cuDNN"
  python3 benchmarks/bench_kernels.py --repeats 10 2>&1 | tee "$OUT/bench_kernels.log" | tail -16
fi
