# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros demo``: the whole product on one machine, offline, ending by itself.

It starts ``vpd_node`` with the shipped tiny model and ``vpd_sim_camera`` streaming held-out
rendered rooms, sets a standing query per room through ``~/set_query``, asks ``~/ground`` for a
second object, receives depth, masks and 3D groundings over DDS, scores them against the
renderer's ground truth and writes a picture: input | depth | masks with queries | ground truth.
Every process runs under the loopback network rule (vpd_ros.apps.rosenv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from . import rosenv
from ..data import HELDOUT_SEEDS_START, render_scene
from .metrics import DepthMeter, ReferMeter, format_metrics
from ..engine.visualize import colorize_depth, overlay_masks, side_by_side


def add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``demo``."""
    p = subparsers.add_parser('demo', help='run node + simulated camera offline and score them')
    p.add_argument('--weights', default='tiny', help='model for the node (default: shipped tiny)')
    p.add_argument('--device', default='auto')
    p.add_argument('--scenes', type=int, default=4, help='rendered rooms to show')
    p.add_argument('--seed-start', type=int, default=HELDOUT_SEEDS_START,
                   help='first scene seed (held-out seeds by default)')
    p.add_argument('--rate', type=float, default=2.0, help='camera frames per second')
    p.add_argument('--frames-per-scene', type=int, default=8)
    p.add_argument('--output', '-o', default='demo-output', help='folder for the picture')
    p.add_argument('--timeout', type=float, default=240.0, help='give up after this many s')
    p.set_defaults(func=run_demo)


@dataclass
class SceneResult:
    """What the demo received for one rendered room."""

    seed: int
    queries: List[str] = field(default_factory=list)
    targets: List[int] = field(default_factory=list)
    groundings: List[object] = field(default_factory=list)
    depth: Optional[np.ndarray] = None


def pick_queries(expressions: List[dict]) -> List[Tuple[str, int]]:
    """Return up to two expressions that refer to different objects."""
    chosen: List[Tuple[str, int]] = []
    for e in expressions:
        if all(e['target'] != t for _, t in chosen):
            chosen.append((e['text'], int(e['target'])))
        if len(chosen) == 2:
            break
    return chosen


class DemoClient:
    """The task-planner side: subscribes to the node's outputs and calls its services."""

    def __init__(self) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String
        from vpd_ros_interfaces.msg import Grounding

        from .ros_client import RosClient

        self.ros = RosClient('vpd_demo_client')
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.scenes: Dict[Tuple[int, int], int] = {}  # stamp -> seed
        self.scene_info: Dict[int, dict] = {}
        self.depth: Dict[Tuple[int, int], np.ndarray] = {}
        self.groundings: List = []
        node = self.ros.node
        node.create_subscription(String, 'sim_camera/scene', self._on_scene, 10)
        node.create_subscription(Image, 'depth', self._on_depth, qos)
        node.create_subscription(Grounding, 'grounding', self.groundings.append, qos)
        self.spin_until = self.ros.spin_until

    def _on_scene(self, msg) -> None:
        info = json.loads(msg.data)
        self.scenes[tuple(info['stamp'])] = info['seed']
        self.scene_info.setdefault(info['seed'], info)

    def _on_depth(self, msg) -> None:
        depth = np.frombuffer(bytes(msg.data), np.float32).reshape(msg.height, msg.width)
        self.depth[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = depth

    def set_query(self, text: str, timeout: float):
        """Call ``/vpd_node/set_query``; return the reply (None on timeout)."""
        from vpd_ros_interfaces.srv import SetQuery
        return self.ros.try_call(SetQuery, '/vpd_node/set_query', SetQuery.Request(query=text),
                                 timeout)

    def ground(self, text: str, timeout: float):
        """Call ``/vpd_node/ground`` on the next frame; return the reply (None on timeout)."""
        from vpd_ros_interfaces.srv import Ground
        request = Ground.Request(query=text, timeout=float(timeout), use_latest=False)
        return self.ros.try_call(Ground, '/vpd_node/ground', request, timeout + 1.0)

    def node_active(self) -> bool:
        """Return True once vpd_node reports the lifecycle state 'active'."""
        return self.ros.state('/vpd_node', 2.0) == 'active'

    def close(self) -> None:
        """Shut down this client's ROS context."""
        self.ros.close()


def stamp_of(msg) -> Tuple[int, int]:
    """Return (sec, nanosec) of a message header."""
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def mask_of(grounding) -> np.ndarray:
    """Return the Grounding's mono8 mask as a bool array."""
    m = grounding.mask
    return np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.step)[:, :m.width] > 0


def run_scene(client: DemoClient, seed: int, timeout: float) -> Optional[SceneResult]:
    """Query one room: a standing query by set_query, a second object by ground."""
    if not client.spin_until(lambda: seed in client.scene_info, timeout):
        return None
    chosen = pick_queries(client.scene_info[seed]['expressions'])
    result = SceneResult(seed=seed)
    if not chosen:
        return result
    text, target = chosen[0]
    reply = client.set_query(text, timeout)
    if reply is None or not reply.success:
        raise RuntimeError(f'set_query failed: {getattr(reply, "message", "no answer")}')
    client.groundings.clear()

    def standing_done() -> bool:
        return any(g.query == text and client.scenes.get(stamp_of(g)) == seed
                   and stamp_of(g) in client.depth for g in client.groundings)
    if not client.spin_until(standing_done, timeout):
        return None
    g = next(g for g in client.groundings
             if g.query == text and client.scenes.get(stamp_of(g)) == seed)
    result.queries.append(text)
    result.targets.append(target)
    result.groundings.append(g)
    result.depth = client.depth[stamp_of(g)]
    if len(chosen) > 1:
        text, target = chosen[1]
        reply = client.ground(text, timeout)
        if reply is not None and reply.success and client.scenes.get(
                stamp_of(reply.result)) == seed:
            result.queries.append(text)
            result.targets.append(target)
            result.groundings.append(reply.result)
    return result


def score_and_draw(results: List[SceneResult], width: int, height: int,
                   out_dir: str) -> Tuple[DepthMeter, ReferMeter, str]:
    """Compare with the renderer's ground truth; write demo.png; return the meters and path."""
    depth_meter, refer_meter = DepthMeter(max_depth=10.0), ReferMeter()
    rows = []
    for r in results:
        scene = render_scene(r.seed, width=width, height=height)
        dm = depth_meter.update(r.depth, scene.depth)
        masks = [mask_of(g) for g in r.groundings]
        gts = [scene.instances == t for t in r.targets]
        ious = [refer_meter.update(m, gt) for m, gt in zip(masks, gts)]
        print(f'  scene {r.seed}: abs_rel {dm["abs_rel"]:.3f} d1 {dm["d1"]:.3f}; '
              + '; '.join(f'"{q}": IoU {iou:.2f}, score {g.score:.2f}'
                          + (f', 3D ({g.centroid.x:+.2f}, {g.centroid.y:+.2f}, '
                             f'{g.centroid.z:.2f}) m' if g.has_3d else '')
                          for q, iou, g in zip(r.queries, ious, r.groundings)))
        lo, hi = float(scene.depth.min()), float(scene.depth.max())
        truth = overlay_masks(cv2.cvtColor(colorize_depth(scene.depth, lo, hi),
                                           cv2.COLOR_BGR2RGB), gts, r.queries)
        rows.append(side_by_side(
            [cv2.cvtColor(scene.rgb, cv2.COLOR_RGB2BGR), colorize_depth(r.depth, lo, hi),
             overlay_masks(scene.rgb, masks, r.queries), truth],
            ['input', 'predicted depth', 'masks', 'ground truth']))
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, 'demo.png')
    cv2.imwrite(path, np.concatenate(rows, axis=0))
    return depth_meter, refer_meter, path


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; return 0 when every scene got its answers."""
    tmp = tempfile.mkdtemp(prefix='vpd_demo_')
    rosenv.apply_session_env(tmp)
    env = rosenv.ros_env(tmp)
    width, height = 640, 480
    node_cmd = rosenv.executable('vpd_node') + [
        '--ros-args', '-p', f'weights:={args.weights}', '-p', f'device:={args.device}',
        '-p', 'autostart:=true', '-p', 'publish.points:=false']
    camera_cmd = rosenv.executable('vpd_sim_camera') + [
        '--ros-args', '-p', f'seed_start:={args.seed_start}', '-p', f'scene_count:={args.scenes}',
        '-p', f'frames_per_scene:={args.frames_per_scene}', '-p', f'rate:={args.rate}',
        '-p', f'width:={width}', '-p', f'height:={height}']
    print(f'vpd-ros demo: ROS domain {env["ROS_DOMAIN_ID"]}, loopback only, logs in {tmp}')
    deadline = time.monotonic() + args.timeout
    client = DemoClient()
    results: List[SceneResult] = []
    try:
        with rosenv.RosProcess(node_cmd, env, os.path.join(tmp, 'vpd_node.log')) as node:
            if not client.spin_until(client.node_active, min(120.0, args.timeout)):
                print('vpd_node did not become active; its log:\n' + node.output()[-3000:])
                return 1
            print(f'vpd_node active ({args.weights}); starting the simulated camera')
            with rosenv.RosProcess(camera_cmd, env, os.path.join(tmp, 'camera.log')):
                for i in range(args.scenes):
                    left = deadline - time.monotonic()
                    r = run_scene(client, args.seed_start + i, max(left, 1.0))
                    if r is None:
                        print(f'scene {args.seed_start + i}: no answer in time; node log:\n'
                              + node.output()[-2000:])
                        break
                    if r.groundings:
                        results.append(r)
    finally:
        client.close()
    if not results:
        print('no scene was answered')
        return 1
    print('per scene:')
    depth_meter, refer_meter, path = score_and_draw(results, width, height, args.output)
    print('depth  ' + format_metrics(depth_meter.result()))
    print('refer  ' + format_metrics(refer_meter.result()))
    print(f'picture: {os.path.abspath(path)}')
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if len(results) == args.scenes else 1
