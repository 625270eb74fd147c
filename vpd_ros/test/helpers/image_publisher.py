# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Child process for the isolation test: publish seeded random rgb8 images with RELIABLE QoS.

Prints its ROS environment (``ENV name=value``), waits for a subscriber, publishes ``--count``
frames at about 30 Hz with ``SENT <index> <sha256 of data>`` for each, prints ``DONE``, then
keeps serving retransmissions until SIGINT.
"""

import argparse
import hashlib
import os
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

ENV_NAMES = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'ROS_LOG_DIR', 'RMW_IMPLEMENTATION')


def make_frame(seed: int, index: int, width: int, height: int) -> np.ndarray:
    """Return frame ``index`` of the sequence: height x width x 3 uint8 from ``seed``."""
    rng = np.random.default_rng(seed + index)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def main() -> None:
    """Publish the frames, then wait for SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--topic', required=True)
    parser.add_argument('--count', type=int, default=5)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--wait-subscriber', type=float, default=30.0, help='seconds')
    args = parser.parse_args()
    from ros_child import child_node  # run as a script: this folder is on sys.path
    for name in ENV_NAMES:
        print(f'ENV {name}={os.environ.get(name, "")}', flush=True)

    with child_node('vpd_test_image_publisher') as node:
        qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)
        publisher = node.create_publisher(Image, args.topic, qos)
        deadline = time.monotonic() + args.wait_subscriber
        while publisher.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                print('NO SUBSCRIBER', flush=True)
                return
            rclpy.spin_once(node, timeout_sec=0.05)
        for index in range(args.count):
            pixels = make_frame(args.seed, index, args.width, args.height)
            msg = Image()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id = f'frame_{index}'
            msg.height, msg.width = pixels.shape[:2]
            msg.encoding = 'rgb8'
            msg.step = msg.width * 3
            msg.data = pixels.tobytes()
            publisher.publish(msg)
            print(f'SENT {index} {hashlib.sha256(pixels.tobytes()).hexdigest()}', flush=True)
            rclpy.spin_once(node, timeout_sec=1 / 30)
        print('DONE', flush=True)
        rclpy.spin(node)


if __name__ == '__main__':
    main()
