# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The rclpy start and end shared by the helper processes the tests start."""

from collections.abc import Iterator
from contextlib import contextmanager

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


@contextmanager
def child_node(name: str, namespace: str = '') -> Iterator[Node]:
    """Initialise rclpy and yield a node; SIGINT or an external shutdown ends the block quietly.

    The node is destroyed and rclpy shut down however the block ends.
    """
    rclpy.init()
    node = rclpy.create_node(name, namespace=namespace)
    try:
        yield node
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
