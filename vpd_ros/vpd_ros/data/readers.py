# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Readers for NYUv2 (BTS/VPD layout), RefCOCO/+/g (``refer`` layout) and a simple user format.

Why: evaluation and fine-tuning must read the official data exactly as the reference code does,
without its dependencies (pycocotools, the ``refer`` API) and without trusting pickles; users
also need a plain folder format, and rendered scenes must be exportable to it.

All readers are map-style sequences (``len`` and ``[i]``), so a ``torch.utils.data.DataLoader``
can use them directly; they return numpy arrays: RGB (H, W, 3) uint8, depth (H, W) float32
metres with 0 = invalid, masks (H, W) uint8 in {0, 1}.

Layouts:
- NYUv2: ``<root>/<scene>/rgb_XXXXX.jpg`` and ``<root>/<scene>/sync_depth_XXXXX.png`` (uint16
  millimetres), listed in a file such as ``nyudepthv2_test_files_with_gt.txt`` whose lines are
  ``<rgb rel path> <depth rel path> <focal>``; ``root`` is e.g.
  ``nyu_depth_v2/official_splits/test``.
- RefCOCO: ``<data_root>/<dataset>/refs(<split_by>).p`` (or ``.json``, same structure) and
  ``<data_root>/<dataset>/instances.json`` (COCO); images in ``image_root`` (default
  ``<data_root>/images/mscoco/images/train2014``) named as in ``instances.json``, else
  ``COCO_train2014_<12-digit id>.jpg``.
- User depth: ``<folder>/rgb/<stem>.png|jpg`` and ``<folder>/depth/<stem>.png`` (uint16 mm,
  0 = invalid), matched by stem.
- User refer: a JSON list ``[{"image": "rel.jpg", "mask": "rel.png", "sentence": "..."}]``,
  paths relative to the JSON file; optional ``"split"`` (default ``"all"``); any nonzero mask
  pixel is foreground.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from vpd_ros.data.scenes import Scene

PathLike = str | Path
RGB_SUFFIXES = ('.png', '.jpg', '.jpeg')
#: The only classes a refs pickle may name (module, name); plain containers and scalars.
SAFE_PICKLE_GLOBALS = frozenset(
    (module, name) for module in ('builtins', '__builtin__')
    for name in ('dict', 'list', 'str', 'int', 'float', 'tuple'))
_POLY_SUPERSAMPLE = 8


def read_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB; raise FileNotFoundError if unreadable."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f'cannot read image {path}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_depth_mm(path: PathLike) -> np.ndarray:
    """Read a uint16 millimetre PNG as (H, W) float32 metres (0 stays 0 = invalid)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FileNotFoundError(f'cannot read depth image {path}')
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f'{path}: depth PNG must be single-channel uint16 millimetres, got '
                         f'{raw.dtype} with shape {raw.shape}')
    return raw.astype(np.float32) / np.float32(1000.0)


def write_depth_mm(path: PathLike, depth: np.ndarray) -> None:
    """Write (H, W) metres as a uint16 millimetre PNG; NaN, inf and <= 0 become 0 (invalid).

    Depths above 65.535 m cannot be stored and raise ValueError.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    if np.any(depth[valid] > 65.535):
        raise ValueError(f'{path}: depth up to {depth[valid].max():.3f} m exceeds the uint16 '
                         'millimetre range (65.535 m)')
    _imwrite(path, np.where(valid, np.round(np.where(valid, depth, 0.0) * 1000.0), 0)
             .astype(np.uint16))


def _imwrite(path: PathLike, image: np.ndarray) -> None:
    """Write an image with OpenCV (BGR or single channel); raise OSError on failure."""
    if not cv2.imwrite(str(path), image):
        raise OSError(f'cannot write {path}')


# --------------------------------------------------------------------------- NYUv2


def nyu_scene_name(path: PathLike) -> str:
    """Return ``"<parent folder>_<file name>"`` of an NYU rgb path, as the official code does.

    The model maps this string to a scene class by first-substring match against its class list,
    e.g. ``".../bathroom/rgb_00045.jpg"`` -> ``"bathroom_rgb_00045.jpg"``.
    """
    p = Path(path)
    return f'{p.parent.name}_{p.name}'


@dataclass
class NyuSample:
    """One NYUv2 sample: rgb (H, W, 3) uint8, depth (H, W) float32 metres, focal in pixels."""

    rgb: np.ndarray
    depth: np.ndarray
    scene_name: str
    focal: float
    rgb_path: Path


class NyuDepthSplit:
    """NYUv2 split listed in a BTS/VPD filenames file (``<rgb> <depth> <focal>`` per line)."""

    def __init__(self, root: PathLike, filenames_file: PathLike) -> None:
        self.root = Path(root)
        self.items: list[tuple[Path, Path, float]] = []
        for n, line in enumerate(Path(filenames_file).read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ValueError(f"{filenames_file}:{n}: expected '<rgb> <depth> <focal>', "
                                 f"got {line!r}")
            self.items.append((self.root / parts[0].lstrip('/'),
                               self.root / parts[1].lstrip('/'), float(parts[2])))

    def __len__(self) -> int:
        """Return the number of listed samples."""
        return len(self.items)

    def __getitem__(self, index: int) -> NyuSample:
        """Read sample ``index``; depth is the PNG value / 1000 (metres)."""
        rgb_path, depth_path, focal = self.items[index]
        return NyuSample(read_rgb(rgb_path), read_depth_mm(depth_path),
                         nyu_scene_name(rgb_path), focal, rgb_path)


# --------------------------------------------------------------------------- RefCOCO


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``SAFE_PICKLE_GLOBALS``; anything else raises.

    The official ``refs(*).p`` files hold only dicts, lists, strings and numbers, which pickle
    stores as opcodes; a global lookup (the way a pickle runs code, e.g. ``os.system``) is
    refused before anything is imported or called.
    """

    def find_class(self, module: str, name: str) -> Any:
        """Return the builtin container/scalar type, or raise UnpicklingError."""
        if (module, name) in SAFE_PICKLE_GLOBALS:
            return getattr(__import__('builtins'), name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}; allowed: "
            f"{sorted(n for m, n in SAFE_PICKLE_GLOBALS if m == 'builtins')}")


def load_refs(path: PathLike) -> list[dict]:
    """Load a refer annotation list from ``.json`` or (safely) from a ``.p``/``.pkl`` pickle.

    Python 2 byte strings in the official pickles are decoded as UTF-8.
    """
    path = Path(path)
    if path.suffix == '.json':
        refs = json.loads(path.read_text())
    elif path.suffix in ('.p', '.pkl', '.pickle'):
        refs = RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding='utf-8').load()
    else:
        raise ValueError(f'unknown refs file type {path.suffix!r} for {path}; '
                         'allowed: .json, .p, .pkl, .pickle')
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise ValueError(f'{path}: expected a list of ref dicts')
    missing = [k for k in ('ref_id', 'ann_id', 'image_id', 'split', 'sentences')
               if refs and k not in refs[0]]
    if missing:
        raise ValueError(f'{path}: refs lack keys {missing}')
    return refs


def save_refs_json(refs: list[dict], path: PathLike) -> None:
    """Write refs (e.g. from a converted official pickle) as JSON, the safe format to share."""
    Path(path).write_text(json.dumps(refs))


def decode_rle_string(counts: str | bytes) -> list[int]:
    """Decode COCO's compressed RLE counts string into run lengths.

    Each run is stored in 5-bit groups (char - 48), least significant first; bit 0x20 marks a
    continuation and bit 0x10 of the last group is the sign. From the third run on, the value
    is a difference to the run two places earlier.
    """
    data = counts.encode('ascii') if isinstance(counts, str) else bytes(counts)
    runs: list[int] = []
    pos = 0
    while pos < len(data):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(data):
                raise ValueError('truncated compressed RLE counts string')
            c = data[pos] - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value -= 1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _rle_to_mask(runs: list[int], height: int, width: int) -> np.ndarray:
    """Expand column-major run lengths (first run = zeros) into an (H, W) uint8 mask."""
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise ValueError(f'RLE runs sum to {sum(runs)} (negatives: {any(r < 0 for r in runs)}),'
                         f' expected {height * width} for {height}x{width}')
    values = np.arange(len(runs), dtype=np.uint8) % 2
    return np.repeat(values, runs).reshape(width, height).T.copy()


def _polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (pixel (x, y) spans [x, x+1)) into an (H, W) uint8 union mask.

    Filled at 8x resolution with ``cv2.fillPoly`` inside the polygons' bounding box, then a
    pixel is set when more than half of it is covered; the area matches the polygon area to
    within a few pixels.
    """
    mask = np.zeros((height, width), np.uint8)
    pts = [np.asarray(p, np.float64).reshape(-1, 2) for p in polygons if len(p) >= 6]
    if not pts:
        return mask
    allp = np.concatenate(pts)
    x0, y0 = np.clip(np.floor(allp.min(axis=0)).astype(int), 0, [width, height])
    x1, y1 = np.clip(np.ceil(allp.max(axis=0)).astype(int) + 1, 0, [width, height])
    if x1 <= x0 or y1 <= y0:
        return mask
    s = _POLY_SUPERSAMPLE
    fine = np.zeros(((y1 - y0) * s, (x1 - x0) * s), np.uint8)
    for p in pts:
        q = np.round(((p - [x0, y0]) * s - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(fine, [q], 1, lineType=cv2.LINE_8, shift=4)
    cover = fine.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3))
    mask[y0:y1, x0:x1] = cover > 0.5
    return mask


def coco_segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Convert a COCO ``segmentation`` (polygons, uncompressed or compressed RLE) to a mask.

    Returns (height, width) uint8 in {0, 1}; several polygons are united.
    """
    if isinstance(segmentation, list):
        return _polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict) and 'counts' in segmentation:
        h, w = (int(x) for x in segmentation.get('size', (height, width)))
        if (h, w) != (height, width):
            raise ValueError(f'RLE size {(h, w)} differs from image size {(height, width)}')
        counts = segmentation['counts']
        runs = (decode_rle_string(counts) if isinstance(counts, (str, bytes))
                else [int(c) for c in counts])
        return _rle_to_mask(runs, h, w)
    raise ValueError(f"unsupported segmentation of type {type(segmentation).__name__}; allowed: "
                     "list of polygons, {'counts': list|str, 'size': [h, w]}")


class ReferSample(NamedTuple):
    """One sentence: rgb (H, W, 3) uint8, mask (H, W) uint8 {0, 1}, text, ref id, split."""

    rgb: np.ndarray
    mask: np.ndarray
    sentence: str
    ref_id: int
    split: str


class RefCocoSplit:
    """All sentences of one split of RefCOCO / RefCOCO+ / RefCOCOg, one sample per sentence.

    ``dataset`` is e.g. "refcoco", "refcoco+", "refcocog"; ``split_by`` "unc", "umd" or
    "google"; ``split`` e.g. "val", "testA". The refs file is ``refs(<split_by>).json`` if it
    exists, else the pickle (loaded with :class:`RestrictedUnpickler`). The sentence is the
    ``raw`` text (``sent`` when missing).
    """

    def __init__(self, data_root: PathLike, dataset: str = 'refcoco', split_by: str = 'unc',
                 split: str = 'val', image_root: PathLike | None = None) -> None:
        base = Path(data_root) / dataset
        refs_path = base / f'refs({split_by}).json'
        if not refs_path.exists():
            refs_path = base / f'refs({split_by}).p'
        refs = load_refs(refs_path)
        splits = sorted({r['split'] for r in refs})
        if split not in splits:
            raise ValueError(f'split {split!r} not in {refs_path}; available: {splits}')
        instances = json.loads((base / 'instances.json').read_text())
        self.images = {im['id']: im for im in instances['images']}
        self.anns = {a['id']: a for a in instances['annotations']}
        self.image_root = (Path(image_root) if image_root is not None
                           else Path(data_root) / 'images' / 'mscoco' / 'images' / 'train2014')
        self.split = split
        self.items = [(ref, s.get('raw', s.get('sent', '')))
                      for ref in refs if ref['split'] == split for s in ref['sentences']]

    def __len__(self) -> int:
        """Return the number of sentences in the split."""
        return len(self.items)

    def image_path(self, image_id: int) -> Path:
        """Return the file of a COCO image id."""
        name = self.images.get(image_id, {}).get('file_name',
                                                 f'COCO_train2014_{image_id:012d}.jpg')
        return self.image_root / name

    def mask(self, ann_id: int, height: int, width: int) -> np.ndarray:
        """Return the (height, width) uint8 {0, 1} mask of annotation ``ann_id``."""
        return coco_segmentation_to_mask(self.anns[ann_id]['segmentation'], height, width)

    def __getitem__(self, index: int) -> ReferSample:
        """Read sentence ``index`` with its image and target mask."""
        ref, sentence = self.items[index]
        rgb = read_rgb(self.image_path(ref['image_id']))
        mask = self.mask(ref['ann_id'], rgb.shape[0], rgb.shape[1])
        return ReferSample(rgb, mask, sentence, int(ref['ref_id']), self.split)


# --------------------------------------------------------------------------- user format


class DepthSample(NamedTuple):
    """User-format depth sample: rgb (H, W, 3) uint8, depth (H, W) float32 metres, 0 invalid."""

    rgb: np.ndarray
    depth: np.ndarray
    name: str


class UserDepthFolder:
    """``<folder>/rgb/<stem>.png|jpg`` paired with ``<folder>/depth/<stem>.png``, sorted by stem.

    RGB files without a depth file (or the reverse) raise ValueError naming them.
    """

    def __init__(self, folder: PathLike) -> None:
        folder = Path(folder)
        rgbs = {p.stem: p for p in sorted((folder / 'rgb').iterdir())
                if p.suffix.lower() in RGB_SUFFIXES}
        depths = {p.stem: p for p in (folder / 'depth').glob('*.png')}
        unmatched = sorted(set(rgbs) ^ set(depths))
        if unmatched:
            raise ValueError(f'{folder}: rgb/depth files without a partner: {unmatched[:10]}')
        self.items = [(stem, rgbs[stem], depths[stem]) for stem in sorted(rgbs)]

    def __len__(self) -> int:
        """Return the number of pairs."""
        return len(self.items)

    def __getitem__(self, index: int) -> DepthSample:
        """Read pair ``index``; depth is png / 1000 (metres)."""
        stem, rgb_path, depth_path = self.items[index]
        rgb, depth = read_rgb(rgb_path), read_depth_mm(depth_path)
        if rgb.shape[:2] != depth.shape:
            raise ValueError(f'{stem}: rgb {rgb.shape[:2]} and depth {depth.shape} differ')
        return DepthSample(rgb, depth, stem)


class UserReferJson:
    """A user refer JSON file; sample i has ``ref_id`` i."""

    def __init__(self, json_path: PathLike) -> None:
        self.path = Path(json_path)
        entries = json.loads(self.path.read_text())
        if not isinstance(entries, list):
            raise TypeError(f'{json_path}: expected a JSON list of entries')
        for n, e in enumerate(entries):
            missing = [k for k in ('image', 'mask', 'sentence') if k not in e]
            if missing:
                raise ValueError(f'{json_path}: entry {n} lacks {missing}')
        self.entries = entries

    def __len__(self) -> int:
        """Return the number of sentences."""
        return len(self.entries)

    def __getitem__(self, index: int) -> ReferSample:
        """Read entry ``index``: image, binarised mask and sentence."""
        e = self.entries[index]
        rgb = read_rgb(self.path.parent / e['image'])
        raw = cv2.imread(str(self.path.parent / e['mask']), cv2.IMREAD_GRAYSCALE)
        if raw is None:
            raise FileNotFoundError(f"cannot read mask {self.path.parent / e['mask']}")
        if raw.shape != rgb.shape[:2]:
            raise ValueError(f'entry {index}: mask {raw.shape} and image {rgb.shape[:2]} differ')
        return ReferSample(rgb, (raw > 0).astype(np.uint8), e['sentence'], index,
                           e.get('split', 'all'))


def _scene_stem(scene: Scene) -> str:
    """Return the file stem of a rendered scene (its seed, zero-padded)."""
    return f'scene_{scene.seed:07d}'


def write_user_depth_dataset(scenes: Iterable[Scene], folder: PathLike) -> list[str]:
    """Export scenes as ``rgb/<stem>.png`` + ``depth/<stem>.png`` (mm); return the stems."""
    folder = Path(folder)
    (folder / 'rgb').mkdir(parents=True, exist_ok=True)
    (folder / 'depth').mkdir(parents=True, exist_ok=True)
    stems = []
    for scene in scenes:
        stem = _scene_stem(scene)
        _imwrite(folder / 'rgb' / f'{stem}.png', cv2.cvtColor(scene.rgb, cv2.COLOR_RGB2BGR))
        write_depth_mm(folder / 'depth' / f'{stem}.png', scene.depth)
        stems.append(stem)
    return stems


def write_user_refer_dataset(scenes: Iterable[Scene], folder: PathLike,
                             json_name: str = 'refer.json', split: str = 'all') -> Path:
    """Export every scene expression as a user refer entry; return the JSON path.

    Writes ``rgb/<stem>.png``, ``masks/<stem>_<object id>.png`` (0/255) and ``<json_name>``.
    """
    folder = Path(folder)
    (folder / 'rgb').mkdir(parents=True, exist_ok=True)
    (folder / 'masks').mkdir(parents=True, exist_ok=True)
    entries = []
    for scene in scenes:
        stem = _scene_stem(scene)
        _imwrite(folder / 'rgb' / f'{stem}.png', cv2.cvtColor(scene.rgb, cv2.COLOR_RGB2BGR))
        for obj_id in sorted({r.target_id for r in scene.expressions}):
            mask = ((scene.instances == obj_id) * 255).astype(np.uint8)
            _imwrite(folder / 'masks' / f'{stem}_{obj_id}.png', mask)
        entries.extend({'image': f'rgb/{stem}.png', 'mask': f'masks/{stem}_{r.target_id}.png',
                        'sentence': r.text, 'split': split} for r in scene.expressions)
    path = folder / json_name
    path.write_text(json.dumps(entries, indent=1))
    return path
