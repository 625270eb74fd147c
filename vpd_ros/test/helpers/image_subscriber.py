# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Child process for the isolation test: receive ``--count`` images with RELIABLE QoS.

Prints its ROS environment (``ENV name=value``), ``READY`` once subscribed, then
``RECEIVED <frame_id> <sha256 of data> <width>x<height> <encoding> <step>`` per image; exits 0
after ``--count`` images, 1 when ``--timeout`` seconds pass first.
"""

import argparse
import hashlib
import os
import sys
import time

import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

ENV_NAMES = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'ROS_LOG_DIR', 'RMW_IMPLEMENTATION')


def main() -> int:
    """Receive the images; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--topic', required=True)
    parser.add_argument('--count', type=int, default=5)
    parser.add_argument('--timeout', type=float, default=60.0, help='seconds')
    args = parser.parse_args()
    for name in ENV_NAMES:
        print(f'ENV {name}={os.environ.get(name, "")}', flush=True)

    rclpy.init()
    node = rclpy.create_node('vpd_test_image_subscriber')
    received: list[str] = []

    def on_image(msg: Image) -> None:
        digest = hashlib.sha256(msg.data.tobytes()).hexdigest()
        received.append(digest)
        print(f'RECEIVED {msg.header.frame_id} {digest} {msg.width}x{msg.height} '
              f'{msg.encoding} {msg.step}', flush=True)

    qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                     reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, args.topic, on_image, qos)
    print('READY', flush=True)
    deadline = time.monotonic() + args.timeout
    try:
        while len(received) < args.count and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0 if len(received) >= args.count else 1


if __name__ == '__main__':
    sys.exit(main())
