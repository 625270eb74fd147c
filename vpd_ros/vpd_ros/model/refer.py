# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""VPD referring segmentation: backbone features with cross-attention maps -> LAVT-style decoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn
from transformers import CLIPTextModel

from .backbone import VPDBackbone
from .convert import (REFER_PREFIXES, backbone_state_from_sd15, convert_official,
                      load_sd15_state, load_torch_file, refer_token_length, require_file,
                      text_state, unwrap_state_dict)
from .depth import check_image_size
from .presets import get_preset
from .pretrained import PretrainedMixin, load_strict
from .text import TextFeatures, build_text_encoder, tokenize

HEAD_PREFIXES = ('classifier.', 'backbone.gamma', 'backbone.text_adapter.')


@dataclass
class VPDReferOutput(BaseOutput):
    """Referring prediction.

    Args:
        logits: (B, 2, H, W) float, [background, referred object], at the input resolution.
        truncated: per text, whether it was cut to the token length (empty for embeddings input).
    """

    logits: torch.Tensor
    truncated: List[bool]


def _add_conv_bn(cin: int, cout: int, name: str, module: nn.Module) -> None:
    module.add_module(f'conv{name}', nn.Conv2d(cin, cout, 3, padding=1, bias=False))
    module.add_module(f'bn{name}', nn.BatchNorm2d(cout))


class SimpleDecoding(nn.Module):
    """LAVT's top-down decoder over [F1, F2+T, F3+T, F4]; two-class 1x1 output at stride 8."""

    def __init__(self, dims: Sequence[int], hidden: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = dims
        for stage, cin in (('4', c4 + c3), ('3', hidden + c2), ('2', hidden + c1)):
            _add_conv_bn(cin, hidden, f'1_{stage}', self)
            _add_conv_bn(hidden, hidden, f'2_{stage}', self)
        self.conv1_1 = nn.Conv2d(hidden, 2, 1)

    def _stage(self, x: torch.Tensor, skip: torch.Tensor, stage: str) -> torch.Tensor:
        if x.shape[-2:] != skip.shape[-2:]:
            x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=True)
        x = torch.cat([x, skip], dim=1)
        x = F.relu(getattr(self, f'bn1_{stage}')(getattr(self, f'conv1_{stage}')(x)))
        return F.relu(getattr(self, f'bn2_{stage}')(getattr(self, f'conv2_{stage}')(x)))

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        """Return (B, 2, H/8, W/8) logits from [F1, F2, F3, F4]."""
        f1, f2, f3, f4 = feats
        x = self._stage(f4, f3, '4')
        x = self._stage(x, f2, '3')
        x = self._stage(x, f1, '2')
        return self.conv1_1(x)


class VPDRefer(PretrainedMixin, ModelMixin, ConfigMixin):
    """Language-referred segmentation (VPD, RefCOCO head).

    Args:
        unet_config: diffusers UNet config (SD-1.5 block structure).
        vae_config: diffusers AutoencoderKL config.
        token_length: text tokens L (40 RefCOCO/RefCOCO+, 77 G-Ref); sets the decoder widths.
        hidden_size: decoder width (640).
        text_config: optional CLIPTextConfig dict; when given the model owns a text tower and
            accepts strings. The official checkpoints hold none: load SD-1.5's separately.
    """

    @register_to_config
    def __init__(self, unet_config: Dict[str, Any], vae_config: Dict[str, Any],
                 token_length: int = 40, hidden_size: int = 640,
                 text_config: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        if not 2 <= token_length <= 77:
            raise ValueError(f'token_length must be in [2, 77] (CLIP), got {token_length}')
        self.backbone = VPDBackbone(unet_config, vae_config, capture_attention=True,
                                    keep_unet_output_head=True)
        c = self.backbone.feature_channels
        self.classifier = SimpleDecoding(
            [c[0], c[1] + token_length, c[2] + token_length, c[3]], hidden_size)
        self.text_encoder = None
        if text_config is not None:
            if text_config['hidden_size'] != unet_config['cross_attention_dim']:
                raise ValueError(f"text hidden_size {text_config['hidden_size']} != UNet "
                                 f"cross_attention_dim {unet_config['cross_attention_dim']}")
            self.text_encoder = build_text_encoder(text_config)

    @property
    def token_length(self) -> int:
        """Number of text tokens L the decoder was built for."""
        return int(self.config.token_length)

    def encode_text(self, texts: Sequence[str]) -> TextFeatures:
        """Return CLIP ``last_hidden_state`` (B, L, D) for texts (no attention mask, as VPD)."""
        if self.text_encoder is None:
            raise RuntimeError('this VPDRefer has no text encoder: pass text_embeddings, or load '
                               'one (e.g. SD-1.5 text_encoder/) with from_official_checkpoint')
        tokens = tokenize(texts, self.token_length)
        ids = tokens.input_ids.to(self.text_encoder.device)
        states = self.text_encoder(input_ids=ids).last_hidden_state
        return TextFeatures(embeddings=states, truncated=tokens.truncated)

    def forward_latents(self, latents: torch.Tensor, text_embeddings: torch.Tensor,
                        size: Sequence[int]) -> torch.Tensor:
        """Return (B, 2, h, w) logits for latents of the padded image; (h, w) = valid size."""
        if text_embeddings.ndim != 3 or text_embeddings.shape[1] != self.token_length:
            raise ValueError(f'text_embeddings must be (B, {self.token_length}, D), got '
                             f'{tuple(text_embeddings.shape)}')
        if text_embeddings.shape[0] != latents.shape[0]:
            raise ValueError(f'{text_embeddings.shape[0]} texts for {latents.shape[0]} images')
        context = self.backbone.condition(text_embeddings.to(latents.dtype))
        logits = self.classifier(self.backbone(latents, context))
        padded = (latents.shape[-2] * 8, latents.shape[-1] * 8)
        logits = F.interpolate(logits, size=padded, mode='bilinear', align_corners=True)
        return logits[:, :, :int(size[0]), :int(size[1])]

    def forward(self, images: torch.Tensor, text: Optional[Sequence[str]] = None,
                text_embeddings: Optional[torch.Tensor] = None,
                return_dict: bool = True) -> VPDReferOutput:
        """Segment the referred object in (B, 3, H, W) RGB in [0, 1] (H, W multiples of 32).

        Give either ``text`` (B strings; needs a text encoder) or ``text_embeddings`` (B, L, D).
        """
        if (text is None) == (text_embeddings is None):
            raise ValueError('give exactly one of text or text_embeddings')
        truncated: List[bool] = []
        if text is not None:
            encoded = self.encode_text(text)
            text_embeddings, truncated = encoded.embeddings, encoded.truncated
        h, w = images.shape[-2:]
        check_image_size(h, w)
        latents = self.backbone.encode_rgb(images)
        logits = self.forward_latents(latents, text_embeddings, (h, w))
        return VPDReferOutput(logits=logits, truncated=truncated) if return_dict else (logits,)

    @classmethod
    def from_official_checkpoint(cls, path: str,
                                 text_encoder: Union[str, CLIPTextModel, None] = None,
                                 preset: str = 'sd15') -> 'VPDRefer':
        """Load ``vpd_ris_*.pth`` (official layout) strictly; token length comes from the file.

        The official files hold no text tower: pass SD-1.5 (a diffusers folder or single file,
        whose text encoder is CLIP ViT-L/14's) or a ``CLIPTextModel`` to accept strings; without
        one the model works on precomputed (B, L, 768) embeddings.
        """
        require_file(path, 'refer')
        state = unwrap_state_dict(load_torch_file(path), path)
        p = get_preset(preset)
        token_length = refer_token_length(state, p['unet'])
        text_config, text_weights = None, None
        if isinstance(text_encoder, str):
            text_config = p['text']
            text_weights = text_state(load_sd15_state(text_encoder, p['unet'], p['vae'])['text'])
        elif text_encoder is not None:
            text_config = text_encoder.config.to_diff_dict()
            text_weights = text_encoder.state_dict()
        with torch.device('meta'):
            model = cls(p['unet'], p['vae'], **dict(p['refer'], token_length=token_length))
        converted = convert_official(state, REFER_PREFIXES, model.backbone.unet.config, p['vae'],
                                     path)
        load_strict(model, converted, path, assign=True)
        if text_config is not None:
            model.attach_text_encoder(text_config, text_weights, str(text_encoder))
        return model.eval()

    def attach_text_encoder(self, config: Dict[str, Any], state: Dict[str, torch.Tensor],
                            source: str) -> None:
        """Attach a CLIP text tower (built on CPU, loaded strictly) and record its config."""
        encoder = build_text_encoder(config)
        load_strict(encoder, text_state(state), source)
        if encoder.config.hidden_size != self.backbone.unet.config.cross_attention_dim:
            raise ValueError(f'text width {encoder.config.hidden_size} does not match the UNet '
                             f'cross_attention_dim {self.backbone.unet.config.cross_attention_dim}')
        self.text_encoder = encoder.eval()
        self.register_to_config(text_config=dict(config))

    @classmethod
    def from_sd15(cls, path: str, preset: str = 'sd15', **head: Any) -> 'VPDRefer':
        """Start a referring model for fine-tuning: SD-1.5 UNet, VAE and CLIP text tower."""
        p = get_preset(preset)
        model = cls(p['unet'], p['vae'], **dict(p['refer'], text_config=p['text'], **head))
        sd = load_sd15_state(path, p['unet'], p['vae'])
        load_strict(model, backbone_state_from_sd15(sd, True, 'text_encoder.'), path,
                    ignore_prefixes=HEAD_PREFIXES)
        return model
