# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the node tests share: start ``vpd_node`` as a real process, talk to it over DDS.

:func:`start_node` runs the installed console script (``.venv/bin/vpd_node``, what
``ros2 run vpd_ros vpd_node`` runs) with the shipped config/vpd.yaml plus a test YAML, in a
namespace of its own. :class:`Client` is this process's rclpy side (vpd_ros.apps.ros_client)
with names in the node's namespace.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import harness
import numpy as np
import yaml
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from vpd_ros.apps.ros_client import RELIABLE, RosClient

PACKAGE_DIR = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = PACKAGE_DIR / 'config' / 'vpd.yaml'
VPD_NODE = Path(sys.executable).parent / 'vpd_node'
#: Seconds for the node process to import torch, load random:tiny and warm up.
START_TIMEOUT = 120.0

LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


DIAGNOSTIC_PERIOD = 0.25  # seconds; the node's default is 1.0


def start_node(tmp: Path, env: Mapping[str, str], namespace: str,
               parameters: Mapping[str, Any], *extra: str) -> harness.RosProcess:
    """Start vpd_node with the shipped YAML and ``parameters`` (a second YAML); wait for it.

    Returns the running process once it logged ``active`` (autostart) or ``configure failed``.
    /diagnostics comes every DIAGNOSTIC_PERIOD seconds, so that tests waiting on it wait less.
    """
    params_file = tmp / 'params.yaml'
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': dict(parameters)}}))
    command = [str(VPD_NODE), '--ros-args', '--params-file', str(SHIPPED_CONFIG),
               '--params-file', str(params_file), '-p', 'weights:=random:tiny',
               '-p', f'diagnostic_updater.period:={DIAGNOSTIC_PERIOD}',
               '-r', f'__ns:={namespace}', *extra]
    process = harness.RosProcess(command, env, tmp / 'vpd_node.log', sigint_timeout=15.0)
    process.start()
    try:
        process.wait_for_line(r'\]: (active: |configure failed)', timeout=START_TIMEOUT)
    except BaseException:
        process.stop()
        raise
    return process


def image_msg(rgb: np.ndarray, frame_id: str, sec: int, encoding: str = 'rgb8') -> Image:
    """Return an Image of (H, W, 3) uint8 RGB in rgb8 or bgr8 with the given header."""
    pixels = rgb[..., ::-1] if encoding == 'bgr8' else rgb
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                step=rgb.shape[1] * 3)
    msg.header.frame_id, msg.header.stamp.sec = frame_id, sec
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return msg


def image_array(msg: Image) -> np.ndarray:
    """Return a 32FC1 or mono8 Image as an (H, W) array (test-side decoding)."""
    dtype = {'32FC1': np.float32, 'mono8': np.uint8}[msg.encoding]
    return np.frombuffer(bytes(msg.data), dtype=dtype).reshape(msg.height, msg.width)


class Client(RosClient):
    """The test process's client of one vpd_node: names resolve in the node's namespace."""

    def __init__(self, namespace: str) -> None:
        super().__init__(harness.unique_name('vpd_test_client'))
        self.namespace = namespace

    def name(self, relative: str) -> str:
        """Return the absolute name of ``relative`` in the node's namespace."""
        return f'{self.namespace}/{relative}'

    def collect(self, kind: type, relative: str, qos: QoSProfile = RELIABLE) -> list:
        """Subscribe to ``relative`` (or an absolute name); return the list it fills."""
        return super().collect(kind, relative if relative.startswith('/') else self.name(relative),
                               qos)

    def publisher(self, kind: type, relative: str, qos: QoSProfile = RELIABLE) -> Any:
        """Return a publisher on ``relative`` in the node's namespace."""
        return self.node.create_publisher(kind, self.name(relative), qos)
