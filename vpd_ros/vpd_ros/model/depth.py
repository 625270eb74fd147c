# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""VPD depth model: backbone features -> neck -> deconvolution decoder -> sigmoid x max_depth.

Conditioning is one scene-class text vector per image (NYUv2's 27 scene classes in the official
model), taken from the ``class_embeddings`` buffer stored in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from diffusers.models.modeling_utils import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.utils import BaseOutput
from torch import nn

from .backbone import VPDBackbone
from .convert import (DEPTH_PREFIXES, backbone_state_from_sd15, convert_official,
                      load_sd15_state, load_torch_file, require_file, unwrap_state_dict)
from .presets import get_preset
from .pretrained import PretrainedMixin, load_strict

# Scene classes of the official NYUv2 model in class_embeddings order (nyu_class_list.json).
NYU_SCENES = (
    'printer_room', 'bathroom', 'living_room', 'study', 'conference_room', 'study_room', 'kitchen',
    'home_office', 'bedroom', 'dinette', 'playroom', 'indoor_balcony', 'laundry_room', 'basement',
    'excercise_room', 'foyer', 'home_storage', 'cafe', 'furniture_store', 'office_kitchen',
    'student_lounge', 'dining_room', 'reception_room', 'computer_lab', 'classroom', 'office',
    'bookstore')
STRIDE = 32  # the neck's output stride; input sides must be multiples of it


@dataclass
class VPDDepthOutput(BaseOutput):
    """Depth prediction.

    Args:
        depth: (B, 1, H, W) float, metres, at the input resolution.
    """

    depth: torch.Tensor


def scene_id_from_name(name: str, classes: Sequence[str] = NYU_SCENES) -> int:
    """Return the official scene id: the first class (in list order) that is a substring of name.

    The official code matches against "<folder>_<file>", so ``study_room`` gives ``study`` (3).
    """
    for i, cls in enumerate(classes):
        if cls in name:
            return i
    raise ValueError(f'no scene class is a substring of {name!r}; classes: {list(classes)}')


class DepthNeck(nn.Module):
    """Fuse F1..F4 at stride 32: conv(F1), conv(F2), F3 || up(F4) -> 1x1 conv, GN, ReLU."""

    def __init__(self, channels: Sequence[int], out_channels: int, groups: int) -> None:
        super().__init__()
        c0, c1, c2, c3 = channels
        self.layer1 = nn.Sequential(
            nn.Conv2d(c0, c0, 3, stride=2, padding=1), nn.GroupNorm(groups, c0), nn.ReLU(),
            nn.Conv2d(c0, c0, 3, stride=2, padding=1))
        self.layer2 = nn.Sequential(nn.Conv2d(c1, c1, 3, stride=2, padding=1))
        self.out_layer = nn.Sequential(
            nn.Conv2d(c0 + c1 + c2 + c3, out_channels, 1), nn.GroupNorm(groups, out_channels),
            nn.ReLU())

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        """Return the (B, out_channels, H/32, W/32) fused map."""
        f1, f2, f3, f4 = feats
        f34 = torch.cat([f3, F.interpolate(f4, scale_factor=2.0, mode='nearest')], dim=1)
        return self.out_layer(torch.cat([self.layer1(f1), self.layer2(f2), f34], dim=1))


class DepthDecoder(nn.Module):
    """Three 2x2 stride-2 deconvolutions (BN, ReLU), a 3x3 conv to embed_dim, two bilinear x2."""

    def __init__(self, in_channels: int, num_filters: Sequence[int], embed_dim: int) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        for planes in num_filters:
            layers += [nn.ConvTranspose2d(in_channels, planes, 2, stride=2, padding=0, bias=False),
                       nn.BatchNorm2d(planes), nn.ReLU(inplace=True)]
            in_channels = planes
        self.deconv_layers = nn.Sequential(*layers)
        self.conv_layers = nn.Sequential(
            nn.Conv2d(in_channels, embed_dim, 3, padding=1), nn.BatchNorm2d(embed_dim),
            nn.ReLU(inplace=True))

    def forward_stages(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Return the output and the maps EVP's bins head reads.

        Those are each deconvolution stage's ReLU output and the map after the first bilinear x2
        (the official EVP decoder collects them with forward hooks).
        """
        stages = []
        layers = self.deconv_layers
        for i in range(0, len(layers), 3):
            x = layers[i + 2](layers[i + 1](layers[i](x)))
            stages.append(x)
        x = F.interpolate(self.conv_layers(x), scale_factor=2.0, mode='bilinear',
                          align_corners=False)
        stages.append(x)
        return F.interpolate(x, scale_factor=2.0, mode='bilinear', align_corners=False), stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample x8 by deconvolution and x4 bilinearly (align_corners=False)."""
        return self.forward_stages(x)[0]


def check_image_size(h: int, w: int, stride: int = STRIDE) -> None:
    """Raise ValueError unless both sides are positive multiples of ``stride``."""
    if h <= 0 or w <= 0 or h % stride or w % stride:
        raise ValueError(f'image size {h}x{w} must be a positive multiple of {stride} on both sides'
                         ' (the engine resizes arbitrary camera images for you)')


def check_scene_ids(ids: Sequence[int], num_classes: int) -> None:
    """Raise ValueError unless every scene-class id is in [0, num_classes)."""
    if any(not 0 <= int(i) < num_classes for i in ids):
        raise ValueError(f'scene ids {list(ids)} outside [0, {num_classes})')


class VPDDepth(PretrainedMixin, ModelMixin, ConfigMixin):
    """Metric depth from one RGB image (VPD, NYUv2 head).

    Args:
        unet_config: diffusers UNet config (SD-1.5 block structure).
        vae_config: diffusers AutoencoderKL config.
        num_classes: number of scene classes in ``class_embeddings`` (27 for NYUv2).
        embed_dim: decoder width (192).
        neck_channels: neck output width (1536).
        num_filters: deconvolution widths (32, 32, 32).
        max_depth: output scale in metres (10 for NYUv2).
        neck_groups: GroupNorm groups in the neck (16).
        class_names: optional scene-class names, in ``class_embeddings`` order.
    """

    #: conditioned on a scene-class id (EVP depth: a caption)
    takes_caption = False

    @register_to_config
    def __init__(self, unet_config: Dict[str, Any], vae_config: Dict[str, Any],
                 num_classes: int = 27, embed_dim: int = 192, neck_channels: int = 1536,
                 num_filters: Sequence[int] = (32, 32, 32), max_depth: float = 10.0,
                 neck_groups: int = 16, class_names: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f'{len(class_names)} class_names for num_classes={num_classes}')
        if max_depth <= 0:
            raise ValueError(f'max_depth must be positive, got {max_depth}')
        self.backbone = VPDBackbone(unet_config, vae_config, capture_attention=False,
                                    keep_unet_output_head=False)
        text_dim = unet_config['cross_attention_dim']
        self.register_buffer('class_embeddings', torch.zeros(num_classes, text_dim))
        self.neck = DepthNeck(self.backbone.feature_channels, neck_channels, neck_groups)
        self.decoder = DepthDecoder(neck_channels, num_filters, embed_dim)
        self.last_layer_depth = nn.Sequential(
            nn.Conv2d(embed_dim, embed_dim, 3, padding=1), nn.ReLU(inplace=False),
            nn.Conv2d(embed_dim, 1, 3, padding=1))

    def scene_text(self, scene: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        """Return (B, 1, D) raw conditioning for scene-class ids (B,) or the default.

        Without a scene id the conditioning is the mean of all class embeddings: the official
        model always knew the NYUv2 scene from the file name; a robot usually does not.
        """
        if scene is None:
            text = self.class_embeddings.mean(0, keepdim=True).expand(batch, -1)
        else:
            if scene.numel() != batch:
                raise ValueError(f'{scene.numel()} scene ids for a batch of {batch}')
            # Checked on the host only: reading a device tensor back would stall the device,
            # so callers holding one check the ids themselves (the engine does, once per id).
            if scene.device.type == 'cpu':
                check_scene_ids(scene.reshape(-1).tolist(), self.class_embeddings.shape[0])
            scene = scene.to(self.class_embeddings.device).long().reshape(-1)
            text = self.class_embeddings[scene]
        return text.unsqueeze(1)

    def scene_context(self, scene: Optional[torch.Tensor], batch: int) -> torch.Tensor:
        """Return (B, 1, D) adapted conditioning for scene-class ids (B,) or the default."""
        return self.backbone.condition(self.scene_text(scene, batch))

    def forward_latents(self, latents: torch.Tensor, size: Sequence[int],
                        scene: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Predict (B, 1, h, w) metres from latents of the padded image; (h, w) = valid size."""
        h, w = int(size[0]), int(size[1])
        context = self.scene_context(scene, latents.shape[0]).to(latents.dtype)
        return self.head(self.backbone(latents, context), (h, w))

    def head(self, feats: List[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Return (B, 1, h, w) metres from the backbone's [F1..F4]; (h, w) = valid size."""
        h, w = int(size[0]), int(size[1])
        x = self.neck(feats)
        x = x[:, :, :h // STRIDE, :w // STRIDE]
        x = self.last_layer_depth(self.decoder(x))
        return torch.sigmoid(x) * self.config.max_depth

    def forward(self, images: torch.Tensor, scene: Optional[torch.Tensor] = None,
                return_dict: bool = True) -> VPDDepthOutput:
        """Predict depth for (B, 3, H, W) RGB in [0, 1] (H, W multiples of 32).

        The image is mapped to [-1, 1], zero-padded at the bottom/right to multiples of 64 (the
        official 480 -> 512), and the stride-32 map is cropped back (16 -> 15 at 480).
        """
        h, w = images.shape[-2:]
        check_image_size(h, w)
        latents = self.backbone.encode_rgb(images)
        depth = self.forward_latents(latents, (h, w), scene)
        return VPDDepthOutput(depth=depth) if return_dict else (depth,)

    @classmethod
    def from_official_checkpoint(cls, path: str, preset: str = 'sd15') -> 'VPDDepth':
        """Load ``vpd_depth_480x480.pth`` (official layout) strictly; the file runs no code.

        The model is built on the meta device and takes the checkpoint's tensors (memory-mapped
        for .pth files), so a full-size load costs no random initialisation.
        """
        require_file(path, 'depth')
        state = unwrap_state_dict(load_torch_file(path), path)
        p = get_preset(preset)
        num_classes = state['encoder.class_embeddings'].shape[0] if (
            'encoder.class_embeddings' in state) else p['depth']['num_classes']
        names = NYU_SCENES if num_classes == len(NYU_SCENES) else None
        with torch.device('meta'):
            model = cls(p['unet'], p['vae'], **dict(p['depth'], num_classes=num_classes,
                                                     class_names=names))
        converted = convert_official(state, DEPTH_PREFIXES, model.backbone.unet.config, p['vae'],
                                     path)
        load_strict(model, converted, path, assign=True)
        return model.eval()

    @classmethod
    def from_sd15(cls, path: str, preset: str = 'sd15', **head: Any) -> 'VPDDepth':
        """Start a depth model for fine-tuning: SD-1.5 UNet and VAE, freshly initialised head."""
        p = get_preset(preset)
        model = cls(p['unet'], p['vae'], **dict(p['depth'], **head))
        sd = load_sd15_state(path, p['unet'], p['vae'])
        load_strict(model, backbone_state_from_sd15(sd, False, None), path,
                    ignore_prefixes=HEAD_PREFIXES)
        return model


HEAD_PREFIXES = ('class_embeddings', 'neck.', 'decoder.', 'last_layer_depth.', 'backbone.gamma',
                 'backbone.text_adapter.')
