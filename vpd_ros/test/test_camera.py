# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Unit tests of vpd_ros.ros.camera: the latest CameraInfo and its rays."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from vpd_ros.ros.camera import CameraRays
from vpd_ros.ros.conversions import camera_info_to_model

K = np.array([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])


def _info(d: float) -> CameraInfo:
    P = np.hstack([K, np.zeros((3, 1))])
    return CameraInfo(width=64, height=48, k=K.ravel().tolist(), p=P.ravel().tolist(),
                      d=[d, 0.0, 0.0, 0.0, 0.0], distortion_model='plumb_bob')


def test_rays_follow_the_latest_camera_info() -> None:
    """No rays before a CameraInfo; a new one replaces the model; rectified drops distortion."""
    camera = CameraRays()
    assert camera.rays((64, 48)) == (None, None)
    first, second = _info(0.0), _info(0.3)
    camera.update(first)
    info, rays = camera.rays((64, 48))
    assert info is first
    np.testing.assert_allclose(rays, camera_info_to_model(first).rays((64, 48)))
    camera.update(second)
    np.testing.assert_allclose(camera.rays((32, 24))[1],
                               camera_info_to_model(second).rays((32, 24)))
    camera.rectified = True
    camera.update(_info(0.3))
    np.testing.assert_allclose(camera.rays((64, 48))[1], rays)  # P without distortion
    camera.clear()
    assert camera.rays((64, 48)) == (None, None)


def test_unusable_camera_info_raises() -> None:
    """An unknown distortion model is a ValueError the node reports."""
    camera = CameraRays()
    bad = _info(0.1)
    bad.distortion_model = 'no_such_model'
    camera.update(bad)
    with pytest.raises(ValueError):
        camera.rays((64, 48))
