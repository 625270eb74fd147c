# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training data as torch datasets: rendered scenes (cached as .npy memmaps) and dataset readers.

Why: rendering or decoding images every step would cost the 2-core CPU more than the tiny model
itself, so rendered scenes are resized once to the model's input size, exactly as the engine
resizes camera frames (bilinear, antialiased), and kept in memory-mapped arrays.

Each dataset's ``sample(index, rng)`` draws augmentation from ``rng``; :func:`make_batch`
seeds that generator from (seed, step), so a resumed run sees the very same batches.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .scenes import render_scene

CACHE_FILES = ('rgb.npy', 'depth.npy', 'instances.npy', 'meta.json')


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to (size, size, 3) uint8 the way the engine resizes frames."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False,
                          antialias=True)
    return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def resize_nearest(array: np.ndarray, size: int) -> np.ndarray:
    """Resize a (H, W) label or depth map to (size, size) without mixing values."""
    if array.shape == (size, size):
        return array
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_NEAREST)


class SceneCache:
    """Rendered scenes at one square size S, as memory-mapped arrays.

    ``rgb`` (N, S, S, 3) uint8, ``depth`` (N, S, S) float32 metres, ``instances`` (N, S, S)
    uint8, and per scene its seed and expressions (text, target id).
    """

    def __init__(self, folder: str) -> None:
        missing = [f for f in CACHE_FILES if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise FileNotFoundError(f'{folder} is not a scene cache: missing {missing} '
                                    '(build one with SceneCache.build)')
        self.folder = folder
        self.rgb = np.load(os.path.join(folder, 'rgb.npy'), mmap_mode='r')
        self.depth = np.load(os.path.join(folder, 'depth.npy'), mmap_mode='r')
        self.instances = np.load(os.path.join(folder, 'instances.npy'), mmap_mode='r')
        with open(os.path.join(folder, 'meta.json'), encoding='utf-8') as f:
            meta = json.load(f)
        self.seeds: List[int] = meta['seeds']
        self.expressions: List[List[Tuple[str, int]]] = [
            [(t, int(i)) for t, i in e] for e in meta['expressions']]

    def __len__(self) -> int:
        """Return the number of scenes."""
        return len(self.seeds)

    @property
    def size(self) -> int:
        """Side of the cached square images."""
        return int(self.rgb.shape[1])

    @classmethod
    def build(cls, folder: str, seeds: Sequence[int], size: int, width: int = 320,
              height: int = 240, progress: bool = False, workers: int = 1) -> 'SceneCache':
        """Render ``seeds`` at width x height, resize to size x size and write the cache.

        An existing cache with the same seeds and size is reused as is. ``workers`` > 1 renders
        in that many processes (same arrays: each scene depends only on its seed).
        """
        seeds = [int(s) for s in seeds]
        try:
            cache = cls(folder)
            if cache.seeds == seeds and cache.size == size:
                return cache
        except FileNotFoundError:
            pass
        os.makedirs(folder, exist_ok=True)
        n = len(seeds)
        rgb = np.lib.format.open_memmap(os.path.join(folder, 'rgb.npy'), 'w+', np.uint8,
                                        (n, size, size, 3))
        depth = np.lib.format.open_memmap(os.path.join(folder, 'depth.npy'), 'w+', np.float32,
                                          (n, size, size))
        inst = np.lib.format.open_memmap(os.path.join(folder, 'instances.npy'), 'w+', np.uint8,
                                         (n, size, size))
        expressions = []
        render = functools.partial(_render_resized, width=width, height=height, size=size)
        pool = multiprocessing.get_context('spawn').Pool(workers) if workers > 1 else None
        iterator: Any = pool.imap(render, seeds, chunksize=8) if pool else map(render, seeds)
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, total=n, desc='render', unit='scene')
        for i, (image, z, ids, exprs) in enumerate(iterator):
            rgb[i], depth[i], inst[i] = image, z, ids
            expressions.append(exprs)
        if pool is not None:
            pool.close()
            pool.join()
        for array in (rgb, depth, inst):
            array.flush()
        with open(os.path.join(folder, 'meta.json'), 'w', encoding='utf-8') as f:
            json.dump({'seeds': seeds, 'size': size, 'width': width, 'height': height,
                       'expressions': expressions}, f)
        return cls(folder)


def _render_resized(seed: int, width: int, height: int,
                    size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[Tuple[str, int]]]:
    """Render one scene and return its cache entries (rgb, depth, instances, expressions)."""
    scene = render_scene(seed, width=width, height=height)
    return (resize_rgb(scene.rgb, size), resize_nearest(scene.depth, size),
            resize_nearest(scene.instances.astype(np.uint8), size),
            [(r.text, r.target_id) for r in scene.expressions])


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply random brightness/contrast, gamma and hue/saturation to float RGB in [0, 1].

    Each with probability 0.5, in the spirit of the albumentations set VPD's depth training uses.
    """
    out = image
    if rng.random() < 0.5:
        out = (out - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.2, 0.2)
    if rng.random() < 0.5:
        out = np.clip(out, 0.0, 1.0) ** rng.uniform(0.8, 1.2)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(np.clip(out, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-20.0, 20.0)) % 360.0
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.7, 1.3), 0.0, 1.0)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def cut_depth(image: np.ndarray, depth: np.ndarray, max_depth: float,
              rng: np.random.Generator) -> np.ndarray:
    """Replace a random vertical strip of the image by the normalised depth (GLPDepth CutDepth)."""
    w = image.shape[1]
    left = int(rng.integers(0, w))
    width = int(max(1, rng.uniform(0.0, 1.0) * (w - left)))
    out = image.copy()
    out[:, left:left + width] = (depth[:, left:left + width, None] / max_depth).clip(0, 1)
    return out


def to_chw(image: np.ndarray) -> torch.Tensor:
    """Turn (H, W, 3) uint8 or float [0, 1] into a (3, H, W) float32 tensor in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def square_crop(rng: Optional[np.random.Generator], *arrays: np.ndarray) -> List[np.ndarray]:
    """Crop arrays (same H, W) to a square of side min(H, W): random offset, centre without rng."""
    h, w = arrays[0].shape[:2]
    s = min(h, w)
    top = int(rng.integers(0, h - s + 1)) if rng is not None else (h - s) // 2
    left = int(rng.integers(0, w - s + 1)) if rng is not None else (w - s) // 2
    return [a[top:top + s, left:left + s] for a in arrays]


class DepthDataset(Dataset):
    """Depth training samples: ``{'image': (3, S, S) [0, 1], 'depth': (1, S, S) metres}``.

    Args:
        source: a :class:`SceneCache` or a reader whose items have ``rgb`` and ``depth``
            (NyuDepthSplit, UserDepthFolder); reader images are square-cropped (the official
            480x480 crop of 480x640) and resized to ``size``.
        size: model input side.
        augment: flip, photometric jitter and CutDepth (every 4th index, p 0.75), as VPD.
        max_depth: depth scale used by CutDepth.
        crop: if > 0, a random crop x crop window of the size x size sample (keeps the pixel
            scale of the model input while training on smaller tensors, e.g. the tiny VAE).
    """

    def __init__(self, source: Any, size: int, augment: bool = True,
                 max_depth: float = 10.0, crop: int = 0) -> None:
        if not 0 <= crop <= size:
            raise ValueError(f'crop {crop} must be in [0, size={size}]')
        self.source, self.size, self.augment, self.max_depth = source, size, augment, max_depth
        self.crop = crop

    def __len__(self) -> int:
        """Return the number of source images."""
        return len(self.source)

    def _load(self, index: int, rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, ...]:
        if isinstance(self.source, SceneCache):
            rgb, depth = np.array(self.source.rgb[index]), np.array(self.source.depth[index])
            if self.source.size != self.size:
                rgb, depth = resize_rgb(rgb, self.size), resize_nearest(depth, self.size)
            return rgb, depth
        item = self.source[index]
        rgb, depth = square_crop(rng, item.rgb, item.depth.astype(np.float32))
        return resize_rgb(rgb, self.size), resize_nearest(depth, self.size)

    def sample(self, index: int, rng: np.random.Generator) -> Dict[str, torch.Tensor]:
        """Return sample ``index`` with augmentation drawn from ``rng``."""
        rgb, depth = self._load(index, rng if self.augment else None)
        if self.crop:
            top, left = (int(v) for v in rng.integers(0, self.size - self.crop + 1, size=2))
            rgb = rgb[top:top + self.crop, left:left + self.crop]
            depth = depth[top:top + self.crop, left:left + self.crop]
        image = rgb.astype(np.float32) / 255.0
        if self.augment:
            if rng.random() < 0.5:
                image, depth = image[:, ::-1], depth[:, ::-1]
            image = photometric(image, rng)
            if index % 4 == 0 and rng.random() < 0.75:
                image = cut_depth(image, depth, self.max_depth, rng)
        return {'image': to_chw(image),
                'depth': torch.from_numpy(np.ascontiguousarray(depth, np.float32))[None]}

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        """Return sample ``index`` with augmentation seeded by the index."""
        return self.sample(index, np.random.default_rng(index))


class ReferDataset(Dataset):
    """Referring samples ``{'image': (3, S, S) [0, 1], 'mask': (S, S) long, 'text': str}``.

    For a :class:`SceneCache` an item is one scene and ``sample`` picks one of its expressions at
    random (so the same image is seen with different queries and targets); for a reader
    (RefCocoSplit, UserReferJson) an item is one sentence, resized to ``size`` (official: 512
    without keeping the aspect ratio). No augmentation, as in VPD.
    """

    def __init__(self, source: Any, size: int) -> None:
        self.source, self.size = source, size
        if isinstance(source, SceneCache):
            self.items = [i for i, e in enumerate(source.expressions) if e]
            if not self.items:
                raise ValueError(f'scene cache {source.folder} holds no expressions')
        else:
            self.items = list(range(len(source)))

    def __len__(self) -> int:
        """Return the number of scenes with expressions, or of reader sentences."""
        return len(self.items)

    def sample(self, index: int, rng: np.random.Generator) -> Dict[str, Any]:
        """Return item ``index``; for scenes, a random expression drawn from ``rng``."""
        k = self.items[index]
        if isinstance(self.source, SceneCache):
            exprs = self.source.expressions[k]
            text, target = exprs[int(rng.integers(len(exprs)))]
            rgb, mask = np.array(self.source.rgb[k]), np.array(self.source.instances[k])
            mask = (mask == target).astype(np.uint8)
            if self.source.size != self.size:
                rgb, mask = resize_rgb(rgb, self.size), resize_nearest(mask, self.size)
        else:
            item = self.source[k]
            rgb, mask, text = item.rgb, item.mask.astype(np.uint8), item.sentence
            rgb, mask = resize_rgb(rgb, self.size), resize_nearest(mask, self.size)
        return {'image': to_chw(rgb), 'mask': torch.from_numpy(mask.astype(np.int64)),
                'text': text}

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """Return item ``index`` with the expression choice seeded by the index."""
        return self.sample(index, np.random.default_rng(index))


def make_batch(dataset: Any, batch_size: int, seed: int, step: int) -> Dict[str, Any]:
    """Draw batch ``step`` (indices and augmentation from rng(seed, step)) and collate it."""
    rng = np.random.default_rng([seed, step])
    indices = rng.integers(0, len(dataset), size=batch_size)
    samples = [dataset.sample(int(i), rng) for i in indices]
    batch: Dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch
