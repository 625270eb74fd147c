# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""EVP's Inverse Multi-Attentive Feature Refinement (IMAFR) between the UNet and the heads.

Fine to coarse: each feature map is refined with a downsampled, attention-gated copy of the
refined map one level finer (the opposite direction of an FPN). Widths follow the backbone maps,
so 40 text tokens give the official [320, 680, 1320, 1280] and 77 tokens work too (the official
code hard-codes the 40-token widths and fails for 77).
"""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn


def group_count(channels: int, preferred: int) -> int:
    """Return ``preferred`` if it divides ``channels``, else the largest divisor below it.

    The official GroupNorm(20) needs widths divisible by 20, true for 40 tokens only; other token
    lengths (77: widths 717, 1357) get the closest smaller group count (a port decision).
    """
    return max(g for g in range(1, preferred + 1) if channels % g == 0)


class SpatialGate(nn.Sequential):
    """``x * sigmoid(conv1x1(x))`` with one output channel."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.Conv2d(channels, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate every position of x by a learned scalar."""
        return x * super().forward(x)


class AttentionModule(nn.Module):
    """Spatial gate, then conv3x3 -> GroupNorm -> ReLU (IMAFR ``layer1``)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.spatial_attention = SpatialGate(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.group_norm = nn.GroupNorm(group_count(channels, groups), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine x at its own width and resolution."""
        return torch.relu(self.group_norm(self.conv1(self.spatial_attention(x))))


class AttentionDownsamplingModule(nn.Module):
    """Spatial gate, squeeze-excitation gate (r = 8), conv3x3 to C/2, conv3x3 stride 2.

    One GroupNorm (one affine) normalises after both convolutions, as in the official module.
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        out = channels // 2
        self.spatial_attention = SpatialGate(channels)
        self.channel_attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels // 8, 1), nn.ReLU(),
            nn.Conv2d(channels // 8, channels, 1), nn.Sigmoid())
        self.conv1 = nn.Conv2d(channels, out, 3, padding=1)
        self.conv2 = nn.Conv2d(out, out, 3, stride=2, padding=1)
        self.group_norm = nn.GroupNorm(group_count(out, groups), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, C/2, H/2, W/2)."""
        x = self.spatial_attention(x)
        x = x * self.channel_attention(x)
        x = torch.relu(self.group_norm(self.conv1(x)))
        return torch.relu(self.group_norm(self.conv2(x)))


class ConvLayer(nn.Module):
    """conv1x1 -> GroupNorm -> ReLU, fusing a downsampled finer map with the next UNet map."""

    def __init__(self, in_channels: int, channels: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, channels, 1),
                                   nn.GroupNorm(group_count(channels, groups), channels),
                                   nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fuse the concatenated maps to ``channels``."""
        return self.conv1(x)


class InverseMultiAttentiveFeatureRefinement(nn.Module):
    """Refine [F1, F2, F3, F4] (fine to coarse) into maps of the same shapes.

    ``layer1`` refines F1; ``layer{2,4,6}`` downsample the previous refined map and
    ``layer{3,5,7}`` fuse it with the next map (downsampled map first in the concatenation).
    """

    def __init__(self, channels: Sequence[int], groups: int = 20) -> None:
        super().__init__()
        c = list(channels)
        if len(c) != 4:
            raise ValueError(f'IMAFR takes four feature widths, got {c}')
        self.layer1 = AttentionModule(c[0], groups)
        for i in range(3):
            self.add_module(f'layer{2 * i + 2}', AttentionDownsamplingModule(c[i], groups))
            self.add_module(f'layer{2 * i + 3}', ConvLayer(c[i] // 2 + c[i + 1], c[i + 1], groups))

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Return the refined [F1, F2, F3, F4]."""
        out = [self.layer1(feats[0])]
        for i in range(3):
            down = getattr(self, f'layer{2 * i + 2}')(out[-1])
            out.append(getattr(self, f'layer{2 * i + 3}')(torch.cat([down, feats[i + 1]], dim=1)))
        return out
