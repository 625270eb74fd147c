# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the node tests share: start ``vpd_node`` as a real process, talk to it over DDS.

:func:`start_node` runs the installed console script (``.venv/bin/vpd_node``, what
``ros2 run vpd_ros vpd_node`` runs) with the shipped config/vpd.yaml plus a test YAML, in a
namespace of its own. :class:`Client` is this process's rclpy side: subscriptions that collect
messages, service calls, parameter changes and lifecycle transitions.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import harness
import numpy as np
import rclpy
import yaml
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

PACKAGE_DIR = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = PACKAGE_DIR / 'config' / 'vpd.yaml'
VPD_NODE = Path(sys.executable).parent / 'vpd_node'
#: Seconds for the node process to import torch, load random:tiny and warm up.
START_TIMEOUT = 120.0

RELIABLE = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def start_node(tmp: Path, env: Mapping[str, str], namespace: str,
               parameters: Mapping[str, Any], *extra: str) -> harness.RosProcess:
    """Start vpd_node with the shipped YAML and ``parameters`` (a second YAML); wait for it.

    Returns the running process once it logged ``active`` (autostart) or ``configure failed``.
    """
    params_file = tmp / 'params.yaml'
    params_file.write_text(yaml.safe_dump({'/**': {'ros__parameters': dict(parameters)}}))
    command = [str(VPD_NODE), '--ros-args', '--params-file', str(SHIPPED_CONFIG),
               '--params-file', str(params_file), '-p', 'weights:=random:tiny',
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


class Client:
    """An rclpy context of the test process with one node and a single-threaded executor."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(harness.unique_name('vpd_test_client'),
                                      context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        """Destroy the node and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def name(self, relative: str) -> str:
        """Return the absolute name of ``relative`` in the node's namespace."""
        return f'{self.namespace}/{relative}'

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``predicate()`` holds or ``timeout`` seconds pass; return its value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return predicate()
            self.executor.spin_once(timeout_sec=0.02)
        return True

    def collect(self, kind: type, relative: str, qos: QoSProfile = RELIABLE) -> list:
        """Subscribe to ``relative`` (or an absolute name); return the list it fills."""
        received: list = []
        topic = relative if relative.startswith('/') else self.name(relative)
        self.node.create_subscription(kind, topic, received.append, qos)
        return received

    def publisher(self, kind: type, relative: str, qos: QoSProfile = RELIABLE) -> Any:
        """Return a publisher on ``relative`` in the node's namespace."""
        return self.node.create_publisher(kind, self.name(relative), qos)

    def call(self, kind: type, service: str, request: Any, timeout: float = 30.0) -> Any:
        """Call ``service`` (absolute name) and return the response; fail after ``timeout``."""
        client = self.node.create_client(kind, service)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                raise TimeoutError(f'service {service} not available in {timeout} s')
            future = client.call_async(request)
            if not self.spin_until(future.done, timeout):
                raise TimeoutError(f'service {service} did not answer in {timeout} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node_name: str, values: Mapping[str, Any]) -> list:
        """Set parameters of ``node_name`` (absolute); return the SetParametersResult list."""
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return self.call(SetParameters, f'{node_name}/set_parameters', request).results

    def change_state(self, node_name: str, transition: int, timeout: float = 120.0) -> bool:
        """Request a lifecycle transition (``lifecycle_msgs/Transition`` id); return success."""
        request = ChangeState.Request(transition=Transition(id=transition))
        return self.call(ChangeState, f'{node_name}/change_state', request, timeout).success

    def state(self, node_name: str) -> str:
        """Return the lifecycle state label of ``node_name``."""
        return self.call(GetState, f'{node_name}/get_state',
                         GetState.Request()).current_state.label
