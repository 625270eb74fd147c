# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A folder of exported graphs keyed by everything that invalidates them.

An entry is ``<root>/<graph>-<digest>/`` holding ``model.onnx`` (and ``model.onnx.data`` for
graphs over 2 GB), ``key.json`` with the fields that made the digest, and a ``<backend>/`` folder
per backend for its compiled artifacts. The ONNX key is (graph, weights hash, input size, torch
version, export format); a backend's artifacts sit in a subfolder keyed by (backend, its version,
device, precision). A missing entry is built and logged; a changed field gives another digest,
so a stale entry is never found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Dict

import torch

LOG = logging.getLogger('vpd_ros.engine.deploy')
#: Bumped whenever the exported graphs change meaning (names, inputs, what they include).
EXPORT_FORMAT = 1
MODEL_FILE = 'model.onnx'


def default_cache_dir() -> str:
    """``$VPD_ROS_CACHE``, else ``$XDG_CACHE_HOME/vpd_ros``, else ``~/.cache/vpd_ros``."""
    return os.environ.get('VPD_ROS_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'vpd_ros')


def weights_hash(module: torch.nn.Module) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f'{name}|{t.dtype}|{tuple(t.shape)}|'.encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return digest.hexdigest()


def key_digest(key: Dict[str, Any]) -> str:
    """Short stable digest of a key's JSON form."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def onnx_key(graph: str, weights: str, size: Any) -> Dict[str, Any]:
    """Return the fields an exported graph depends on."""
    return {'graph': graph, 'weights': weights, 'input_size': list(size),
            'torch': torch.__version__, 'format': EXPORT_FORMAT}


def entry(root: str, key: Dict[str, Any], build: Callable[[str], None]) -> str:
    """Return the folder of ``key``'s entry under ``root``, building it when there is none.

    ``build(folder)`` writes into a temporary folder, renamed to the entry when complete.
    """
    folder = os.path.join(root, f"{key['graph']}-{key_digest(key)}")
    if os.path.isfile(os.path.join(folder, 'key.json')):
        return folder
    others = _entries_of(root, key['graph'])
    LOG.info('exporting %s to ONNX (no cache entry for weights %s, input %s, torch %s%s) -> %s',
             key['graph'], key['weights'][:12], 'x'.join(map(str, key['input_size'])),
             key['torch'], f'; {len(others)} other entries of it: {", ".join(others)}'
             if others else '', folder)
    os.makedirs(root, exist_ok=True)
    start = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix=f".{key['graph']}-", dir=root)
    try:
        build(tmp)
        with open(os.path.join(tmp, 'key.json'), 'w', encoding='utf-8') as f:
            json.dump(key, f, indent=1, sort_keys=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same entry first
            if not os.path.isfile(os.path.join(folder, 'key.json')):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    LOG.info('exported %s in %.1f s', key['graph'], time.perf_counter() - start)
    return folder


def _entries_of(root: str, graph: str) -> list:
    if not os.path.isdir(root):
        return []
    return sorted(n for n in os.listdir(root) if n.startswith(graph + '-'))


def artifacts_dir(folder: str, backend: str, version: str, device: str, precision: str) -> str:
    """Return the backend's artifact folder inside an entry (created when missing).

    Keyed by backend, its version, device and precision.
    """
    key = {'backend': backend, 'version': version, 'device': device, 'precision': precision}
    path = os.path.join(folder, f'{backend}-{key_digest(key)}')
    if not os.path.isdir(path):
        LOG.info('compiling %s for %s %s on %s (%s): no cached artifacts -> %s',
                 os.path.basename(folder), backend, version, device, precision, path)
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, 'key.json'), 'w', encoding='utf-8') as f:
            json.dump(key, f, indent=1, sort_keys=True)
    return path
