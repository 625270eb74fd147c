# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the test harness: loopback-only settings, image exchange across processes, cleanup.

The image test is the harness's end-to-end proof: two child processes started with
:func:`harness.ros_env` find each other on the session's private domain over loopback and move
VGA rgb8 frames intact with RELIABLE QoS (best effort loses most VGA frames here).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from pathlib import Path

import harness
import pytest
from helpers.image_publisher import make_frame

HELPERS = Path(__file__).resolve().parent / 'helpers'


def _env_lines(output: str) -> dict[str, str]:
    """Return the ``ENV name=value`` lines a helper printed, as a dict."""
    return dict(re.findall(r'^ENV (\w+)=(.*)$', output, re.MULTILINE))


def _gone(pid: int) -> bool:
    """Return True when ``pid`` no longer runs (absent, or a zombie awaiting its reaper)."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except FileNotFoundError:
        return True


def test_ros_env_keeps_children_on_loopback(tmp_path: Path) -> None:
    """ros_env sets the network rule and drops what could leave loopback or break a venv."""
    base = {
        'PATH': '/usr/bin',
        'ROS_DOMAIN_ID': '0',
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET',
        'ROS_STATIC_PEERS': '192.168.1.10',
        'FASTDDS_DEFAULT_PROFILES_FILE': '/etc/udp_peers.xml',
        '_ROS_WHEELS_BOOTSTRAP_COMPLETE': '1',
        'LD_LIBRARY_PATH': os.pathsep.join([os.path.join(sys.prefix, 'lib'), '/opt/cuda/lib64']),
    }
    env = harness.ros_env(tmp_path, base=base)
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert env['ROS_DOMAIN_ID'] == str(harness.session_domain_id())
    low, high = harness.DOMAIN_ID_RANGE
    assert low <= harness.session_domain_id() <= high
    assert env['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'
    assert env['PYTHONUNBUFFERED'] == '1'
    assert Path(env['ROS_LOG_DIR']).is_dir()
    assert Path(env['ROS_LOG_DIR']).is_relative_to(tmp_path)
    for leak in ('ROS_STATIC_PEERS', 'FASTDDS_DEFAULT_PROFILES_FILE',
                 '_ROS_WHEELS_BOOTSTRAP_COMPLETE'):
        assert leak not in env
    # This venv's bootstrap libraries go; the user's own library folders stay.
    assert env['LD_LIBRARY_PATH'] == '/opt/cuda/lib64'
    assert env['PATH'] == '/usr/bin'


def test_session_env_applied_to_this_process() -> None:
    """The conftest put the same settings into os.environ for in-process rclpy."""
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert os.environ['ROS_DOMAIN_ID'] == str(harness.session_domain_id())
    assert os.environ['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'
    assert Path(os.environ['ROS_LOG_DIR']).is_dir()


@pytest.mark.ros
def test_vga_rgb8_images_cross_processes_intact(ros_env: dict[str, str], tmp_path: Path) -> None:
    """A 640x480 rgb8 stream from one child reaches another child byte for byte."""
    topic = '/' + harness.unique_name('vpd_test_images')
    count, seed = 5, 1234
    subscriber = harness.RosProcess(
        harness.python_command(HELPERS / 'image_subscriber.py', '--topic', topic,
                               '--count', str(count), '--timeout', '60'),
        ros_env, tmp_path / 'subscriber.log')
    publisher = harness.RosProcess(
        harness.python_command(HELPERS / 'image_publisher.py', '--topic', topic,
                               '--count', str(count), '--seed', str(seed)),
        ros_env, tmp_path / 'publisher.log')
    with subscriber, publisher:
        subscriber.wait_for_line(r'^READY$', timeout=30)
        publisher.wait_for_line(r'^DONE$', timeout=60)
        assert subscriber.wait(timeout=60) == 0, subscriber.output()

    expected = {
        str(index): hashlib.sha256(make_frame(seed, index, 640, 480).tobytes()).hexdigest()
        for index in range(count)
    }
    received = dict(re.findall(r'^RECEIVED frame_(\d+) ([0-9a-f]{64}) 640x480 rgb8 1920$',
                               subscriber.output(), re.MULTILINE))
    assert received == expected
    assert len(set(expected.values())) == count
    for child in (subscriber, publisher):
        env = _env_lines(child.output())
        assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
        assert env['ROS_DOMAIN_ID'] == str(harness.session_domain_id())
        assert env['RMW_IMPLEMENTATION'] == 'rmw_fastrtps_cpp'
        assert Path(env['ROS_LOG_DIR']).is_relative_to(tmp_path)


def test_wait_for_line_consumes_matches_and_times_out(tmp_path: Path) -> None:
    """Each wait finds the next matching line; no further match raises with the output."""
    script = "import time; print('alpha 1'); print('beta'); print('alpha 2'); time.sleep(60)"
    with harness.RosProcess([sys.executable, '-c', script], harness.ros_env(tmp_path),
                            tmp_path / 'lines.log') as child:
        assert child.wait_for_line(r'^alpha (\d)$', timeout=20).group(1) == '1'
        assert child.wait_for_line(r'^alpha (\d)$', timeout=20).group(1) == '2'
        with pytest.raises(TimeoutError, match='no match in 0.3 s'):
            child.wait_for_line(r'^alpha', timeout=0.3)


def test_wait_for_line_fails_fast_when_child_exits(tmp_path: Path) -> None:
    """A child that exits without the line raises at once, not after the whole timeout."""
    with harness.RosProcess([sys.executable, '-c', "print('bye')"], harness.ros_env(tmp_path),
                            tmp_path / 'exit.log') as child:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match='exited with 0'):
            child.wait_for_line(r'^never$', timeout=60)
        assert time.monotonic() - start < 30


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A child that ignores SIGINT and its grandchild both end when the block is left."""
    child = harness.RosProcess(harness.python_command(HELPERS / 'process_group.py'),
                               harness.ros_env(tmp_path), tmp_path / 'group.log',
                               sigint_timeout=0.5)
    with child:
        child_pid = int(child.wait_for_line(r'^CHILD (\d+)$', timeout=20).group(1))
        grandchild_pid = int(child.wait_for_line(r'^GRANDCHILD (\d+)$', timeout=20).group(1))
        assert child_pid == child.pid
        assert not _gone(grandchild_pid)
    assert child.returncode == -9
    deadline = time.monotonic() + 5
    while not _gone(grandchild_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child_pid)
    assert _gone(grandchild_pid)


def test_session_domain_can_be_set_within_the_private_range(tmp_path: Path) -> None:
    """Parallel test workers each take their own domain; one outside the range is refused."""
    drawn = harness.session_domain_id()
    low, high = harness.DOMAIN_ID_RANGE
    other = low + (drawn - low + 1) % (high - low + 1)
    try:
        harness.set_session_domain_id(other)
        assert harness.ros_env(tmp_path)['ROS_DOMAIN_ID'] == str(other)
        for wrong in (0, low - 1, high + 1):
            with pytest.raises(ValueError, match='domain_id must be in'):
                harness.set_session_domain_id(wrong)
        assert harness.session_domain_id() == other
    finally:
        harness.set_session_domain_id(drawn)
    assert harness.ros_env(tmp_path)['ROS_DOMAIN_ID'] == str(drawn)
