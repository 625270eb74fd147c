#!/usr/bin/env bash
# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Prepared GPU benchmark: baseline vs optimized engine, both heads, SD-1.5 sizes (random
# weights), 512x512 model input from a 480x640 frame, 1 and 4 queries. Installs nothing.
#
#   bench/gpu_bench.sh                       # .venv/bin/python if there, else python3
#   PYTHON=/path/to/cuda/python bench/gpu_bench.sh
#   DTYPE=bfloat16 COMPILE=reduce-overhead bench/gpu_bench.sh
#
# Writes gpu_bench.md and gpu_bench.json to $OUT when set, else ./bench-results/.
# Budget: under 8 minutes on one H100 (each engine warms up 3 frames, then 20 timed frames per
# query count; COMPILE other than none adds the compilation to the warm-up).
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/gpu_python.sh  # sets PYTHON when unset; defines gpu_python
DTYPE="${DTYPE:-float16}"
COMPILE="${COMPILE:-none}"
ITERATIONS="${ITERATIONS:-20}"
DEST="${OUT:-bench-results}"
mkdir -p "$DEST"

# Carried wheels, import and CUDA checks (exit 2 with the reason when this interpreter cannot).
gpu_python gpu_bench.sh vpd_ros.apps.bench || exit 2

exec timeout 450 "$PYTHON" -m vpd_ros.apps.bench --weights random:sd15 --device cuda \
    --dtype "$DTYPE" --compile "$COMPILE" --input-size 512x512 --frame-size 480x640 \
    --queries 1 4 --iterations "$ITERATIONS" --warmup 3 --compare-baseline \
    --markdown "$DEST/gpu_bench.md" --json "$DEST/gpu_bench.json"
