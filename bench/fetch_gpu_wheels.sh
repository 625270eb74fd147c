#!/usr/bin/env bash
# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Download, HERE (where PyPI is reachable), the pure-Python wheel that bench/gpu_bench.sh needs
# on a CUDA machine that has torch, transformers, safetensors, numpy and OpenCV but no diffusers
# (the lent H100/H200 image, as its package list reads). They land in .whl/ (ignored by git);
# gpu_bench.sh installs .whl/*.whl into a temporary folder before it runs. Then, e.g. with the
# workplace's device tool: run "bash bench/gpu_bench.sh" carrying ".whl".
set -euo pipefail

cd "$(dirname "$0")/.."
PIP="${PIP:-python3 -m pip}"
# Emptied first: a stale second version of a wheel would make the install there abort.
rm -rf .whl
mkdir .whl
# diffusers as pinned for this project, alone: its requirements are on the image (filelock,
# huggingface-hub, numpy, Pillow, regex, requests, safetensors; importlib_metadata only matters
# before Python 3.8, and the image runs 3.12).
$PIP download -q --no-deps --only-binary=:all: -d .whl "$(grep '^diffusers==' scripts/requirements.txt)"
ls -l .whl
