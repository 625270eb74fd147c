# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Test harness that keeps every ROS 2 process of a test session on loopback.

The network rule of this project: anything that starts DDS runs with
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (Kilted ignores ``ROS_LOCALHOST_ONLY``), a private
``ROS_DOMAIN_ID`` and ``ROS_LOG_DIR`` in a temporary folder. :func:`ros_env` builds such an
environment for child processes, :func:`apply_session_env` puts the same settings into this
process, and :class:`RosProcess` runs a child with it, logs its output to a file and always
ends its whole process group.
"""

from __future__ import annotations

import os
import random
import re

from vpd_ros.apps.rosenv import (  # noqa: F401  (re-exported for the tests)
    DOMAIN_ID_RANGE, RosProcess, apply_session_env, python_command, ros_env, ros_settings,
    session_domain_id, set_session_domain_id)


def unique_name(prefix: str) -> str:
    """Return ``prefix`` with a random suffix: names that other sessions cannot share."""
    if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', prefix):
        raise ValueError(f'prefix must be a ROS name token [A-Za-z][A-Za-z0-9_]*, got {prefix!r}')
    return f'{prefix}_{os.getpid()}_{random.getrandbits(32):08x}'
