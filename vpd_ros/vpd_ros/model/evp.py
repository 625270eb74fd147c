# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What EVP's depth and referring models share beyond VPD's backbone.

The CLIP text tower inside the model, token-id input, IMAFR widths that follow the token length,
and the official-checkpoint loader.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .backbone import VPDBackbone
from .convert import (StateDict, convert_official, load_torch_file, require_file,
                      unwrap_state_dict)
from .presets import get_preset
from .pretrained import load_strict
from .text import TextFeatures, tokenize


def feature_widths(channels: Sequence[int], token_length: int) -> List[int]:
    """Widths of F1..F4 with the attention maps appended ([320, 680, 1320, 1280] for L = 40)."""
    c0, c1, c2, c3 = channels
    return [c0, c1 + token_length, c2 + token_length, c3]


def clean_official_state(path: str) -> Dict[str, torch.Tensor]:
    """Read an official EVP file's tensor dict; drop CLIP ``position_ids`` (derived, not weights).

    transformers before 4.31 saved ``embeddings.position_ids`` (an arange) with the CLIP tower;
    current versions do not hold it, so it is neither loaded nor an error.
    """
    state = unwrap_state_dict(load_torch_file(path), path)
    return {k: v for k, v in state.items() if not k.endswith('embeddings.position_ids')}


def materialise_position_ids(encoder: torch.nn.Module) -> None:
    """Rebuild CLIP's ``position_ids`` (a non-persistent arange, in no checkpoint) off meta."""
    for name, ids in list(encoder.named_buffers()):
        if name.endswith('position_ids') and ids.is_meta:
            module = encoder.get_submodule(name.rpartition('.')[0])
            module.register_buffer('position_ids', torch.arange(ids.shape[-1]).expand(ids.shape),
                                   persistent=False)


class EVPTextMixin:
    """CLIP text tower inside the model: token ids (B, L) -> ``last_hidden_state`` -> adapter.

    The class using it has ``backbone`` (:class:`VPDBackbone`), ``text_encoder`` and a config
    entry ``token_length``.
    """

    backbone: VPDBackbone

    @property
    def token_length(self) -> int:
        """Number of text tokens L (40 official; the IMAFR widths follow it)."""
        return int(self.config.token_length)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Return (B, L) int64 CLIP token ids, padded with ``<|endoftext|>`` and truncated."""
        return tokenize(texts, self.token_length).input_ids

    def encode_tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Return CLIP ``last_hidden_state`` (B, L, D) for (B, L) token ids (no attention mask)."""
        if token_ids.ndim != 2 or token_ids.shape[1] != self.token_length:
            raise ValueError(f'token_ids must be (B, {self.token_length}), got '
                             f'{tuple(token_ids.shape)}')
        ids = token_ids.to(self.text_encoder.device, torch.long)
        return self.text_encoder(input_ids=ids).last_hidden_state

    def encode_text(self, texts: Sequence[str]) -> TextFeatures:
        """Return CLIP states (B, L, D) for texts and, per text, whether it was truncated."""
        tokens = tokenize(texts, self.token_length)
        return TextFeatures(embeddings=self.encode_tokens(tokens.input_ids),
                            truncated=tokens.truncated)

    def text_input(self, token_ids: Optional[torch.Tensor],
                   text_embeddings: Optional[torch.Tensor]) -> torch.Tensor:
        """Return CLIP states from exactly one of token ids or ready states."""
        if (token_ids is None) == (text_embeddings is None):
            raise ValueError('give exactly one of token_ids or text_embeddings')
        return self.encode_tokens(token_ids) if token_ids is not None else text_embeddings

    def text_context(self, batch: int, text_embeddings: torch.Tensor,
                     dtype: torch.dtype) -> torch.Tensor:
        """Return the adapted (B, L, D) UNet context for CLIP states (1 or B, L, D).

        One state row is used for every image (EVP's aggregated caption embedding is such a
        (1, L, D) tensor).
        """
        if text_embeddings.ndim != 3 or text_embeddings.shape[1] != self.token_length:
            raise ValueError(f'text_embeddings must be (B, {self.token_length}, D), got '
                             f'{tuple(text_embeddings.shape)}')
        if text_embeddings.shape[0] == 1 and batch > 1:
            text_embeddings = text_embeddings.expand(batch, -1, -1)
        if text_embeddings.shape[0] != batch:
            raise ValueError(f'{text_embeddings.shape[0]} texts for {batch} images')
        return self.backbone.condition(text_embeddings.to(dtype))


def load_official(cls: Any, path: str, what: str, preset: str,
                  prefixes: Sequence[Tuple[str, str]],
                  token_length: Callable[[StateDict, Dict[str, Any]], int]) -> Any:
    """Build ``cls`` on the meta device from preset section ``what`` and load ``path`` strictly.

    ``token_length(state, unet_config)`` reads L from the file's widths; every tensor must land
    exactly once.
    """
    require_file(path, what)
    state = clean_official_state(path)
    p = get_preset(preset)
    length = token_length(state, p['unet'])
    with torch.device('meta'):
        model = cls(p['unet'], p['vae'], p['text'], **dict(p[what], token_length=length))
    materialise_position_ids(model.text_encoder)
    converted = convert_official(state, prefixes, model.backbone.unet.config, p['vae'], path)
    load_strict(model, converted, path, assign=True)
    return model.eval()
