#!/usr/bin/env bash
# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Prepared GPU training of the shipped tiny model: continues depth and referring from the
# shipped weights (fresh optimiser, 256x256 inputs, bf16 autocast), writes fp16 weights ready
# to ship and their validation metrics (per category for referring). Installs nothing.
#
#   bench/gpu_train.sh                       # .venv/bin/python if there, else python3
#   PYTHON=/path/to/cuda/python bench/gpu_train.sh
#   DRY_RUN=1 bench/gpu_train.sh             # CPU rehearsal: a few steps on a few scenes
#
# Writes to $OUT when set, else ./bench-results/train/: tiny/{depth,refer}/ (fp16 weights),
# eval_validation.json, train_*.log, and the run's settings in settings.txt.
# Budget: about 8 minutes of one H100/H200 (rendering the scenes on every core ~1.5 min,
# both trainings side by side ~4 min, each capped by TRAIN_TIMEOUT; validation ~1.5 min).
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/gpu_python.sh  # sets PYTHON when unset; defines gpu_python
VAL_SEEDS="${VAL_SEEDS:-1100000:1100200}"
if [ "${DRY_RUN:-0}" = 1 ]; then
    DEVICE=cpu PRECISION=fp32 SEEDS="${SEEDS:-0:16}" VAL_SEEDS=1100000:1100002
    REFER_STEPS=2 DEPTH_STEPS=2 BATCH=2 TRAIN_TIMEOUT=300
else
    DEVICE=cuda PRECISION="${PRECISION:-bf16}" SEEDS="${SEEDS:-0:8000}"
    REFER_STEPS="${REFER_STEPS:-4000}" DEPTH_STEPS="${DEPTH_STEPS:-3000}" BATCH="${BATCH:-32}"
    TRAIN_TIMEOUT="${TRAIN_TIMEOUT:-270}"
fi
REFER_LR="${REFER_LR:-2e-4}" DEPTH_LR="${DEPTH_LR:-3e-4}" DEPTH_MIN_LR="${DEPTH_MIN_LR:-3e-5}"
WORKERS="${WORKERS:-$(nproc)}"
DEST="${OUT:-bench-results/train}"
WEIGHTS="vpd_ros/vpd_ros/weights/tiny"

# Carried wheels, import and CUDA checks (exit 2 with the reason when this interpreter cannot).
[ "$DEVICE" = cpu ] && export SKIP_CUDA_CHECK=1
gpu_python gpu_train.sh vpd_ros.apps.cli || exit 2
VPD=("$PYTHON" -m vpd_ros.apps.cli)
CACHE="${CACHE:-$(mktemp -d)}"
WORK="$(mktemp -d)"
mkdir -p "$DEST"
{
    echo "date $(date -u +%FT%TZ)  device $DEVICE  precision $PRECISION  seeds $SEEDS"
    echo "refer: steps $REFER_STEPS lr $REFER_LR; depth: steps $DEPTH_STEPS lr $DEPTH_LR" \
        "min-lr $DEPTH_MIN_LR; batch $BATCH; 256x256; validation seeds $VAL_SEEDS"
} | tee "$DEST/settings.txt"

# Render the training scenes once, on every core (both trainings then read the same cache).
start=$SECONDS
# (python -c, not a here-document: the spawned workers re-import the main module by its path.)
"$PYTHON" -c '
import sys
from vpd_ros.apps.cli_data import parse_seeds
from vpd_ros.data.datasets import SceneCache
seeds = parse_seeds(sys.argv[1])
SceneCache.build(f"{sys.argv[2]}/seeds{seeds.start}-{seeds.stop}_256", seeds, 256,
                 workers=int(sys.argv[3]))
' "$SEEDS" "$CACHE" "$WORKERS"
echo "rendered $SEEDS in $((SECONDS - start)) s" | tee -a "$DEST/settings.txt"

# Both tasks side by side; a run cut by TRAIN_TIMEOUT ships its last checkpoint (every 250 steps).
COMMON=(--preset tiny --seeds "$SEEDS" --batch-size "$BATCH" --image-size 256 --device "$DEVICE"
        --precision "$PRECISION" --cache "$CACHE" --save-every 250 --save-dtype float16)
start=$SECONDS
timeout "$TRAIN_TIMEOUT" "${VPD[@]}" train --task refer --init "$WEIGHTS/refer" \
    --out "$WORK/refer" --steps "$REFER_STEPS" --lr "$REFER_LR" "${COMMON[@]}" \
    > "$DEST/train_refer.log" 2>&1 &
refer_pid=$!
timeout "$TRAIN_TIMEOUT" "${VPD[@]}" train --task depth --init "$WEIGHTS/depth" \
    --out "$WORK/depth" --steps "$DEPTH_STEPS" --lr "$DEPTH_LR" --min-lr "$DEPTH_MIN_LR" \
    "${COMMON[@]}" > "$DEST/train_depth.log" 2>&1 &
depth_pid=$!
wait "$refer_pid" || echo "refer training ended with $? (124: cut by TRAIN_TIMEOUT)"
wait "$depth_pid" || echo "depth training ended with $? (124: cut by TRAIN_TIMEOUT)"
echo "trained in $((SECONDS - start)) s" | tee -a "$DEST/settings.txt"

# Ship fp16: the finished model, or else the last checkpoint.
for task in refer depth; do
    src="$WORK/$task"
    [ -f "$src/train_summary.json" ] || src="$WORK/$task/checkpoint"
    "$PYTHON" - "$task" "$src" "$DEST/tiny/$task" <<'EOF'
import sys
import torch
from vpd_ros.model import VPDDepth, VPDRefer
cls = VPDRefer if sys.argv[1] == 'refer' else VPDDepth
cls.from_pretrained(sys.argv[2]).save_pretrained(sys.argv[3], dtype=torch.float16)
EOF
    cp "$WORK/$task/train_summary.json" "$DEST/train_summary_$task.json" 2>/dev/null || true
done
tail -n 3 "$DEST"/train_*.log

start=$SECONDS
"${VPD[@]}" eval --weights "$DEST/tiny" --device "$DEVICE" --seeds "$VAL_SEEDS" --by-category \
    --json-out "$DEST/eval_validation.json" 2>&1 | grep -v '^\(depth\|refer\): *[0-9]*%' \
    | tee "$DEST/eval_validation.txt"
echo "validated in $((SECONDS - start)) s" | tee -a "$DEST/settings.txt"
