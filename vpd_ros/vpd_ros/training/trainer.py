# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The training loop shared by the VAE, depth and referring tasks, with resumable checkpoints.

A checkpoint folder holds the model (``config.json`` + ``model.safetensors``) and
``trainer_state.pt`` (step, optimizer and grad-scaler state, loss history) written with
``torch.save`` and read back with ``torch.load(weights_only=True)``: plain tensors and numbers
only, no pickled code. Batches depend only on (seed, step), so a resumed run continues exactly.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..model.pretrained import WEIGHTS_NAME, PretrainedMixin, load_strict
from ..data.datasets import make_batch
from .losses import dice_loss, refer_loss, silog_loss
from .optim import LrSchedule, set_lr

STATE_NAME = 'trainer_state.pt'
CHECKPOINT_DIR = 'checkpoint'
PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}

LossFn = Callable[[nn.Module, Dict[str, Any], torch.device], torch.Tensor]


def depth_loss_fn(model: nn.Module, batch: Dict[str, Any], device: torch.device) -> torch.Tensor:
    """Return the SiLog loss of a depth model on a batch of images and GT depth."""
    pred = model(batch['image'].to(device)).depth
    return silog_loss(pred.float(), batch['depth'].to(device))


def refer_loss_fn(model: nn.Module, batch: Dict[str, Any], device: torch.device,
                  dice_weight: float = 0.0) -> torch.Tensor:
    """Return the weighted cross-entropy (+ dice_weight x Dice) of a referring model on a batch."""
    logits = model(batch['image'].to(device), text=batch['text']).logits
    mask = batch['mask'].to(device)
    loss = refer_loss(logits, mask)
    return loss + dice_weight * dice_loss(logits, mask) if dice_weight else loss


def save_weights(model: nn.Module, folder: str, dtype: Optional[torch.dtype] = None) -> None:
    """Write ``config.json`` + ``model.safetensors`` (VPD models and diffusers autoencoders)."""
    if isinstance(model, PretrainedMixin):
        model.save_pretrained(folder, dtype=dtype)
        return
    os.makedirs(folder, exist_ok=True)
    model.save_config(folder)  # diffusers models name it config.json too
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
             .detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(folder, WEIGHTS_NAME), metadata={'format': 'pt'})


@dataclass
class TrainerConfig:
    """Loop settings.

    Args:
        steps: total optimisation steps.
        batch_size: samples per step.
        seed: batch sampling and augmentation seed.
        precision: ``fp32``, ``fp16`` (CUDA only, with a GradScaler) or ``bf16`` autocast.
        device: torch device string.
        save_every: checkpoint interval in steps (0: only at the end).
        grad_clip: max gradient norm (0: off).
        progress: show a tqdm progress bar.
    """

    steps: int
    batch_size: int
    seed: int = 0
    precision: str = 'fp32'
    device: str = 'cpu'
    save_every: int = 0
    grad_clip: float = 0.0
    progress: bool = True
    log_every: int = 25

    def __post_init__(self) -> None:
        """Reject impossible settings, naming the allowed values."""
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision {self.precision!r} not in {sorted(PRECISIONS)}')
        if self.precision == 'fp16' and not self.device.startswith('cuda'):
            raise ValueError('precision fp16 needs a CUDA device (use fp32 or bf16 on CPU)')
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f'steps and batch_size must be >= 1, got {self.steps}, '
                             f'{self.batch_size}')


@dataclass
class Trainer:
    """Run ``loss_fn`` over batches of ``dataset`` with AdamW, a per-iteration lr and checkpoints.

    Args:
        model: the module to train (frozen parts have ``requires_grad`` False).
        loss_fn: (model, batch, device) -> scalar loss.
        dataset: has ``sample(index, rng)`` and ``len`` (see :mod:`vpd_ros.data.datasets`).
        optimizer: built by :func:`vpd_ros.training.optim.build_optimizer` (groups with lr_mult).
        schedule: base lr per iteration.
        out_dir: where ``checkpoint/`` goes.
        config: a :class:`TrainerConfig`.
        before_step: optional hook called with the model before each forward (e.g. re-freeze).
    """

    model: nn.Module
    loss_fn: LossFn
    dataset: Any
    optimizer: torch.optim.Optimizer
    schedule: LrSchedule
    out_dir: str
    config: TrainerConfig
    before_step: Optional[Callable[[nn.Module], None]] = None
    step: int = 0
    losses: List[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Move the model to the device and create the grad scaler for fp16."""
        self.device = torch.device(self.config.device)
        self.model.to(self.device)
        self.scaler = (torch.amp.GradScaler('cuda') if self.config.precision == 'fp16'
                       else None)

    @property
    def checkpoint_dir(self) -> str:
        """The folder the resumable checkpoint is written to."""
        return os.path.join(self.out_dir, CHECKPOINT_DIR)

    def _autocast(self):
        if self.config.precision == 'fp32':
            return nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.config.precision])

    def train_step(self) -> float:
        """Run one optimisation step and return its loss."""
        set_lr(self.optimizer, self.schedule(self.step))
        batch = make_batch(self.dataset, self.config.batch_size, self.config.seed, self.step)
        self.model.train()
        if self.before_step is not None:
            self.before_step(self.model)
        with self._autocast():
            loss = self.loss_fn(self.model, batch, self.device)
        if not torch.isfinite(loss):
            raise FloatingPointError(f'non-finite loss {float(loss)} at step {self.step}')
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for g in self.optimizer.param_groups for p in g['params']]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            self.optimizer.step()
        self.step += 1
        value = float(loss.detach())
        self.losses.append(value)
        return value

    def run(self, until: Optional[int] = None) -> List[float]:
        """Train from the current step to ``until`` (default: config.steps); return all losses."""
        until = self.config.steps if until is None else min(until, self.config.steps)
        bar = None
        if self.config.progress:
            from tqdm import tqdm
            bar = tqdm(total=self.config.steps, initial=self.step, unit='step', mininterval=5)
        start = time.perf_counter()
        while self.step < until:
            loss = self.train_step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f'{loss:.4f}', lr=f'{self.schedule(self.step - 1):.2e}')
                if self.step % self.config.log_every == 0:
                    recent = self.losses[-self.config.log_every:]
                    bar.write(f'step {self.step} loss {sum(recent) / len(recent):.4f} '
                              f'elapsed {time.perf_counter() - start:.0f}s')
            if self.config.save_every and self.step % self.config.save_every == 0:
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        self.save_checkpoint()
        return self.losses

    def save_checkpoint(self) -> str:
        """Write the model and trainer state to ``<out_dir>/checkpoint``; return the folder."""
        folder = self.checkpoint_dir
        save_weights(self.model, folder)
        state = {'step': self.step, 'optimizer': self.optimizer.state_dict(),
                 'scaler': self.scaler.state_dict() if self.scaler is not None else {},
                 'losses': torch.tensor(self.losses, dtype=torch.float64),
                 'seed': self.config.seed}
        tmp = os.path.join(folder, STATE_NAME + '.tmp')
        torch.save(state, tmp)
        os.replace(tmp, os.path.join(folder, STATE_NAME))
        return folder

    def load_checkpoint(self, folder: Optional[str] = None) -> None:
        """Restore model weights, optimizer/scaler state, step and losses from a checkpoint."""
        folder = folder or self.checkpoint_dir
        weights = os.path.join(folder, WEIGHTS_NAME)
        state_path = os.path.join(folder, STATE_NAME)
        for path in (weights, state_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(f'{path} not found: not a trainer checkpoint folder')
        load_strict(self.model, load_file(weights, device=str(self.device)), weights)
        state = torch.load(state_path, weights_only=True, map_location='cpu')
        if int(state['seed']) != self.config.seed:
            raise ValueError(f'checkpoint seed {int(state["seed"])} differs from --seed '
                             f'{self.config.seed}; batches would not continue')
        self.optimizer.load_state_dict(state['optimizer'])
        if self.scaler is not None and state['scaler']:
            self.scaler.load_state_dict(state['scaler'])
        self.step = int(state['step'])
        self.losses = [float(v) for v in state['losses']]
