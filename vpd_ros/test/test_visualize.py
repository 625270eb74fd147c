# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests for vpd_ros.engine.visualize: what each debug picture shows, pixel by pixel where it
matters."""

import numpy as np
import pytest
from vpd_ros.engine.visualize import DEFAULT_COLORS, colorize_depth, overlay_masks, side_by_side

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
    inside = (slice(70, 90), slice(100, 130))
    before = np.abs(bgr[inside] - color).sum(-1)
    after = np.abs(out[inside].astype(int) - color).sum(-1)
    assert np.all(after <= before) and after.mean() < 0.7 * before.mean()
    label_area = (slice(30, 60), slice(90, W))  # the label sits above the mask's box
    assert (out[label_area] != bgr[label_area]).any(-1).mean() > 0.3
    plain = overlay_masks(rgb, [mask], [""])
    assert (out[label_area] != plain[label_area]).any()


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
