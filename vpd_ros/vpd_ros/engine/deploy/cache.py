# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A folder of exported graphs keyed by everything that invalidates them.

An entry is ``<root>/<graph>-<digest>/`` holding ``model.onnx`` (and ``model.onnx.data`` for
graphs over 2 GB), ``key.json`` with the fields that made the digest, and a ``<backend>/`` folder
per backend for its compiled artifacts. The ONNX key is (graph, weights hash, input size, export
versions: torch, diffusers, transformers, export format and a digest of the export code); a
backend's artifacts sit in a subfolder keyed by (backend, its version, device, precision).
``load-<digest>/`` entries (:mod:`.sources`) map weight files to the graph entries made from them,
so that a start from the cache builds no torch model. A missing entry is built and logged; a
changed field gives another digest, so a stale entry is never found.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from importlib import metadata
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

LOG = logging.getLogger('vpd_ros.engine.deploy')
#: Bumped whenever the exported graphs change meaning (names, inputs, what they include).
EXPORT_FORMAT = 1
MODEL_FILE = 'model.onnx'
#: The memo of weight-file hashes inside the cache folder (see :func:`file_hashes`).
HASHES_FILE = 'file-hashes.json'
READ_BYTES = 1 << 22


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
    return {'graph': graph, 'weights': weights, 'input_size': list(size), **export_versions()}


@functools.lru_cache(maxsize=1)
def export_versions() -> Dict[str, Any]:
    """Return the export code's version: format number, digest of its source, and its libraries'."""
    package = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    sources = sorted(glob.glob(os.path.join(package, 'model', '**', '*.py'), recursive=True))
    digest = hashlib.sha256()
    for path in sources + [os.path.join(os.path.dirname(__file__), 'graphs.py')]:
        with open(path, 'rb') as f:
            digest.update(f.read())
    return {'torch': torch.__version__, 'diffusers': metadata.version('diffusers'),
            'transformers': metadata.version('transformers'), 'format': EXPORT_FORMAT,
            'code': digest.hexdigest()[:16]}


def lookup(root: str, key: Dict[str, Any]) -> Optional[str]:
    """Return the folder of ``key``'s complete entry under ``root``, or None."""
    folder = entry_folder(root, key)
    return folder if os.path.isfile(os.path.join(folder, 'key.json')) else None


def entry_folder(root: str, key: Dict[str, Any]) -> str:
    """Return where ``key``'s entry lives (or would live) under ``root``."""
    return os.path.join(root, f"{key['graph']}-{key_digest(key)}")


def entry(root: str, key: Dict[str, Any], build: Callable[[str], None]) -> str:
    """Return the folder of ``key``'s entry under ``root``, exporting it when there is none.

    ``build(folder)`` writes into a temporary folder, renamed to the entry when complete.
    """
    folder = lookup(root, key)
    if folder is not None:
        return folder
    others = entries_of(root, key['graph'])
    LOG.info('exporting %s to ONNX (no cache entry for weights %s, input %s, torch %s%s) -> %s',
             key['graph'], key['weights'][:12], 'x'.join(map(str, key['input_size'])),
             key['torch'], f'; {len(others)} other entries of it: {", ".join(others)}'
             if others else '', entry_folder(root, key))
    start = time.perf_counter()
    folder = store(root, key, build)
    LOG.info('exported %s in %.1f s', key['graph'], time.perf_counter() - start)
    return folder


def store(root: str, key: Dict[str, Any], build: Callable[[str], None]) -> str:
    """Write ``key``'s entry: ``build(folder)`` fills a temporary folder renamed when complete."""
    folder = entry_folder(root, key)
    os.makedirs(root, exist_ok=True)
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
    return folder


def entries_of(root: str, graph: str) -> List[str]:
    """Names of the entries of ``graph`` under ``root``."""
    if not os.path.isdir(root):
        return []
    return sorted(n for n in os.listdir(root) if n.startswith(graph + '-'))


def file_hashes(paths: Sequence[str], root: str) -> List[str]:
    """SHA-256 of each file, streamed; memoised in ``<root>/file-hashes.json``.

    The memo is keyed by real path and trusted while size, mtime, ctime and inode are unchanged
    (any rewrite or copy changes ctime), so an unchanged file is read once.
    """
    memo_path = os.path.join(root, HASHES_FILE)
    try:
        with open(memo_path, encoding='utf-8') as f:
            memo = json.load(f)
    except (OSError, ValueError):
        memo = {}
    out, changed = [], False
    for path in paths:
        real = os.path.realpath(path)
        st = os.stat(real)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        known = memo.get(real)
        if not known or known[:-1] != stamp:
            known = memo[real] = stamp + [_sha256(real)]
            changed = True
        out.append(known[-1])
    if changed:
        try:
            os.makedirs(root, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix='.file-hashes-', dir=root)
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(memo, f, indent=0, sort_keys=True)
            os.replace(tmp, memo_path)
        except OSError as err:  # a read-only cache still serves; the files are hashed again
            LOG.warning('cannot memoise weight-file hashes in %s: %s', root, err)
    return out


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(READ_BYTES), b''):
            digest.update(block)
    return digest.hexdigest()


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
