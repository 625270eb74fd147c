# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""package.xml declares what vpd_ros imports, and nothing it does not use.

rosdep installs exactly the declared keys on a robot: an import without a key fails there at run
time, a key without an import installs something for nothing. Imports are read from the sources
of the package and its launch files; pip-only libraries are named in package.xml's comment.
"""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
SOURCES = sorted((PACKAGE_DIR / 'vpd_ros').rglob('*.py')) + sorted(
    (PACKAGE_DIR / 'launch').glob('*.py'))
#: Third-party modules with a rosdep key.
ROSDEP_KEYS = {'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'tqdm': 'python3-tqdm',
               'psutil': 'python3-psutil',
               'transformers': 'python3-transformers-pip'}
#: Installed with pip (no rosdep key), named in package.xml's comment; typing_extensions comes
#: with torch.
PIP_ONLY = {'torch', 'diffusers', 'safetensors', 'typing_extensions'}
#: Optional deployment backends (setup.py extras), imported only when chosen; package.xml's
#: comment names how to install them.
EXTRAS = {'onnx', 'onnxruntime', 'openvino', 'tensorrt'}
#: ROS packages that are not message packages.
ROS_PACKAGES = {'rclpy', 'ament_index_python', 'launch', 'launch_ros'}


def _imported_roots() -> set[str]:
    """Return the top-level names of every absolute import in the package and launch files."""
    roots = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split('.')[0])
    return roots - set(sys.stdlib_module_names) - {'__future__', 'vpd_ros'}


def _keys() -> set[str]:
    """Return every dependency key of package.xml but the test-only ones."""
    root = ET.parse(PACKAGE_DIR / 'package.xml').getroot()
    return {e.text for e in root if e.tag in ('depend', 'exec_depend', 'build_depend')}


def test_every_import_is_declared_and_every_key_used() -> None:
    """Each imported ROS package and library has its key; each key is imported."""
    wanted = set()
    for root in _imported_roots():
        if root in ROSDEP_KEYS:
            wanted.add(ROSDEP_KEYS[root])
        elif root in ROS_PACKAGES or root.endswith(('_msgs', '_interfaces')):
            wanted.add(root)
        else:
            assert root in PIP_ONLY | EXTRAS, f'{root} is imported but has no rosdep key here'
    assert wanted == _keys()
    comment = (PACKAGE_DIR / 'package.xml').read_text(encoding='utf-8')
    assert all(name in comment for name in PIP_ONLY - {'typing_extensions'})
    assert all(f'[{name}]' in comment for name in EXTRAS)
