#!/usr/bin/env bash
# The GPU check: one command, under 8 minutes on one H100-class GPU, everything written under OUT.
#   bash scripts/gpu_check.sh OUT
# 1. env.json: device, versions, and an import of everything the later steps call (bitsandbytes optional)
# 2. gpu_tests.log / gpu_tests.xml: the tests marked gpu
# 3. peaks.json / peaks.md: torch.cuda.max_memory_allocated of full training steps (weights, gradients,
#    optimizer states, activations, workspace) of resnet34 / revnet34_ii / resnet293 / revnet293_ii with fp32
#    Adam and Adam8bit, at batch 128 or the largest batch that fits (the table says which), and their step times
# 4. optim.json: the 8-bit optimizers against bitsandbytes' CUDA kernels and torch's fused Adam
# 5. summary.md: the figures of 3 and 4 in one page (benchmarks/gpu_report.py)
# Without CUDA it checks the imports, says so, and exits 0. Packages the GPU image lacks travel as wheels in
# .whl (scripts/gpu_wheels.sh, run on the development machine first).
set -uo pipefail
out=${1:?usage: bash scripts/gpu_check.sh OUT}
mkdir -p "$out"
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site .whl/*.whl \
    || { echo "gpu_check: installing the carried wheels failed" >&2; exit 1; }
  export PYTHONPATH=$PYTHONPATH:/tmp/gpu_site
fi
log() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$out/run.log"; }

log "1/5 environment and imports"
$PY benchmarks/gpu_env.py > "$out/env.json" 2>> "$out/run.log" || { log "import check failed (see run.log)"; exit 1; }
cat "$out/env.json"
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  log "no CUDA device here: every import checked, nothing measured"
  exit 0
fi
status=0
log "2/5 gpu-marked tests"
timeout 200 $PY -m pytest -m gpu -rs -q -p no:cacheprovider -o addopts="" --junitxml="$out/gpu_tests.xml" tests \
  > "$out/gpu_tests.log" 2>&1 || { log "gpu tests: failures (gpu_tests.log)"; status=1; }
tail -n 3 "$out/gpu_tests.log" | tee -a "$out/run.log"
log "3/5 training-step peaks and step times"
timeout 200 $PY benchmarks/train_step_peak.py --device cuda --in-process --fit --batch-start 128 --batch-max 128 \
  --fit-resolution 8 --steps 4 --models resnet34,revnet34_ii,resnet293,revnet293_ii --optimizers adam,adam8bit \
  --json "$out/peaks.json" --md "$out/peaks.md" >> "$out/run.log" 2>&1 || { log "peaks: failed (run.log)"; status=1; }
log "4/5 8-bit optimizers against bitsandbytes and torch fused Adam"
timeout 120 $PY benchmarks/benchmark_optim.py --device cuda --json "$out/optim.json" >> "$out/run.log" 2>&1 \
  || { log "optimizer benchmark: failed (run.log)"; status=1; }
log "5/5 summary"
$PY benchmarks/gpu_report.py "$out" > "$out/summary.md" 2>> "$out/run.log" || status=1
cat "$out/summary.md"
log "done (exit $status)"
exit $status
