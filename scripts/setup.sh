#!/usr/bin/env bash
# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Create or update the development venv: torch, the ROS 2 Kilted wheels, the interface build
# dependencies and the dev tools; build vpd_ros_interfaces into the venv with plain CMake; install
# vpd_ros editable. Idempotent: a stamp keyed on everything that feeds the result makes a repeated
# run return in well under a second.
#
# Environment: VENV (default <repo>/.venv), PYTHON (default python3.11; the ROS wheels are cp311),
# BUILD_DIR (default <repo>/build), REQ (default scripts/requirements.txt; setup-jazzy.sh passes
# the Jazzy pins), FORCE=1 to ignore the stamp.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
REQ=${REQ:-$ROOT/scripts/requirements.txt}
STAMP=$VENV/.vpd_ros_setup.stamp

# A parent process of another ROS-wheels venv leaks its bootstrap mark and library path; the
# venv's own interpreters must compute theirs.
if [[ -n "${_ROS_WHEELS_BOOTSTRAP_COMPLETE:-}" ]]; then
  unset _ROS_WHEELS_BOOTSTRAP_COMPLETE LD_LIBRARY_PATH
fi

log() { printf '[setup] %s\n' "$*" >&2; }

# Everything whose change must trigger a re-run: this script, the pins, the interface sources
# and the vpd_ros packaging. (Launch, config and rviz files need none: the venv's share/vpd_ros
# is a link to the source folder.)
setup_key() {
  (
    cd "$ROOT"
    printf '%s\n%s\n' "$ROOT" "$VENV"
    find scripts/setup.sh "$REQ" vpd_ros_interfaces vpd_ros/setup.py \
      vpd_ros/setup.cfg vpd_ros/package.xml vpd_ros/resource \
      -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -d' ' -f1
}

venv_ok() {
  [[ -x "$VENV/bin/python" ]] &&
    "$VENV/bin/python" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' \
      2>/dev/null
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

# torch first and pinned: anything that pulls an unpinned torch later finds it satisfied.
log "installing torch"
"${PIP[@]}" install -q 'torch==2.13.0'
log "installing pinned requirements"
"${PIP[@]}" install -q -r "$REQ"

# The wheels' exported CMake targets name the wheel build machine's Python and numpy include
# directories; point them at this venv's before configuring.
log "fixing include paths in the wheels' CMake exports"
"$PY" - "$VENV" <<'PYEOF'
import glob
import re
import sys
import sysconfig

import numpy

venv = sys.argv[1]
py_inc = sysconfig.get_paths()['include']
np_inc = numpy.get_include()
np_pat = re.compile(r'/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include')
py_pat = re.compile(r'/opt/python/cp3\d+-cp3\d+/include/python3\.\d+')
changed = 0
for path in glob.glob(f'{venv}/share/*/cmake/*.cmake'):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    new = py_pat.sub(py_inc, np_pat.sub(np_inc, text))
    if new != text:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(new)
        changed += 1
print(f'[setup] rewrote {changed} CMake export files', file=sys.stderr)
PYEOF

log "building vpd_ros_interfaces into the venv"
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
"${PIP[@]}" install -q --no-build-isolation -e "$ROOT/vpd_ros"

# An editable install copies no data_files: register the package in the venv's ament index and
# point its share folder at the source (like colcon --symlink-install), so that
# get_package_share_directory('vpd_ros') works with AMENT_PREFIX_PATH=$VENV.
mkdir -p "$VENV/share/ament_index/resource_index/packages"
: >"$VENV/share/ament_index/resource_index/packages/vpd_ros"
rm -rf "$VENV/share/vpd_ros"
ln -s "$ROOT/vpd_ros" "$VENV/share/vpd_ros"

log "checking the result"
(cd / && "$PY" -c 'import rclpy, vpd_ros, vpd_ros_interfaces.msg, vpd_ros_interfaces.srv')
for exe in vpd-ros vpd_node vpd_sim_camera; do
  [[ -x "$VENV/bin/$exe" ]] || { log "missing $VENV/bin/$exe"; exit 1; }
done

echo "$KEY" >"$STAMP"
log "done ($VENV)"
