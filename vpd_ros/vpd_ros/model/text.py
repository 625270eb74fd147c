# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Text side of VPD: the CLIP BPE tokenizer (shipped with the package) and the CLIP text tower."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, List, Sequence

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TOKENIZER_DIR = os.path.join(os.path.dirname(__file__), 'assets', 'clip_tokenizer')


@lru_cache(maxsize=None)
def load_tokenizer(folder: str = TOKENIZER_DIR) -> CLIPTokenizer:
    """Load the CLIP BPE tokenizer from a folder holding ``vocab.json`` and ``merges.txt``.

    The default folder is the copy shipped with vpd_ros (OpenAI CLIP's vocabulary, MIT licence),
    identical to SD-1.5's ``tokenizer/``; pad token is ``<|endoftext|>`` as in VPD.
    """
    vocab, merges = os.path.join(folder, 'vocab.json'), os.path.join(folder, 'merges.txt')
    for path in (vocab, merges):
        if not os.path.isfile(path):
            raise FileNotFoundError(f'{path} not found: a CLIP tokenizer folder needs vocab.json '
                                    'and merges.txt (SD-1.5 ships them in tokenizer/)')
    return CLIPTokenizer(vocab, merges, pad_token='<|endoftext|>')


@dataclass
class Tokens:
    """Token ids (B, L) long and, per text, whether it was cut to fit L."""

    input_ids: torch.Tensor
    truncated: List[bool]


def tokenize(texts: Sequence[str], max_length: int,
             tokenizer: CLIPTokenizer | None = None) -> Tokens:
    """Tokenize like VPD: pad to ``max_length`` with ``<|endoftext|>``, truncate longer texts."""
    if isinstance(texts, str):
        raise ValueError('tokenize expects a sequence of strings, got a single str')
    tok = tokenizer or load_tokenizer()
    full = tok(list(texts), truncation=False, padding=False)['input_ids']
    ids = tok(list(texts), truncation=True, max_length=max_length, padding='max_length',
              return_tensors='pt')['input_ids']
    return Tokens(input_ids=ids, truncated=[len(f) > max_length for f in full])


@dataclass
class TextFeatures:
    """CLIP ``last_hidden_state`` (B, L, D) and, per text, whether it was truncated to L tokens."""

    embeddings: torch.Tensor
    truncated: List[bool]


def build_text_encoder(config: Dict[str, Any]) -> CLIPTextModel:
    """Build a CLIP text tower from a ``CLIPTextConfig`` dict (no hub access)."""
    return CLIPTextModel(CLIPTextConfig(**config))
