#!/usr/bin/env bash
# The one GPU-host script: install ember there (from the carried `.gpu-wheels`), then run the
# parts PARTS names, in this order (default: all of them):
#   tests        pytest -m cuda over TEST_PATHS (default tests), with PYTEST_ARGS (default
#                "-n 8 --timeout 300": pytest-xdist and pytest-timeout are on the host; "-n 0"
#                runs serially, an empty value takes pyproject's -n auto, every core). Serially
#                all of tests took ~7 min on the H200 (session 6); with -n 8 it fits one call
#   demo         ember demo --device cuda                         ~10 s
#   conformance  tools/backend_conformance.py --device cuda       ~30 s
#   symbolic     the same with dynamic dim 0                      ~30 s
#   dynamic      benchmarks/bench_dynamic.py (dynamic vs static plans, FP32)   a few minutes
#   models       benchmarks/bench_models.py at PRECISION (default fp32,fp16) for MODEL_LIST
#                (default resnet50,mobilenet_v2,bert), BATCHES (default small,large), PEERS
#                (default eager,compile,ort), COMPILE_MODES (default default,reduce-overhead);
#                LAYERS=N prints ember's N slowest kernels (with their tactics) per model;
#                FORMAT_CHOICE=measured|model|preferred: how ember's build picks formats;
#                each cell times ember with programmatic dependent launch (PDL, the default on
#                sm_90+) and prints the time without it (`create_execution_context(pdl=False)`)
#   sass         builds light ResNet-50 and the tiny BERT (FP16, and INT8 from their
#                tools/qdq_model.py QDQ forms) for this GPU and lists what their kernels issue
#                (tools/sass_check.py: HMMA/HGMMA/IMMA, LDL/STL)                ~2 min
#   kernels      benchmarks/bench_kernels.py at KERNEL_PRECISION (default fp32,fp16,bf16;
#                KERNEL_IO=fp32 for FP32 I/O in the tensor-core cases)
#   tools        tools/check_tools_models.py: `polygraphy run --ember --onnxrt` and `ember
#                compare` (ember-cuda, ember-cpu, onnxruntime) on TOOL_MODELS (default
#                resnet50,mobilenet_v2,bert; batch 1)                     a few minutes
#   fp8          an E4M3 Q/DQ GEMM 4096^3 and the FP32 one built --fp16, each through `ember bench
#                --dumpProfile` (benchmarks/fp8_gemm_models.py): the matmul steps' times  ~1 min
#   tactics      tools/tactic_probe.py: each Hopper GEMM tactic (cp.async and TMA-fed wgmma)
#                alone on PROBE_SHAPES (default: BERT's GEMMs, 4096^3, a ragged one) and
#                PROBE_DTYPES (default float16,int8), checked and timed, then torch   ~1-2 min
#   ncu          Nsight Compute over one run of each of NCU_MODELS (default resnet50,bert) at
#                NCU_PRECISION (default int8: the QDQ model built --int8 --fp16; fp16 or bf16:
#                the FP32 model built with that flag), the benchmark's large batches
#                (benchmarks/save_models.py), the plan built for the GPU there and profiled:
#                per kernel time, throughputs, occupancy, registers (tools/ncu_steps.py
#                --by-kernel, NCU_TOP rows) in ncu.log, the raw CSVs in ncu.tgz. ncu reads
#                the counters on the Firecracker H100s, not on gVisor machines (KINDS.md);
#                the pieces ran in session 23, the part as written has not      ~2-4 min
#   kab          tools/kernel_ab.py on the light QDQ ResNet-50 (tools/qdq_model.py, built for
#                sm_90 --int8 --fp16): each residual conv's kernel (KAB_STEPS, default the first of
#                each size: layer1-4's conv3 + residual) at batch 32, each candidate tactic as
#                emitted and in KAB_VARIANTS (default bare,copy,noload,nomma)   ~1-2 min
#   ab           tools/pass_ab.py: the benchmark's INT8 models (benchmarks/save_models.py: the
#                QDQ BERT at batch 8, ResNet-50 at 32) built with their whole pipeline and
#                without AB_WITHOUT (default fold-quantize-scales), both timed with CUDA graphs
#                and compared (AB_MODELS, default bert,resnet50; AB_FLAGS, default
#                "--int8 --fp16")                                                  ~3-4 min
#   wgmma        tools/wgmma_rate.py: the multiprocessor's rate on ember's wgmma batches alone (no
#                loads, no epilogue; INT8/FP16, N 64-256, 1-2 warpgroups, A shared/registers,
#                descriptors computed each time or stepped from a base; WGMMA_ARGS replaces
#                the default arguments)                                          ~30 s
# The older switches still skip parts: CONFORMANCE=0, SYMBOLIC=0, DYNAMIC=0, BENCH=0 (models and
# kernels); so do TESTS=0, DEMO=0, MODELS=0, KERNELS=0. REPEATS (default 10) goes to the
# benchmarks. Logs: $OUT/<part>.log. A part that fails is named at the end and the script exits 1.
#
# The device tool runs one command for at most 10 minutes: run it in these calls, each with
# carry [".gpu-wheels"] (times are estimates; each part prints its own, `== <part> done in N s`):
#   1. PARTS="tests demo conformance symbolic" bash tools/gpu_check.sh              (~4 min)
#   2. PARTS=models MODEL_LIST=resnet50 bash tools/gpu_check.sh                     (~3-4 min)
#   3. PARTS=models MODEL_LIST=mobilenet_v2 bash tools/gpu_check.sh                 (~3 min)
#   4. PARTS=models MODEL_LIST=bert bash tools/gpu_check.sh                         (~3-4 min)
#   5. PARTS=kernels bash tools/gpu_check.sh                                        (~2 min)
#   6. (when dynamic shapes matter) PARTS=dynamic bash tools/gpu_check.sh           (~3 min)
# A model call holds fp32 and fp16 for both batches: per batch and precision an ember build
# (tactics timed on the GPU) and two torch.compile builds of 10-20 s each. If one runs long,
# split it by BATCHES=small / BATCHES=large.
# `.gpu-wheels` (git-ignored) holds the pure-Python wheels the host lacks; make it here with
#   pip download --no-deps -d .gpu-wheels xdsl immutabledict ordered-set lit filecheck \
#       polygraphy onnx-graphsurgeon graphviz
# (the host has onnxruntime, rich and the rest of ember's dependencies)
set -uo pipefail
OUT=${OUT:-/tmp/ember-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PARTS=${PARTS:-tests demo conformance symbolic sass dynamic models tools kernels fp8 tactics}
# (ncu, kab, ab and wgmma are not among the defaults: ask for them by name)
REPEATS=${REPEATS:-10}
failed=()
ran=()

want() {  # want PART SWITCH...: PART is in PARTS and none of the switches is 0
  local part=$1 switch
  shift
  [[ " $PARTS " == *" $part "* ]] || return 1
  for switch in "$@"; do [ "${!switch:-1}" = 1 ] || return 1; done
}
for part in $PARTS; do
  case $part in tests|demo|conformance|symbolic|dynamic|models|kernels|sass|tools|fp8|tactics|ncu|kab|ab|wgmma) ;;
    *) echo "PARTS: unknown part '$part' (tests demo conformance symbolic dynamic models kernels sass tools fp8 tactics ncu kab ab wgmma)"
       exit 2 ;;
  esac
done

# finish PART STATUS [LOG]: record the part's exit status and time; a failed part shows the end
# of its log
finish() {
  local part=$1 status=$2 log=${3:-}
  ran+=("$part")
  echo "== $part done in $((SECONDS - start)) s (exit $status)"
  if [ "$status" != 0 ]; then
    failed+=("$part (exit $status)")
    if [ -n "$log" ]; then echo "== the end of $log:"; tail -15 "$log"; fi
  fi
}

python3 -m pip install -q --no-index --find-links .gpu-wheels xdsl lit filecheck polygraphy \
    onnx-graphsurgeon graphviz 2>&1 | tail -2
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import cuda.bindings, numpy, onnx; print('cuda-bindings', cuda.bindings.__version__, 'numpy', numpy.__version__, 'onnx', onnx.__version__)"
echo "parts: $PARTS"

if want tests TESTS; then
  echo "== pytest -m cuda"; start=$SECONDS
  # shellcheck disable=SC2086  # TEST_PATHS is a list
  python3 -m pytest -m cuda -q -p no:cacheprovider -rs ${PYTEST_ARGS--n 8 --timeout 300} \
    ${TEST_PATHS:-tests} 2>&1 \
    | tee "$OUT/cuda_tests.log" | tail -25
  finish tests "${PIPESTATUS[0]}" "$OUT/cuda_tests.log"
fi
if want demo DEMO; then
  echo "== demo on the GPU"; start=$SECONDS
  python3 -m ember.compiler.cli demo --device cuda 2>&1 | tee "$OUT/demo.log"
  finish demo "${PIPESTATUS[0]}"
fi
if [ -f tools/backend_conformance.py ] && want conformance CONFORMANCE; then
  echo "== conformance on the GPU"; start=$SECONDS
  python3 tools/backend_conformance.py --device cuda > "$OUT/conformance_cuda.log" 2>&1
  status=$?
  tail -5 "$OUT/conformance_cuda.log"
  finish conformance $status "$OUT/conformance_cuda.log"
fi
if [ -f tools/backend_conformance.py ] && want symbolic SYMBOLIC; then
  echo "== conformance on the GPU with dynamic dim 0 (kernels take it as an argument)"
  start=$SECONDS
  python3 tools/backend_conformance.py --device cuda --symbolic > "$OUT/conformance_symbolic.log" 2>&1
  status=$?
  grep -A12 "^passed" "$OUT/conformance_symbolic.log"
  grep -A12 "^fail (" "$OUT/conformance_symbolic.log"
  finish symbolic $status "$OUT/conformance_symbolic.log"
fi
if want sass SASS; then
  echo "== SASS of FP16 and INT8 plans (tools/sass_check.py; log: sass.log)"; start=$SECONDS
  (set -e; d=/tmp/ember-sass; rm -rf $d; mkdir -p $d
   r50=$(python3 -c "from ember.compiler.models import light_model_path as p; print(p('resnet50'))")
   python3 tools/qdq_model.py "$r50" $d/r50q.onnx --samples 4 >/dev/null 2>&1
   python3 tools/qdq_model.py tests/models/bert_tiny.onnx $d/bertq.onnx --samples 4 >/dev/null 2>&1
   for spec in "$r50 r50_fp16 --fp16" "$d/r50q.onnx r50_int8 --int8 --fp16" \
               "tests/models/bert_tiny.onnx bert_fp16 --fp16" "$d/bertq.onnx bert_int8 --int8 --fp16"; do
     set -- $spec; m=$1 name=$2; shift 2
     python3 -m ember.compiler.cli build "$m" -o $d/$name.plan --arch sm_90 -q "$@"
   done
   python3 tools/sass_check.py $d/*.plan --sass-dir $d/sass
   tar czf "$OUT/sass.tgz" -C $d sass) > "$OUT/sass.log" 2>&1
  status=$?
  grep -vE "^\s*$" "$OUT/sass.log" | head -80
  finish sass $status "$OUT/sass.log"
fi
if want dynamic DYNAMIC; then
  echo "== dynamic batch vs static plans (benchmarks/bench_dynamic.py)"; start=$SECONDS
  (cd benchmarks && python3 -W ignore bench_dynamic.py --repeats "$REPEATS" 2>&1 \
    | grep --line-buffered -vE 'torch.onnx.export|Warning' | tee "$OUT/bench_dynamic.log"; exit "${PIPESTATUS[0]}")
  finish dynamic $? "$OUT/bench_dynamic.log"
fi
if want models BENCH MODELS; then
  echo "== models (benchmarks/bench_models.py; full log: bench_models.log)"; start=$SECONDS
  python3 -W ignore benchmarks/bench_models.py --models "${MODEL_LIST:-resnet50,mobilenet_v2,bert}" \
    --precision "${PRECISION:-fp32,fp16}" --batches "${BATCHES:-small,large}" \
    --peers "${PEERS:-eager,compile,ort}" --compile-modes "${COMPILE_MODES:-default,reduce-overhead}" \
    --repeats "$REPEATS" ${LAYERS:+--layers "$LAYERS"} \
    ${FORMAT_CHOICE:+--format-choice "$FORMAT_CHOICE"} 2>&1 \
    | grep --line-buffered -vE 'torch.onnx.export|Warning' | tee "$OUT/bench_models.log" \
    | grep --line-buffered -E '^\||^# (GPU|copy)|ceiling|figure to beat|FAILED|WARNING|^#   |programmatic'
  finish models "${PIPESTATUS[0]}" "$OUT/bench_models.log"
fi
if want tools TOOLS; then
  echo "== polygraphy run --ember and ember compare on the benchmark models"; start=$SECONDS
  python3 -W ignore tools/check_tools_models.py --models "${TOOL_MODELS:-resnet50,mobilenet_v2,bert}" \
    2>&1 | grep --line-buffered -vE 'torch.onnx.export|Warning' | tee "$OUT/tools.log" \
    | grep --line-buffered -E 'PASSED|FAILED|Error|error'
  finish tools "${PIPESTATUS[0]}" "$OUT/tools.log"
fi
if want kernels BENCH KERNELS; then
  echo "== kernels alone vs cuBLAS/cuDNN (benchmarks/bench_kernels.py)"; start=$SECONDS
  python3 -W ignore benchmarks/bench_kernels.py --precision "${KERNEL_PRECISION:-fp32,fp16,bf16}" \
    --io "${KERNEL_IO:-model}" --repeats "$REPEATS" 2>&1 | tee "$OUT/bench_kernels.log" \
    | grep --line-buffered -vE '^  File|^    |^Traceback'
  finish kernels "${PIPESTATUS[0]}" "$OUT/bench_kernels.log"
fi
if want fp8; then
  echo "== FP8 (E4M3 Q/DQ) GEMM 4096^3 against ember FP16 (benchmarks/fp8_gemm_models.py; log: fp8.log)"
  start=$SECONDS
  python3 benchmarks/fp8_gemm_models.py /tmp > "$OUT/fp8.log" 2>&1
  rc=$?
  for m in fp8 fp16; do
    flag=""; [ "$m" = fp16 ] && flag=--fp16
    ember bench --onnx=/tmp/${m}_gemm.onnx $flag --dumpProfile --iterations 50 >> "$OUT/fp8.log" 2>&1 \
      || rc=1
  done
  grep -E "GPU Compute Time|matmul_" "$OUT/fp8.log"
  finish fp8 "$rc" "$OUT/fp8.log"
fi
if want tactics; then
  echo "== each Hopper GEMM tactic alone (tools/tactic_probe.py; log: tactics.log)"; start=$SECONDS
  python3 tools/tactic_probe.py ${PROBE_SHAPES:+--shapes "$PROBE_SHAPES"} \
    --dtypes "${PROBE_DTYPES:-float16,int8}" 2>&1 | tee "$OUT/tactics.log"
  finish tactics "${PIPESTATUS[0]}" "$OUT/tactics.log"
fi
if want ncu; then
  echo "== Nsight Compute over the benchmark models' plans (tools/ncu_steps.py; log: ncu.log)"
  start=$SECONDS
  (set -e; d=/tmp/ember-ncu; rm -rf $d; mkdir -p $d/csv
   models=${NCU_MODELS:-resnet50,bert}
   python3 -W ignore benchmarks/save_models.py $d --models "$models" > $d/save.log 2>&1 \
     || { tail -5 $d/save.log; exit 1; }
   arch=$(python3 -c "from ember.compiler.builder import detect_arch; print(detect_arch())")
   for m in ${models//,/ }; do
     for p in $(echo "${NCU_PRECISION:-int8}" | tr , ' '); do
       if [ "$p" = int8 ]; then src=$d/${m}_qdq.onnx; flags="--int8 --fp16"; else
         src=$d/$m.onnx; flags=--$p; fi
       plan=$d/${m}_$p.plan
       # shellcheck disable=SC2086  # flags is a list
       python3 -m ember.compiler.cli build "$src" -o "$plan" --arch "$arch" -q $flags
       python3 -m ember.compiler.cli inspect "$plan" > $d/csv/${m}_$p.inspect.txt
       ncu --clock-control none --csv --page details --section SpeedOfLight \
         --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis \
         --section WarpStateStats python3 -m ember.compiler.cli run "$plan" --device cuda \
         --load-inputs $d/${m}_in.npz > $d/csv/${m}_$p.ncu.csv
       echo "== $m $p"
       python3 tools/ncu_steps.py $d/csv/${m}_$p.ncu.csv $d/csv/${m}_$p.inspect.txt \
         --by-kernel --top "${NCU_TOP:-25}"
     done
   done
   tar czf "$OUT/ncu.tgz" -C $d csv) > "$OUT/ncu.log" 2>&1
  status=$?
  grep -E "^== |^total|^ +[0-9]" "$OUT/ncu.log" | head -80
  finish ncu $status "$OUT/ncu.log"
fi
if want kab; then
  echo "== residual convs' kernels and variants (tools/kernel_ab.py; log: kab.log)"; start=$SECONDS
  (set -e; d=/tmp/ember-kab; rm -rf $d; mkdir -p $d
   r50=$(python3 -c "from ember.compiler.models import light_model_path as p; print(p('resnet50'))")
   python3 tools/qdq_model.py "$r50" $d/r50q.onnx --samples 4 >/dev/null 2>&1
   python3 -m ember.compiler.cli build $d/r50q.onnx -o $d/r50q.plan --arch sm_90 -q --int8 --fp16
   steps=${KAB_STEPS:-$(python3 tools/kernel_ab.py $d/r50q.plan --residual-convs)}
   for step in ${steps//,/ }; do
     python3 tools/kernel_ab.py $d/r50q.plan "$step" --batch 32 \
       --variants "${KAB_VARIANTS:-bare,copy,noload,nomma}"
   done) 2>&1 | tee "$OUT/kab.log"
  finish kab "${PIPESTATUS[0]}" "$OUT/kab.log"
fi
if want ab; then
  echo "== one pass's worth (tools/pass_ab.py; log: ab.log)"; start=$SECONDS
  (set -e; d=/tmp/ember-ab; rm -rf $d; mkdir -p $d
   models=${AB_MODELS:-bert,resnet50}
   python3 -W ignore benchmarks/save_models.py $d --models "$models" > $d/save.log 2>&1 \
     || { tail -5 $d/save.log; exit 1; }
   for m in ${models//,/ }; do
     echo "== $m"
     # shellcheck disable=SC2086  # AB_FLAGS is a list
     python3 -W ignore tools/pass_ab.py $d/${m}_qdq.onnx --load-inputs $d/${m}_in.npz \
       --without "${AB_WITHOUT:-fold-quantize-scales}" ${AB_FLAGS:---int8 --fp16}
   done) 2>&1 | tee "$OUT/ab.log"
  finish ab "${PIPESTATUS[0]}" "$OUT/ab.log"
fi
if want wgmma; then
  echo "== wgmma rate alone (tools/wgmma_rate.py; log: wgmma.log)"; start=$SECONDS
  # shellcheck disable=SC2086  # WGMMA_ARGS is a list
  python3 tools/wgmma_rate.py ${WGMMA_ARGS:---depths 1 --a-from shared,registers --desc computed,precomputed} \
    2>&1 | tee "$OUT/wgmma.log"
  finish wgmma "${PIPESTATUS[0]}" "$OUT/wgmma.log"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED parts: ${failed[*]} (logs in \$OUT)"
  exit 1
fi
echo "== passed: ${ran[*]:-nothing ran}"
