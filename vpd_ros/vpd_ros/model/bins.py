# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""EVP's metric-bins depth head (ZoeDepth style): seed bins, inverse attractors, log-binomial.

Bin centres are unnormalised metres (softplus), refined by attractors at the decoder's four
stages; the output is the expectation of the bin centres under a per-pixel conditional
log-binomial distribution. It is not bounded by ``max_depth``.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

# The official head configures alpha = 1000, but its attractor calls the distance function
# without it, so the function's default of 300 is what runs (and what the weights were trained
# with).
ATTRACTOR_ALPHA = 300.0
ATTRACTOR_GAMMA = 2


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True (every resize of the bins head)."""
    return F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=True)


def inverse_attractor(dx: torch.Tensor, alpha: float = ATTRACTOR_ALPHA,
                      gamma: int = ATTRACTOR_GAMMA) -> torch.Tensor:
    """Shift of a bin centre towards an attractor at distance dx: ``dx / (1 + alpha dx^gamma)``."""
    return dx / (1 + alpha * dx.pow(gamma))


def log_binomial_coefficient(n: torch.Tensor, k: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Stirling-type ``log C(n, k)``: ``n ln n - k ln k - (n-k) ln(n-k+eps)``, n, k plus eps."""
    n, k = n + eps, k + eps
    return n * torch.log(n) - k * torch.log(k) - (n - k) * torch.log(n - k + eps)


class MLP1x1(nn.Module):
    """``_net`` = conv1x1 -> ReLU -> conv1x1 (-> softplus); ZoeDepth's projector/regressor shape."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, softplus: bool) -> None:
        super().__init__()
        layers = [nn.Conv2d(in_channels, hidden, 1), nn.ReLU(),
                  nn.Conv2d(hidden, out_channels, 1)]
        self._net = nn.Sequential(*(layers + [nn.Softplus()] if softplus else layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the per-pixel MLP."""
        return self._net(x)


class InverseAttractor(MLP1x1):
    """Predict n attractor points per pixel and pull the bin centres towards their mean shift."""

    def __init__(self, embed_dim: int, n_attractors: int) -> None:
        super().__init__(embed_dim, embed_dim, n_attractors, softplus=True)

    def forward(self, embedding: torch.Tensor, prev_embedding: torch.Tensor,
                centres: torch.Tensor) -> torch.Tensor:
        """Return the (B, n_bins, h, w) updated centres at the embedding's size."""
        size = embedding.shape[-2:]
        attractors = self._net(embedding + resize(prev_embedding, size))
        centres = resize(centres, size)
        shift = inverse_attractor(attractors.unsqueeze(2) - centres.unsqueeze(1)).mean(1)
        return centres + shift


class LogBinomial(nn.Module):
    """Softmax over k of ``(log C(K-1, k) + k ln p + (K-1-k) ln(1-p)) / T`` (p clamped to 1e-4)."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.register_buffer('k_idx', torch.arange(n_classes).view(1, -1, 1, 1))
        self.register_buffer('K_minus_1', torch.tensor([n_classes - 1.0]).view(1, 1, 1, 1))

    def forward(self, p: torch.Tensor, temperature: torch.Tensor,
                eps: float = 1e-4) -> torch.Tensor:
        """Return (B, K, H, W) probabilities for p and T of shape (B, 1, H, W)."""
        q = torch.clamp(1 - p, eps, 1)
        p = torch.clamp(p, eps, 1)
        k = self.k_idx
        y = (log_binomial_coefficient(self.K_minus_1, k) + k * torch.log(p)
             + (self.n_classes - 1 - k) * torch.log(q))
        return torch.softmax(y / temperature, dim=1)


class ConditionalLogBinomial(nn.Module):
    """Per-pixel success probability p and temperature T from features -> :class:`LogBinomial`."""

    def __init__(self, in_channels: int, condition_channels: int, n_classes: int,
                 min_temp: float, max_temp: float, p_eps: float = 1e-4) -> None:
        super().__init__()
        total = in_channels + condition_channels
        self.mlp = nn.Sequential(nn.Conv2d(total, total // 2, 1), nn.GELU(),
                                 nn.Conv2d(total // 2, 4, 1), nn.Softplus())
        self.log_binomial_transform = LogBinomial(n_classes)
        self.min_temp, self.max_temp, self.p_eps = min_temp, max_temp, p_eps

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Return (B, K, H, W) bin probabilities."""
        pt = self.mlp(torch.cat([x, condition], dim=1)) + self.p_eps
        p = (pt[:, 0] / (pt[:, 0] + pt[:, 1])).unsqueeze(1)
        t = (pt[:, 2] / (pt[:, 2] + pt[:, 3])).unsqueeze(1)
        return self.log_binomial_transform(p, (self.max_temp - self.min_temp) * t + self.min_temp)


class MetricBinsHead(nn.Module):
    """EVP's depth head after the deconvolution decoder (the official ZoeDepth branch).

    Args:
        neck_channels: width of the neck map (1536).
        stage_channels: widths of the decoder maps it reads ([32, 32, 32, 192]).
        n_bins: bins (64). embed_dim: bin embedding width (128). bottleneck: 256.
        n_attractors: attractors per stage ([16, 8, 4, 1]).
        min_temp, max_temp: range of the log-binomial temperature (0.0212, 50).
    """

    def __init__(self, neck_channels: int, stage_channels: Sequence[int], n_bins: int,
                 embed_dim: int, bottleneck: int, n_attractors: Sequence[int],
                 min_temp: float, max_temp: float) -> None:
        super().__init__()
        if len(stage_channels) != len(n_attractors):
            raise ValueError(f'{len(stage_channels)} decoder stages for {len(n_attractors)} '
                             'attractor levels')
        self.bottle_neck = nn.Sequential(
            nn.Conv2d(neck_channels, bottleneck, 3, padding=1), nn.ReLU(),
            nn.Conv2d(bottleneck, bottleneck, 3, padding=1))
        self.seed_bin_regressor = MLP1x1(bottleneck, bottleneck, n_bins, softplus=True)
        self.seed_projector = MLP1x1(bottleneck, embed_dim, embed_dim, softplus=False)
        self.projectors = nn.ModuleList(MLP1x1(c, embed_dim, embed_dim, softplus=False)
                                        for c in stage_channels)
        self.attractors = nn.ModuleList(InverseAttractor(embed_dim, n) for n in n_attractors)
        self.conditional_log_binomial = ConditionalLogBinomial(
            stage_channels[-1] + 1, embed_dim, n_bins, min_temp, max_temp)

    def forward(self, neck: torch.Tensor, stages: List[torch.Tensor], features: torch.Tensor,
                relative: torch.Tensor) -> torch.Tensor:
        """Return (B, 1, H, W) metres.

        Args:
            neck: (B, neck_channels, h, w) neck map (cropped as the decoder's input).
            stages: decoder maps, coarse to fine (see ``DepthDecoder.forward_stages``).
            features: (B, C, H, W) decoder output at the input size.
            relative: (B, 1, H, W) ``sigmoid(last_layer_depth) * max_depth`` (VPD's output).
        """
        x = self.bottle_neck(neck)
        centres = self.seed_bin_regressor(x)
        embedding = self.seed_projector(x)
        for projector, attractor, stage in zip(self.projectors, self.attractors, stages):
            stage_embedding = projector(stage)
            centres = attractor(stage_embedding, embedding, centres)
            embedding = stage_embedding
        size = features.shape[-2:]
        last = torch.cat([features, resize(relative, size)], dim=1)
        probs = self.conditional_log_binomial(last, resize(embedding, size))
        return (probs * resize(centres, size)).sum(1, keepdim=True)
