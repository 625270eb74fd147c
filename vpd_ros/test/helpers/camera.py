# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Child process for the node tests: a camera publishing images and camera_info.

Publishes ``--count`` frames at ``--rate`` Hz on ``<ns>/image`` (sensor_msgs/Image, rgb8) or
``<ns>/image/compressed`` (sensor_msgs/CompressedImage, png or jpeg), each with a CameraInfo of
the same header on ``<ns>/camera_info``. Frame ``i`` is :func:`camera_frame` of the seed and has
frame_id ``--frame-id`` and stamp sec = ``--stamp-base`` + i. Prints ``READY`` once the image
topic has a subscriber, ``SENT <i>`` per frame and ``DONE``, then serves until SIGINT.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image


def camera_frame(seed: int, index: int, width: int, height: int) -> np.ndarray:
    """Return frame ``index``: (height, width, 3) uint8 RGB, smooth gradients plus noise.

    Smooth content keeps lossy jpeg close to the original; the noise makes frames distinct.
    """
    rng = np.random.default_rng(seed + index)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xs / max(width - 1, 1), ys / max(height - 1, 1),
                     0.5 + 0.5 * np.sin((xs + ys) / 17.0 + index)], axis=-1) * 200.0
    noise = rng.integers(0, 40, size=(height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def camera_info(width: int, height: int) -> CameraInfo:
    """Return a pinhole CameraInfo with a 60 degree horizontal field of view."""
    fx = width / (2.0 * np.tan(np.radians(30.0)))
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    msg = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    msg.k = [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.d = [0.0] * 5
    return msg


def encode(pixels: np.ndarray, fmt: str) -> tuple[Image | CompressedImage, str]:
    """Return the message for RGB ``pixels``: a raw rgb8 Image or a png/jpeg CompressedImage."""
    if fmt == 'raw':
        msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding='rgb8',
                    step=pixels.shape[1] * 3)
        msg.data = pixels.tobytes()
        return msg, 'image'
    ok, data = cv2.imencode(f'.{fmt}', cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f'cannot encode {fmt}')
    msg = CompressedImage(format=f'rgb8; {fmt} compressed bgr8')
    msg.data = data.tobytes()
    return msg, 'image/compressed'


def main() -> None:
    """Publish the frames, then wait for SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--namespace', default='/')
    parser.add_argument('--format', choices=('raw', 'png', 'jpeg'), default='raw')
    parser.add_argument('--count', type=int, default=5)
    parser.add_argument('--rate', type=float, default=30.0, help='Hz')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--frame-id', default='camera_optical_frame')
    parser.add_argument('--stamp-base', type=int, default=1000)
    parser.add_argument('--wait-subscriber', type=float, default=60.0, help='seconds')
    args = parser.parse_args()
    from ros_child import child_node  # run as a script: this folder is on sys.path

    with child_node('vpd_test_camera', namespace=args.namespace) as node:
        qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE)
        frames = [encode(camera_frame(args.seed, i, args.width, args.height), args.format)
                  for i in range(args.count)]
        image_pub = node.create_publisher(type(frames[0][0]), frames[0][1], qos) if frames else None
        info_pub = node.create_publisher(CameraInfo, 'camera_info', qos)
        info = camera_info(args.width, args.height)
        deadline = time.monotonic() + args.wait_subscriber
        while image_pub is not None and image_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                print('NO SUBSCRIBER', flush=True)
                return
            rclpy.spin_once(node, timeout_sec=0.05)
        print('READY', flush=True)
        period = 1.0 / args.rate
        start = time.monotonic()
        for index, (msg, _) in enumerate(frames):
            msg.header.stamp.sec, msg.header.stamp.nanosec = args.stamp_base + index, 0
            msg.header.frame_id = args.frame_id
            info.header = msg.header
            info_pub.publish(info)
            image_pub.publish(msg)
            print(f'SENT {index}', flush=True)
            delay = start + (index + 1) * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        print('DONE', flush=True)
        rclpy.spin(node)


if __name__ == '__main__':
    main()
