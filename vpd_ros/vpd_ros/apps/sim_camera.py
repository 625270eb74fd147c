# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd_sim_camera``: a camera driver stand-in that streams procedurally rendered rooms.

It lets anyone try the node without hardware and is what the demo and the benchmarks use.

Parameters:
    seed_start (int, 1000000): first scene seed (held-out seeds start at 1000000).
    scene_count (int, 10): number of scenes; then it stops publishing (0 = loop forever).
    frames_per_scene (int, 4): frames published per scene before the next one.
    rate (float, 4.0): frames per second.
    width, height (int, 640, 480): image size in pixels.
    frame_id (str, camera_optical_frame): REP 103 optical frame of the images.
    transport (str, raw): ``raw`` publishes ``image``, ``compressed`` ``image/compressed`` (png).
    reliability (str, reliable): QoS reliability of the image topics.

Topics: ``image`` (sensor_msgs/Image rgb8) or ``image/compressed``, ``camera_info``
(sensor_msgs/CameraInfo, plumb_bob, no distortion), ``sim_camera/scene`` (std_msgs/String JSON:
seed, stamp, referring expressions with their target object ids).
"""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from ..data import render_scene
from ..ros.conversions import rgb_to_compressed, rgb_to_image


def camera_info_message(K, width: int, height: int, header: Header) -> CameraInfo:
    """Return a distortion-free CameraInfo for intrinsics K (3x3)."""
    info = CameraInfo(header=header, width=width, height=height,
                      distortion_model='plumb_bob')
    info.d = [0.0] * 5
    info.k = [float(v) for v in K.reshape(-1)]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [float(K[0, 0]), 0.0, float(K[0, 2]), 0.0, 0.0, float(K[1, 1]), float(K[1, 2]), 0.0,
              0.0, 0.0, 1.0, 0.0]
    return info


class SimCamera(Node):
    """Publish rendered scenes as a camera driver would (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__('sim_camera')
        p = {name: self.declare_parameter(name, default).value for name, default in (
            ('seed_start', 1_000_000), ('scene_count', 10), ('frames_per_scene', 4),
            ('rate', 4.0), ('width', 640), ('height', 480), ('frame_id', 'camera_optical_frame'),
            ('transport', 'raw'), ('reliability', 'reliable'))}
        if p['transport'] not in ('raw', 'compressed'):
            raise ValueError(f"transport {p['transport']!r} must be raw or compressed")
        if p['reliability'] not in ('reliable', 'best_effort'):
            raise ValueError(f"reliability {p['reliability']!r} must be reliable or best_effort")
        if p['rate'] <= 0 or p['frames_per_scene'] < 1 or p['scene_count'] < 0:
            raise ValueError('rate must be > 0, frames_per_scene >= 1, scene_count >= 0')
        self.p = p
        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE
                         if p['reliability'] == 'reliable' else ReliabilityPolicy.BEST_EFFORT)
        compressed = p['transport'] == 'compressed'
        self.image_pub = self.create_publisher(
            CompressedImage if compressed else Image,
            'image/compressed' if compressed else 'image', qos)
        self.info_pub = self.create_publisher(CameraInfo, 'camera_info', qos)
        self.scene_pub = self.create_publisher(String, 'sim_camera/scene', 10)
        self.frame = 0
        self.scene = None
        self.done = False
        self.timer = self.create_timer(1.0 / p['rate'], self.tick)

    def _scene_for(self, index: int):
        seed = self.p['seed_start'] + index % max(self.p['scene_count'], 1)
        if self.scene is None or self.scene.seed != seed:
            self.scene = render_scene(seed, width=self.p['width'], height=self.p['height'])
        return self.scene

    def tick(self) -> None:
        """Publish the next frame (and, on a new scene, its description)."""
        index = self.frame // self.p['frames_per_scene']
        if self.p['scene_count'] and index >= self.p['scene_count']:
            self.done = True
            return
        scene = self._scene_for(index)
        header = Header(frame_id=self.p['frame_id'], stamp=self.get_clock().now().to_msg())
        if self.p['transport'] == 'compressed':
            self.image_pub.publish(rgb_to_compressed(scene.rgb, header, fmt='png'))
        else:
            self.image_pub.publish(rgb_to_image(scene.rgb, header))
        self.info_pub.publish(camera_info_message(scene.K, self.p['width'], self.p['height'],
                                                  header))
        info = {'seed': scene.seed, 'frame': self.frame,
                'stamp': [header.stamp.sec, header.stamp.nanosec],
                'expressions': [{'text': r.text, 'target': r.target_id}
                                for r in scene.expressions]}
        self.scene_pub.publish(String(data=json.dumps(info)))
        self.frame += 1


def main(args: Optional[List[str]] = None) -> int:
    """Run the simulated camera until its scenes are done or it is interrupted."""
    rclpy.init(args=args)
    node = None
    try:
        node = SimCamera()
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
