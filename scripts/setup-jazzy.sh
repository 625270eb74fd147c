#!/usr/bin/env bash
# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Create or update the ROS 2 Jazzy test venv (default <repo>/.venv-jazzy) next to the Kilted
# development venv: torch, the ros-jazzy-* wheels, the same Python packages as the Kilted venv,
# vpd_ros_interfaces built with the Jazzy rosidl (plain CMake) and vpd_ros editable. `make
# test-jazzy` runs the node tests with it. Same steps as scripts/setup.sh with Jazzy pins;
# idempotent through a stamp.
#
# Environment: VENV (default <repo>/.venv-jazzy), PYTHON (default python3.11; the ROS wheels are
# cp311), BUILD_DIR (default <repo>/build/jazzy), FORCE=1 to ignore the stamp.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv-jazzy}
PYTHON=${PYTHON:-python3.11}
BUILD_DIR=${BUILD_DIR:-$ROOT/build/jazzy}
REQ=$ROOT/scripts/requirements-jazzy.txt
STAMP=$VENV/.vpd_ros_setup_jazzy.stamp

# Started from the Kilted venv (make, pytest), this shell carries that venv's bootstrap mark and
# library path: with them the Jazzy interpreter would load Kilted libraries.
unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH

log() { printf '[setup-jazzy] %s\n' "$*" >&2; }

# The Python packages shared with the Kilted venv must carry the same pins.
pins() { grep -E '^[A-Za-z0-9_.-]+==' "$1" | grep -v -E '^ros-' | LC_ALL=C sort; }
mismatch=$(LC_ALL=C comm -23 <(pins "$REQ") <(pins "$ROOT/scripts/requirements.txt") || true)
if [[ -n "$mismatch" ]]; then
  log "pins in requirements-jazzy.txt that differ from requirements.txt:"
  printf '  %s\n' $mismatch >&2
  exit 1
fi

setup_key() {
  (
    cd "$ROOT"
    printf '%s\n%s\n' "$ROOT" "$VENV"
    find scripts/setup-jazzy.sh scripts/requirements-jazzy.txt vpd_ros_interfaces \
      vpd_ros/setup.py vpd_ros/setup.cfg vpd_ros/package.xml vpd_ros/resource \
      -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -d' ' -f1
}

venv_ok() {
  [[ -x "$VENV/bin/python" ]] &&
    "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null
}

KEY=$(setup_key)
if [[ "${FORCE:-0}" != 1 ]] && venv_ok && [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$KEY" ]]; then
  log "up to date ($VENV)"
  exit 0
fi

if ! venv_ok; then
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "no $PYTHON found: set PYTHON to a Python 3.11 interpreter (the ROS wheels are cp311)"
    exit 1
  fi
  if [[ -e "$VENV" && ! -f "$VENV/pyvenv.cfg" ]]; then
    log "refusing to replace $VENV: it exists and is not a venv"
    exit 1
  fi
  log "creating venv $VENV with $PYTHON"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
PIP=("$PY" -m pip --disable-pip-version-check)

log "installing torch"
"${PIP[@]}" install -q 'torch==2.13.0'
log "installing pinned requirements (Jazzy)"
"${PIP[@]}" install -q -r "$REQ"

log "fixing include paths in the wheels' CMake exports"
"$PY" - "$VENV" <<'PYEOF'
import glob
import re
import sys
import sysconfig

import numpy

venv = sys.argv[1]
replacements = (
    (re.compile(r'/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include'),
     numpy.get_include()),
    (re.compile(r'/opt/python/cp3\d+-cp3\d+/include/python3\.\d+'),
     sysconfig.get_paths()['include']),
)
changed = 0
for path in glob.glob(f'{venv}/share/*/cmake/*.cmake'):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    new = text
    for pattern, local in replacements:
        new = pattern.sub(local, new)
    if new != text:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(new)
        changed += 1
print(f'[setup-jazzy] rewrote {changed} CMake export files', file=sys.stderr)
PYEOF

log "building vpd_ros_interfaces into the venv (Jazzy rosidl)"
IFACE_BUILD=$BUILD_DIR/vpd_ros_interfaces
rm -rf "$IFACE_BUILD"
mkdir -p "$BUILD_DIR"
export AMENT_PREFIX_PATH=$VENV
cmake -S "$ROOT/vpd_ros_interfaces" -B "$IFACE_BUILD" -Wno-dev \
  -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF >"$BUILD_DIR/vpd_ros_interfaces.configure.log" 2>&1 \
  || { tail -n 40 "$BUILD_DIR/vpd_ros_interfaces.configure.log"; exit 1; }
cmake --build "$IFACE_BUILD" -j "$(nproc)" >"$BUILD_DIR/vpd_ros_interfaces.build.log" 2>&1 \
  || { tail -n 40 "$BUILD_DIR/vpd_ros_interfaces.build.log"; exit 1; }
cmake --install "$IFACE_BUILD" >/dev/null

log "installing vpd_ros (editable)"
"${PIP[@]}" install -q --no-build-isolation --no-deps -e "$ROOT/vpd_ros"

# As in setup.sh: register vpd_ros in the venv's ament index, share folder linked to the source.
mkdir -p "$VENV/share/ament_index/resource_index/packages"
: >"$VENV/share/ament_index/resource_index/packages/vpd_ros"
rm -rf "$VENV/share/vpd_ros"
ln -s "$ROOT/vpd_ros" "$VENV/share/vpd_ros"

log "checking the result"
(cd / && "$PY" -c '
import importlib.metadata as metadata
import rclpy.lifecycle, vpd_ros, vpd_ros_interfaces.msg, vpd_ros_interfaces.srv
print("[setup-jazzy] rclpy", metadata.version("ros-rclpy"), "(Jazzy)")
')
for exe in vpd-ros vpd_node vpd_sim_camera; do
  [[ -x "$VENV/bin/$exe" ]] || { log "missing $VENV/bin/$exe"; exit 1; }
done

echo "$KEY" >"$STAMP"
log "done ($VENV)"
