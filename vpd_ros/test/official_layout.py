# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Build state dicts in the exact official VPD layout (key lists of the released checkpoints).

``depth_keys.tsv``/``refer_keys.tsv`` list every tensor of ``vpd_depth_480x480.pth`` and
``vpd_ris_refcoco.pth`` (key, shape, dtype), read from the official model classes at SD-1.5 size;
``evp_depth_keys.tsv``/``evp_refer_keys.tsv`` the same for EVP's NYUv2 and RefCOCO models.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Dict, List, Tuple

import torch

DATA = os.path.join(os.path.dirname(__file__), 'data', 'official')


def official_keys(kind: str) -> List[Tuple[str, Tuple[int, ...], str]]:
    """Return (key, shape, dtype) rows for ``depth``, ``refer``, ``evp_depth`` or ``evp_refer``."""
    rows = []
    with open(os.path.join(DATA, f'{kind}_keys.tsv'), encoding='utf-8') as f:
        for line in f:
            key, shape, dtype = line.rstrip('\n').split('\t')
            rows.append((key, tuple(int(s) for s in shape.split(',') if s), dtype))
    return rows


def random_official_state(kind: str, seed: int = 0, token_length: int = 40,
                          shared: bool = False) -> Dict[str, torch.Tensor]:
    """Random tensors in the official layout (refer widths adjusted to ``token_length``).

    Values are uniform with std 0.02. Each tensor is its own window into one pool of random
    values (the windows start at distinct offsets): a copy of it, or with ``shared`` a view, so
    that a full-size state costs one pool of 2**26 values and ``torch.save`` writes the pool
    once (a file of ~270 MB instead of 3-4 GB; the tensors' contents are the same).
    """
    rows = []
    for key, shape, dtype in official_keys(kind):
        if key in ('classifier.conv1_4.weight', 'classifier.conv1_3.weight'):
            shape = (shape[0], shape[1] - 40 + token_length) + shape[2:]
        rows.append((key, shape, dtype))
    window = 1 << max(math.prod(shape) for _, shape, _ in rows).bit_length()
    gen = torch.Generator().manual_seed(seed)
    pool = torch.empty(2 * window).uniform_(-0.0346, 0.0346, generator=gen)
    state = {}
    for index, (key, shape, dtype) in enumerate(rows):
        if key.endswith('log_binomial_transform.k_idx'):  # fixed values in real checkpoints
            state[key] = torch.arange(shape[1]).view(shape)
        elif key.endswith('log_binomial_transform.K_minus_1'):
            state[key] = torch.full(shape, 63.0)
        elif dtype == 'int64':
            state[key] = torch.tensor(7, dtype=torch.int64)
        else:  # the window of each tensor starts elsewhere: an odd step modulo a power of two
            start = (index * 2654435761 + seed) % window
            window_view = pool[start:start + math.prod(shape)].view(shape)
            state[key] = window_view if shared else window_view.clone()
    return state


def official_names(kind: str, ours: Dict[str, torch.Tensor], prefixes, unet_config,
                   vae_config) -> Dict[str, str]:
    """Map official key -> vpd_ros key by converting one small unique tensor per official key.

    The diffusers helpers move tensors without copying (VAE attention weights become views), so
    storage identity reveals where each official tensor lands. Keys whose target is absent from
    ``ours`` (a smaller preset) are left out.
    """
    from vpd_ros.model.convert import convert_official

    markers = {}
    for key, shape, _ in official_keys(kind):
        markers[key] = torch.zeros((1,) * max(len(shape), 1))
    converted = convert_official(markers, prefixes, unet_config, vae_config, 'markers')
    by_ptr = {t.untyped_storage().data_ptr(): k for k, t in markers.items()}
    return {by_ptr[t.untyped_storage().data_ptr()]: k for k, t in converted.items() if k in ours}


def export_official(kind: str, model: torch.nn.Module, prefixes) -> Dict[str, torch.Tensor]:
    """Write a vpd_ros model's tensors under official names and shapes (test-side inverse)."""
    ours = model.state_dict()
    names = official_names(kind, ours, prefixes, dict(model.backbone.unet.config),
                           dict(model.backbone.vae.config))
    out = {}
    for official, mine in names.items():
        tensor = ours[mine].clone()
        if '.mid.attn_1.' in official and official.endswith('.weight') and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # ldm VAE attention projections are 1x1 convs
        out[official] = tensor
    return out


def refer_extras() -> Dict[str, object]:
    """What the official EVP referring training saves next to the weights (train.py)."""
    weight = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([weight], lr=8e-5)
    weight.sum().backward()
    opt.step()  # the saved optimizer state holds moments and a step count
    return {'optimizer': opt.state_dict(), 'epoch': 19, 'lr_scheduler': {'t_initial': 20},
            'args': argparse.Namespace(token_length=40, dataset='refcoco', lr=8e-5)}
