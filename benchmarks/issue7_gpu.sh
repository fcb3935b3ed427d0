#!/usr/bin/env bash
# Issue 7 in one prepared command for a lent GPU (the `device` tool: one call of at most 10 min,
# 15 min of device time in all, files back only from $OUT, at most 8 of them, no checkpoints).
#
#   1. the `paper` recipe (512², 10 epochs), then
#   2. the `default` recipe for as many epochs as the time budget leaves (estimated from the
#      paper run's epoch time: a 256² epoch costs about a quarter of a 512² one), capped at 200,
#   3. predict + evaluate (MedAI) on the 120 validation images for both, and flip TTA,
#   4. evaluate-explanations (12 images) and the inference-choice table on the default run,
#   5. the small files (metrics, per-image CSVs, histories, configs) packed into
#      $OUT/issue7.tar.gz after every phase, beside the log $OUT/issue7.log.
# Every phase is bounded by `timeout -s TERM` (training then saves a resumable last.pt and its
# best.pt stays usable), so the call ends inside BUDGET seconds whatever happens.
#
# On the machine that holds ../shared (this one), once:
#   mkdir -p .gpu && cp -r ../shared/data/kvasir-seg .gpu/ && echo /.gpu/ >> .git/info/exclude
# then: device run, carry [".gpu"], timeout_s 600,
#   command: bash benchmarks/issue7_gpu.sh .gpu/kvasir-seg "$OUT" 540
# The GPU image has torch, numpy, pillow, tqdm, matplotlib and tensorboard: no install needed.
# Smoke-run on a CPU with a small subset: DEVICE=cpu PAPER_EPOCHS=1 MAX_DEFAULT_EPOCHS=1 ... .
set -uo pipefail
DATA=${1:?dataset folder (Kvasir-SEG layout)}; OUTDIR=${2:?output folder}; BUDGET=${3:-540}
DEVICE=${DEVICE:-cuda}; PAPER_EPOCHS=${PAPER_EPOCHS:-10}; MAX_DEFAULT_EPOCHS=${MAX_DEFAULT_EPOCHS:-200}
RUNS=${RUNS:-/tmp/issue7}; N_EXPLAIN=${N_EXPLAIN:-12}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
START=$(date +%s)
mkdir -p "$OUTDIR" "$RUNS"
exec > >(tee "$OUTDIR/issue7.log") 2>&1
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
say() { echo "[issue7 $(( $(date +%s) - START ))s] $*"; }
endoxai() { "$PY" -m endoxai "$@"; }

say "device $DEVICE, budget ${BUDGET}s, git $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +dirty)"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

evaluate() {  # run folder; predicts with and without TTA, scores both
  local r=$1 ids=$DATA/val.txt
  endoxai predict --checkpoint "$r/best.pt" --input "$DATA/images" --ids "$ids" --output "$r/val-masks" --device "$DEVICE" --no-progress &&
  endoxai evaluate --pred "$r/val-masks" --truth "$DATA/masks" --ids "$ids" --output "$r/metrics.json" &&
  endoxai predict --checkpoint "$r/best.pt" --input "$DATA/images" --ids "$ids" --output "$r/val-masks-tta" --tta --device "$DEVICE" --no-progress &&
  endoxai evaluate --pred "$r/val-masks-tta" --truth "$DATA/masks" --ids "$ids" --output "$r/metrics-tta.json"
}
pack() {  # the small files so far (no checkpoints, no masks), repacked after every phase
  (cd "$RUNS" && find . \( -name '*.json' -o -name '*.csv' -o -name '*.toml' -o -name '*.md' \) \
    -not -path '*/val-masks*' -print0 | tar --null -czf "$OUTDIR/issue7.tar.gz" -T -)
}

# 1. paper recipe: at most 45 % of the budget
say "paper: train"
timeout -s TERM $(( BUDGET * 45 / 100 )) "$PY" -m endoxai train --data "$DATA" --out "$RUNS/paper" \
  --config paper --epochs "$PAPER_EPOCHS" --device "$DEVICE" --no-progress
say "paper: train exit $?"

# 2. default recipe: epochs sized to what is left after the evaluations (a third reserved)
per_epoch=$(awk -F, 'NR > 1 { s += $NF; n++ } END { if (n) printf "%d", (s / n) / 4 + 1; else print 0 }' \
  "$RUNS/paper/history.csv" 2>/dev/null || echo 0)
avail=$(( $(left) - BUDGET / 3 ))
if [ "${per_epoch:-0}" -gt 0 ]; then epochs=$(( avail / per_epoch )); else epochs=20; fi
[ "$epochs" -gt "$MAX_DEFAULT_EPOCHS" ] && epochs=$MAX_DEFAULT_EPOCHS
[ "$epochs" -lt 1 ] && epochs=1
say "default: train $epochs epochs (estimated ${per_epoch}s each, ${avail}s available)"
timeout -s TERM "$(( avail > 30 ? avail : 30 ))" "$PY" -m endoxai train --data "$DATA" \
  --out "$RUNS/default" --config default --epochs "$epochs" --device "$DEVICE" --no-progress
say "default: train exit $?"

# 3. evaluation of both runs (120 images each: seconds)
pack
for r in "$RUNS/paper" "$RUNS/default"; do
  [ -f "$r/best.pt" ] || { say "no $r/best.pt"; continue; }
  say "evaluate $r"; evaluate "$r"; say "evaluate $r exit $?"
done
pack

# 4. faithfulness (on the GPU) and inference choices (CPU, all cores) on the default run
if [ -f "$RUNS/default/best.pt" ]; then
  say "evaluate-explanations"
  timeout -s TERM $(( $(left) > 30 ? $(left) * 2 / 3 : 10 )) "$PY" -m endoxai evaluate-explanations \
    --run "$RUNS/default" --data "$DATA" --n-images "$N_EXPLAIN" --device "$DEVICE" ||
  { say "evaluate-explanations failed on $DEVICE: 4 images on the CPU instead"
    timeout -s TERM $(( $(left) > 30 ? $(left) / 2 : 10 )) "$PY" -m endoxai evaluate-explanations \
      --run "$RUNS/default" --data "$DATA" --n-images 4 --device cpu; }
  say "evaluate-explanations exit $?"; pack
  say "inference choices"
  timeout -s TERM $(( $(left) > 15 ? $(left) - 5 : 5 )) "$PY" benchmarks/inference_choices.py \
    --checkpoint "$RUNS/default/best.pt" --data "$DATA" --threads "$(nproc)" \
    --output "$RUNS/default/inference-choices.md"
  say "inference choices exit $?"; pack
fi
say "done: $(tar -tzf "$OUTDIR/issue7.tar.gz" | wc -l) files in issue7.tar.gz"
