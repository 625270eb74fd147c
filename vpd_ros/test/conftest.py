# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pytest set-up shared by all vpd_ros tests: markers, the loopback-only ROS environment, fixtures.

The ROS variables of the network rule go into ``os.environ`` in ``pytest_configure``, before any
test module is imported, so in-process rclpy and every child process obey them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import harness
import pytest

from vpd_ros.engine.config import usable_cores  # imports no torch

_SESSION_LOG_DIR: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and apply the session's ROS settings to this process."""
    config.addinivalue_line('markers', 'slow: takes more than a few seconds of work')
    config.addinivalue_line('markers', 'gpu: needs a CUDA device (skipped without one)')
    config.addinivalue_line('markers', 'ros: starts ROS 2 / DDS (in-process or child processes)')
    global _SESSION_LOG_DIR
    _SESSION_LOG_DIR = Path(tempfile.mkdtemp(prefix='vpd_ros_test_'))
    worker_input = getattr(config, 'workerinput', None)  # set in pytest-xdist workers only
    if worker_input is not None:
        harness.set_session_domain_id(worker_input['vpd_ros_domain_id'])
        share_cores(worker_input['workercount'])
    harness.apply_session_env(_SESSION_LOG_DIR)


def share_cores(workers: int) -> None:
    """Give each test worker's OpenMP (torch) its share of the cores, unless the user set one.

    Each torch process otherwise starts a thread per core, and the workers' spinning OpenMP
    threads then take turns on cores the other worker needs: two workers on two cores ran the
    suite in 9 min 48 s with two threads each and in 7 min 53 s with one.
    """
    threads = max(1, usable_cores() // max(workers, 1))
    os.environ.setdefault('OMP_NUM_THREADS', str(threads))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """Give each pytest-xdist worker its own ROS domain, next to the controller's draw."""
    low, high = harness.DOMAIN_ID_RANGE
    index = int(node.gateway.id.lstrip('gw'))  # type: ignore[attr-defined]
    offset = (harness.session_domain_id() - low + 1 + index) % (high - low + 1)
    node.workerinput['vpd_ros_domain_id'] = low + offset  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str:
    """Show the session's ROS domain and log folder at the top of the run."""
    return (f'ROS: domain {os.environ["ROS_DOMAIN_ID"]}, discovery range '
            f'{os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]}, logs {os.environ["ROS_LOG_DIR"]}')


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session's ROS log folder when every test passed; keep it for debugging else."""
    if _SESSION_LOG_DIR is not None and exitstatus == 0:
        shutil.rmtree(_SESSION_LOG_DIR, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run modules holding ``slow`` tests first; skip tests marked ``gpu`` without CUDA.

    Test workers take one module at a time in this order, so the long modules start early and
    the short ones fill the gaps at the end instead of one long module running alone.
    """
    slow_files = {item.path for item in items if item.get_closest_marker('slow') is not None}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order otherwise
    gpu_items = [item for item in items if item.get_closest_marker('gpu') is not None]
    if not gpu_items:
        return
    import torch  # imported only when a gpu test was collected: it takes seconds.

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='no CUDA device')
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope='session')
def ros_session_env() -> dict[str, str]:
    """Return the ROS settings this session applied to ``os.environ``."""
    return {name: os.environ[name] for name in harness.ros_settings('.')}


@pytest.fixture
def ros_env(tmp_path: Path) -> dict[str, str]:
    """Return an environment for child processes of this test (ROS logs under ``tmp_path``)."""
    return harness.ros_env(tmp_path)
