# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""EVP depth: VPD's backbone, IMAFR, VPD's neck and decoder, then ZoeDepth-style metric bins.

The backbone keeps attention maps on and divides latents by 5.07543; the caption goes through the
CLIP text tower inside the model.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .backbone import VPDBackbone
from .bins import MetricBinsHead
from .convert import EVP_DEPTH_PREFIXES, StateDict, load_torch_file
from .depth import STRIDE, DepthDecoder, DepthNeck, VPDDepthOutput, check_image_size
from .evp import EVPTextMixin, feature_widths, load_official
from .imafr import InverseMultiAttentiveFeatureRefinement
from .pretrained import CheckpointMismatchError, PretrainedMixin
from .text import build_text_encoder

# The caption EVP's NYUv2 model was trained on comes from BLIP-2 per image; this is the default
# scene caption when none is set (see docs/evp.md for which choice reproduces which number).
DEFAULT_CAPTION = 'a photo of a room'


def depth_token_length(state: StateDict, unet_config: Dict[str, Any]) -> int:
    """Recover L from the neck's ``layer2`` width (c1 + L; 680 = 640 + 40 officially)."""
    key = 'encoder.layer2.0.weight'
    if key not in state:
        raise CheckpointMismatchError(f'no {key}: not an EVP depth checkpoint')
    return int(state[key].shape[0]) - unet_config['block_out_channels'][1]


def load_caption_embedding(path: str) -> torch.Tensor:
    """Read EVP's aggregated caption embedding as a (1, L, D) float tensor.

    Accepts a tensor file or the captions dict EVP writes with ``caption_aggregation`` (its
    ``'aggregated'`` entry); read with ``weights_only=True`` / safetensors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} not found: expected a (1, L, D) caption embedding or '
                                "EVP's <dataset>_class_embeddings_my_captions.pth")
    obj = load_torch_file(path)
    if isinstance(obj, Mapping):
        obj = obj.get('aggregated', obj.get('embedding'))
    if not isinstance(obj, torch.Tensor) or obj.ndim not in (2, 3):
        raise ValueError(f"{path}: no (1, L, D) tensor (nor an 'aggregated' entry) in the file")
    obj = obj.float()
    return obj.unsqueeze(0) if obj.ndim == 2 else obj


class EVPDepth(EVPTextMixin, PretrainedMixin, ModelMixin, ConfigMixin):
    """Metric depth from one RGB image and a caption (EVP, NYUv2 head).

    Args:
        unet_config, vae_config, text_config: diffusers UNet / VAE and CLIPTextConfig dicts.
        token_length: caption tokens L (40 official); sets the IMAFR and neck widths.
        embed_dim, neck_channels, num_filters, neck_groups: VPD's decoder and neck (192, 1536,
            [32, 32, 32], 16).
        max_depth: scale of the relative-depth channel fed to the bins head (10); the output is
            not clamped to it.
        latent_divisor: latent std of the training set (5.07543 NYUv2, 4.6211 KITTI).
        imafr_groups: IMAFR GroupNorm groups (20).
        n_bins, bin_embed_dim, bin_bottleneck, n_attractors, min_temp, max_temp: bins head.
    """

    #: conditioned on a caption's CLIP states (VPD depth: a scene-class id)
    takes_caption = True

    @register_to_config
    def __init__(self, unet_config: Dict[str, Any], vae_config: Dict[str, Any],
                 text_config: Dict[str, Any], token_length: int = 40, embed_dim: int = 192,
                 neck_channels: int = 1536, num_filters: Sequence[int] = (32, 32, 32),
                 max_depth: float = 10.0, neck_groups: int = 16,
                 latent_divisor: float = 5.07543, imafr_groups: int = 20, n_bins: int = 64,
                 bin_embed_dim: int = 128, bin_bottleneck: int = 256,
                 n_attractors: Sequence[int] = (16, 8, 4, 1), min_temp: float = 0.0212,
                 max_temp: float = 50.0) -> None:
        super().__init__()
        if not 2 <= token_length <= 77:
            raise ValueError(f'token_length must be in [2, 77] (CLIP), got {token_length}')
        if max_depth <= 0:
            raise ValueError(f'max_depth must be positive, got {max_depth}')
        self.backbone = VPDBackbone(unet_config, vae_config, capture_attention=True,
                                    keep_unet_output_head=False, keep_post_quant_conv=False,
                                    latent_divisor=latent_divisor)
        self.text_encoder = build_text_encoder(text_config)
        widths = feature_widths(self.backbone.feature_channels, token_length)
        self.aggregation = InverseMultiAttentiveFeatureRefinement(widths, imafr_groups)
        self.neck = DepthNeck(widths, neck_channels, neck_groups)
        self.decoder = DepthDecoder(neck_channels, num_filters, embed_dim)
        self.last_layer_depth = nn.Sequential(
            nn.Conv2d(embed_dim, embed_dim, 3, padding=1), nn.ReLU(),
            nn.Conv2d(embed_dim, 1, 3, padding=1))
        self.bins = MetricBinsHead(neck_channels, list(num_filters) + [embed_dim], n_bins,
                                   bin_embed_dim, bin_bottleneck, n_attractors, min_temp,
                                   max_temp)

    def forward(self, images: torch.Tensor, token_ids: Optional[torch.Tensor] = None,
                text_embeddings: Optional[torch.Tensor] = None,
                return_dict: bool = True) -> VPDDepthOutput:
        """Predict metres for (B, 3, H, W) RGB in [0, 1] (H, W multiples of 32).

        Give the caption as ``token_ids`` (B, L) from :meth:`tokenize`, or CLIP states
        ``text_embeddings`` (1 or B, L, D), e.g. EVP's aggregated caption embedding. Padding and
        cropping as VPD (480 -> 512 -> 15 x 15 neck map); the depth is not clamped.
        """
        text = self.text_input(token_ids, text_embeddings)
        h, w = images.shape[-2:]
        check_image_size(h, w)
        latents = self.backbone.encode_rgb(images)
        depth = self.forward_latents(latents, (h, w), text)
        return VPDDepthOutput(depth=depth) if return_dict else (depth,)

    def forward_latents(self, latents: torch.Tensor, size: Sequence[int],
                        text_embeddings: torch.Tensor) -> torch.Tensor:
        """Predict (B, 1, h, w) metres from latents of the padded image; (h, w) = valid size.

        ``text_embeddings``: CLIP states of the caption, (1 or B, L, D).
        """
        context = self.text_context(latents.shape[0], text_embeddings, latents.dtype)
        return self.head(self.backbone(latents, context), size)

    def head(self, feats: List[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Return (B, 1, h, w) metres from the backbone's [F1..F4]; (h, w) = valid size."""
        h, w = int(size[0]), int(size[1])
        neck = self.neck(self.aggregation(feats))
        neck = neck[:, :, :h // STRIDE, :w // STRIDE]
        features, stages = self.decoder.forward_stages(neck)
        relative = torch.sigmoid(self.last_layer_depth(features)) * self.config.max_depth
        return self.bins(neck, stages, features, relative)

    @classmethod
    def from_official_checkpoint(cls, path: str, preset: str = 'sd15') -> 'EVPDepth':
        """Load EVP's ``best_model_nyu.ckpt`` (``{'model': sd}``) strictly; it runs no code."""
        return load_official(cls, path, 'evp_depth', preset, EVP_DEPTH_PREFIXES,
                             depth_token_length)
