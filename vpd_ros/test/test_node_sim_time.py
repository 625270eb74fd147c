# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""vpd_node with ``use_sim_time`` and no ``/clock``: its health is still reported.

A simulator that is paused, or not started yet, publishes no ``/clock``; ROS time then stands
still while the node keeps serving. The node object runs in this process (unconfigured: no
engine is needed for diagnostics) with a subscriber in the same context.
"""

from __future__ import annotations

import time

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from vpd_ros.ros.node import VPDNode

pytestmark = pytest.mark.ros


def test_diagnostics_flow_with_sim_time_and_no_clock() -> None:
    """/diagnostics arrives from a node on simulated time while no /clock is published."""
    context = Context()
    rclpy.init(context=context)
    node = VPDNode(context=context, parameter_overrides=[
        Parameter('use_sim_time', value=True), Parameter('autostart', value=False)])
    listener = rclpy.create_node('diagnostics_listener', context=context)
    received = []
    listener.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda msg: received.extend(s for s in msg.status if s.name.startswith('vpd_node')), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(listener)
    try:
        assert node.get_parameter('use_sim_time').value
        deadline = time.monotonic() + 30.0
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert received, 'no /diagnostics from the node while ROS time stood still'
        values = {kv.key: kv.value for kv in received[0].values}
        assert values['state'] == 'unconfigured'
    finally:
        executor.shutdown()
        listener.destroy_node()
        node.destroy_node()
        rclpy.shutdown(context=context)
