# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Model presets: the paper's SD-1.5 sizes (``sd15``) and a small same-code variant (``tiny``).

Each holds VPD's head widths (``depth``, ``refer``) and EVP's (``evp_depth``, ``evp_refer``).

A preset is plain JSON-able data: the diffusers UNet/VAE configs, the CLIP text config and the head
widths. Both presets go through the same builders, so every test on ``tiny`` exercises the code that
runs the real model.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Tuple

SD15_UNET: Dict[str, Any] = {
    'sample_size': 64,
    'in_channels': 4,
    'out_channels': 4,
    'down_block_types': ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                         'DownBlock2D'],
    'up_block_types': ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                       'CrossAttnUpBlock2D'],
    'block_out_channels': [320, 640, 1280, 1280],
    'layers_per_block': 2,
    'cross_attention_dim': 768,
    'attention_head_dim': 8,
    'norm_num_groups': 32,
    'norm_eps': 1e-5,
    'flip_sin_to_cos': True,
    'freq_shift': 0,
    'act_fn': 'silu',
    'use_linear_projection': False,
}

SD15_VAE: Dict[str, Any] = {
    'in_channels': 3,
    'out_channels': 3,
    'down_block_types': ['DownEncoderBlock2D'] * 4,
    'up_block_types': ['UpDecoderBlock2D'] * 4,
    'block_out_channels': [128, 256, 512, 512],
    'layers_per_block': 2,
    'latent_channels': 4,
    'norm_num_groups': 32,
    'sample_size': 512,
}

# openai/clip-vit-large-patch14 text tower (SD-1.5's text encoder), ids as in its config.json.
SD15_TEXT: Dict[str, Any] = {
    'vocab_size': 49408,
    'hidden_size': 768,
    'intermediate_size': 3072,
    'projection_dim': 768,
    'num_hidden_layers': 12,
    'num_attention_heads': 12,
    'max_position_embeddings': 77,
    'hidden_act': 'quick_gelu',
    'layer_norm_eps': 1e-5,
    'bos_token_id': 0,
    'eos_token_id': 2,
    'pad_token_id': 1,
}

# The tiny UNet drops the full-resolution (level 0) transformers: at 256 px they are half of its
# CPU time, and VPD takes neither taps nor attention maps from that level.
TINY_UNET: Dict[str, Any] = dict(
    SD15_UNET, sample_size=32,
    down_block_types=['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types=['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
    block_out_channels=[32, 64, 64, 64], cross_attention_dim=64,
    attention_head_dim=4, norm_num_groups=16, layers_per_block=2)

TINY_VAE: Dict[str, Any] = dict(
    SD15_VAE, block_out_channels=[16, 32, 64, 64], layers_per_block=1, norm_num_groups=8,
    sample_size=256)

TINY_TEXT: Dict[str, Any] = dict(
    SD15_TEXT, hidden_size=64, intermediate_size=256, projection_dim=64, num_hidden_layers=2,
    num_attention_heads=2)

# EVP's metric-bins head as the official NYUv2 model builds it (ZoeDepth-style, 64 bins).
EVP_SD15_BINS: Dict[str, Any] = {
    'n_bins': 64, 'bin_embed_dim': 128, 'bin_bottleneck': 256, 'n_attractors': [16, 8, 4, 1],
    'min_temp': 0.0212, 'max_temp': 50.0,
}

PRESETS: Dict[str, Dict[str, Any]] = {
    'sd15': {
        'unet': SD15_UNET, 'vae': SD15_VAE, 'text': SD15_TEXT,
        'depth': {'embed_dim': 192, 'neck_channels': 1536, 'num_filters': [32, 32, 32],
                  'max_depth': 10.0, 'num_classes': 27, 'neck_groups': 16},
        'refer': {'hidden_size': 640, 'token_length': 40},
        'evp_depth': dict(EVP_SD15_BINS, embed_dim=192, neck_channels=1536,
                          num_filters=[32, 32, 32], max_depth=10.0, neck_groups=16,
                          token_length=40, latent_divisor=5.07543, imafr_groups=20),
        'evp_refer': {'hidden_size': 640, 'token_length': 40, 'latent_divisor': 4.7164,
                      'imafr_groups': 20},
        'image_size': 512,
    },
    'tiny': {
        'unet': TINY_UNET, 'vae': TINY_VAE, 'text': TINY_TEXT,
        'depth': {'embed_dim': 16, 'neck_channels': 128, 'num_filters': [32, 32, 32],
                  'max_depth': 10.0, 'num_classes': 1, 'neck_groups': 16},
        'refer': {'hidden_size': 64, 'token_length': 20},
        'evp_depth': {'embed_dim': 16, 'neck_channels': 128, 'num_filters': [32, 32, 32],
                      'max_depth': 10.0, 'neck_groups': 16, 'token_length': 8,
                      'latent_divisor': 5.07543, 'imafr_groups': 4, 'n_bins': 16,
                      'bin_embed_dim': 32, 'bin_bottleneck': 32, 'n_attractors': [4, 2, 2, 1],
                      'min_temp': 0.0212, 'max_temp': 50.0},
        'evp_refer': {'hidden_size': 64, 'token_length': 8, 'latent_divisor': 4.7164,
                      'imafr_groups': 4},
        'image_size': 256,
    },
}


#: Model family -> the preset sections of its (depth, refer) heads.
FAMILIES: Dict[str, Tuple[str, str]] = {'vpd': ('depth', 'refer'),
                                        'evp': ('evp_depth', 'evp_refer')}


def get_preset(name: str) -> Dict[str, Any]:
    """Return a deep copy of the named preset (``sd15`` or ``tiny``)."""
    if name not in PRESETS:
        raise ValueError(f'unknown preset {name!r}; choose one of {sorted(PRESETS)}')
    return copy.deepcopy(PRESETS[name])


def split_model_name(name: str) -> Tuple[str, str]:
    """Split a model name into (family, preset): ``sd15`` -> VPD, ``evp-sd15`` -> EVP.

    These are the names ``random:<name>`` weights take (random models of a preset's sizes).
    """
    family, _, size = name.rpartition('-')
    family = family or 'vpd'
    if family not in FAMILIES or size not in PRESETS:
        raise ValueError(f'unknown model {name!r}; choose one of '
                         f'{", ".join(model_names())}')
    return family, size


def model_names() -> List[str]:
    """Return every ``random:<name>`` model name: the presets, then each with ``evp-``."""
    return [('' if f == 'vpd' else f'{f}-') + p for f in FAMILIES for p in sorted(PRESETS)]
