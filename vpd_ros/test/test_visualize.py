# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests for vpd_ros.engine.visualize: what each debug picture shows, pixel by pixel where it
matters."""

import itertools

import cv2
import numpy as np
import pytest
from vpd_ros.data import render_scene
from vpd_ros.engine.visualize import DEFAULT_COLORS, colorize_depth, depth_colorbar, \
    depth_picture, depth_range, label_boxes, overlay_masks, side_by_side

H, W = 120, 160


def test_colorize_depth_near_red_far_blue_invalid_black():
    """Turbo runs red (near) to blue (far), clips outside the range and blacks out invalid."""
    depth = np.tile(np.linspace(1.0, 3.0, W, dtype=np.float32), (H, 1))
    depth[:10, :10] = np.nan
    depth[:10, 10:20] = 0.0
    depth[:10, 20:30] = np.inf
    out = colorize_depth(depth, 1.0, 3.0)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert not out[:10, :30].any()
    near, far = out[50, 30].astype(int), out[50, -1].astype(int)
    assert near[2] > near[0] and far[0] > far[2]  # BGR: red near, blue far
    clipped = colorize_depth(depth, 1.5, 2.0)
    np.testing.assert_array_equal(clipped[50, 0], clipped[50, 30])  # both nearer than 1.5 m
    np.testing.assert_array_equal(clipped[50, -1], clipped[50, -20])  # both beyond 2 m


def test_colorize_depth_auto_range_ignores_outliers():
    """Without bounds, one absurd pixel does not flatten the colours of the scene."""
    depth = np.tile(np.linspace(1.0, 3.0, W, dtype=np.float32), (H, 1))
    depth[0, 0] = 1000.0
    auto = colorize_depth(depth)
    assert len({tuple(p) for p in auto[60]}) > 50
    with pytest.raises(ValueError, match="max_m must be greater"):
        colorize_depth(depth, 2.0, 2.0)


def test_overlay_masks_tints_inside_keeps_outside_and_writes_label():
    """Mask pixels move towards the mask colour, far-away pixels keep the input, text appears."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), bool)
    mask[60:100, 90:140] = True
    out = overlay_masks(rgb, [mask], ["red mug 0.87"])
    bgr = rgb[..., ::-1].astype(int)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[100:, :80], bgr[100:, :80])  # untouched corner
    color = np.array(DEFAULT_COLORS[0])
    inside = (slice(61, 69), slice(92, 138))  # above the label, which sits mid-mask
    before = np.abs(bgr[inside] - color).sum(-1)
    after = np.abs(out[inside].astype(int) - color).sum(-1)
    assert np.all(after <= before) and after.mean() < 0.7 * before.mean()
    plain = overlay_masks(rgb, [mask], [""])
    label_area = (slice(74, 86), slice(92, 138))  # the label sits on the mask's middle
    assert (out[label_area] != plain[label_area]).any(-1).mean() > 0.3


def test_overlay_masks_several_masks_own_colours_and_checks():
    """Each mask gets its own colour; mismatched inputs are refused by name."""
    rgb = np.full((H, W, 3), 128, np.uint8)
    a = np.zeros((H, W), bool)
    a[50:70, 10:40] = True
    b = np.zeros((H, W), bool)
    b[50:70, 100:130] = True
    out = overlay_masks(rgb, [a, b], ["a", "b"], colors=[(255, 0, 0), (0, 0, 255)], alpha=1.0)
    np.testing.assert_array_equal(out[60, 25], [255, 0, 0])
    np.testing.assert_array_equal(out[60, 115], [0, 0, 255])
    empty = overlay_masks(rgb, [np.zeros((H, W), bool)], ["nothing found"])
    assert (empty[:20, :60] != 128).any()  # label still shown, top-left
    with pytest.raises(ValueError, match="2 masks but 1 labels"):
        overlay_masks(rgb, [a, b], ["a"])
    with pytest.raises(ValueError, match="mask 0 shape"):
        overlay_masks(rgb, [a[:10]], ["a"])


def test_side_by_side_resizes_to_first_height_and_titles():
    """Panels share the first image's height, keep aspect ratio, accept grey, get titles."""
    left = np.full((H, W, 3), 200, np.uint8)
    right = np.full((H // 2, W, 3), 50, np.uint8)
    grey = np.full((H, 40), 90, np.uint8)
    out = side_by_side([left, right, grey])
    assert out.shape == (H, W + 2 * W + 40, 3)
    np.testing.assert_array_equal(out[:, :W], left)
    assert (out[:, W:3 * W] == 50).all() and (out[:, 3 * W:] == 90).all()
    titled = side_by_side([left, right], ["rgb", "depth"])
    assert (titled[:15, :30] != 200).any() and (titled[:15, W:W + 30] != 50).any()
    np.testing.assert_array_equal(titled[-10:, :W], left[-10:])
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        side_by_side([left, right], ["rgb"])
    with pytest.raises(ValueError, match="uint8"):
        side_by_side([left.astype(np.float32)])


def boxes_overlap(a, b) -> bool:
    """Whether two (x, y, w, h) boxes share a pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("seed, long_labels", [(3, False), (11, False), (1000001, False),
                                               (11, True), (1000002, True)])
def test_labels_of_rendered_objects_sit_on_their_masks_and_never_overlap(seed, long_labels):
    """Every object of a rendered room gets its label on itself, no two labels overlap.

    Long labels on small, crowded objects (seed 11: six labels five times wider than their
    objects) cannot all sit on their mask; each is then at most a label height away from it.
    """
    scene = render_scene(seed, width=640, height=480)
    ids = [o.id for o in scene.objects if (scene.instances == o.id).sum() > 400]
    masks = [scene.instances == i for i in ids]
    labels = [f"the object number {i} on the left" if long_labels else f"obj {i}" for i in ids]
    boxes = label_boxes(masks, labels)
    for (x, y, w, h), mask in zip(boxes, masks):
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480
        near = cv2.dilate(mask.astype(np.uint8), np.ones((2 * h + 1, 2 * h + 1), np.uint8))
        assert near[y:y + h, x:x + w].any(), (seed, (x, y, w, h))
        if not long_labels:
            assert mask[y + h // 2, x + w // 2], (seed, (x, y, w, h))
    for a, b in itertools.combinations(boxes, 2):
        assert not boxes_overlap(a, b), (a, b)
    out = overlay_masks(scene.rgb, masks, labels)
    for (x, y, w, h), color in zip(boxes, itertools.cycle(DEFAULT_COLORS)):
        border = out[y, x:x + w]  # the filled label box, in its mask's colour
        assert (np.abs(border.astype(int) - color).sum(-1) <= 3).mean() > 0.9


def test_labels_of_the_same_or_nested_masks_do_not_hide_each_other():
    """Two queries selecting the same object (or one inside the other) keep both labels apart."""
    scene = render_scene(5, width=320, height=240)
    big = scene.instances > 0
    small = np.zeros_like(big)
    ys, xs = np.nonzero(big)
    small[ys.min():ys.min() + 15, xs.min():xs.min() + 15] = big[ys.min():ys.min() + 15,
                                                                xs.min():xs.min() + 15]
    masks = [big, big.copy(), small, np.zeros_like(big)]
    boxes = label_boxes(masks, ["the cat", "the flag", "the small thing", "nothing found"])
    for a, b in itertools.combinations(boxes, 2):
        assert not boxes_overlap(a, b), (a, b)
    for (x, y, w, h), mask in zip(boxes[:2], masks[:2]):
        assert mask[y + h // 2, x + w // 2]
    assert boxes[3][0] < 160 and boxes[3][1] < 120  # an empty mask's label: top-left quarter


def test_depth_picture_has_a_colour_bar_in_metres():
    """The bar runs from the far colour at the top to the near colour at the bottom, with text."""
    depth = render_scene(2).depth
    lo, hi = depth_range(depth)
    assert depth[depth > 0].min() <= lo < hi <= depth.max()
    picture = depth_picture(depth)
    assert picture.shape[0] == depth.shape[0] and picture.shape[1] > depth.shape[1] + 20
    np.testing.assert_array_equal(picture[:, :depth.shape[1]], colorize_depth(depth, lo, hi))
    bar = depth_colorbar(240, 1.0, 5.0)
    ramp = colorize_depth(np.array([[5.0, 1.0]], np.float32), 1.0, 5.0)[0]
    column = bar[:, 6].astype(int)
    assert np.abs(column[0] - ramp[0]).sum() < 30 and np.abs(column[-1] - ramp[1]).sum() < 30
    text = bar[:, 20:]
    assert (text < 80).all(-1).sum() > 100  # black tick labels ("1 m" ... "5 m")
    for flat in (np.full((1, 1), 2.0, np.float32), np.full((30, 40), 3.0, np.float32),
                 np.zeros((8, 8), np.float32)):
        assert depth_picture(flat).shape[0] == flat.shape[0]
