# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The camera behind an image: one normalised viewing ray per pixel, from its calibration.

Follows image_geometry's conventions for ``sensor_msgs/CameraInfo``: K, D and P describe the
full-resolution sensor; binning and ROI say which part of it, at which decimation, the image holds.
A rectified image (``image_rect*``, or no distortion) projects with P's 3x3 part; a raw image with
distortion is undistorted per pixel with OpenCV (plumb_bob and rational_polynomial:
``cv2.undistortPoints``, iterated to convergence; equidistant: ``cv2.fisheye.undistortPoints``).
Pure numpy and OpenCV, no ROS: the ros layer passes the message's fields.

Pixel centres are integer coordinates (as in :func:`vpd_ros.engine.geometry.scale_intrinsics`), so a
binned pixel ``u`` covers sensor pixels ``u * b ... u * b + b - 1`` and its centre is at
``(u + 0.5) * b - 0.5`` (image_geometry approximates this as ``u * b``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np

#: Distortion models undistorted per pixel; an unknown model with non-zero D is refused.
DISTORTION_MODELS = ('plumb_bob', 'rational_polynomial', 'equidistant')
#: Undistortion stops when a step moves the normalised point by less than this.
_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A calibrated camera and the part of its sensor an image shows.

    Attributes:
        matrix: (3, 3) full-resolution camera matrix that projects this image: P's 3x3 part
            for a rectified image, K for a raw one.
        distortion: distortion coefficients to undo per pixel; empty for a rectified image.
        model: the distortion model of ``distortion`` (``''`` when there is none).
        sensor_size: (width, height) of the calibration, pixels.
        binning: (x, y) decimation of the image relative to the sensor (>= 1).
        roi: (x_offset, y_offset, width, height) of the sensor region, pixels.
    """

    matrix: np.ndarray
    distortion: np.ndarray
    model: str
    sensor_size: Tuple[int, int]
    binning: Tuple[int, int] = (1, 1)
    roi: Tuple[int, int, int, int] = (0, 0, 0, 0)
    _rays: Dict[Tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def image_size(self) -> Tuple[int, int]:
        """Return the (width, height) of the image the camera publishes (ROI, then binning)."""
        return (self.roi[2] // self.binning[0], self.roi[3] // self.binning[1])

    def sensor_pixels(self, image_size: Tuple[int, int],
                      rel_tol: float = 1e-3) -> Tuple[np.ndarray, np.ndarray]:
        """Return the sensor coordinates (u, v) of every pixel centre of an ``image_size`` image.

        An image of another size than :attr:`image_size` is taken as a resize of it by one
        common factor (a driver or resize node downscaling the stream).

        Returns:
            (W,) u and (H,) v, float64, full-resolution sensor pixels.

        Raises:
            ValueError: the size differs from :attr:`image_size` by more than one scale.
        """
        (w, h), (ew, eh) = image_size, self.image_size
        if min(w, h) <= 0:
            raise ValueError(f'image size must be positive, got {w}x{h}')
        sx, sy = w / ew, h / eh
        if abs(sx - sy) > rel_tol * max(sx, sy):
            raise ValueError(f'camera_info describes a {ew}x{eh} image (ROI and binning '
                             f'applied), which does not scale to the {w}x{h} image')
        (bx, by), (x0, y0) = self.binning, self.roi[:2]
        u = ((np.arange(w) + 0.5) / sx) * bx - 0.5 + x0
        v = ((np.arange(h) + 0.5) / sy) * by - 0.5 + y0
        return u, v

    def rays(self, image_size: Tuple[int, int]) -> np.ndarray:
        """Return the (H, W, 2) float32 normalised ray (x / z, y / z) of each pixel (cached)."""
        cached = self._rays.get(tuple(image_size))
        if cached is not None:
            return cached
        u, v = self.sensor_pixels(image_size)
        grid = np.stack(np.meshgrid(u, v), axis=-1).reshape(-1, 1, 2)
        rays = undistort(grid, self.matrix, self.distortion, self.model)
        rays = rays.reshape(v.size, u.size, 2).astype(np.float32)
        rays.setflags(write=False)
        self._rays.clear()  # one size at a time: a camera streams one size
        self._rays[tuple(image_size)] = rays
        return rays


def undistort(pixels: np.ndarray, matrix: np.ndarray, distortion: np.ndarray,
              model: str) -> np.ndarray:
    """Return the normalised coordinates (x / z, y / z) of sensor ``pixels`` ((N, 1, 2)).

    With no distortion this inverts ``matrix`` exactly (skew included).
    """
    pixels = np.asarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
    if not np.any(distortion):
        fx, s, cx = matrix[0]
        fy, cy = matrix[1, 1], matrix[1, 2]
        y = (pixels[..., 1] - cy) / fy
        x = (pixels[..., 0] - cx - s * y) / fx
        return np.stack([x, y], axis=-1)
    if model == 'equidistant':
        return cv2.fisheye.undistortPoints(pixels, matrix, distortion[:4].reshape(4, 1),
                                           criteria=_CRITERIA)
    if hasattr(cv2, 'undistortPointsIter'):  # OpenCV 4 (python3-opencv on Ubuntu)
        return cv2.undistortPointsIter(pixels, matrix, distortion, None, None, _CRITERIA)
    return cv2.undistortPoints(pixels, matrix, distortion, criteria=_CRITERIA)  # OpenCV 5


def _checked(name: str, matrix: np.ndarray) -> np.ndarray:
    """Return a (3, 3) camera matrix, raising ValueError when it cannot project."""
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f'{name} is not finite: {matrix.ravel().tolist()}')
    if not np.any(matrix):
        raise ValueError(f'{name} is all zeros (camera not calibrated)')
    if matrix[0, 0] <= 0.0 or matrix[1, 1] <= 0.0:
        raise ValueError(f'{name} needs fx > 0 and fy > 0, got fx={matrix[0, 0]}, '
                         f'fy={matrix[1, 1]}')
    return matrix


def camera_model(K: Sequence[float], D: Sequence[float], P: Sequence[float], model: str,
                 sensor_size: Tuple[int, int], binning: Tuple[int, int] = (0, 0),
                 roi: Tuple[int, int, int, int] = (0, 0, 0, 0),
                 rectified: bool = False) -> CameraModel:
    """Build the :class:`CameraModel` of CameraInfo fields (k, d, p as flat sequences).

    ``rectified`` says the image was rectified (an ``image_rect*`` topic); an image with all
    distortion coefficients zero is rectified too. Binning 0 means 1 and an ROI of width or
    height 0 means the full sensor, as in CameraInfo.

    Raises:
        ValueError: with the reason: no usable calibration (K all zero, K or the P used not
            finite or with fx or fy <= 0), an unsupported distortion model, or an ROI outside
            the sensor.
    """
    width, height = (int(n) for n in sensor_size)
    if width <= 0 or height <= 0:
        raise ValueError(f'camera_info size must be positive, got {width}x{height}')
    distortion = np.asarray(D, dtype=np.float64).reshape(-1)
    matrix = _checked('K', np.asarray(K, dtype=np.float64).reshape(3, 3))  # all zero: uncalibrated
    rectified = rectified or not np.any(distortion)
    if rectified:
        projection = np.asarray(P, dtype=np.float64).reshape(3, 4)[:, :3]
        if np.any(projection):  # some drivers of undistorted cameras leave P unset: then K
            matrix = _checked('P', projection)
        distortion, model = np.zeros(0), ''
    else:
        if model not in DISTORTION_MODELS:
            raise ValueError(f'distortion model {model!r} is not supported (supported: '
                             f'{", ".join(DISTORTION_MODELS)}); publish a rectified image')
        if model == 'equidistant' and distortion.size < 4:
            raise ValueError(f'equidistant distortion needs 4 coefficients, got {distortion.size}')
    bx, by = (max(int(b), 1) for b in binning)
    x0, y0, rw, rh = (int(n) for n in roi)
    rw, rh = (rw or width - x0), (rh or height - y0)
    if x0 < 0 or y0 < 0 or x0 + rw > width or y0 + rh > height or rw < bx or rh < by:
        raise ValueError(f'camera_info roi (x {x0}, y {y0}, {rw}x{rh}) is not inside the '
                         f'{width}x{height} sensor (binning {bx}x{by})')
    return CameraModel(matrix=matrix, distortion=distortion, model=model,
                       sensor_size=(width, height), binning=(bx, by), roi=(x0, y0, rw, rh))
