# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Optimiser parameter groups (weight-decay exclusions, per-module lr multipliers) and schedules.

Official recipe (VPD ``depth/train.py``, ``refer/train.py``):

- depth: AdamW betas (0.9, 0.999), weight decay 0.1 except 1-D tensors and biases; the UNet at
  0.01x lr; per-iteration lr rising from ``min_lr`` to ``max_lr`` (power 0.9) over the first
  12 of 25 epochs, falling back to ``min_lr`` by epoch 24, flat after.
- refer: AdamW lr 5e-5, weight decay 1e-2 except parameters whose name contains ``norm``; UNet at
  full lr (the intended 0.01x is never applied); poly ``(1 - it / total) ** 0.9``.

The VAE is frozen in both (``requires_grad`` False, so it is in no group). Every group carries
``lr_mult``; :func:`set_lr` writes ``base_lr * lr_mult`` into each group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

TASKS = ('depth', 'refer')
UNET_PREFIX = 'backbone.unet.'
TEXT_PREFIX = 'text_encoder.'
VAE_PREFIX = 'backbone.vae.'
#: Official depth schedule: peak after 12 of 25 epochs.
DEPTH_PEAK_FRACTION = 12 / 25
DEPTH_END_FRACTION = 24 / 25


def depth_no_decay(name: str, param: torch.Tensor) -> bool:
    """Return True for the depth rule: no weight decay on 1-D tensors and biases."""
    return param.ndim <= 1 or name.endswith('.bias')


def refer_no_decay(name: str, param: torch.Tensor) -> bool:
    """Return True for the referring rule: no weight decay on names containing ``norm``."""
    return 'norm' in name


NO_DECAY: Dict[str, Callable[[str, torch.Tensor], bool]] = {
    'depth': depth_no_decay, 'refer': refer_no_decay}


def freeze_vae(model: nn.Module) -> None:
    """Freeze the backbone VAE (VPD never trains it) and put it in eval mode."""
    model.backbone.vae.requires_grad_(False)
    model.backbone.vae.eval()


def param_groups(model: nn.Module, task: str, weight_decay: float, unet_lr_mult: float,
                 text_lr_mult: float = 1.0) -> List[Dict]:
    """Split the trainable parameters into named groups with ``weight_decay`` and ``lr_mult``.

    A module whose multiplier is 0 is frozen (``requires_grad`` False) rather than put in a
    group, so it costs no optimiser state (e.g. the SD-1.5 text tower, external in VPD).
    """
    if task not in TASKS:
        raise ValueError(f'task {task!r} not in {TASKS}')
    for mult, name in ((unet_lr_mult, 'unet_lr_mult'), (text_lr_mult, 'text_lr_mult')):
        if mult < 0:
            raise ValueError(f'{name} must be >= 0, got {mult}')
    no_decay = NO_DECAY[task]
    groups: Dict[str, Dict] = {}
    for name, param in model.named_parameters():
        if name.startswith(VAE_PREFIX):
            param.requires_grad_(False)
            continue
        module, mult = 'head', 1.0
        if name.startswith(UNET_PREFIX):
            module, mult = 'unet', unet_lr_mult
        elif name.startswith(TEXT_PREFIX):
            module, mult = 'text', text_lr_mult
        param.requires_grad_(mult > 0)
        if mult == 0:
            continue
        decay = 0.0 if no_decay(name, param) else weight_decay
        key = f'{module}_{"decay" if decay else "no_decay"}'
        group = groups.setdefault(key, {'name': key, 'params': [], 'param_names': [],
                                        'weight_decay': decay, 'lr_mult': mult})
        group['params'].append(param)
        group['param_names'].append(name)
    if not groups:
        raise ValueError('no trainable parameter left')
    return [groups[k] for k in sorted(groups)]


def build_optimizer(model: nn.Module, task: str, lr: float, weight_decay: float,
                    unet_lr_mult: float, text_lr_mult: float = 1.0) -> torch.optim.AdamW:
    """Return AdamW (betas 0.9, 0.999) over :func:`param_groups`, lrs set for ``lr``."""
    groups = param_groups(model, task, weight_decay, unet_lr_mult, text_lr_mult)
    for g in groups:
        del g['param_names']  # names are for inspection; optimizer state must stay plain
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
    set_lr(optimizer, lr)
    return optimizer


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float) -> None:
    """Set every group's lr to ``base_lr * lr_mult``."""
    for group in optimizer.param_groups:
        group['lr'] = base_lr * group.get('lr_mult', 1.0)


@dataclass
class LrSchedule:
    """Per-iteration base learning rate.

    Args:
        kind: ``depth`` (min -> max -> min, power 0.9, official proportions) or ``poly``
            (``lr * (1 - it / total) ** power``).
        total: number of iterations.
        lr: peak (depth) or initial (poly) learning rate.
        min_lr: depth floor; ignored by ``poly``.
        power: exponent (0.9 in both official schedules).
    """

    kind: str
    total: int
    lr: float
    min_lr: float = 0.0
    power: float = 0.9

    def __post_init__(self) -> None:
        """Reject unknown kinds and impossible values."""
        if self.kind not in ('depth', 'poly'):
            raise ValueError(f'schedule kind {self.kind!r} not in depth, poly')
        if self.total < 1 or self.lr <= 0 or self.min_lr < 0:
            raise ValueError(f'need total >= 1, lr > 0, min_lr >= 0; got {self.total}, '
                             f'{self.lr}, {self.min_lr}')

    def __call__(self, it: int) -> float:
        """Return the base lr of iteration ``it`` (0-based)."""
        if self.kind == 'poly':
            return self.lr * max(1.0 - it / self.total, 0.0) ** self.power
        peak = max(1, round(self.total * DEPTH_PEAK_FRACTION))
        end = max(peak + 1, round(self.total * DEPTH_END_FRACTION))
        if it < peak:
            return (self.lr - self.min_lr) * (it / peak) ** self.power + self.min_lr
        frac = min((it - peak) / (end - peak), 1.0)
        return max(self.min_lr, self.lr - (self.lr - self.min_lr) * frac ** self.power)


def default_schedule(task: str, total: int, lr: float,
                     min_lr: Optional[float] = None) -> LrSchedule:
    """Return the official schedule kind of a task (depth: rise/fall, refer: poly)."""
    if task == 'depth':
        return LrSchedule('depth', total, lr, 3e-5 if min_lr is None else min_lr)
    if task == 'refer':
        return LrSchedule('poly', total, lr)
    raise ValueError(f'task {task!r} not in {TASKS}')
