# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Camera geometry of a CameraInfo: per-pixel rays for distorted, rectified, binned and ROI images.

Synthetic cameras with known distortion: OpenCV's own projection (cv2.projectPoints and
cv2.fisheye.projectPoints) is the reference the rays must invert.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from vpd_ros.engine.camera_model import camera_model, undistort
from vpd_ros.engine.geometry import ground_object
from vpd_ros.ros.conversions import depth_to_pointcloud2, pointcloud2_to_array

W, H = 320, 240
K = np.array([[260.0, 0.0, 163.5], [0.0, 255.0, 118.25], [0.0, 0.0, 1.0]])
P = np.hstack([np.array([[240.0, 0.0, 158.0], [0.0, 240.0, 121.0], [0.0, 0.0, 1.0]]),
               np.zeros((3, 1))])
DISTORTIONS = {
    'plumb_bob': np.array([-0.28, 0.08, 0.001, -0.0007, -0.01]),
    'rational_polynomial': np.array([0.35, -0.1, 0.0012, 0.0005, 0.02, 0.62, -0.05, 0.03]),
    'equidistant': np.array([0.06, -0.012, 0.003, -0.001]),
}


def _project(points: np.ndarray, model: str) -> np.ndarray:
    """Project (N, 3) camera-frame points to sensor pixels with OpenCV, distortion applied."""
    zero = np.zeros(3)
    if model == 'equidistant':
        return cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), zero, zero, K,
                                         DISTORTIONS[model])[0].reshape(-1, 2)
    return cv2.projectPoints(points, zero, zero, K, DISTORTIONS[model])[0].reshape(-1, 2)


def _camera(model: str, **kwargs: object):
    return camera_model(K.ravel(), DISTORTIONS[model], P.ravel(), model, (W, H), **kwargs)


@pytest.mark.parametrize('model', sorted(DISTORTIONS))
def test_rays_round_trip_through_opencv_projection(model: str) -> None:
    """Every pixel's ray projects back onto that pixel (1e-3 px) and points onto their rays."""
    rays = _camera(model).rays((W, H))
    assert rays.shape == (H, W, 2)
    points = np.concatenate([rays.reshape(-1, 2).astype(np.float64), np.ones((H * W, 1))], 1)
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    error = np.abs(_project(points, model) - np.stack([u.ravel(), v.ravel()], 1))
    assert error.max() < 1e-3, error.max()

    rng = np.random.default_rng(3)
    truth = np.concatenate([rng.uniform(-0.4, 0.4, (500, 2)), np.ones((500, 1))], 1)
    normalised = undistort(_project(truth, model), K, DISTORTIONS[model], model).reshape(-1, 2)
    np.testing.assert_allclose(normalised, truth[:, :2], rtol=1e-4, atol=1e-6)


def test_distortion_is_not_ignored() -> None:
    """The rays of a distorted camera differ from K's pinhole rays (what was used before)."""
    rays = _camera('plumb_bob').rays((W, H))
    pinhole = undistort(np.array([[[0.0, 0.0]]]), K, np.zeros(5), 'plumb_bob').ravel()
    assert np.abs(rays[0, 0] - pinhole).max() > 0.05


def test_rectified_image_projects_with_p() -> None:
    """rectified=True (image_rect) and an all-zero D both invert P's 3x3 part, not K."""
    for camera in (_camera('plumb_bob', rectified=True),
                   camera_model(K.ravel(), np.zeros(5), P.ravel(), 'plumb_bob', (W, H))):
        rays = camera.rays((W, H))
        np.testing.assert_allclose(rays[121, 158], [0.0, 0.0], atol=1e-6)
        np.testing.assert_allclose(rays[121, 158 + 24], [0.1, 0.0], atol=1e-6)
    assert camera_model(K.ravel(), np.zeros(5), np.zeros(12), '', (W, H)).rays(
        (W, H))[118, 163][1] == pytest.approx(-0.25 / 255.0, abs=1e-7)


@pytest.mark.parametrize('model', ['plumb_bob', 'equidistant'])
def test_binning_and_roi_select_the_sensor_pixels(model: str) -> None:
    """Binned ROI pixel (u, v) sees what sensor pixel ((u + .5) * b - .5 + x0, ...) sees."""
    camera = _camera(model, binning=(2, 2), roi=(40, 20, 200, 160))
    assert camera.image_size == (100, 80)
    rays = camera.rays((100, 80)).reshape(-1, 2).astype(np.float64)
    u, v = np.meshgrid(np.arange(100) * 2 + 0.5 + 40, np.arange(80) * 2 + 0.5 + 20)
    projected = _project(np.concatenate([rays, np.ones((rays.shape[0], 1))], 1), model)
    assert np.abs(projected - np.stack([u.ravel(), v.ravel()], 1)).max() < 1e-3
    # The same image resized to half (a resize node after the driver) keeps its geometry.
    half = camera.rays((50, 40))
    np.testing.assert_allclose(half[0, 0], rays.reshape(80, 100, 2)[0, 0] * 0.5 +
                               rays.reshape(80, 100, 2)[1, 1] * 0.5, atol=2e-3)


def test_unusable_cameras_are_refused_with_the_reason() -> None:
    """Unknown distortion, an ROI off the sensor, a foreign image size, no calibration."""
    with pytest.raises(ValueError, match="distortion model 'fov' is not supported"):
        camera_model(K.ravel(), [0.1], P.ravel(), 'fov', (W, H))
    with pytest.raises(ValueError, match='roi'):
        _camera('plumb_bob', roi=(200, 0, 200, 100))
    with pytest.raises(ValueError, match='does not scale'):
        _camera('plumb_bob').rays((W, H + 40))
    # K all zero means uncalibrated, even when P (used for rectified images) is set.
    with pytest.raises(ValueError, match='not calibrated'):
        camera_model(np.zeros(9), np.zeros(5), P.ravel(), 'plumb_bob', (W, H))
    with pytest.raises(ValueError, match='K is not finite'):
        camera_model(np.full(9, np.nan), np.zeros(5), P.ravel(), 'plumb_bob', (W, H))


def _tilted_wall(rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Return the depth of a tilted plane n . X = d seen along ``rays``, with n and d."""
    normal = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
    d = 2.0
    dot = rays[..., 0] * normal[0] + rays[..., 1] * normal[1] + normal[2]
    return (d / dot).astype(np.float32), normal, d


@pytest.mark.parametrize('model', sorted(DISTORTIONS))
def test_point_cloud_of_a_flat_wall_is_flat(model: str) -> None:
    """The PointCloud2 of a tilted wall through a distorted camera lies on the wall's plane."""
    rays = _camera(model).rays((W, H))
    depth, normal, d = _tilted_wall(rays.astype(np.float64))

    def off_plane(camera: np.ndarray) -> float:
        msg = depth_to_pointcloud2(depth, camera, Header(frame_id='camera'), step=2)
        assert isinstance(msg, PointCloud2)
        cloud = pointcloud2_to_array(msg)
        xyz = np.stack([cloud['x'], cloud['y'], cloud['z']], 1).astype(np.float64)
        return float(np.abs(xyz @ normal - d).max())
    assert off_plane(rays) < 1e-4 * d
    assert off_plane(K) > 0.01  # K alone (distortion ignored) bends the wall


def test_grounding_uses_the_rays() -> None:
    """3D grounding of a patch of the wall through a distorted camera lies on the wall."""
    rays = _camera('plumb_bob').rays((W, H))
    depth, normal, d = _tilted_wall(rays.astype(np.float64))
    mask = np.zeros((H, W), bool)
    mask[10:40, 12:60] = True  # near a corner, where distortion is strongest
    result = ground_object(mask, depth, rays)
    assert result.has_3d
    assert abs(float(result.centroid @ normal) - d) < 1e-3
    assert abs(float(ground_object(mask, depth, K).centroid @ normal) - d) > 1e-2
