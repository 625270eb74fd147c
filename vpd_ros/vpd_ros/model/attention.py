# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Cross-attention probability capture for the VPD backbone.

VPD appends head-averaged cross-attention maps (softmax over the text tokens) to two UNet feature
maps. Only the ``attn2`` (cross-attention) layers that feed those maps get the capturing processor;
every other attention layer keeps diffusers' fused scaled-dot-product path.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import torch
from diffusers.models.attention_processor import Attention


class AttentionMapStore:
    """Collects (B, H*W, T) head-averaged attention maps of one forward, grouped by layer level."""

    def __init__(self) -> None:
        self.maps: Dict[str, List[torch.Tensor]] = {}

    def reset(self) -> None:
        """Forget the maps of the previous forward."""
        self.maps = {}

    def add(self, group: str, probs: torch.Tensor) -> None:
        """Store one layer's map under its resolution group."""
        self.maps.setdefault(group, []).append(probs)

    def average(self, group: str, height: int, width: int) -> torch.Tensor:
        """Return the plain mean of a group's maps as (B, T, height, width)."""
        maps = self.maps.get(group)
        if not maps:
            raise RuntimeError(f'no attention maps were captured for {group!r}')
        mean = torch.stack(maps).mean(0)
        return mean.transpose(1, 2).reshape(mean.shape[0], mean.shape[2], height, width)


class AttentionMapProcessor:
    """Cross-attention with explicit probabilities, which it hands to an :class:`AttentionMapStore`.

    Matches the official capture: softmax(Q K^T / sqrt(d_head)) over the key (token) axis, mean over
    heads. The maps are detached: in the official training they carry no gradient (ldm
    checkpointing runs the capture under ``no_grad``).
    """

    def __init__(self, store: AttentionMapStore, group: str) -> None:
        self.store = store
        self.group = group

    def __call__(self, attn: Attention, hidden_states: torch.Tensor,
                 encoder_hidden_states: Optional[torch.Tensor] = None,
                 attention_mask: Optional[torch.Tensor] = None, **_: object) -> torch.Tensor:
        """Compute cross-attention and record its head-averaged probabilities."""
        if encoder_hidden_states is None:
            raise ValueError('AttentionMapProcessor is meant for cross-attention (attn2) layers')
        if attention_mask is not None:
            raise ValueError('VPD passes no attention mask to the text tokens')
        batch = hidden_states.shape[0]
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, None)
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        heads_mean = probs.reshape(batch, attn.heads, probs.shape[1], probs.shape[2]).mean(1)
        self.store.add(self.group, heads_mean.detach())
        out = attn.to_out[0](out)
        return attn.to_out[1](out)
