# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The latest CameraInfo of the input stream and the rays of its camera model.

The camera model is rebuilt only when a new CameraInfo arrives (the callback thread sets it,
the worker thread reads it); the model caches its rays per image size.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from sensor_msgs.msg import CameraInfo

from vpd_ros.engine.camera_model import CameraModel
from vpd_ros.ros.conversions import camera_info_to_model


class CameraRays:
    """The latest CameraInfo and its camera model; ``rectified`` projects with P (image_rect)."""

    def __init__(self) -> None:
        self.info: Optional[CameraInfo] = None
        self.rectified = False
        self._model: Optional[Tuple[CameraInfo, CameraModel]] = None

    def update(self, info: CameraInfo) -> None:
        """Keep ``info`` as the latest calibration (the camera_info subscription callback)."""
        self.info = info

    def clear(self) -> None:
        """Forget the calibration (cleanup: the next configuration may see another camera)."""
        self.info = self._model = None

    def rays(self, size: Tuple[int, int]) -> Tuple[Optional[CameraInfo], Optional[np.ndarray]]:
        """Return the CameraInfo and per-pixel rays for an image of ``size`` (w, h), or Nones.

        Raises ValueError for an unusable calibration (unknown distortion, ROI off the sensor).
        """
        info = self.info
        if info is None:
            return None, None
        cached = self._model
        if cached is None or cached[0] is not info:
            cached = self._model = (info, camera_info_to_model(info, self.rectified))
        return info, cached[1].rays(size)
