# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Referring expressions with exactly one referent, generated from scene ground truth.

Why: referring-segmentation training and tests need sentences whose meaning is checkable. Every
expression here is built from a structured description (attributes, an image-side superlative,
a camera-depth superlative, or a left/right relation to a landmark) and is kept only when that
description is true of exactly one target object and clearly false of all others.

Grammar (``<np>`` is ``[size] [colour] noun``, noun a shape word or "object"/"thing"):
- attribute: ``the <np>``
- spatial: ``the leftmost|rightmost <np>``, or ``the <np> on the left|right`` when two match
- depth: ``the nearest|farthest <np>``, ``the <np> closest to|farthest from the camera``
- relation: ``the <np> [to the] left|right of the <np>``

Left/right use the image x of an object's visible-pixel centroid; near/far use the z of its
centre in the camera optical frame. Objects with any visible pixel count as distractors; only
objects with at least ``min_pixels`` visible pixels are referred to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: Words used for each shape (the first is the canonical one).
SHAPE_WORDS = {'sphere': ('ball', 'sphere'), 'cube': ('cube', 'box', 'block'),
               'cylinder': ('cylinder', 'can')}
SIZE_WORDS = {'small': ('small', 'little'), 'large': ('large', 'big')}
GENERIC_NOUNS = ('object', 'thing')
KINDS = ('attribute', 'spatial', 'depth', 'relation')
#: Minimum image-x gap (pixels) and camera-depth gap (metres) that make a comparison clear.
X_MARGIN_PX = 12.0
DEPTH_MARGIN_M = 0.25


class SceneObject(Protocol):
    """The object fields this module reads (see ``vpd_ros.data.scenes.ObjectInfo``)."""

    id: int
    shape: str
    colour: str
    size: str
    centre: tuple[float, float, float]
    pixel_count: int
    centroid_px: tuple[float, float]


@dataclass(frozen=True)
class Referral:
    """A referring expression ``text`` whose only referent is object ``target_id``.

    ``kind`` is one of ``KINDS``: which cue makes the referent unique.
    """

    text: str
    target_id: int
    kind: str


# A descriptor is (size, colour, shape); None means "not mentioned".
_Desc = tuple[str | None, str | None, str | None]


def _matches(desc: _Desc, obj: SceneObject) -> bool:
    """Return True when obj has every attribute that desc mentions."""
    return all(want is None or want == have
               for want, have in zip(desc, (obj.size, obj.colour, obj.shape)))


def _phrase(desc: _Desc, rng: np.random.Generator) -> str:
    """Render a descriptor as a noun phrase, choosing synonyms with rng."""
    size, colour, shape = desc
    words = []
    if size is not None:
        words.append(SIZE_WORDS[size][rng.integers(len(SIZE_WORDS[size]))])
    if colour is not None:
        words.append(colour)
    nouns = GENERIC_NOUNS if shape is None else SHAPE_WORDS[shape]
    words.append(nouns[rng.integers(len(nouns))])
    return ' '.join(words)


def _descriptors(obj: SceneObject) -> list[_Desc]:
    """Return every descriptor true of obj, from least to most specific, the empty one first."""
    out = []
    for mask in range(8):
        out.append(tuple(v if mask >> i & 1 else None
                         for i, v in enumerate((obj.size, obj.colour, obj.shape))))
    return sorted(out, key=lambda d: sum(x is not None for x in d))


def _clear_extreme(objs: list[SceneObject], key, margin: float) -> SceneObject | None:
    """Return the object with the smallest key if it beats every other by margin, else None."""
    ranked = sorted(objs, key=key)
    if len(ranked) >= 2 and key(ranked[1]) - key(ranked[0]) >= margin:
        return ranked[0]
    return None


def generate_expressions(objects: Sequence[SceneObject], rng: np.random.Generator,
                         max_count: int = 8, min_pixels: int = 60) -> list[Referral]:
    """Return up to ``max_count`` unique-referent expressions, spread over ``KINDS``.

    Deterministic for a given object list and rng state. Candidates are grouped by kind,
    shuffled, and taken round-robin so that every available kind is represented.
    """
    present = [o for o in objects if o.pixel_count > 0]
    targets = {o.id for o in present if o.pixel_count >= min_pixels}
    by_kind: dict[str, list[Referral]] = {k: [] for k in KINDS}
    descs = sorted({d for o in present for d in _descriptors(o)},
                   key=lambda d: tuple('' if x is None else x for x in d))

    def add(kind: str, text: str, target: SceneObject) -> None:
        if target.id in targets:
            by_kind[kind].append(Referral(text, target.id, kind))

    def x_of(o: SceneObject) -> float:
        return o.centroid_px[0]

    def z_of(o: SceneObject) -> float:
        return o.centre[2]

    for desc in descs:
        group = [o for o in present if _matches(desc, o)]
        if len(group) == 1 and desc != (None, None, None):
            add('attribute', f'the {_phrase(desc, rng)}', group[0])
        if len(group) < 2:
            continue
        for side, sign in (('left', 1.0), ('right', -1.0)):
            best = _clear_extreme(group, lambda o, s=sign: s * x_of(o), X_MARGIN_PX)
            if best is not None:
                np_text = _phrase(desc, rng)
                text = (f'the {np_text} on the {side}' if len(group) == 2
                        else f'the {side}most {np_text}')
                add('spatial', text, best)
        for word, alt, sign in (('nearest', 'closest to', 1.0),
                                ('farthest', 'farthest from', -1.0)):
            best = _clear_extreme(group, lambda o, s=sign: s * z_of(o), DEPTH_MARGIN_M)
            if best is not None:
                np_text = _phrase(desc, rng)
                text = (f'the {word} {np_text}' if rng.integers(2)
                        else f'the {np_text} {alt} the camera')
                add('depth', text, best)

    unique_desc = {}
    for o in present:
        for desc in _descriptors(o)[1:]:
            if sum(_matches(desc, p) for p in present) == 1:
                unique_desc[o.id] = desc
                break
    for landmark in present:
        if landmark.id not in targets or landmark.id not in unique_desc:
            continue
        for desc in descs:
            group = [o for o in present if _matches(desc, o) and o.id != landmark.id]
            if len(group) < 2:
                continue
            for side, sign in (('left', 1.0), ('right', -1.0)):
                gaps = [sign * (x_of(landmark) - x_of(o)) for o in group]
                if any(abs(g) < X_MARGIN_PX for g in gaps):
                    continue
                hits = [o for o, g in zip(group, gaps) if g > 0]
                if len(hits) == 1:
                    joiner = 'to the ' if rng.integers(2) else ''
                    add('relation', f'the {_phrase(desc, rng)} {joiner}{side} of the '
                        f'{_phrase(unique_desc[landmark.id], rng)}', hits[0])

    for kind in KINDS:
        order = rng.permutation(len(by_kind[kind]))
        by_kind[kind] = [by_kind[kind][i] for i in order]
    chosen: list[Referral] = []
    seen: set[str] = set()
    while len(chosen) < max_count and any(by_kind.values()):
        for kind in KINDS:
            if by_kind[kind] and len(chosen) < max_count:
                ref = by_kind[kind].pop(0)
                if ref.text not in seen:
                    seen.add(ref.text)
                    chosen.append(ref)
    return chosen
