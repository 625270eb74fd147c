# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Evaluation loops: run a :class:`~vpd_ros.engine.VPDEngine` over a dataset, official metrics out.

Why: one loop serves rendered held-out scenes, NYUv2, RefCOCO and user folders, and it goes
through the same engine a robot uses (resize to the model size and back, optional official depth
TTA via ``EngineConfig(tta=True)``), so the numbers describe what is deployed.

Depth predictions are compared at the GT resolution. Referring masks are compared at the image
resolution (VPD resizes GT and prediction to 512x512 instead; for the square RefCOCO inputs
the two differ only by resampling).
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence

import numpy as np

from ..data import render_scene
from ..engine import VPDEngine
from .captions import CaptionTable
from .metrics import DepthMeter, ReferMeter


class ReferGroup(NamedTuple):
    """One image with its sentences and their (H, W) target masks (evaluated in one batch)."""

    rgb: np.ndarray
    texts: List[str]
    masks: List[np.ndarray]


def rendered_depth(seeds: Iterable[int]) -> Iterator[Any]:
    """Yield rendered scenes (they have ``rgb`` and ``depth``) for the given seeds."""
    for seed in seeds:
        yield render_scene(int(seed))


def rendered_refer(seeds: Iterable[int]) -> Iterator[ReferGroup]:
    """Yield one :class:`ReferGroup` per rendered scene holding all of its expressions."""
    for seed in seeds:
        scene = render_scene(int(seed))
        if scene.expressions:
            yield ReferGroup(scene.rgb, [r.text for r in scene.expressions],
                             [scene.instances == r.target_id for r in scene.expressions])


def _as_refer_group(item: Any) -> ReferGroup:
    if isinstance(item, ReferGroup):
        return item
    return ReferGroup(item.rgb, [item.sentence], [item.mask])


def _progress(items: Iterable[Any], total: Optional[int], enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm
    return tqdm(items, total=total, desc=desc, unit='img', mininterval=5)


def _total(samples: Any, limit: Optional[int]) -> Optional[int]:
    n = len(samples) if hasattr(samples, '__len__') else None
    return min(n, limit) if n is not None and limit else (limit or n)


def sample_name(item: Any) -> str:
    """Return what names a depth sample in a captions file: its RGB path (NYUv2) or name (user)."""
    name = getattr(item, 'rgb_path', None) or getattr(item, 'name', None)
    if name is None:
        raise ValueError('per-image captions need samples with a file path or name (--data nyu '
                         'or user)')
    return str(name)


def evaluate_depth(engine: VPDEngine, samples: Iterable[Any], min_depth: float = 1e-3,
                   max_depth: float = 10.0, eigen_crop: bool = False,
                   limit: Optional[int] = None, progress: bool = False,
                   scene: Optional[int] = None,
                   captions: Optional[CaptionTable] = None) -> Dict[str, float]:
    """Return mean per-image official depth metrics over samples with ``rgb`` and ``depth``.

    Args:
        engine: an engine with a depth model.
        samples: items with ``rgb`` (H, W, 3) uint8 and ``depth`` (H, W) metres (readers,
            rendered scenes).
        min_depth, max_depth: GT evaluation range (official NYUv2: 1e-3, 10).
        eigen_crop: restrict to the Eigen crop (480x640 only).
        limit: evaluate at most this many samples.
        progress: show a tqdm bar.
        scene: VPD depth scene-class id (``None``: the mean of the class embeddings).
        captions: EVP depth: each image's caption (as EVP's published test); ``None`` keeps
            the engine's caption for all.
    """
    if captions is not None and not engine.takes_caption:
        raise ValueError('per-image captions need an EVP depth model')
    meter = DepthMeter(min_depth, max_depth, eigen_crop)
    items = islice(iter(samples), limit) if limit else iter(samples)
    for item in _progress(items, _total(samples, limit), progress, 'depth'):
        if captions is not None:
            engine.set_caption(captions.caption(sample_name(item)))
        pred = engine.predict(item.rgb, depth=True, scene=scene).depth
        meter.update(pred, item.depth)
    return meter.result()


def evaluate_refer(engine: VPDEngine, samples: Iterable[Any], limit: Optional[int] = None,
                   progress: bool = False, mask_threshold: float = 0.5) -> Dict[str, float]:
    """Return oIoU, mIoU and P@0.5..0.9 over sentences.

    ``samples`` yields :class:`ReferGroup` (all sentences of an image in one engine call) or
    reader samples with ``rgb``, ``mask`` and ``sentence``; ``limit`` counts items;
    ``mask_threshold`` is the engine's per-frame foreground threshold.
    """
    meter = ReferMeter()
    items = islice(iter(samples), limit) if limit else iter(samples)
    for item in _progress(items, _total(samples, limit), progress, 'refer'):
        group = _as_refer_group(item)
        masks = engine.predict(group.rgb, queries=group.texts, depth=False,
                               mask_threshold=mask_threshold).masks
        for pred, gt in zip(masks, group.masks):
            meter.update(pred, gt)
    return meter.result()


def distinct_selections(engine: VPDEngine, rgb: np.ndarray, texts: Sequence[str],
                        instances: np.ndarray) -> List[int]:
    """Return, per text, the instance id covering most of its predicted mask (0 = none/room).

    Used to check that different queries on one image select different objects.
    """
    masks = engine.predict(rgb, queries=list(texts), depth=False).masks
    chosen = []
    for m in masks:
        ids = instances[m]
        chosen.append(int(np.bincount(ids.ravel()).argmax()) if ids.size else 0)
    return chosen
