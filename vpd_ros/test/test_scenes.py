# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests for the procedural scene renderer and its referring expressions.

The geometry checks recompute truth independently of the renderer (back-projection with K and
the camera pose, the room box, each shape's implicit surface), and the expression checks parse
the generated English and evaluate it against the object list, so a wrong word or a wrong
target fails.
"""

import re

import cv2
import numpy as np
import pytest
from vpd_ros.data.expressions import KINDS
from vpd_ros.data.scenes import (
    HELDOUT_SEEDS_START,
    MIN_VISIBLE_PIXELS,
    PALETTE,
    SURFACE_CEILING,
    SURFACE_FLOOR,
    SURFACE_OBJECT,
    SURFACE_WALL,
    TRAIN_SEEDS_STOP,
    SceneDataset,
    iter_scenes,
    render_scene,
)

SEEDS = list(range(12))


@pytest.fixture(scope='module')
def scenes():
    """Render a handful of scenes once for the whole module."""
    return [render_scene(s) for s in SEEDS]


def _points_world(scene, mask):
    """Back-project the pixels of mask with depth and K, then map them to the world frame."""
    v, u = np.nonzero(mask)
    z = scene.depth[v, u].astype(np.float64)
    rays = np.linalg.inv(scene.K) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)
    p_cam = rays * z
    T = scene.T_world_cam
    return (T[:3, :3] @ p_cam).T + T[:3, 3], p_cam.T


def test_same_seed_gives_identical_arrays_and_different_seed_differs():
    """Datasets are defined by seeds, so rendering must be reproducible bit for bit."""
    a, b, c = render_scene(7), render_scene(7), render_scene(8)
    for name in ('rgb', 'depth', 'instances', 'surface', 'K', 'T_world_cam'):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.objects == b.objects and a.expressions == b.expressions
    assert not np.array_equal(a.rgb, c.rgb) and not np.array_equal(a.depth, c.depth)


def test_array_formats_and_ranges(scenes):
    """Consumers rely on dtype, shape, the 0-10 m depth range and 3-6 objects."""
    for s in scenes:
        assert s.rgb.shape == (240, 320, 3) and s.rgb.dtype == np.uint8
        assert s.depth.shape == (240, 320) and s.depth.dtype == np.float32
        assert s.instances.dtype == np.int32 and s.K.dtype == np.float64
        assert 0.3 < s.depth.min() and s.depth.max() < 10.0
        assert 3 <= len(s.objects) <= 6
        ids = {o.id for o in s.objects}
        assert set(np.unique(s.instances)) <= ids | {0}
        for o in s.objects:
            assert o.pixel_count == int((s.instances == o.id).sum())
            assert o.visible == (o.pixel_count >= MIN_VISIBLE_PIXELS)
        assert np.array_equal(s.instances > 0, s.surface == SURFACE_OBJECT)
    assert sum(o.visible for s in scenes for o in s.objects) >= 0.8 * sum(
        len(s.objects) for s in scenes)


def test_custom_intrinsics_are_used():
    """Callers can match a real camera; K must carry the given values."""
    s = render_scene(3, width=160, height=120, fx=150.0, fy=140.0, cx=80.5, cy=60.0)
    np.testing.assert_allclose(s.K, [[150, 0, 80.5], [0, 140, 60], [0, 0, 1]])
    assert s.rgb.shape == (120, 160, 3)


@pytest.mark.parametrize('bad', [{'seed': -1}, {'seed': 1, 'width': 8},
                                 {'seed': 1, 'fx': -3.0}])
def test_bad_arguments_raise_value_error(bad):
    """Invalid input fails loudly with ValueError."""
    with pytest.raises(ValueError):
        render_scene(**bad)


def test_object_pixels_lie_on_their_surfaces(scenes):
    """Depth and K back-project every object pixel onto that object's analytic surface (1 mm)."""
    checked = set()
    for s in scenes:
        T = s.T_world_cam
        for o in s.objects:
            if o.pixel_count == 0:
                continue
            p_w, p_cam = _points_world(s, s.instances == o.id)
            centre_w = T[:3, :3] @ np.asarray(o.centre) + T[:3, 3]
            c, si = np.cos(o.yaw), np.sin(o.yaw)
            local = (p_w - centre_w) @ np.array([[c, si, 0], [-si, c, 0], [0, 0, 1]]).T
            hx, hy, hz = o.half_extents
            if o.shape == 'sphere':
                err = np.abs(np.linalg.norm(p_cam - np.asarray(o.centre), axis=1) - o.radius)
            elif o.shape == 'cube':
                err = np.abs(np.max(np.abs(local) / [hx, hy, hz], axis=1) - 1) * min(hx, hy, hz)
            else:
                radial = np.hypot(local[:, 0], local[:, 1])
                err = np.minimum(np.abs(radial - o.radius),
                                 np.abs(np.abs(local[:, 2]) - hz))
                assert np.all(radial <= o.radius + 1e-3)
                assert np.all(np.abs(local[:, 2]) <= hz + 1e-3)
            assert err.max() < 1e-3, (s.seed, o)
            assert abs(centre_w[2] - hz) < 1e-6  # resting on the floor
            checked.add(o.shape)
    assert checked == {'sphere', 'cube', 'cylinder'}


def test_room_pixels_lie_on_floor_walls_and_ceiling(scenes):
    """Floor pixels back-project to z = 0, walls to a wall plane, ceiling to z = room height."""
    for s in scenes:
        sx, sy, sz = s.room_size
        for label in (SURFACE_FLOOR, SURFACE_WALL, SURFACE_CEILING):
            mask = s.surface == label
            if not mask.any():
                continue
            p, _ = _points_world(s, mask)
            if label == SURFACE_FLOOR:
                assert np.abs(p[:, 2]).max() < 1e-4
            elif label == SURFACE_CEILING:
                assert np.abs(p[:, 2] - sz).max() < 1e-4
            else:
                dist = np.min(np.abs(np.stack([p[:, 0], p[:, 0] - sx, p[:, 1], p[:, 1] - sy])),
                              axis=0)
                assert dist.max() < 1e-4
            assert np.all(p > -1e-4) and np.all(p < np.array([sx, sy, sz]) + 1e-4)
        assert (s.surface == SURFACE_FLOOR).mean() > 0.05
        assert (s.surface == SURFACE_WALL).mean() > 0.05


def test_object_pixels_are_nearer_than_the_room_behind_them(scenes):
    """Instance masks agree with depth: an object pixel is in front of the wall or floor."""
    for s in scenes:
        v, u = np.nonzero(s.instances > 0)
        rays = np.linalg.inv(s.K) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)
        d = s.T_world_cam[:3, :3] @ rays  # world direction with optical z = 1
        o = s.T_world_cam[:3, 3][:, None]
        with np.errstate(divide='ignore'):
            t_exit = np.where(d > 0, (np.asarray(s.room_size)[:, None] - o) / d, -o / d)
        room_depth = np.min(np.where(d == 0, np.inf, t_exit), axis=0)
        gap = room_depth - s.depth[v, u]
        # Objects stand on the floor, so the gap shrinks to zero at their contact line.
        assert gap.min() > -1e-5 and np.median(gap) > 0.1


def test_object_colours_match_their_names(scenes):
    """RGB order and palette: a chromatic object's mean hue is nearest its own colour's hue."""
    chromatic = [c for c in PALETTE if c not in ('white', 'black')]

    def hue(rgb):
        return cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV_FULL)[0, 0, 0] * 360.0 / 256

    palette_hue = {c: hue(np.uint8(np.array(PALETTE[c]) ** (1 / 2.2) * 255)) for c in chromatic}
    n = 0
    for s in scenes:
        for o in s.objects:
            if o.colour in chromatic and o.pixel_count >= 200:
                h = hue(s.rgb[s.instances == o.id].mean(axis=0).astype(np.uint8))
                dist = {c: min(abs(h - ph), 360 - abs(h - ph)) for c, ph in palette_hue.items()}
                assert min(dist, key=dist.get) == o.colour, (s.seed, o.colour, dist)
                n += 1
    assert n >= 10


# --------------------------------------------------------------------------- expressions

_SHAPE = {'ball': 'sphere', 'sphere': 'sphere', 'cube': 'cube', 'box': 'cube', 'block': 'cube',
          'cylinder': 'cylinder', 'can': 'cylinder', 'object': None, 'thing': None}
_SIZE = {'small': 'small', 'little': 'small', 'large': 'large', 'big': 'large'}


def _select(phrase, objects):
    """Return the objects a noun phrase such as 'big red ball' describes."""
    *mods, noun = phrase.split()
    shape = _SHAPE[noun]
    out = [o for o in objects if shape is None or o.shape == shape]
    for word in mods:
        if word in _SIZE:
            out = [o for o in out if o.size == _SIZE[word]]
        else:
            assert word in PALETTE, phrase
            out = [o for o in out if o.colour == word]
    return out


def _resolve(text, objects):
    """Evaluate an expression against the objects; return the referent ids and the kind."""
    present = [o for o in objects if o.pixel_count > 0]

    def x(o):
        return o.centroid_px[0]

    def z(o):
        return o.centre[2]

    if m := re.fullmatch(r'the (.+?) (?:to the )?(left|right) of the (.+)', text):
        landmarks = _select(m[3], present)
        assert len(landmarks) == 1, text
        b = landmarks[0]
        sign = 1 if m[2] == 'left' else -1
        return [o.id for o in _select(m[1], present)
                if o.id != b.id and sign * (x(b) - x(o)) > 0], 'relation'

    def extreme(group, key):
        best = min(group, key=key)
        assert all(key(o) > key(best) for o in group if o is not best), text
        return [best.id]

    if m := re.fullmatch(r'the (leftmost|rightmost|nearest|farthest) (.+)', text):
        group = _select(m[2], present)
        key = {'leftmost': x, 'rightmost': lambda o: -x(o), 'nearest': z,
               'farthest': lambda o: -z(o)}[m[1]]
        return extreme(group, key), 'depth' if m[1] in ('nearest', 'farthest') else 'spatial'
    if m := re.fullmatch(r'the (.+) on the (left|right)', text):
        group = _select(m[1], present)
        assert len(group) == 2, text
        return extreme(group, x if m[2] == 'left' else lambda o: -x(o)), 'spatial'
    if m := re.fullmatch(r'the (.+) (closest to|farthest from) the camera', text):
        group = _select(m[1], present)
        return extreme(group, z if m[2] == 'closest to' else lambda o: -z(o)), 'depth'
    m = re.fullmatch(r'the (.+)', text)
    return [o.id for o in _select(m[1], present)], 'attribute'


def test_every_expression_has_exactly_one_visible_referent_and_is_true():
    """Parsing each sentence independently must single out exactly its target object."""
    kinds = set()
    n = 0
    for s in iter_scenes(range(100, 140), width=160, height=120):
        texts = [r.text for r in s.expressions]
        assert len(texts) == len(set(texts))
        assert len(s.expressions) >= 4, s.seed
        by_id = {o.id: o for o in s.objects}
        for r in s.expressions:
            referents, kind = _resolve(r.text, s.objects)
            assert referents == [r.target_id], (s.seed, r)
            assert kind == r.kind, (s.seed, r)
            assert by_id[r.target_id].visible
            kinds.add(kind)
            n += 1
    assert kinds == set(KINDS)
    assert n >= 200


def test_left_right_and_near_far_words_are_geometrically_true(scenes):
    """Spot-check the spatial words against raw masks and depth, not the object summaries."""
    for s in scenes:
        for r in s.expressions:
            if r.text.startswith(('the leftmost', 'the rightmost')):
                others = [o for o in s.objects if o.pixel_count and o.id != r.target_id]
                xs = np.nonzero(s.instances == r.target_id)[1].mean()
                m = re.fullmatch(r'the (leftmost|rightmost) (.+)', r.text)
                for o in _select(m[2], others):
                    xo = np.nonzero(s.instances == o.id)[1].mean()
                    assert (xs < xo) if m[1] == 'leftmost' else (xs > xo)
            if r.text.startswith(('the nearest', 'the farthest')):
                m = re.fullmatch(r'the (nearest|farthest) (.+)', r.text)
                target = next(o for o in s.objects if o.id == r.target_id)
                for o in _select(m[2], [o for o in s.objects if o.pixel_count]):
                    if o.id != target.id:
                        closer = target.centre[2] < o.centre[2]
                        assert closer if m[1] == 'nearest' else not closer


def test_seed_split_and_dataset_helpers():
    """The split constants separate training and held-out seeds; helpers render the right seed."""
    assert TRAIN_SEEDS_STOP <= HELDOUT_SEEDS_START
    ds = SceneDataset(HELDOUT_SEEDS_START, HELDOUT_SEEDS_START + 5, width=64, height=48)
    assert len(ds) == 5 and ds[2].seed == HELDOUT_SEEDS_START + 2
    np.testing.assert_array_equal(ds[2].rgb, render_scene(HELDOUT_SEEDS_START + 2, width=64,
                                                          height=48).rgb)
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(ValueError):
        SceneDataset(5, 5)
    assert [s.seed for s in iter_scenes([4, 2], width=32, height=24)] == [4, 2]

