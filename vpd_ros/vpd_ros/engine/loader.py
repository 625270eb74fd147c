# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one way to load an engine: a spec (weights or official checkpoints, sd15, tasks) in.

The node, the CLI and the bench all load through :func:`load_engine`.
"""

from __future__ import annotations

import os
from typing import Optional

from .config import TASKS, EngineConfig, EngineSpec
from .runner import VPDEngine

PACKAGE_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'weights')


def default_weights() -> str:
    """Return ``tiny`` when the shipped tiny model is complete, else ``random:tiny``."""
    files = [os.path.join(PACKAGE_WEIGHTS, 'tiny', task, 'model.safetensors')
             for task in TASKS]
    return 'tiny' if all(os.path.isfile(f) for f in files) else 'random:tiny'


def load_engine(spec: EngineSpec, config: Optional[EngineConfig] = None) -> VPDEngine:
    """Load the engine a spec names (official checkpoints win over ``weights``)."""
    if spec.official:
        return VPDEngine.from_official(
            spec.depth_checkpoint if 'depth' in spec.tasks else None,
            spec.refer_checkpoint if 'refer' in spec.tasks else None,
            sd15=spec.sd15 or None, config=config)
    weights = spec.weights.strip()
    if weights.startswith('random:'):
        return VPDEngine.from_preset(weights.split(':', 1)[1], spec.tasks, config=config)
    shipped = os.path.join(PACKAGE_WEIGHTS, weights)
    if os.sep not in weights and os.path.isdir(shipped):
        return VPDEngine.from_pretrained(shipped, spec.tasks, config)
    if not os.path.isdir(weights):
        known = sorted(os.listdir(PACKAGE_WEIGHTS)) if os.path.isdir(PACKAGE_WEIGHTS) else []
        raise FileNotFoundError(f'weights {weights!r}: not a folder, not a shipped model '
                                f'({", ".join(known) or "none shipped"}) and not '
                                'random:<preset>')
    return VPDEngine.from_pretrained(weights, spec.tasks, config)
