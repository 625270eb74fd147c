# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Mask scores that mean something: the estimated chance that a mask is the referred object.

A logistic model maps two plain mask statistics (mean foreground probability inside the mask,
log10 of the image fraction it covers) to P(IoU >= 0.5 with the referred object). It is fitted
on one range of held-out rendered scenes and checked on another; the fit and the check are
stored next to the referring model (``refer/score_calibration.json``) and the engine uses it
when present. Numpy only, no ROS, no torch. ``python -m vpd_ros.apps.calibrate_scores`` fits it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

FILENAME = 'score_calibration.json'
MODEL_FILE = 'model.safetensors'
#: A mask counts as right when its IoU with the referred object reaches this.
IOU_RIGHT = 0.5
#: Default seed ranges: both held out from training (seeds >= 1 000 000), disjoint.
FIT_SEEDS = (1000200, 1000400)
CHECK_SEEDS = (1000000, 1000200)
LOGGER = logging.getLogger('vpd_ros')


def mask_features(probs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Return (Q, 2) features per query: mean probability inside its mask, log10 area fraction."""
    probs, masks = np.asarray(probs, np.float32), np.asarray(masks, bool)
    pixels = int(np.prod(masks.shape[1:]))
    probs, masks = probs.reshape(len(probs), pixels), masks.reshape(len(masks), pixels)
    area = masks.sum(1)
    inside = np.where(area > 0, (probs * masks).sum(1) / np.maximum(area, 1), 0.0)
    fraction = np.maximum(area, 1) / max(pixels, 1)
    return np.stack([inside, np.log10(fraction)], axis=1).astype(np.float64)


def file_sha256(path: str) -> str:
    """Return the hex SHA-256 of a file ('' when it does not exist)."""
    if not os.path.isfile(path):
        return ''
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3,
                 iterations: int = 50) -> Tuple[np.ndarray, float]:
    """Fit P(y=1|x) = sigmoid(x.w + b) by Newton's method (L2 on w); return (w, b)."""
    a = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    theta = np.zeros(a.shape[1])
    penalty = np.diag([l2] * x.shape[1] + [0.0])
    for _ in range(iterations):
        p = _sigmoid(a @ theta)
        grad = a.T @ (p - y) + penalty @ theta
        hess = (a * (p * (1 - p))[:, None]).T @ a + penalty + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1])


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> Dict[str, float]:
    """Return Brier score, expected calibration error (equal-width bins), ROC AUC, base rate.

    AUC: the chance that a right mask scores above a wrong one (0.5 = the score says nothing).
    """
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[idx == b].mean() - y[idx == b].mean()) * (idx == b).mean()
              for b in range(bins) if (idx == b).any())
    right, wrong = p[y > 0.5], p[y <= 0.5]
    auc = (float(((right[:, None] > wrong[None]) + 0.5 * (right[:, None] == wrong[None])).mean())
           if len(right) and len(wrong) else float('nan'))
    return {'brier': float(np.mean((p - y) ** 2)), 'ece': float(ece), 'auc': auc,
            'right': float(y.mean()), 'count': int(len(y))}


@dataclass
class ScoreCalibration:
    """A fitted score model and how well it held on scenes it was not fitted on."""

    weights: List[float]
    bias: float
    model_sha256: str = ''
    iou_right: float = IOU_RIGHT
    fit_seeds: List[int] = field(default_factory=lambda: list(FIT_SEEDS))
    check_seeds: List[int] = field(default_factory=lambda: list(CHECK_SEEDS))
    check: Dict[str, Dict[str, float]] = field(default_factory=dict)
    command: str = ''

    def score(self, probs: np.ndarray, masks: np.ndarray) -> List[float]:
        """Return, per query, the estimated P(IoU >= iou_right); 0 for an empty mask."""
        masks = np.asarray(masks, bool)
        p = self.predict(mask_features(probs, masks))
        return [float(v) if m.any() else 0.0 for v, m in zip(p, masks)]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Return P(right) for (N, 2) :func:`mask_features` rows."""
        return _sigmoid(np.asarray(features) @ np.asarray(self.weights) + self.bias)

    def save(self, folder: str) -> str:
        """Write ``score_calibration.json`` into a referring-model folder; return its path."""
        path = os.path.join(folder, FILENAME)
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(asdict(self), f, indent=2)
            f.write('\n')
        return path

    @classmethod
    def load(cls, folder: str) -> Optional['ScoreCalibration']:
        """Read ``score_calibration.json`` from a referring-model folder.

        None when absent, or (with a warning) when it was fitted for other weights than the
        folder's ``model.safetensors``: a stale calibration would make scores lie.
        """
        path = os.path.join(folder, FILENAME)
        if not os.path.isfile(path):
            return None
        with open(path, encoding='utf-8') as f:
            cal = cls(**json.load(f))
        if cal.model_sha256 != file_sha256(os.path.join(folder, MODEL_FILE)):
            LOGGER.warning('vpd_ros: %s was fitted for other weights than %s: scores are the raw '
                           'mean mask probability; refresh it with: %s', path, MODEL_FILE,
                           cal.command or 'python -m vpd_ros.apps.calibrate_scores --write')
            return None
        return cal
