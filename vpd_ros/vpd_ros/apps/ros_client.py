# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The client side of vpd_node for the apps and the tests: one rclpy node in its own context.

Subscriptions that collect messages, publishers, service calls with timeouts, parameter
changes and lifecycle transitions, spun by a single-threaded executor in the caller's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Optional

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABLE = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE)


class RosClient:
    """An rclpy context with one node and a single-threaded executor spun on demand."""

    def __init__(self, node_name: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(node_name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        """Destroy the node and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``predicate()`` holds or ``timeout`` seconds pass; return its value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return predicate()
            self.executor.spin_once(timeout_sec=0.02)
        return True

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds``."""
        self.spin_until(lambda: False, seconds)

    def collect(self, kind: type, topic: str, qos: QoSProfile = RELIABLE) -> list:
        """Subscribe to ``topic``; return the list that the messages are appended to."""
        received: list = []
        self.node.create_subscription(kind, topic, received.append, qos)
        return received

    def call(self, kind: type, service: str, request: Any, timeout: float = 30.0) -> Any:
        """Call ``service`` and return the response.

        Raises:
            TimeoutError: the service did not appear or did not answer within ``timeout``.
        """
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

    def try_call(self, kind: type, service: str, request: Any,
                 timeout: float = 30.0) -> Optional[Any]:
        """Call ``service``; return the response, or None when it did not answer in time."""
        try:
            return self.call(kind, service, request, timeout)
        except TimeoutError:
            return None

    def set_parameters(self, node_name: str, values: Mapping[str, Any]) -> list:
        """Set parameters of ``node_name`` (absolute); return the SetParametersResult list."""
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return self.call(SetParameters, f'{node_name}/set_parameters', request).results

    def change_state(self, node_name: str, transition: int, timeout: float = 120.0) -> bool:
        """Request a lifecycle transition (``lifecycle_msgs/Transition`` id); return success."""
        request = ChangeState.Request(transition=Transition(id=transition))
        return self.call(ChangeState, f'{node_name}/change_state', request, timeout).success

    def state(self, node_name: str, timeout: float = 30.0) -> str:
        """Return the lifecycle state label of ``node_name`` ('' when it does not answer)."""
        reply = self.try_call(GetState, f'{node_name}/get_state', GetState.Request(), timeout)
        return reply.current_state.label if reply is not None else ''
