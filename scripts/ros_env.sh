# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Source this file (`source scripts/ros_env.sh`) to work by hand in the development venv with the
# project's network rule: DDS discovery on this host only, a private domain, logs in /tmp.
# ROS_DOMAIN_ID may be set before sourcing (for example to reach an rviz on the same host).

_vpd_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
# shellcheck disable=SC1091
source "${VENV:-$_vpd_root/.venv}/bin/activate"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(shuf -i 100-230 -n 1)}
export ROS_LOG_DIR=${TMPDIR:-/tmp}/vpd_ros_ros_log
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
export AMENT_PREFIX_PATH=${VIRTUAL_ENV}${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
unset ROS_STATIC_PEERS ROS_DISCOVERY_SERVER FASTRTPS_DEFAULT_PROFILES_FILE \
  FASTDDS_DEFAULT_PROFILES_FILE
echo "vpd_ros env: venv $VIRTUAL_ENV, ROS_DOMAIN_ID=$ROS_DOMAIN_ID, discovery LOCALHOST" >&2
unset _vpd_root
