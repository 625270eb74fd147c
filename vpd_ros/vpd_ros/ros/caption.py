# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The EVP depth caption from ROS: the ``depth_caption`` parameter and the ``~/caption`` topic.

A captioning node publishes on ``~/caption``; each message sets the parameter, so the last
writer wins and ``ros2 param get`` shows the caption in use. The frame pipeline hands the
parameter's caption to the engine before each frame, never during one. A VPD depth model has
no caption: the node says once that it is ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from rclpy.parameter import Parameter
from std_msgs.msg import String

from vpd_ros.ros.params import qos_profile

if TYPE_CHECKING:  # the node imports this module
    from vpd_ros.ros.node import VPDNode

PARAMETER = 'depth_caption'
#: Seconds between repeats of the warning about a refused caption message.
REFUSED_THROTTLE_S = 5.0


def engine_caption(value: str) -> Optional[str]:
    """Return the caption the engine takes for a parameter value: spaces collapsed, or ``None``.

    ``None`` (a blank value) is the engine's default caption.
    """
    return ' '.join(value.split()) or None


class CaptionInput:
    """``node``'s ``~/caption`` subscription and the once-said note for VPD depth models."""

    def __init__(self, node: VPDNode) -> None:
        self._node = node

    def subscribe(self) -> Any:
        """Return a new reliable subscription of ``~/caption`` (std_msgs/String)."""
        return self._node.create_subscription(String, '~/caption', self._on_caption,
                                              qos_profile('reliable', 10))

    def _on_caption(self, msg: String) -> None:
        """Set ``depth_caption`` from a caption message; warn (throttled) when refused."""
        node = self._node
        result = node.set_parameters([Parameter(PARAMETER, Parameter.Type.STRING, msg.data)])[0]
        if not result.successful:
            node.get_logger().warning(f'~/caption refused: {result.reason}',
                                      throttle_duration_sec=REFUSED_THROTTLE_S)

    def note(self, value: str) -> None:
        """Say once per process that a caption is ignored when the depth model takes none."""
        engine = self._node.engine
        if engine_caption(value) is not None and engine is not None and 'depth' in engine.tasks \
                and not engine.takes_caption:
            self._node.get_logger().warning(
                f'{PARAMETER} / ~/caption ignored: this depth model is VPD (conditioned on the '
                'scene parameter); only EVP depth checkpoints take a caption', once=True)
