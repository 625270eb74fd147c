# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One vpd_node process and this process's client, for the reliability tests.

:class:`NodeSession` publishes frames and camera_info in the node's namespace, collects its
outputs and /diagnostics, and checks the contract for refused input: the frame gives no output,
the node logs the reason, /diagnostics carries it, and the next good frame is processed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from helpers.camera import camera_frame, camera_info
from helpers.vpd_client import LATCHED, Client, image_msg, start_node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from vpd_ros_interfaces.msg import Grounding

FRAME_ID = 'reliability_camera_optical_frame'
WIDTH, HEIGHT = 160, 120


class NodeSession:
    """A started vpd_node (namespace of its own) with publishers and output collectors."""

    def __init__(self, tmp: Path, parameters: dict[str, Any], prefix: str) -> None:
        self.tmp = tmp
        self.env = harness.ros_env(tmp)
        self.namespace = '/' + harness.unique_name(prefix)
        self.process = start_node(tmp, self.env, self.namespace, parameters)
        self.client = Client(self.namespace)
        self.node_name = self.client.name('vpd_node')
        self.depth = self.client.collect(Image, 'depth')
        self.depth_info = self.client.collect(CameraInfo, 'depth/camera_info')
        self.grounding = self.client.collect(Grounding, 'grounding')
        self.current_query = self.client.collect(String, 'current_query', LATCHED)
        self.diagnostics = self.client.collect(DiagnosticArray, '/diagnostics')
        self.image_pub = self.client.publisher(Image, 'image')
        self.compressed_pub = self.client.publisher(CompressedImage, 'image/compressed')
        self.info_pub = self.client.publisher(CameraInfo, 'camera_info')
        self._stamp = 1000
        self.wait_subscribed(self.image_pub)

    def close(self) -> None:
        """Shut the client down and stop the node."""
        self.client.close()
        self.process.stop()

    def wait_subscribed(self, publisher: Any, timeout: float = 30.0) -> None:
        """Wait until the node subscribes to ``publisher``'s topic (and camera_info)."""
        ready = lambda: (publisher.get_subscription_count() > 0  # noqa: E731
                         and self.info_pub.get_subscription_count() > 0)
        assert self.client.spin_until(ready, timeout), self.process.output()[-3000:]

    def stamp(self) -> int:
        """Return a fresh header time in seconds for the next frame."""
        self._stamp += 1
        return self._stamp

    def pause(self, seconds: float) -> None:
        """Spin the client for ``seconds`` (lets messages arrive)."""
        self.client.spin_until(lambda: False, seconds)

    def good_image(self, sec: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image:
        """Return a valid rgb8 frame of ``size`` (w, h) stamped ``sec``."""
        return image_msg(camera_frame(3, sec, size[0], size[1]), FRAME_ID, sec)

    def send_info(self, sec: int, info: CameraInfo | None = None) -> None:
        """Publish ``info`` (default: matching the default frame size) stamped ``sec``."""
        info = info if info is not None else camera_info(WIDTH, HEIGHT)
        info.header.frame_id, info.header.stamp.sec = FRAME_ID, sec
        self.info_pub.publish(info)
        self.pause(0.2)

    def outputs_at(self, sec: int) -> list:
        """Return every depth or grounding output stamped ``sec``."""
        return [m for m in self.depth + self.grounding if m.header.stamp.sec == sec]

    def wait_output(self, messages: list, sec: int, timeout: float = 60.0) -> Any:
        """Return the first of ``messages`` stamped ``sec`` once it arrived (fail otherwise)."""
        def found() -> list:
            return [m for m in messages if m.header.stamp.sec == sec]
        assert self.client.spin_until(lambda: bool(found()), timeout), \
            self.process.output()[-3000:]
        return found()[0]

    def process_good_frame(self, publisher: Any = None, msg: Any = None) -> int:
        """Send a good frame (default: raw rgb8) and return its stamp once its depth arrived."""
        sec = self.stamp()
        if msg is None:
            msg = self.good_image(sec)
        msg.header.stamp.sec, msg.header.frame_id = sec, FRAME_ID
        self.send_info(sec)
        (publisher or self.image_pub).publish(msg)
        self.wait_output(self.depth, sec)
        return sec

    def diagnostic_status(self, predicate: Callable[[dict[str, str]], bool],
                          timeout: float = 10.0) -> tuple[DiagnosticStatus, dict[str, str]]:
        """Wait for a new /diagnostics status of the node whose values satisfy ``predicate``."""
        start = len(self.diagnostics)

        def match() -> tuple[DiagnosticStatus, dict[str, str]] | None:
            for msg in self.diagnostics[start:]:
                for status in msg.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if status.name.startswith('vpd_node') and predicate(values):
                        return status, values
            return None
        assert self.client.spin_until(lambda: match() is not None, timeout), \
            f'no matching /diagnostics in {timeout} s; last: {self.diagnostics[-1:]}'
        return match()

    def totals(self) -> dict[str, int]:
        """Return the node's counters from the next /diagnostics message."""
        _, values = self.diagnostic_status(lambda v: True)
        return {k[:-len('_total')]: int(v) for k, v in values.items() if k.endswith('_total')}

    def assert_refused(self, publish: Callable[[int], None], reason: str,
                       counter: str = 'decode_errors', publisher: Any = None,
                       good: Callable[[int], Any] | None = None) -> int:
        """Check the contract for one bad input; return its stamp.

        ``publish(sec)`` sends the bad input stamped ``sec``. Then: ``counter`` rises on
        /diagnostics with ``reason`` (a regex) as last_error at level WARN or ERROR, the node
        log has a line matching ``reason``, no output carries that stamp, and the next good
        frame (``good(sec)``, default a raw rgb8 one, sent on ``publisher``) is processed.
        """
        before = self.totals().get(counter, 0)
        sec = self.stamp()
        publish(sec)
        pattern = re.compile(reason)
        status, values = self.diagnostic_status(
            lambda v: int(v.get(f'{counter}_total', 0)) > before
            and pattern.search(v.get('last_error', '')) is not None)
        assert status.level in (DiagnosticStatus.WARN, DiagnosticStatus.ERROR), status
        self.process.wait_for_line(reason, timeout=10)
        good_sec = self.process_good_frame(publisher, good(0) if good is not None else None)
        assert good_sec > sec and not self.outputs_at(sec), f'output for the refused frame {sec}'
        return sec


def solid_rgb(width: int, height: int, value: int = 128) -> np.ndarray:
    """Return a (height, width, 3) uint8 image of one grey value."""
    return np.full((height, width, 3), value, np.uint8)
