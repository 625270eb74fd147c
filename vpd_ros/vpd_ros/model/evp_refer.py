# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""EVP referring segmentation: VPD's backbone (latents / 4.7164) -> IMAFR -> VPD's LAVT decoder.

The CLIP text tower is part of the model (and of its checkpoint): it takes token ids.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .backbone import VPDBackbone
from .convert import EVP_REFER_PREFIXES, refer_token_length
from .depth import check_image_size
from .evp import EVPTextMixin, feature_widths, load_official
from .imafr import InverseMultiAttentiveFeatureRefinement
from .pretrained import PretrainedMixin
from .refer import SimpleDecoding, VPDReferOutput, logits_at_input_size
from .text import build_text_encoder


class EVPRefer(EVPTextMixin, PretrainedMixin, ModelMixin, ConfigMixin):
    """Language-referred segmentation (EVP, RefCOCO head).

    Args:
        unet_config, vae_config, text_config: diffusers UNet / VAE and CLIPTextConfig dicts.
        token_length: text tokens L (40 RefCOCO/RefCOCO+; 77 G-Ref works here, not officially).
        hidden_size: decoder width (640).
        latent_divisor: latent std of the training set (4.7164 RefCOCO).
        imafr_groups: IMAFR GroupNorm groups (20).
    """

    @register_to_config
    def __init__(self, unet_config: Dict[str, Any], vae_config: Dict[str, Any],
                 text_config: Dict[str, Any], token_length: int = 40, hidden_size: int = 640,
                 latent_divisor: float = 4.7164, imafr_groups: int = 20) -> None:
        super().__init__()
        if not 2 <= token_length <= 77:
            raise ValueError(f'token_length must be in [2, 77] (CLIP), got {token_length}')
        self.backbone = VPDBackbone(unet_config, vae_config, capture_attention=True,
                                    keep_unet_output_head=True, latent_divisor=latent_divisor)
        self.text_encoder = build_text_encoder(text_config)
        widths = feature_widths(self.backbone.feature_channels, token_length)
        self.aggregation = InverseMultiAttentiveFeatureRefinement(widths, imafr_groups)
        self.classifier = SimpleDecoding(widths, hidden_size)

    def forward(self, images: torch.Tensor, token_ids: Optional[torch.Tensor] = None,
                text_embeddings: Optional[torch.Tensor] = None,
                return_dict: bool = True) -> VPDReferOutput:
        """Return (B, 2, H, W) logits for (B, 3, H, W) RGB in [0, 1] (H, W multiples of 32).

        Give ``token_ids`` (B, L) from :meth:`tokenize` or CLIP states ``text_embeddings``.
        """
        text = self.text_input(token_ids, text_embeddings)
        h, w = images.shape[-2:]
        check_image_size(h, w)
        latents = self.backbone.encode_rgb(images)
        logits = self.forward_latents(latents, text, (h, w))
        return VPDReferOutput(logits=logits, truncated=[]) if return_dict else (logits,)

    def forward_latents(self, latents: torch.Tensor, text_embeddings: torch.Tensor,
                        size: Sequence[int]) -> torch.Tensor:
        """Return (B, 2, h, w) logits for latents of the padded image (VPDRefer's signature)."""
        context = self.text_context(latents.shape[0], text_embeddings, latents.dtype)
        return self.head(self.backbone(latents, context), size)

    def head(self, feats: List[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Return (B, 2, h, w) logits from the backbone's [F1..F4]; (h, w) = valid size."""
        return logits_at_input_size(self.classifier(self.aggregation(feats)), feats[0], size)

    @classmethod
    def from_official_checkpoint(cls, path: str, preset: str = 'sd15') -> 'EVPRefer':
        """Load EVP's ``best_model_refcoco.pth`` strictly; L comes from the file.

        The file also holds ``optimizer``, ``epoch``, ``lr_scheduler`` and ``args`` (an
        ``argparse.Namespace``, the one non-tensor class the safe unpickler is allowed to build);
        only ``model`` is used.
        """
        return load_official(cls, path, 'evp_refer', preset, EVP_REFER_PREFIXES,
                             refer_token_length)
