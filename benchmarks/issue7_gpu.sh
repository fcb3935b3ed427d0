#!/usr/bin/env bash
# Issue 7 in one prepared command for a lent GPU (the `device` tool: one call of at most 10 min,
# 15 min of device time in all, files back only from $OUT, at most 8 of 16 MB, 64 MB in all).
#
#   1. the `paper` recipe (512², 10 epochs; PAPER_EPOCHS=0 skips it), then
#   2. RECIPES (default: `default`; names or .toml files, space-separated), trained one after
#      another for EPOCHS epochs (one number for all, or one per recipe: EPOCHS="80 30"), or for
#      as many as the time left allows (EPOCH_SECONDS per epoch and run, 2.5 by default: a 256²
#      epoch took 1.7-2.9 s alone on the H200, validation included), capped at MAX_EPOCHS (200).
#      Not side by side: with three runs sharing the H200, a batch-8 run took 10.7-12.9 s per
#      epoch, against 1.7-2.7 s alone (docs/RESULTS.md §1.5, session 12). RESERVE: the seconds
#      kept for phases 3-5 (a third of the budget unless set; they took 112 s for two runs in
#      session 5),
#   3. predict + evaluate (MedAI) on the 120 validation images for every run, with and without
#      flip TTA (and with the trained weights of a run that keeps a moving average:
#      metrics-trained.json), their scores by polyp size (errors_by_size.py) and the RECIPES
#      runs' validation and fit Dice epoch by epoch (compare_histories.py),
#   4. on the RECIPES run with the highest validation Dice: its generator packed into
#      $OUT/weights/ (ship_weights.py: int8, 4 parts of at most 15 MB, about 55 MB; SHIP_WEIGHTS=0
#      skips it) and the unpacked copy scored (metrics-shipped.json), then evaluate-explanations
#      (12 images) and the inference-choice table,
#   5. the small files (metrics, per-image CSVs, histories, configs, validation masks) packed into
#      $OUT/issue7.tar.gz after every phase, beside the log $OUT/issue7.log. Each history.csv
#      has fit_dice (train.fit_images: eval-mode Dice of 64 training images) beside val_dice,
#      which tells whether a recipe fails to fit its training set or overfits it.
# Every phase is bounded by `timeout -s TERM` (training then saves a resumable last.pt and its
# best.pt stays usable), so the call ends inside BUDGET seconds whatever happens. Training writes
# last.pt every SAVE_EVERY (10) epochs only: on the H200 a run's wall time was twice the sum of
# its 2-3 s epochs, most likely from writing the ~690 MB state after each (docs/RESULTS.md §1.5).
# The runs go to RUNS: /dev/shm/issue7 (memory) where it has 8 GB free, else /tmp/issue7.
#
# On the machine that holds ../shared (this one), once:
#   mkdir -p .gpu && cp -r ../shared/data/kvasir-seg .gpu/ && echo /.gpu/ >> .git/info/exclude
# then: device run, carry [".gpu"], timeout_s 600,
#   command: bash benchmarks/issue7_gpu.sh .gpu/kvasir-seg "$OUT" 540
# The GPU image has torch, numpy, pillow, tqdm, matplotlib and tensorboard: no install needed.
# Smoke-run on a CPU with a small subset: DEVICE=cpu PAPER_EPOCHS=1 MAX_EPOCHS=1 ... .
set -uo pipefail
DATA=${1:?dataset folder (Kvasir-SEG layout)}; OUTDIR=${2:?output folder}; BUDGET=${3:-540}
DEVICE=${DEVICE:-cuda}; PAPER_EPOCHS=${PAPER_EPOCHS:-10}; MAX_EPOCHS=${MAX_EPOCHS:-200}
RECIPES=${RECIPES:-default}; EPOCHS=${EPOCHS:-}; EPOCH_SECONDS=${EPOCH_SECONDS:-2.5}
SAVE_EVERY=${SAVE_EVERY:-10}; N_EXPLAIN=${N_EXPLAIN:-12}; SHIP_WEIGHTS=${SHIP_WEIGHTS:-1}
shm_free=$(df -Pm /dev/shm 2>/dev/null | awk 'NR == 2 {print $4}')
[ "${shm_free:-0}" -gt 8000 ] && RUNS=${RUNS:-/dev/shm/issue7} || RUNS=${RUNS:-/tmp/issue7}
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

score() {  # checkpoint, masks folder, metrics JSON[, predict options]: the validation images
  local checkpoint=$1 masks=$2 json=$3; shift 3
  endoxai predict --checkpoint "$checkpoint" --input "$DATA/images" --ids "$DATA/val.txt" \
    --output "$masks" --device "$DEVICE" --no-progress "$@" &&
  endoxai evaluate --pred "$masks" --truth "$DATA/masks" --ids "$DATA/val.txt" --output "$json"
}
evaluate() {  # run folder; predicts with and without TTA, scores both, and for a run that kept
  # a moving average (train.ema_decay > 0) its trained weights too
  score "$1/best.pt" "$1/val-masks" "$1/metrics.json" &&
  score "$1/best.pt" "$1/val-masks-tta" "$1/metrics-tta.json" --tta || return
  if grep -Eq '^ema_decay = 0\.0*[1-9]' "$1/config.toml" 2>/dev/null; then
    score "$1/best.pt" "$1/val-masks-trained" "$1/metrics-trained.json" --trained-weights
  fi
}
pack() {  # the small files so far and each run's validation masks (about 0.5 MB packed; no
  # checkpoints, no TTA masks), repacked after every phase
  (cd "$RUNS" && find . \( \( -name '*.json' -o -name '*.csv' -o -name '*.toml' -o -name '*.md' \) \
    -not -path '*/val-masks*' -o -path './*/val-masks/*.png' \) -print0 |
    tar --null -czf "$OUTDIR/issue7.tar.gz" -T -)
}

# 1. paper recipe: at most 45 % of the budget
if [ "$PAPER_EPOCHS" -gt 0 ]; then
  say "paper: train"
  timeout -s TERM $(( BUDGET * 45 / 100 )) "$PY" -m endoxai train --data "$DATA" --out "$RUNS/paper" \
    --config paper --epochs "$PAPER_EPOCHS" --save-every "$SAVE_EVERY" --device "$DEVICE" --no-progress
  say "paper: train exit $?"
fi

# 2. RECIPES one after another: EPOCHS, or as many epochs as fit in what is left once RESERVE
# seconds (a third of the budget unless set) are kept for the evaluations and 20 s per run for
# start-up (CUDA, decoding the data)
read -r -a recipes <<< "$RECIPES"
names=(); for recipe in "${recipes[@]}"; do names+=("$(basename "$recipe" .toml)"); done
avail=$(( $(left) - ${RESERVE:-$(( BUDGET / 3 ))} ))
train_end=$(( $(date +%s) + avail ))
by_time=$(awk -v a="$avail" -v n="${#recipes[@]}" -v s="$EPOCH_SECONDS" \
  'BEGIN {print int((a / n - 20) / s)}')
read -r -a epochs <<< "${EPOCHS:-$by_time}"
if [ ${#epochs[@]} -ne 1 ] && [ ${#epochs[@]} -ne ${#recipes[@]} ]; then
  say "EPOCHS: one number, or one per recipe (${#recipes[@]}), not '${epochs[*]}'"; exit 2
fi
for i in "${!recipes[@]}"; do
  e=${epochs[$i]:-${epochs[0]}}
  [ "$e" -gt "$MAX_EPOCHS" ] && e=$MAX_EPOCHS
  [ "$e" -lt 1 ] && e=1
  epochs[$i]=$e
done
say "train ${names[*]}: ${epochs[*]} epochs (${avail}s available)"
for i in "${!recipes[@]}"; do  # each until its epochs are done or the training window ends
  window=$(( train_end - $(date +%s) ))
  [ "$window" -lt 30 ] && { say "no time left to train ${names[$i]}"; continue; }
  say "train ${names[$i]}: ${epochs[$i]} epochs, at most ${window}s"
  timeout -s TERM "$window" "$PY" -m endoxai train --data "$DATA" --out "$RUNS/${names[$i]}" \
    --config "${recipes[$i]}" --epochs "${epochs[$i]}" --save-every "$SAVE_EVERY" \
    --device "$DEVICE" --no-progress
  say "train ${names[$i]} exit $?"
done

# 3. evaluation of every run (120 images each: seconds)
pack
per_image=()
for name in paper "${names[@]}"; do
  r=$RUNS/$name
  [ -f "$r/best.pt" ] || { say "no $r/best.pt"; continue; }
  say "evaluate $name"; evaluate "$r"; say "evaluate $name exit $?"
  [ -f "$r/metrics_per_image.csv" ] && per_image+=("$r/metrics_per_image.csv")
done
[ ${#per_image[@]} -gt 0 ] && "$PY" benchmarks/errors_by_size.py "${per_image[@]}" \
  --output "$RUNS/errors-by-size.md" > /dev/null
hist=(); for name in "${names[@]}"; do
  [ -f "$RUNS/$name/history.csv" ] && hist+=("$name=$RUNS/$name/history.csv"); done
if [ ${#hist[@]} -gt 0 ]; then  # the first recipe against each other one, epoch by epoch
  "$PY" benchmarks/compare_histories.py "${hist[@]}" \
    --output "$RUNS/compare-histories.md" > /dev/null
  "$PY" benchmarks/compare_histories.py "${hist[@]}" --metric fit_dice \
    --output "$RUNS/compare-histories.md" --append > /dev/null
fi
pack

# 4. faithfulness (on the GPU) and inference choices (CPU, all cores) on the best RECIPES run
best=$("$PY" - "$RUNS" "${names[@]}" <<'PY'
import json, sys
from pathlib import Path
scores = {}
for name in sys.argv[2:]:
    path = Path(sys.argv[1]) / name / "metrics.json"
    if path.is_file():
        scores[name] = json.loads(path.read_text())["medai"]["dice"]
print(max(scores, key=scores.get) if scores else "")
PY
)
if [ -n "$best" ]; then
  r=$RUNS/$best
  if [ "$SHIP_WEIGHTS" = 1 ]; then  # its generator in int8 parts, and what the copy scores
    say "ship_weights: $best"
    copy=$RUNS/shipped
    "$PY" benchmarks/ship_weights.py pack "$r/best.pt" "$OUTDIR/weights" &&
    "$PY" benchmarks/ship_weights.py unpack "$OUTDIR/weights" "$copy/best.pt" &&
    score "$copy/best.pt" "$copy/val-masks" "$r/metrics-shipped.json"
    say "ship_weights exit $?"; rm -rf "$copy"; pack
  fi
  say "evaluate-explanations on $best"
  timeout -s TERM $(( $(left) > 30 ? $(left) * 2 / 3 : 10 )) "$PY" -m endoxai evaluate-explanations \
    --run "$r" --data "$DATA" --n-images "$N_EXPLAIN" --device "$DEVICE" ||
  { say "evaluate-explanations failed on $DEVICE: 4 images on the CPU instead"
    timeout -s TERM $(( $(left) > 30 ? $(left) / 2 : 10 )) "$PY" -m endoxai evaluate-explanations \
      --run "$r" --data "$DATA" --n-images 4 --device cpu; }
  say "evaluate-explanations exit $?"; pack
  say "inference choices on $best"
  timeout -s TERM $(( $(left) > 15 ? $(left) - 5 : 5 )) "$PY" benchmarks/inference_choices.py \
    --checkpoint "$r/best.pt" --data "$DATA" --threads "$(nproc)" \
    --output "$r/inference-choices.md"
  say "inference choices exit $?"; pack
fi
say "done: $(tar -tzf "$OUTDIR/issue7.tar.gz" | wc -l) files in issue7.tar.gz"
