# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""vpd_node stopped as ``ros2 launch`` stops it on Ctrl-C, while frames stream.

Launch delivers two SIGINTs about 50 ms apart (the terminal's to the process group, then its
own). The camera streams for 30 s, faster than the model runs, so a frame is in flight at the
first signal and the second lands while the node finishes it and releases the engine. One
node process serves the module and ends in its test.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import harness
import pytest
from helpers.vpd_client import Client, start_node
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros

CAMERA = Path(__file__).resolve().parent / 'helpers' / 'camera.py'


def test_two_sigints_mid_frame_exit_cleanly(tmp_path: Path) -> None:
    """Exit code 0, no traceback, no error and no failed publish for the stop."""
    env = harness.ros_env(tmp_path)
    namespace = '/' + harness.unique_name('vpd_node_stop')
    process = start_node(tmp_path, env, namespace, {'device': 'cpu',
                                                    'default_query': 'the red mug'})
    client = Client(namespace)
    depth = client.collect(Image, 'depth')
    camera = harness.RosProcess(
        harness.python_command(CAMERA, '--namespace', namespace, '--count', '300', '--rate',
                               '10', '--width', '320', '--height', '240'),
        env, tmp_path / 'camera.log')
    try:
        with camera:
            camera.wait_for_line(r'^READY$', timeout=60)
            assert client.spin_until(lambda: len(depth) >= 2, 120), process.output()[-3000:]
            os.kill(process.pid, signal.SIGINT)
            time.sleep(0.05)
            os.kill(process.pid, signal.SIGINT)
            code = process.wait(timeout=60)
    finally:
        client.close()
        process.stop()
    output = process.output()
    assert code == 0, output[-3000:]
    for sign in ('Traceback', 'KeyboardInterrupt', '[ERROR]', 'inference failed',
                 'context is invalid'):
        assert sign not in output, output[-3000:]
