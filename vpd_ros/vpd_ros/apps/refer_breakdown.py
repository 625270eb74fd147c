# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Referring metrics per category of expression on rendered scenes: where the model fails.

Why: one mIoU hides whether grounding (which object) or segmentation (its outline) is wrong, and
for which sentences (relations, colours, sizes, small targets). Each expression is tagged with
its kind, the words it uses and its target's visible size; per tag this gives the official
metrics plus ``hit`` (the object under most of the mask is the target) and ``mIoU|hit``.
"""

from __future__ import annotations

from typing import Dict, Iterable, List

import numpy as np

from ..data import Scene
from ..data.expressions import SIZE_WORDS
from ..data.scenes import PALETTE
from ..engine import VPDEngine
from .metrics import ReferMeter

#: Target visible-pixel buckets at 320x240 (upper bounds, exclusive).
PIXEL_BUCKETS = ((300, 'target <300 px'), (1000, 'target 300-999 px'),
                 (10 ** 9, 'target >=1000 px'))
_SIZE_WORDS = {w for words in SIZE_WORDS.values() for w in words}


def expression_tags(text: str, kind: str, target_pixels: int, n_objects: int) -> List[str]:
    """Return the categories one expression belongs to (always including ``all``)."""
    words = set(text.split())
    tags = ['all', f'kind {kind}']
    tags.append('mentions colour' if words & set(PALETTE) else 'no colour word')
    if words & _SIZE_WORDS:
        tags.append('mentions size')
    tags.append(next(name for bound, name in PIXEL_BUCKETS if target_pixels < bound))
    tags.append(f'{min(n_objects, 5)}{"+" if n_objects >= 5 else ""} objects in view')
    return tags


def refer_breakdown(engine: VPDEngine, scenes: Iterable[Scene],
                    mask_threshold: float = 0.5) -> Dict[str, Dict[str, float]]:
    """Return per category: official referring metrics, ``hit`` rate and ``mIoU|hit``.

    ``scenes`` are rendered scenes, e.g. ``map(render_scene, seeds)``; ``mask_threshold`` is
    the engine's per-frame foreground threshold.
    """
    meters: Dict[str, ReferMeter] = {}
    hits: Dict[str, List[bool]] = {}
    for scene in scenes:
        if not scene.expressions:
            continue
        objects = {o.id: o for o in scene.objects}
        in_view = sum(o.pixel_count > 0 for o in scene.objects)
        texts = [r.text for r in scene.expressions]
        masks = engine.predict(scene.rgb, queries=texts, depth=False,
                               mask_threshold=mask_threshold).masks
        for ref, pred in zip(scene.expressions, masks):
            gt = scene.instances == ref.target_id
            under = scene.instances[pred]
            chosen = int(np.bincount(under.ravel()).argmax()) if under.size else 0
            for tag in expression_tags(ref.text, ref.kind, objects[ref.target_id].pixel_count,
                                       in_view):
                meters.setdefault(tag, ReferMeter()).update(pred, gt)
                hits.setdefault(tag, []).append(chosen == ref.target_id)
    out = {}
    for tag in sorted(meters, key=lambda t: (t != 'all', t)):
        metrics = meters[tag].result()
        hit = np.asarray(hits[tag])
        ious = meters[tag].ious()
        metrics['hit'] = float(hit.mean())
        metrics['mIoU|hit'] = float(ious[hit].mean()) if hit.any() else 0.0
        out[tag] = metrics
    return out


def format_breakdown(table: Dict[str, Dict[str, float]]) -> str:
    """Return the breakdown as a Markdown table (count, mIoU, oIoU, P@0.5, hit, mIoU|hit)."""
    cols = ('count', 'mIoU', 'oIoU', 'P@0.5', 'hit', 'mIoU|hit')
    lines = ['| category | ' + ' | '.join(cols) + ' |', '|---' * (len(cols) + 1) + '|']
    for tag, m in table.items():
        cells = [str(int(m['count']))] + [f'{m[c]:.3f}' for c in cols[1:]]
        lines.append(f'| {tag} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
