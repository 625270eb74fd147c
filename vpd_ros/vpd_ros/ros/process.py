# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Process-wide effects of ``vpd_node``: download policy, freed heap, SIGINT and spinning.

They act on the whole process (environment, allocator, signal handlers, the executor), not on
one node, so they live beside the node rather than in it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from typing import Any

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

#: Variables that keep huggingface_hub, transformers and datasets from using the network.
OFFLINE_VARIABLES = ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_DATASETS_OFFLINE')


def apply_download_policy(allow_download: bool) -> str:
    """Set the offline variables unless downloads are allowed; return a log description.

    They must be in the environment before diffusers/transformers are imported (they read
    them once), which the engine does when configure first loads it, so the node calls this
    first.
    """
    if allow_download:
        return 'model downloads allowed (allow_download true)'
    for name in OFFLINE_VARIABLES:
        os.environ[name] = '1'
    return f'offline: {", ".join(f"{n}=1" for n in OFFLINE_VARIABLES)} (allow_download false)'


def return_freed_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Lifecycle transitions run on executor pool threads, each with its own malloc arena, and a
    released model's weights otherwise stay reserved in the arena that loaded them: after
    cleanup/configure cycles the RSS grew in model-sized steps without any leak.
    """
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass



def spin(executor: MultiThreadedExecutor) -> None:
    """Spin until shutdown, surviving entities destroyed while a wait set is being built.

    Deactivate and cleanup (on a pool thread) destroy subscriptions and their QoS event
    handlers; if the executor thread is adding one of them to its wait set at that moment,
    rclpy raises InvalidHandle from ``spin``. The entity is gone on purpose: spin again.
    """
    while rclpy.ok():
        try:
            executor.spin()
            return
        except _rclpy.InvalidHandle:
            continue


def interrupt_once(stopping: threading.Event) -> None:
    """Make SIGINT interrupt ``spin`` once; later ones are ignored while the node cleans up.

    ``ros2 launch`` on Ctrl-C delivers two SIGINTs (the terminal's to the process group, then
    its own about 50 ms later): the second must not cut the clean-up short with a traceback.
    Installed before ``rclpy.init``, whose signal handler wakes the executor and chains to it.
    """
    def handler(signum: int, frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            raise KeyboardInterrupt
    signal.signal(signal.SIGINT, handler)
