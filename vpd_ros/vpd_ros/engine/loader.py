# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one way to load an engine: a spec (weights or official checkpoints, sd15, tasks) in.

The node, the CLI and the bench all load through :func:`load_engine`.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from ..model.presets import model_names
from .config import TASKS, EngineConfig, EngineSpec
from .runner import VPDEngine
from .shipped import shipped_notice

PACKAGE_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'weights')


def default_weights() -> str:
    """Return ``tiny`` when the shipped tiny model is complete, else ``random:tiny``."""
    files = [os.path.join(PACKAGE_WEIGHTS, 'tiny', task, 'model.safetensors')
             for task in TASKS]
    return 'tiny' if all(os.path.isfile(f) for f in files) else 'random:tiny'


def load_engine(spec: EngineSpec, config: Optional[EngineConfig] = None,
                say: Optional[Callable[[str], None]] = None) -> VPDEngine:
    """Load the engine a spec names (official checkpoints win over ``weights``).

    ``say`` takes a shipped model's notice (:func:`shipped_notice`; default: Python logging).

    A config with a deployment ``backend`` (:class:`vpd_ros.engine.deploy.engine.BackendConfig`)
    gives an engine running the exported graphs.
    """
    cls = VPDEngine
    if getattr(config, 'backend', 'torch') != 'torch':
        from .deploy.engine import GraphEngine
        cls = GraphEngine
    if spec.official:
        return cls.from_official(
            spec.depth_checkpoint if 'depth' in spec.tasks else None,
            spec.refer_checkpoint if 'refer' in spec.tasks else None,
            sd15=spec.sd15 or None, config=config)
    weights = spec.weights.strip()
    if weights.startswith('random:'):
        return cls.from_preset(weights.split(':', 1)[1], spec.tasks, config=config)
    engine = cls.from_pretrained(model_folder(weights), spec.tasks, config)
    shipped_notice(weights, say)
    return engine


def model_folder(weights: str) -> str:
    """Return the folder of a shipped model name (``tiny``) or of a model folder path."""
    shipped = os.path.join(PACKAGE_WEIGHTS, weights)
    if os.sep not in weights and os.path.isdir(shipped):
        return shipped
    if not os.path.isdir(weights):
        known = sorted(os.listdir(PACKAGE_WEIGHTS)) if os.path.isdir(PACKAGE_WEIGHTS) else []
        raise FileNotFoundError(f'weights {weights!r}: not a folder, not a shipped model '
                                f'({", ".join(known) or "none shipped"}) and not '
                                'random:<name> (' + ', '.join(model_names()) + ')')
    return weights
