# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What an engine's graphs are made from, as a cache key computed without building a model.

A load entry ``<root>/load-<digest>/`` maps such a key (the content hashes of the weight files
the models are read from, or a random preset's name, seed and device; the input size; the export
versions) to the graph entries exported from it, plus the few arrays the graph engine needs
beside its graphs (the depth model's scene vectors). A start that finds it opens the graphs and
builds no torch model; a changed file or size gives another key, so the models are built again.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...model.pretrained import CONFIG_NAME, WEIGHTS_NAME
from .cache import export_versions, file_hashes, lookup, store

MANIFEST = 'manifest.json'
ARRAYS = 'arrays.npz'


def _hashed(files: Dict[str, str], root: str) -> Dict[str, str]:
    """Name -> content hash of each existing file (name -> path given)."""
    present = {name: path for name, path in files.items() if os.path.isfile(path)}
    return dict(zip(present, file_hashes(list(present.values()), root)))


def pretrained_source(folder: str, tasks: Sequence[str], root: str) -> Dict[str, Any]:
    """Return the key of a vpd_ros model folder: the hashes of the files each task's model reads."""
    return {'kind': 'pretrained', 'files': _hashed(
        {f'{task}/{name}': os.path.join(folder, task, name)
         for task in tasks for name in (CONFIG_NAME, WEIGHTS_NAME)}, root)}


def official_source(depth: Optional[str], refer: Optional[str], sd15: Optional[str],
                    preset: str, root: str) -> Dict[str, Any]:
    """Return the key of official checkpoints: their hashes and the SD-1.5 text tower's."""
    files = {'depth': depth, 'refer': refer}
    if sd15 and os.path.isdir(sd15):
        text = os.path.join(sd15, 'text_encoder')
        for base, _dirs, names in os.walk(text):
            files.update({f'sd15/{os.path.relpath(os.path.join(base, n), sd15)}':
                          os.path.join(base, n) for n in names})
    elif sd15:
        files['sd15'] = sd15
    return {'kind': 'official', 'preset': preset,
            'files': _hashed({k: v for k, v in files.items() if v}, root)}


def preset_source(preset: str, tasks: Sequence[str], seed: int, device: str) -> Dict[str, Any]:
    """Return the key of a random preset: name, tasks, seed, device the weights are drawn on."""
    return {'kind': 'preset', 'preset': preset, 'tasks': list(tasks), 'seed': seed,
            'device': device}


def load_key(source: Dict[str, Any], input_size: Optional[Sequence[int]]) -> Dict[str, Any]:
    """Return the load entry's key: the source, the input size asked for and the export versions."""
    return {'graph': 'load', 'source': source,
            'input_size': None if input_size is None else list(input_size), **export_versions()}


def describe(source: Dict[str, Any]) -> str:
    """One line naming a source by its files' short hashes (for the log)."""
    if 'files' in source:
        return ', '.join(f'{name} {digest[:12]}' for name, digest in source['files'].items())
    return f"random:{source['preset']} seed {source['seed']} on {source['device']}"


def find_load(root: str, key: Dict[str, Any]
              ) -> Optional[Tuple[Dict[str, Any], Dict[str, np.ndarray]]]:
    """Return the manifest and arrays of ``key``'s load entry when it and its graphs exist."""
    folder = lookup(root, key)
    if folder is None:
        return None
    with open(os.path.join(folder, MANIFEST), encoding='utf-8') as f:
        manifest = json.load(f)
    if not all(os.path.isfile(os.path.join(root, g, 'key.json')) for g in graphs_of(manifest)):
        return None
    with np.load(os.path.join(folder, ARRAYS), allow_pickle=False) as arrays:
        return manifest, dict(arrays)


def save_load(root: str, key: Dict[str, Any], manifest: Dict[str, Any],
              arrays: Dict[str, np.ndarray]) -> str:
    """Write ``key``'s load entry (manifest and arrays); return its folder."""
    def build(folder: str) -> None:
        with open(os.path.join(folder, MANIFEST), 'w', encoding='utf-8') as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        np.savez(os.path.join(folder, ARRAYS), **arrays)
    return store(root, key, build)


def graphs_of(manifest: Dict[str, Any]) -> List[str]:
    """Return the graph entry folders (relative to the cache root) a manifest names."""
    return sorted({v for task in ('depth', 'refer') for k, v in manifest.get(task, {}).items()
                   if k in ('vae', 'unet', 'head', 'text') and v})
