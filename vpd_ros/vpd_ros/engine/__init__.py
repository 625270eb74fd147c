# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Deployment: frames in, depth and masks out; imports model/, never ROS.

Loading, options, pre/post-processing, TTA, 3D grounding and debug pictures. The names below
load on first use: ``vpd_ros.engine.config`` (the node's parameter checks) must stay
importable without torch and diffusers, which read the offline variables once.
"""

import importlib
from typing import Any

_HOMES = {'EngineConfig': 'config', 'check_option': 'config', 'check_tasks': 'config',
          'EngineSpec': 'config', 'PACKAGE_WEIGHTS': 'loader', 'default_weights': 'loader',
          'load_engine': 'loader', 'Prediction': 'runner', 'VPDEngine': 'runner'}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """Import the submodule holding ``name`` on first use."""
    if name not in _HOMES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{_HOMES[name]}', __name__), name)
