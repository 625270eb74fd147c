# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Per-image captions for evaluating EVP depth: a file mapping images to captions, and its lookup.

EVP's published NYUv2 number conditions every test image on its own BLIP-2 caption. Two file
forms are read: a JSON object ``{"<image path or name>": "<caption>", ...}``, and EVP's
``nyu_class_embeddings_my_captions.pth`` (``{"<image path>": {"caption": [str], ...}, ...}``,
read with ``weights_only=True``; only ``caption[0]`` is used, as officially).

A key names an image when one is a path suffix of the other, whole components only (the file
name may drop its extension): ``nyu_depth_v2/official_splits/test/bathroom/rgb_00045.jpg``
names ``/data/nyu_depth_v2/official_splits/test/bathroom/rgb_00045.jpg``. EVP matches keys as
plain substrings, where ``rgb_0004`` would also name ``rgb_00045``; here that cannot happen.
"""

from __future__ import annotations

import json
import os
from pathlib import PurePosixPath
from typing import Any, Dict, List, Mapping, Tuple


def caption_text(value: Any, key: str, source: str) -> str:
    """Return the caption a file entry holds: a string or EVP's ``{'caption': [str, ...]}``."""
    if isinstance(value, Mapping):
        value = value.get('caption')
        value = value[0] if isinstance(value, (list, tuple)) and value else value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f'{source}: entry {key!r} holds no caption (a non-empty string, or '
                         "{'caption': [str]})")
    return value


def path_parts(path: str) -> Tuple[str, ...]:
    """Split a path into its components (either separator; empty, '.' and '//' dropped)."""
    return tuple(p for p in PurePosixPath(str(path).replace('\\', '/')).parts
                 if p not in ('/', '.'))


class CaptionTable:
    """Captions by image: :meth:`caption` finds the one entry naming an image.

    Args:
        captions: key (an image path, relative path or name) -> caption.
        source: the file it came from, for messages.
    """

    def __init__(self, captions: Mapping[str, str], source: str) -> None:
        if not captions:
            raise ValueError(f'{source}: no captions in the file')
        self.source = source
        self._by_name: Dict[str, List[Tuple[Tuple[str, ...], str]]] = {}
        for key, text in captions.items():
            parts = path_parts(key)
            if parts:
                self._by_name.setdefault(os.path.splitext(parts[-1])[0], []).append(
                    (parts, text))

    @classmethod
    def load(cls, path: str) -> 'CaptionTable':
        """Read a JSON caption file or EVP's captions .pth (``aggregated`` is not a caption)."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f'captions file {path} not found')
        if path.endswith('.json'):
            with open(path, encoding='utf-8') as f:
                raw = json.load(f)
        else:
            from ..model.convert import load_torch_file
            raw = load_torch_file(path)
        if not isinstance(raw, Mapping):
            raise ValueError(f'{path}: expected a mapping image -> caption')
        return cls({str(k): caption_text(v, str(k), path) for k, v in raw.items()
                    if k != 'aggregated'}, path)

    def caption(self, image: str) -> str:
        """Return the caption of ``image`` (a path or name); ValueError for none or several."""
        parts = path_parts(image)
        stem = os.path.splitext(parts[-1])[0] if parts else ''
        found = {text for key, text in self._by_name.get(stem, []) if names(key, parts)}
        if len(found) != 1:
            why = 'no entry' if not found else f'{len(found)} different captions'
            raise ValueError(f'{self.source}: {why} for image {image}')
        return found.pop()


def names(key: Tuple[str, ...], image: Tuple[str, ...]) -> bool:
    """Whether a key's components name an image's: one ends the other (file stems may match)."""
    n = min(len(key), len(image))
    if key[len(key) - n:-1] != image[len(image) - n:-1]:
        return False
    return key[-1] == image[-1] or os.path.splitext(key[-1])[0] == image[-1] \
        or key[-1] == os.path.splitext(image[-1])[0]
