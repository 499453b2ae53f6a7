#!/usr/bin/env bash
# The project's one GPU command (each step has its own time limit, 120 + 150 + 200 s: under 8
# minutes on an H200 however it goes; NOT yet run on a GPU, only dry-run on the CPU):
#   1. tests/test_cuda.py: parity + fingerprint on the GPU, batched evaluator vs CPU, a single run
#      and a batch that agree (skipped without CUDA);
#   2. batched-vs-single trajectory parity on the GPU (bench/md_batch_parity.py, 1000 NPT steps);
#   3. batched throughput (bench/md_throughput.py --device cuda, o-NBH 128 and 1024 atoms).
# Results go to $OUT (the device machine's output folder) or bench/gpu_check/: logs, JSON, and
# RESULTS.md holding the md_batch_cuda section to paste into bench/RESULTS.md.
#
#   bench/gpu_check.sh              # on the GPU machine
#   bench/gpu_check.sh --dry-run    # the same steps on the CPU, tiny sizes (DEVICE=cpu does too)
#
# Exit status: 0 when every step passed, else the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${DEVICE:-cuda}
[ "${1:-}" = "--dry-run" ] && DEVICE=cpu
OUT=${OUT:-bench/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-}
for p in .venv/bin/python ../main/.venv/bin/python python3; do
  [ -z "$PY" ] && { [ -x "$p" ] || command -v "$p" >/dev/null 2>&1; } && PY=$p
done
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# models: $SUPERION_MODELS, else shared/models carried with the checkout, else ../shared/models
[ -z "${SUPERION_MODELS:-}" ] && for d in shared/models ../shared/models; do
  [ -d "$d" ] && export SUPERION_MODELS="$PWD/$d" && break; done
[ -z "${SUPERION_SHARED:-}" ] && for d in shared ../shared; do
  [ -d "$d/structures" ] && export SUPERION_SHARED="$PWD/$d" && break; done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ "$DEVICE" = cuda ]; then
  PARITY=(--steps 1000 --replicas 4 --compare 3 --ensembles npt,nvt)
  THROUGHPUT=(--replicas 1,2,4,8,16,32 --sizes 1,8 --steps 20 --max-atoms 16384)
  SCALE=1
else  # dry run: the same commands, small enough for a loaded CPU, with 4x the time limits
  SCALE=4
  PARITY=(--steps 20 --save-every 10 --replicas 2 --compare 1 --ensembles npt)
  THROUGHPUT=(--replicas 1,2 --sizes 1 --steps 10)
fi

failed=0
step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log
  local name=$1 limit=$(($2 * SCALE)); shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "   rc $rc after $((SECONDS - t0)) s; last lines:" | tee -a "$OUT/summary.txt"
  { tail -n 5 "$OUT/$name.log"; echo; } | sed 's/^/   | /' | tee -a "$OUT/summary.txt"
  [ $rc -ne 0 ] && failed=$((failed + 1))
}

{ date -u; echo "device $DEVICE, python $PY, SUPERION_MODELS=${SUPERION_MODELS:-unset}"; } > "$OUT/summary.txt"
[ "$DEVICE" = cuda ] && { nvidia-smi -L || true; } >> "$OUT/summary.txt" 2>&1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" >> "$OUT/summary.txt" 2>&1

SUPERION_TEST_DEVICE=$DEVICE step test_cuda 120 \
  "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py --junitxml="$OUT/test_cuda.xml"
step parity 150 "$PY" bench/md_batch_parity.py --device "$DEVICE" --batched-graph yes "${PARITY[@]}" --json "$OUT/parity.json"
step throughput 200 "$PY" bench/md_throughput.py --device "$DEVICE" "${THROUGHPUT[@]}" \
  --json "$OUT/throughput.json" --results "$OUT/RESULTS.md" --write

echo "failed steps: $failed" | tee -a "$OUT/summary.txt"
exit $failed
