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

import dataclasses
import os
import random
import re
import time
from collections.abc import Callable
from typing import Any

from vpd_ros.apps.rosenv import (  # noqa: F401  (re-exported for the tests)
    DOMAIN_ID_RANGE, SESSION_DOMAIN_ID, RosProcess, apply_session_env, python_command, ros_env,
    ros_settings)


@dataclasses.dataclass
class RosTestContext:
    """An initialised rclpy context of the test process with one node and an executor."""

    context: Any
    node: Any
    executor: Any

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Spin the executor until ``predicate()`` is true or ``timeout`` seconds pass.

        Returns the predicate's last value, so callers can assert on it.
        """
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return predicate()
            self.executor.spin_once(timeout_sec=min(0.05, remaining))
        return True


def unique_name(prefix: str) -> str:
    """Return ``prefix`` with a random suffix: names that other sessions cannot share."""
    if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', prefix):
        raise ValueError(f'prefix must be a ROS name token [A-Za-z][A-Za-z0-9_]*, got {prefix!r}')
    return f'{prefix}_{os.getpid()}_{random.getrandbits(32):08x}'
