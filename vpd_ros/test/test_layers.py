# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The dependency rule: model <- engine <- ros/cli; nothing outside ros/ imports ROS."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / 'vpd_ros'
ROS_MODULES = ('rclpy', 'sensor_msgs', 'std_msgs', 'geometry_msgs', 'visualization_msgs',
               'diagnostic_msgs', 'lifecycle_msgs', 'vpd_ros_interfaces', 'builtin_interfaces',
               'rosidl_runtime_py', 'launch', 'launch_ros')


def imported(path: Path):
    """Yield every absolute module name a file imports (relative imports resolved)."""
    parts = path.relative_to(PKG.parent).with_suffix('').parts
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[:len(parts) - node.level])
                yield '.'.join(base + ([node.module] if node.module else []))
            else:
                yield node.module


def test_no_ros_outside_the_ros_package():
    """Only vpd_ros/ros/ may import rclpy or ROS message packages."""
    offenders = []
    for path in PKG.rglob('*.py'):
        if path.relative_to(PKG).parts[0] in ('ros', 'apps'):
            continue
        offenders += [f'{path.name}: {m}' for m in imported(path)
                      if m.split('.')[0] in ROS_MODULES]
    assert not offenders, offenders


def test_model_imports_neither_engine_nor_ros():
    """vpd_ros.model depends only on PyTorch/diffusers/transformers and itself."""
    for path in (PKG / 'model').rglob('*.py'):
        bad = [m for m in imported(path) if m.startswith('vpd_ros.')
               and not m.startswith('vpd_ros.model')]
        assert not bad, (path.name, bad)


def test_engine_import_does_not_load_rclpy():
    """Importing the engine (and the CLI) in a fresh interpreter loads no ROS module."""
    code = ('import sys, vpd_ros.engine, vpd_ros.apps.cli, vpd_ros.engine.geometry, '
            'vpd_ros.engine.visualize;'
            f'print([m for m in sys.modules if m.split(".")[0] in {ROS_MODULES!r}])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == '[]'
