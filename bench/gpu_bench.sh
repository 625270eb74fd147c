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
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
DTYPE="${DTYPE:-float16}"
COMPILE="${COMPILE:-none}"
ITERATIONS="${ITERATIONS:-20}"
DEST="${OUT:-bench-results}"
mkdir -p "$DEST"

# Wheels fetched by bench/fetch_gpu_wheels.sh (for a CUDA image without diffusers).
if compgen -G ".whl/*.whl" > /dev/null; then
    SITE="$(mktemp -d)"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/vpd_ros${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c 'import diffusers, transformers, vpd_ros.apps.bench' || {
    echo "gpu_bench.sh: $PYTHON cannot import diffusers/transformers/vpd_ros.apps.bench; on a machine" >&2
    echo "without diffusers run bench/fetch_gpu_wheels.sh where PyPI is reachable, carry .whl/." >&2
    exit 2
}
if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    "$PYTHON" -c 'import torch; print(f"torch {torch.__version__}, CUDA build {torch.version.cuda}")' || true
    echo "gpu_bench.sh: torch.cuda is not available with $PYTHON (a CPU-only torch wheel or no" >&2
    echo "GPU visible). Run with PYTHON=<an interpreter whose torch has CUDA>." >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

exec timeout 450 "$PYTHON" -m vpd_ros.apps.bench --weights random:sd15 --device cuda \
    --dtype "$DTYPE" --compile "$COMPILE" --input-size 512x512 --frame-size 480x640 \
    --queries 1 4 --iterations "$ITERATIONS" --warmup 3 --compare-baseline \
    --markdown "$DEST/gpu_bench.md" --json "$DEST/gpu_bench.json"
