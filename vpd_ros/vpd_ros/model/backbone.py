# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The VPD backbone: frozen VAE encoder, text adapter, one noise-free UNet pass with feature taps.

Shapes for an input of (B, 3, H, W) (H, W multiples of 64) and T context tokens, with UNet block
widths (c0, c1, c2, c3) = (320, 640, 1280, 1280) for SD-1.5:

==== ===================================== ======= ==================
map  diffusers tap                         stride  channels
==== ===================================== ======= ==================
F1   output of ``up_blocks[3]``            8       c0
F2   ``up_blocks[2].attentions[1]``        16      c1 (+ T with maps)
F3   ``up_blocks[1].attentions[1]``        32      c2 (+ T with maps)
F4   ``up_blocks[0].resnets[1]``           64      c3
==== ===================================== ======= ==================
"""

from __future__ import annotations

from functools import partial
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn

from .attention import AttentionMapProcessor, AttentionMapStore

MULTIPLE = 64  # the UNet downsamples the 1/8 latent three times

# Cross-attention layers whose maps VPD keeps ("A32": up_cross + down_cross at strides 16 and 32).
ATTENTION_GROUPS: Dict[str, List[str]] = {
    'stride32': ['down_blocks.2.attentions.0', 'down_blocks.2.attentions.1',
                 'up_blocks.1.attentions.0', 'up_blocks.1.attentions.1',
                 'up_blocks.1.attentions.2'],
    'stride16': ['down_blocks.1.attentions.0', 'down_blocks.1.attentions.1',
                 'up_blocks.2.attentions.0', 'up_blocks.2.attentions.1',
                 'up_blocks.2.attentions.2'],
}
TAPS = {'F2': 'up_blocks.2.attentions.1', 'F3': 'up_blocks.1.attentions.1',
        'F4': 'up_blocks.0.resnets.1'}
TIMESTEP = 1


def pad_to_multiple(image: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Zero-pad (B, C, H, W) at the bottom/right to multiples of ``multiple`` (VPD's 480 -> 512)."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(image, (0, pw, 0, ph)) if ph or pw else image


class TextAdapter(nn.Module):
    """Residual MLP on the text features: ``c + gamma * fc(c)`` (gamma lives in the backbone)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, text: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
        """Adapt (..., D) text features."""
        return text + gamma * self.fc(text)


def build_vae_encoder(config: Dict[str, Any]) -> AutoencoderKL:
    """Build an SD ``AutoencoderKL`` without its decoder (VPD only encodes)."""
    vae = AutoencoderKL(**config)
    vae.decoder = None
    return vae


def build_unet(config: Dict[str, Any], keep_output_head: bool) -> UNet2DConditionModel:
    """Build the diffusers UNet; VPD never runs ``conv_norm_out``/``conv_out``.

    The official depth checkpoint does not hold that head, the referring one does (unused), so
    ``keep_output_head`` makes the module match the checkpoint being loaded.
    """
    unet = UNet2DConditionModel(**config)
    if not keep_output_head:
        unet.conv_norm_out = None
        unet.conv_act = None
        unet.conv_out = None
    return unet


class VPDBackbone(nn.Module):
    """VAE encode (posterior mode, no scaling) -> UNet at t=1 without noise -> four feature maps.

    Args:
        unet_config: diffusers ``UNet2DConditionModel`` config (SD-1.5 block structure).
        vae_config: diffusers ``AutoencoderKL`` config.
        capture_attention: append cross-attention maps to F2 and F3 (referring: yes, depth: no).
        keep_unet_output_head: keep the unused UNet output head so checkpoints holding it load.
    """

    def __init__(self, unet_config: Dict[str, Any], vae_config: Dict[str, Any],
                 capture_attention: bool, keep_unet_output_head: bool) -> None:
        super().__init__()
        text_dim = unet_config['cross_attention_dim']
        self.gamma = nn.Parameter(torch.full((text_dim,), 1e-4))
        self.text_adapter = TextAdapter(text_dim)
        self.vae = build_vae_encoder(vae_config)
        self.unet = build_unet(unet_config, keep_unet_output_head)
        self.capture_attention = capture_attention
        self._taps: Dict[str, torch.Tensor] = {}
        self.attention_store = AttentionMapStore()
        for name, path in TAPS.items():
            # A partial of a bound method (not a closure) so that copy.deepcopy rebinds it.
            self.unet.get_submodule(path).register_forward_hook(partial(self._store_tap, name))
        if capture_attention:
            for group, paths in ATTENTION_GROUPS.items():
                for path in paths:
                    layer = self.unet.get_submodule(path + '.transformer_blocks.0.attn2')
                    layer.set_processor(AttentionMapProcessor(self.attention_store, group))

    def _store_tap(self, name: str, _module: nn.Module, _inputs: Any, output: Any) -> None:
        self._taps[name] = output[0] if isinstance(output, tuple) else output

    @property
    def feature_channels(self) -> List[int]:
        """Channels of F1..F4 without attention maps."""
        c = self.unet.config.block_out_channels
        return [c[0], c[1], c[2], c[3]]

    def encode_rgb(self, images: torch.Tensor) -> torch.Tensor:
        """Encode (B, 3, H, W) RGB in [0, 1]: to [-1, 1], zero-padded to multiples of 64 (VPD)."""
        return self.encode_image(pad_to_multiple(images * 2.0 - 1.0, MULTIPLE))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Encode (B, 3, H, W) images in [-1, 1] to (B, 4, H/8, W/8) latents (posterior mode)."""
        with torch.no_grad():
            return self.vae.encode(image).latent_dist.mode()

    def condition(self, text: torch.Tensor) -> torch.Tensor:
        """Apply the text adapter to (B, T, D) text features."""
        return self.text_adapter(text, self.gamma)

    def forward(self, latents: torch.Tensor, context: torch.Tensor) -> List[torch.Tensor]:
        """Run the UNet once at t=1 and return [F1, F2, F3, F4] (high resolution first).

        Args:
            latents: (B, 4, h, w) VAE latents, h and w multiples of 8.
            context: (B, T, D) adapted text features.
        """
        unet = self.unet
        self._taps = {}
        self.attention_store.reset()
        t = torch.full((latents.shape[0],), TIMESTEP, dtype=torch.long, device=latents.device)
        emb = unet.time_embedding(unet.time_proj(t).to(latents.dtype))
        h = unet.conv_in(latents)
        residuals = (h,)
        for block in unet.down_blocks:
            if getattr(block, 'has_cross_attention', False):
                h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=context)
            else:
                h, res = block(hidden_states=h, temb=emb)
            residuals += res
        h = unet.mid_block(h, emb, encoder_hidden_states=context)
        for i, block in enumerate(unet.up_blocks):
            res = residuals[-len(block.resnets):]
            residuals = residuals[:-len(block.resnets)]
            size = residuals[-1].shape[2:] if residuals else None
            if getattr(block, 'has_cross_attention', False):
                h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res,
                          encoder_hidden_states=context, upsample_size=size)
            else:
                h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res,
                          upsample_size=size)
        f2, f3, f4 = self._taps['F2'], self._taps['F3'], self._taps['F4']
        self._taps = {}
        if self.capture_attention:
            f2 = torch.cat([f2, self.attention_store.average('stride16', *f2.shape[2:])
                            .to(f2.dtype)], dim=1)
            f3 = torch.cat([f3, self.attention_store.average('stride32', *f3.shape[2:])
                            .to(f3.dtype)], dim=1)
            self.attention_store.reset()
        return [h, f2, f3, f4]

