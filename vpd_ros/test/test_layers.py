# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The layers: model/ -> engine/ -> ros/ -> apps/ (data/ and training/ beside), each importing
only downwards; only ros/ and apps/ import ROS."""

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


#: Each layer and the vpd_ros packages it may import (itself included); anything else, e.g.
#: ros/ importing model/, or the engine importing ros/ or apps/, breaks the layering.
LAYERS = {
    'model': {'model'},
    'data': {'data'},
    'training': {'training', 'model', 'data'},
    'engine': {'engine', 'model'},
    'ros': {'ros', 'engine'},
    'apps': {'apps', 'ros', 'engine', 'training', 'data', 'model'},
}
#: Layers that may import ROS packages (the node, and the applications that talk to it).
ROS_LAYERS = ('ros', 'apps')


def layer_of(path: Path) -> str:
    """Return the layer (sub-package of vpd_ros) a file belongs to, '' for the package root."""
    parts = path.relative_to(PKG).parts
    return parts[0] if len(parts) > 1 else ''


def test_every_module_is_in_a_layer():
    """Every module lives in one of the layers (the root holds only __init__.py)."""
    stray = [str(p.relative_to(PKG)) for p in PKG.rglob('*.py')
             if layer_of(p) not in LAYERS and p != PKG / '__init__.py']
    assert not stray, stray


def test_each_layer_imports_only_downwards():
    """model/ and data/ stand alone; the engine uses model/; ros/ only the engine; apps on top."""
    offenders = []
    for path in PKG.rglob('*.py'):
        allowed = LAYERS.get(layer_of(path), set())
        for module in imported(path):
            parts = module.split('.')
            if parts[0] == 'vpd_ros' and len(parts) > 1 and parts[1] not in allowed:
                offenders.append(f'{path.relative_to(PKG)}: {module}')
    assert not offenders, offenders


def test_ros_only_in_the_ros_and_apps_layers():
    """Only vpd_ros/ros/ and vpd_ros/apps/ import rclpy or ROS message packages."""
    offenders = []
    for path in PKG.rglob('*.py'):
        if layer_of(path) not in ROS_LAYERS:
            offenders += [f'{path.relative_to(PKG)}: {m}' for m in imported(path)
                          if m.split('.')[0] in ROS_MODULES]
    assert not offenders, offenders


def test_engine_options_load_neither_torch_nor_diffusers():
    """The node takes its checks from engine.config before it sets the offline variables."""
    code = ('import sys, vpd_ros.engine.config;'
            'print([m for m in ("torch", "diffusers", "transformers") if m in sys.modules])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == '[]'


def test_engine_import_does_not_load_rclpy():
    """Importing the engine (and the CLI) in a fresh interpreter loads no ROS module."""
    code = ('import sys, vpd_ros.engine.loader, vpd_ros.apps.cli, vpd_ros.engine.geometry, '
            'vpd_ros.engine.visualize;'
            f'print([m for m in sys.modules if m.split(".")[0] in {ROS_MODULES!r}])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == '[]'
