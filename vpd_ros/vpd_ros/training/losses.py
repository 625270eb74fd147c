# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The official VPD training losses: SiLog for depth, class-weighted cross-entropy for referring."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Referring class weights [background, referred object] (VPD refer/train.py).
REFER_CLASS_WEIGHTS = (0.9, 1.1)


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, lambd: float = 0.5) -> torch.Tensor:
    """Return ``sqrt(mean d^2 - lambd * mean(d)^2)``, ``d = ln g - ln p`` over pixels with g > 0.

    As VPD's ``SiLogLoss`` (no x10 factor): one value over all valid pixels of the batch.
    ``pred`` and ``gt`` are (B, 1, H, W) or (B, H, W) metres of the same shape.
    """
    if pred.shape != gt.shape:
        raise ValueError(f'pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ')
    valid = (gt > 0).detach()
    if not bool(valid.any()):
        raise ValueError('silog_loss: no pixel with gt > 0')
    d = torch.log(gt[valid]) - torch.log(pred[valid].float().clamp_min(1e-6))
    return torch.sqrt((d * d).mean() - lambd * d.mean() ** 2 + 1e-12)


def refer_loss(logits: torch.Tensor, mask: torch.Tensor,
               weights: tuple = REFER_CLASS_WEIGHTS) -> torch.Tensor:
    """Return the class-weighted cross-entropy of (B, 2, H, W) logits against (B, H, W) {0, 1}."""
    if logits.ndim != 4 or logits.shape[1] != 2 or mask.shape != logits[:, 0].shape:
        raise ValueError(f'need logits (B, 2, H, W) and mask (B, H, W), got '
                         f'{tuple(logits.shape)} and {tuple(mask.shape)}')
    w = torch.tensor(weights, dtype=torch.float32, device=logits.device)
    return F.cross_entropy(logits.float(), mask.long(), weight=w)


def dice_loss(logits: torch.Tensor, mask: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Return the mean over the batch of ``1 - soft Dice`` of the foreground probability.

    Not in the official recipe: the tiny model, trained from scratch on small objects, adds it
    to the cross-entropy so that it stops predicting all background early (see its model card).
    """
    if logits.ndim != 4 or logits.shape[1] != 2 or mask.shape != logits[:, 0].shape:
        raise ValueError(f'need logits (B, 2, H, W) and mask (B, H, W), got '
                         f'{tuple(logits.shape)} and {tuple(mask.shape)}')
    p = torch.softmax(logits.float(), dim=1)[:, 1].flatten(1)
    g = mask.float().flatten(1)
    dice = (2 * (p * g).sum(1) + smooth) / (p.sum(1) + g.sum(1) + smooth)
    return (1 - dice).mean()
