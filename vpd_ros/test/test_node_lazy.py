# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Lazy mode: vpd_node runs no inference while nobody needs its outputs.

One node process (random:tiny at a 64x64 input) with ``lazy: true`` (the default); this process
publishes frames and only later subscribes to an output.
"""

from __future__ import annotations

from pathlib import Path

import harness
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from helpers.vpd_client import Client, image_msg, start_node
from sensor_msgs.msg import Image

from vpd_ros_interfaces.srv import Ground

pytestmark = pytest.mark.ros

RGB = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def test_no_inference_without_subscribers_until_one_comes(tmp_path: Path) -> None:
    """No subscriber: frames count as idle; a ~/ground request or a subscriber brings inference."""
    env = harness.ros_env(tmp_path)
    namespace = '/' + harness.unique_name('vpd_node_lazy')
    process = start_node(tmp_path, env, namespace, {'input_size': [64, 64], 'device': 'cpu'})
    client = Client(namespace)
    diagnostics = client.collect(DiagnosticArray, '/diagnostics')
    image_pub = client.publisher(Image, 'image')
    name = client.name('vpd_node')

    def totals() -> dict[str, int]:
        count = len(diagnostics)
        assert client.spin_until(lambda: len(diagnostics) > count, 10)
        return {kv.key: int(kv.value) for kv in diagnostics[-1].status[0].values
                if kv.key.endswith('_total')}

    def publish(sec: int) -> None:
        image_pub.publish(image_msg(RGB, 'camera_optical_frame', sec))
    try:
        assert client.spin_until(lambda: image_pub.get_subscription_count() > 0, 30)
        for sec in range(1, 4):
            publish(sec)
            client.spin_until(lambda: False, 0.3)
        assert client.spin_until(lambda: totals()['idle_total'] >= 1, 30)
        assert totals()['processed_total'] == 0

        future = client.node.create_client(Ground, f'{name}/ground').call_async(
            Ground.Request(query='a box', timeout=60.0, use_latest=False))
        client.spin_until(lambda: False, 0.5)
        publish(10)
        assert client.spin_until(future.done, 60), process.output()[-3000:]
        assert future.result().success, future.result().message
        assert future.result().result.header.stamp.sec == 10

        depth = client.collect(Image, 'depth')
        for sec in range(20, 80):
            publish(sec)
            if client.spin_until(lambda: bool(depth), 1.0):
                break
        assert depth, process.output()[-3000:]
        assert totals()['processed_total'] >= 2
    finally:
        client.close()
        process.stop()
