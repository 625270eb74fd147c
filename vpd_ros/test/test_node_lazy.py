# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Lazy mode: vpd_node runs no inference while nobody needs its outputs.

One node process with ``lazy: true`` (the default); this process publishes frames and only later
subscribes to an output. The node runs EVP (random:evp-tiny at a 64x64 input), so the same run
shows the node serving EVP models and taking its depth caption from ``~/caption``.
"""

from __future__ import annotations

from pathlib import Path

import harness
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from helpers.vpd_client import Client, image_msg, start_node
from rcl_interfaces.srv import GetParameters
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vpd_ros_interfaces.srv import Ground

pytestmark = pytest.mark.ros

RGB = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def test_no_inference_without_subscribers_until_one_comes(tmp_path: Path) -> None:
    """No subscriber: frames count as idle; a ~/ground request or a subscriber brings inference."""
    env = harness.ros_env(tmp_path)
    namespace = '/' + harness.unique_name('vpd_node_lazy')
    process = start_node(tmp_path, env, namespace, {'input_size': [64, 64], 'device': 'cpu'},
                         '-p', 'weights:=random:evp-tiny')
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

        caption = client.publisher(String, 'vpd_node/caption')
        assert client.spin_until(lambda: caption.get_subscription_count() > 0, 30)
        caption.publish(String(data='a kitchen  with a table'))

        def caption_in_use() -> str:
            reply = client.call(GetParameters, f'{name}/get_parameters',
                                GetParameters.Request(names=['depth_caption']))
            return reply.values[0].string_value
        assert client.spin_until(lambda: caption_in_use() == 'a kitchen  with a table', 10)

        depth = client.collect(Image, 'depth')
        for sec in range(20, 80):
            publish(sec)
            if client.spin_until(lambda: bool(depth), 1.0):
                break
        assert depth, process.output()[-3000:]
        assert totals()['processed_total'] >= 2
        assert 'ignored' not in process.output()  # an EVP depth model takes the caption
    finally:
        client.close()
        process.stop()
