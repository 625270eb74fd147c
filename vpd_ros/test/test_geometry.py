# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests for vpd_ros.engine.geometry on analytically rendered scenes with known geometry."""

import cv2
import numpy as np
import pytest
from vpd_ros.engine.geometry import (
    backproject,
    ground_object,
    intrinsics_for_image,
    scale_intrinsics,
)

W, H = 320, 240
K = np.array([[300.0, 0.0, 159.5], [0.0, 310.0, 119.5], [0.0, 0.0, 1.0]])
SPHERE_C = np.array([0.08, -0.05, 1.0])
SPHERE_R = 0.1
PLANE_Z = 1.6


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project (N, 3) optical-frame points to (N, 2) pixel coordinates (u, v)."""
    uvw = points @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def render_sphere_scene() -> tuple[np.ndarray, np.ndarray]:
    """Ray-trace a sphere in front of a plane; return (depth (H, W) float32 m, sphere mask)."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    # |t * ray - C|^2 = r^2 with ray_z = 1, so t is the depth z of the first hit.
    a = np.sum(rays * rays, -1)
    b = rays @ SPHERE_C
    disc = b * b - a * (SPHERE_C @ SPHERE_C - SPHERE_R**2)
    hit = disc >= 0.0
    t = (b - np.sqrt(np.where(hit, disc, 0.0))) / a
    depth = np.where(hit, t, PLANE_Z).astype(np.float32)
    return depth, hit


def corrupt(depth: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """Make a realistic prediction: bleeding mask edges, NaN holes and depth noise."""
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~mask
    noisy_mask = mask | (ring & (rng.random(mask.shape) < 0.7))
    noisy_depth = depth + rng.normal(0.0, 0.003, depth.shape).astype(np.float32)
    holes = noisy_mask & (rng.random(mask.shape) < 0.08)
    noisy_depth[holes] = np.nan
    noisy_depth[noisy_mask & (rng.random(mask.shape) < 0.01)] = 0.0
    return noisy_depth, noisy_mask


def test_backproject_reprojects_to_the_same_pixels():
    """Back-projected points must land on their own pixel centres at their own depth."""
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 4.0, (H, W)).astype(np.float32)
    points = backproject(depth, K)
    v, u = np.mgrid[0:H, 0:W]
    assert points.shape == (H * W, 3) and points.dtype == np.float32
    np.testing.assert_allclose(project(points.astype(np.float64), K),
                               np.stack([u.ravel(), v.ravel()], -1), atol=2e-3)
    np.testing.assert_allclose(points[:, 2], depth.ravel())


def test_backproject_follows_rep103_axes():
    """A pixel right of and below the principal point is at +x (right) and +y (down)."""
    depth = np.full((H, W), 2.0, np.float32)
    mask = np.zeros((H, W), bool)
    mask[H - 1, W - 1] = True
    (x, y, z), = backproject(depth, K, mask)
    assert x > 0 and y > 0 and z == 2.0


def test_backproject_skips_invalid_depth_and_honours_mask_and_step():
    """NaN, inf and <= 0 depth never become points; mask and step select the rest."""
    depth = np.full((H, W), 1.0, np.float32)
    depth[0, 0], depth[0, 2], depth[2, 0], depth[2, 2] = np.nan, np.inf, 0.0, -1.0
    assert backproject(depth, K).shape[0] == H * W - 4
    assert backproject(depth, K, step=2).shape[0] == (H // 2) * (W // 2) - 4
    mask = np.zeros((H, W), bool)
    mask[:3, :3] = True
    assert backproject(depth, K, mask).shape[0] == 9 - 4
    with pytest.raises(ValueError, match="step"):
        backproject(depth, K, step=0)
    with pytest.raises(ValueError, match="not calibrated"):
        backproject(depth, np.zeros((3, 3)))


def test_ground_object_sphere_is_robust_to_bleeding_mask_holes_and_noise():
    """Centroid and extent of a sphere survive a mask that bleeds onto the background.

    Expected values come from the clean render: the mean of the true visible-surface
    points, and as a cross-check the closed form for a sphere seen nearly head-on, whose
    visible cap has mean depth d - 2r/3 at the sphere's (x, y).
    """
    depth, mask = render_sphere_scene()
    rng = np.random.default_rng(1)
    noisy_depth, noisy_mask = corrupt(depth, mask, rng)
    prob = np.where(noisy_mask, 0.8, 0.1).astype(np.float32)

    result = ground_object(noisy_mask, noisy_depth, K, prob)

    truth_points = backproject(depth, K, mask).astype(np.float64)
    true_centroid = truth_points.mean(axis=0)
    closed_form = SPHERE_C - np.array([0.0, 0.0, 2.0 * SPHERE_R / 3.0])
    assert np.linalg.norm(true_centroid - closed_form) < 0.01
    assert result.valid and result.has_3d
    assert np.linalg.norm(result.centroid - true_centroid) < 0.01
    # A naive mean over the noisy mask is pulled towards the plane: the test scene is hard.
    naive = np.nanmean(backproject(noisy_depth, K, noisy_mask), axis=0)
    assert np.linalg.norm(naive - true_centroid) > 0.02
    # Extent: the clean surface's 1..99 percentile range (within the eroded ring, about
    # 1 px = 3 mm per side), which is near the diameter in x and y and near the depth of
    # the visible cap (about r) in z.
    low, high = np.percentile(truth_points, [1.0, 99.0], axis=0)
    np.testing.assert_allclose(result.extent, high - low, atol=0.01)
    np.testing.assert_allclose(result.extent[:2], 2 * SPHERE_R, rtol=0.15)
    assert result.extent[2] == pytest.approx(np.ptp(truth_points[:, 2]), rel=0.25)
    assert result.extent[2] < 0.5 * (PLANE_Z - SPHERE_C[2])
    assert result.pixel_count == int(noisy_mask.sum())
    assert result.score == pytest.approx(0.8)
    assert 0 < result.depth_samples < result.pixel_count


def full_frame_grounding(mask, depth, K, min_samples=20):
    """The grounding recipe run on whole frames (the oracle for the box-cropped version)."""
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    keep = (eroded if eroded.sum() >= min_samples else mask) & np.isfinite(depth) & (depth > 0)
    z = depth[keep].astype(np.float64)
    median = np.median(z)
    band = max(3.0 * 1.4826 * np.median(np.abs(z - median)), 0.03)
    points = backproject(depth, K, keep & (np.abs(depth - np.float32(median)) <= band))
    points = points.astype(np.float64)
    return points.mean(0), np.ptp(np.percentile(points, [1.0, 99.0], axis=0), axis=0), len(points)


def shifted(image: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """``image`` moved by (dy, dx) pixels, ``fill`` where nothing moved in."""
    out = np.full_like(image, fill)
    src = image[max(-dy, 0):H - max(dy, 0), max(-dx, 0):W - max(dx, 0)]
    out[max(dy, 0):max(dy, 0) + src.shape[0], max(dx, 0):max(dx, 0) + src.shape[1]] = src
    return out


@pytest.mark.parametrize("shift", [(0, 0), (-94, -173), (131, -23)],
                         ids=["inside", "corner", "bottom-edge"])
def test_ground_object_matches_the_full_frame_recipe_anywhere_in_the_image(shift):
    """Working inside the mask's box (plus a ring) changes nothing, even with skew or at borders.

    The sphere (centre near pixel (183, 104), radius ~31 px) stays inside, or is moved so that
    the top and left image borders cut it (erosion keeps pixels on the image border), or so
    that the bottom border does.
    """
    depth, mask = render_sphere_scene()
    noisy_depth, noisy_mask = corrupt(depth, mask, np.random.default_rng(2))
    depth = shifted(noisy_depth, *shift, PLANE_Z)
    mask = shifted(noisy_mask, *shift, False)
    assert mask.sum() > 500
    skewed = K.copy()
    skewed[0, 1] = 4.0
    result = ground_object(mask, depth, skewed)
    centroid, extent, samples = full_frame_grounding(mask, depth, skewed)
    assert result.has_3d and result.depth_samples == samples
    np.testing.assert_allclose(result.centroid, centroid, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result.extent, extent, rtol=1e-6, atol=1e-7)
    rows, cols = np.nonzero(mask)
    assert (result.x_min, result.y_min, result.x_max, result.y_max) == (
        cols.min(), rows.min(), cols.max(), rows.max())


def test_ground_object_box_and_2d_fields():
    """The box is inclusive, the score is the mean probability, and 3D needs depth and K."""
    mask = np.zeros((H, W), bool)
    mask[10:20, 30:45] = True
    prob = np.zeros((H, W), np.float32)
    prob[10:20, 30:45] = np.linspace(0.5, 1.0, 15, dtype=np.float32)
    result = ground_object(mask, None, None, prob)
    assert (result.x_min, result.y_min, result.x_max, result.y_max) == (30, 10, 44, 19)
    assert result.pixel_count == 150
    assert result.score == pytest.approx(0.75, abs=1e-6)
    assert result.valid and not result.has_3d and np.all(np.isnan(result.centroid))
    assert ground_object(mask, np.full((H, W), 1.0, np.float32), K).score == 0.0


def test_ground_object_flat_patch_and_missing_depth():
    """A fronto-parallel patch has zero depth extent; an all-NaN or empty mask gives no 3D."""
    depth = np.full((H, W), 2.0, np.float32)
    mask = np.zeros((H, W), bool)
    mask[100:140, 100:160] = True
    result = ground_object(mask, depth, K)
    assert result.has_3d
    assert result.extent[2] == pytest.approx(0.0, abs=1e-6)
    # Width of the eroded 58 px patch at 2 m, trimmed to 1..99 percent of the columns.
    assert result.extent[0] == pytest.approx(0.98 * 57 * 2.0 / K[0, 0], rel=0.03)
    nan_depth = np.full((H, W), np.nan, np.float32)
    assert not ground_object(mask, nan_depth, K).has_3d
    empty = ground_object(np.zeros((H, W), bool), depth, K)
    assert not empty.valid and empty.pixel_count == 0 and not empty.has_3d


def test_ground_object_rejects_bad_input():
    """Shape mismatches and impossible percentiles are named, not silently broadcast."""
    mask = np.ones((H, W), bool)
    with pytest.raises(ValueError, match="depth shape"):
        ground_object(mask, np.ones((H, W + 1), np.float32), K)
    with pytest.raises(ValueError, match="extent_percentile"):
        ground_object(mask, extent_percentile=50.0)


def test_scale_intrinsics_matches_cv2_resize():
    """A blob resized with cv2.resize lands where the scaled camera matrix projects it."""
    point = np.array([[0.13, -0.07, 1.3]])
    u, v = project(point, K)[0]
    yy, xx = np.mgrid[0:H, 0:W]
    blob = np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 3.0**2)).astype(np.float32)
    small = cv2.resize(blob, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
    sy, sx = np.mgrid[0:H // 4, 0:W // 4]
    measured = np.array([(small * sx).sum(), (small * sy).sum()]) / small.sum()
    expected = project(point, scale_intrinsics(K, (W, H), (W // 4, H // 4)))[0]
    np.testing.assert_allclose(measured, expected, atol=0.02)
    np.testing.assert_allclose(scale_intrinsics(K, (W, H), (W, H)), K)


def test_intrinsics_for_image_scales_or_explains():
    """Same size passes, a pure scale is applied, anything else is refused with the reason."""
    np.testing.assert_allclose(intrinsics_for_image(K, (W, H), (W, H)), K)
    np.testing.assert_allclose(
        intrinsics_for_image(K, (W, H), (W // 2, H // 2)),
        scale_intrinsics(K, (W, H), (W // 2, H // 2)),
    )
    with pytest.raises(ValueError, match="does not match image size"):
        intrinsics_for_image(K, (W, H), (W, H // 2))
    with pytest.raises(ValueError, match="not calibrated"):
        intrinsics_for_image(np.zeros((3, 3)), (W, H), (W, H))
    with pytest.raises(ValueError, match="finite"):
        intrinsics_for_image(np.full((3, 3), np.nan), (W, H), (W, H))
    with pytest.raises(ValueError, match="camera_info size"):
        intrinsics_for_image(K, (0, 0), (W, H))
    with pytest.raises(ValueError, match="fx > 0"):
        intrinsics_for_image(np.diag([-1.0, 1.0, 1.0]), (W, H), (W, H))
