#!/usr/bin/env bash
# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Prepared GPU benchmark of the deployment backends: TensorRT fp16 (ONNX Runtime's TensorRT
# execution provider, engines cached under $CACHE) vs the torch engine fp16, both heads, SD-1.5
# sizes (random weights), 512x512 model input from a 480x640 frame, 1 and 4 queries; the table
# holds per-stage times, the speed-up over torch and the deviation from torch. Installs nothing.
# NOT RUN YET: no GPU was lent while it was written (docs/performance.md, Deployment backends).
#
#   bench/gpu_backends.sh                       # .venv/bin/python if there, else python3
#   PYTHON=/path/to/cuda/python bench/gpu_backends.sh
#   PRECISION=fp32 DTYPE=float32 bench/gpu_backends.sh
#
# Needs torch with CUDA, diffusers (bench/fetch_gpu_wheels.sh, as for gpu_bench.sh), onnx and
# onnxruntime-gpu with the TensorRT execution provider (TensorRT libraries on the library path).
# Writes gpu_backends.md and gpu_backends.json to $OUT when set, else ./bench-results/.
# Budget: the first run exports the graphs (fp32 ONNX of ~4 GB with external data, a few
# minutes) and builds the TensorRT engines (minutes); a second run with the same $CACHE starts
# from the cached engines.
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/gpu_python.sh  # sets PYTHON when unset; defines gpu_python
DTYPE="${DTYPE:-float16}"
PRECISION="${PRECISION:-fp16}"
ITERATIONS="${ITERATIONS:-20}"
DEST="${OUT:-bench-results}"
CACHE="${CACHE:-${TMPDIR:-/tmp}/vpd_ros_trt_cache}"
mkdir -p "$DEST"

# Carried wheels, import and CUDA checks (exit 2 with the reason when this interpreter cannot).
gpu_python gpu_backends.sh 'onnx, vpd_ros.apps.bench' || exit 2
if ! "$PYTHON" -c '
import sys, onnxruntime as ort
sys.exit(0 if "TensorrtExecutionProvider" in ort.get_available_providers() else 1)'; then
    "$PYTHON" -c 'import onnxruntime as ort; print("onnxruntime", ort.__version__,
                  ort.get_available_providers())' || true
    echo "gpu_backends.sh: onnxruntime has no TensorrtExecutionProvider (install" >&2
    echo "onnxruntime-gpu and TensorRT, e.g. pip install onnxruntime-gpu tensorrt-cu12)." >&2
    exit 2
fi

exec timeout 560 "$PYTHON" -m vpd_ros.apps.bench --weights random:sd15 --device cuda \
    --dtype "$DTYPE" --backend torch tensorrt --precision "$PRECISION" --cache-dir "$CACHE" \
    --input-size 512x512 --frame-size 480x640 --queries 1 4 --iterations "$ITERATIONS" \
    --warmup 3 --markdown "$DEST/gpu_backends.md" --json "$DEST/gpu_backends.json"
