# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The official VPD evaluation metrics for metric depth and referring segmentation.

Why: numbers reported for vpd_ros models must mean what the paper's numbers mean. Depth follows
VPD ``depth/utils_depth/metrics.py`` + ``test.py``: evaluation region GT in (min, max) (and the
Eigen crop on 480x640 NYUv2), predictions inf -> max and nan -> min, metrics per image then the
mean over images. Referring follows VPD ``refer/test.py``: per-sentence intersection and union of
binary masks, oIoU = sum I / sum U, mIoU = mean per-sentence IoU (0 when the union is empty),
P@X = fraction of sentences with IoU >= X. Pure numpy, no torch.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

DEPTH_METRICS = ('d1', 'd2', 'd3', 'abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'log10', 'silog')
PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
REFER_METRICS = ('oIoU', 'mIoU') + tuple(f'P@{t:.1f}' for t in PRECISION_THRESHOLDS)
#: Eigen crop of 480x640 NYUv2 images: rows 45:471, columns 41:601.
EIGEN_CROP = (45, 471, 41, 601)
EIGEN_SHAPE = (480, 640)


def depth_eval_mask(gt: np.ndarray, min_depth: float = 1e-3, max_depth: float = 10.0,
                    eigen_crop: bool = False) -> np.ndarray:
    """Return the (H, W) bool evaluation region: GT in (min_depth, max_depth) [and Eigen crop]."""
    if not 0.0 <= min_depth < max_depth:
        raise ValueError(f'need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}')
    gt = np.asarray(gt)
    valid = (gt > min_depth) & (gt < max_depth)
    if eigen_crop:
        if gt.shape != EIGEN_SHAPE:
            raise ValueError(f'the Eigen crop is defined on {EIGEN_SHAPE} images, got {gt.shape}')
        crop = np.zeros_like(valid)
        r0, r1, c0, c1 = EIGEN_CROP
        crop[r0:r1, c0:c1] = True
        valid &= crop
    return valid


def depth_metrics(pred: np.ndarray, gt: np.ndarray, min_depth: float = 1e-3,
                  max_depth: float = 10.0, eigen_crop: bool = False) -> Dict[str, float]:
    """Return the nine official depth metrics of one (H, W) prediction against its GT (metres).

    ``silog`` is ``sqrt(mean d^2 - 0.5 mean(d)^2)`` with ``d = ln p - ln g`` (no x100). Raises
    ValueError when shapes differ or no pixel lies in the evaluation region.
    """
    pred = np.array(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f'pred {pred.shape} and gt {gt.shape} must be the same (H, W) shape')
    pred[np.isinf(pred)] = max_depth
    pred[np.isnan(pred)] = min_depth
    valid = depth_eval_mask(gt, min_depth, max_depth, eigen_crop)
    if not valid.any():
        raise ValueError('no ground-truth pixel inside the evaluation region '
                         f'({min_depth}, {max_depth})')
    p, g = pred[valid], gt[valid]
    thresh = np.maximum(g / p, p / g)
    diff = p - g
    d = np.log(p) - np.log(g)
    return {
        'd1': float((thresh < 1.25).mean()),
        'd2': float((thresh < 1.25 ** 2).mean()),
        'd3': float((thresh < 1.25 ** 3).mean()),
        'abs_rel': float(np.mean(np.abs(diff) / g)),
        'sq_rel': float(np.mean(diff ** 2 / g)),
        'rmse': float(np.sqrt(np.mean(diff ** 2))),
        'rmse_log': float(np.sqrt(np.mean(d ** 2))),
        'log10': float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        'silog': float(np.sqrt(max(np.mean(d ** 2) - 0.5 * np.mean(d) ** 2, 0.0))),
    }


class DepthMeter:
    """Accumulate per-image depth metrics; :meth:`result` is the mean over images (official)."""

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 10.0,
                 eigen_crop: bool = False) -> None:
        depth_eval_mask(np.zeros((1, 1)), min_depth, max_depth)  # validates the range
        self.min_depth, self.max_depth, self.eigen_crop = min_depth, max_depth, eigen_crop
        self.per_image: List[Dict[str, float]] = []

    def update(self, pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
        """Add one image and return its metrics."""
        m = depth_metrics(pred, gt, self.min_depth, self.max_depth, self.eigen_crop)
        self.per_image.append(m)
        return m

    def result(self) -> Dict[str, float]:
        """Return the mean of each metric over the images added so far, plus ``count``."""
        if not self.per_image:
            raise ValueError('no image was added to the DepthMeter')
        out = {k: float(np.mean([m[k] for m in self.per_image])) for k in DEPTH_METRICS}
        out['count'] = float(len(self.per_image))
        return out


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> Tuple[int, int]:
    """Return (intersection, union) pixel counts of two same-shape binary masks."""
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f'mask shapes differ: pred {pred.shape}, gt {gt.shape}')
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


class ReferMeter:
    """Accumulate per-sentence I and U; :meth:`result` gives oIoU, mIoU and P@0.5..0.9."""

    def __init__(self) -> None:
        self.intersections: List[int] = []
        self.unions: List[int] = []

    def update(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """Add one sentence's predicted and GT masks; return its IoU (0 for an empty union)."""
        i, u = intersection_union(pred, gt)
        self.intersections.append(i)
        self.unions.append(u)
        return i / u if u else 0.0

    def ious(self) -> np.ndarray:
        """Return the per-sentence IoUs (0 where the union is empty, as the official test)."""
        i = np.asarray(self.intersections, np.float64)
        u = np.asarray(self.unions, np.float64)
        return np.divide(i, u, out=np.zeros_like(i), where=u > 0)

    def result(self) -> Dict[str, float]:
        """Return oIoU, mIoU, P@X for X in 0.5..0.9, and ``count`` (sentences)."""
        if not self.unions:
            raise ValueError('no sentence was added to the ReferMeter')
        ious = self.ious()
        total_u = float(np.sum(self.unions))
        out = {'oIoU': float(np.sum(self.intersections)) / total_u if total_u else 0.0,
               'mIoU': float(ious.mean())}
        for t in PRECISION_THRESHOLDS:
            out[f'P@{t:.1f}'] = float(np.mean(ious >= t))
        out['count'] = float(len(self.unions))
        return out


def format_metrics(metrics: Dict[str, float]) -> str:
    """Return ``name value`` pairs on one line (count as an integer), for logs and the CLI."""
    return '  '.join(f'{k} {int(v)}' if k == 'count' else f'{k} {v:.4f}'
                     for k, v in metrics.items())
