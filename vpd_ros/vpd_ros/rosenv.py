# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The project's network rule as code: every ROS 2 process it starts stays on loopback.

Anything that starts DDS runs with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (Kilted ignores
``ROS_LOCALHOST_ONLY``), a private ``ROS_DOMAIN_ID`` and ``ROS_LOG_DIR`` in a temporary folder.
The demo, the benchmarks, the soak run and the tests all build their environments here.
No rclpy import: this must run before ROS is initialised.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path

#: Domain IDs the harness draws from: clear of the default 0 and of the usual robot setups, and
#: valid for Fast DDS's default port mapping.
DOMAIN_ID_RANGE = (100, 230)

#: The one private domain of this process and its children (each run draws its own).
SESSION_DOMAIN_ID = random.SystemRandom().randint(*DOMAIN_ID_RANGE)

#: Variables that could send DDS traffic beyond loopback or to peers outside this session.
_LEAKY_VARIABLES = (
    'ROS_STATIC_PEERS',
    'ROS_DISCOVERY_SERVER',
    'ROS_SUPER_CLIENT',
    'FASTRTPS_DEFAULT_PROFILES_FILE',
    'FASTDDS_DEFAULT_PROFILES_FILE',
    'CYCLONEDDS_URI',
    'ROS_SECURITY_ENABLE',
)


def ros_settings(log_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Return the ROS variables of the network rule, with ROS logs written under ``log_dir``."""
    return {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_DOMAIN_ID': str(SESSION_DOMAIN_ID),
        'ROS_LOG_DIR': str(Path(log_dir) / 'ros_log'),
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
        'PYTHONUNBUFFERED': '1',
    }


def _strip_bootstrap(env: dict[str, str]) -> None:
    """Remove what ros_wheels_bootstrapper added to this process's environment, in place.

    Its ``.pth`` re-executes Python with ``LD_LIBRARY_PATH`` pointing into this venv and marks
    the process with ``_ROS_WHEELS_BOOTSTRAP_COMPLETE``. A child running another venv would
    inherit the mark and the wrong libraries (``ImportError: librcl_action.so``); without them
    every child computes its own (about 55 ms).
    """
    if env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None) is None:
        return
    prefix = os.path.realpath(sys.prefix)
    kept = [
        part for part in env.get('LD_LIBRARY_PATH', '').split(os.pathsep)
        if part and not os.path.realpath(part).startswith(prefix + os.sep)
    ]
    if kept:
        env['LD_LIBRARY_PATH'] = os.pathsep.join(kept)
    else:
        env.pop('LD_LIBRARY_PATH', None)


def ros_env(tmpdir: str | os.PathLike[str],
            base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment for a child process that obeys the network rule.

    Starts from ``base`` (default: this process's environment), sets the variables of
    :func:`ros_settings` with the ROS log folder under ``tmpdir``, removes variables that could
    reach peers beyond loopback, strips the ROS wheels' bootstrap leak and, when no ROS is
    sourced, points ``AMENT_PREFIX_PATH`` at this venv as a sourced ROS would.
    """
    env = dict(os.environ if base is None else base)
    for name in _LEAKY_VARIABLES:
        env.pop(name, None)
    _strip_bootstrap(env)
    env.update(ros_settings(tmpdir))
    env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    Path(env['ROS_LOG_DIR']).mkdir(parents=True, exist_ok=True)
    return env


def apply_session_env(log_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Put the network-rule settings into ``os.environ`` for in-process rclpy; return them.

    The bootstrap variables stay: this process already runs with them.
    """
    settings = ros_settings(log_dir)
    for name in _LEAKY_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(settings)
    os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    Path(settings['ROS_LOG_DIR']).mkdir(parents=True, exist_ok=True)
    return settings
