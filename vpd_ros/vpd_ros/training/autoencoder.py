# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pre-training of the tiny preset's VAE, and copying its encoder into VPD models.

Why: VPD keeps the Stable Diffusion VAE frozen, and the tiny preset has no pretrained VAE. A
randomly initialised frozen encoder would throw information away, so the tiny recipe first
trains a full ``AutoencoderKL`` (encoder and decoder) on reconstruction with a small KL term,
then copies the encoder half into every tiny model and freezes it there (identical weights in the
depth and referring models, so the engine encodes each frame once).
"""

from __future__ import annotations

import json
import os
from typing import Dict

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from safetensors.torch import load_file
from torch import nn

from ..model import get_preset
from ..model.pretrained import CONFIG_NAME, WEIGHTS_NAME, load_strict


def build_autoencoder(preset: str = 'tiny') -> AutoencoderKL:
    """Return a freshly initialised ``AutoencoderKL`` (with decoder) of the preset's VAE config."""
    return AutoencoderKL(**get_preset(preset)['vae'])


def autoencoder_loss(vae: AutoencoderKL, images: torch.Tensor,
                     kl_weight: float = 1e-4) -> torch.Tensor:
    """Return L1 + L2 reconstruction of (B, 3, H, W) images in [0, 1] plus ``kl_weight`` x KL.

    The KL is averaged per latent element; the decoder sees a posterior sample, as in SD's VAE.
    """
    x = images * 2.0 - 1.0
    posterior = vae.encode(x).latent_dist
    rec = vae.decode(posterior.sample()).sample
    latent_elems = posterior.mean[0].numel()
    kl = posterior.kl().mean() / latent_elems
    return F.l1_loss(rec, x) + F.mse_loss(rec, x) + kl_weight * kl


def encoder_state(vae: AutoencoderKL) -> Dict[str, torch.Tensor]:
    """Return the VAE weights VPD keeps: everything but the decoder."""
    return {k: v for k, v in vae.state_dict().items() if not k.startswith('decoder.')}


def copy_encoder(vae: AutoencoderKL, model: nn.Module) -> None:
    """Load the VAE's encoder and quant convs into ``model.backbone.vae`` strictly; freeze it."""
    load_strict(model.backbone.vae, encoder_state(vae), 'pre-trained autoencoder')
    model.backbone.vae.requires_grad_(False)


def load_autoencoder(folder: str) -> AutoencoderKL:
    """Load an autoencoder folder written by the trainer (``config.json`` + safetensors)."""
    config_path, weights = os.path.join(folder, CONFIG_NAME), os.path.join(folder, WEIGHTS_NAME)
    for path in (config_path, weights):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{path} not found: train one with `vpd-ros train --task vae`')
    with open(config_path, encoding='utf-8') as f:
        vae = AutoencoderKL.from_config(json.load(f))
    load_strict(vae, load_file(weights), weights)
    return vae.eval()
