# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Output messages built from engine and geometry results: Grounding, Marker, CameraInfo.

Every builder takes the INPUT frame's header and copies it unchanged, so stamps and frame ids
of all outputs match the camera image they came from.
"""

from __future__ import annotations

import copy
from typing import List, Tuple

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from vpd_ros.engine.geometry import GroundingResult, scale_intrinsics
from vpd_ros.ros.conversions import mask_to_image
from vpd_ros_interfaces.msg import Grounding

MARKER_NAMESPACE = 'vpd_grounding'
#: Smallest marker cube side, metres (a flat object still shows).
MIN_MARKER_SIZE = 0.01


def grounding_msg(result: GroundingResult, header: Header, query: str, truncated: bool,
                  mask: np.ndarray) -> Grounding:
    """Fill a Grounding from a :class:`GroundingResult` and its (H, W) bool mask."""
    msg = Grounding(header=header, query=query, valid=bool(result.valid),
                    truncated=bool(truncated))
    msg.score = float(result.score) if result.valid else 0.0
    msg.x_min, msg.y_min = int(result.x_min), int(result.y_min)
    msg.x_max, msg.y_max = int(result.x_max), int(result.y_max)
    msg.pixel_count = int(result.pixel_count)
    msg.has_3d = bool(result.has_3d)
    if result.has_3d:
        msg.centroid.x, msg.centroid.y, msg.centroid.z = (float(v) for v in result.centroid)
        msg.extent.x, msg.extent.y, msg.extent.z = (float(v) for v in result.extent)
        msg.depth_samples = int(result.depth_samples)
    msg.mask = mask_to_image(mask, header)
    return msg


def grounding_markers(msg: Grounding, index: int) -> List[Marker]:
    """Return the CUBE (at the centroid, sized by the extent) and TEXT markers of one query.

    Marker ids are ``2 * index`` and ``2 * index + 1`` in namespace ``vpd_grounding``; both
    are DELETE markers when the grounding has no 3D result.
    """
    cube = Marker(header=msg.header, ns=MARKER_NAMESPACE, id=2 * index, type=Marker.CUBE)
    text = Marker(header=msg.header, ns=MARKER_NAMESPACE, id=2 * index + 1,
                  type=Marker.TEXT_VIEW_FACING)
    if not (msg.valid and msg.has_3d):
        cube.action = text.action = Marker.DELETE
        return [cube, text]
    cube.action = text.action = Marker.ADD
    cube.pose.position = copy.copy(msg.centroid)
    cube.pose.orientation.w = 1.0
    cube.scale.x = max(msg.extent.x, MIN_MARKER_SIZE)
    cube.scale.y = max(msg.extent.y, MIN_MARKER_SIZE)
    cube.scale.z = max(msg.extent.z, MIN_MARKER_SIZE)
    cube.color.r, cube.color.g, cube.color.b, cube.color.a = 0.9, 0.6, 0.0, 0.5
    text.pose.position.x = msg.centroid.x
    text.pose.position.y = msg.centroid.y - cube.scale.y / 2 - 0.05  # above: optical y is down
    text.pose.position.z = msg.centroid.z
    text.pose.orientation.w = 1.0
    text.scale.z = 0.08
    text.color.r = text.color.g = text.color.b = text.color.a = 1.0
    text.text = f'{msg.query} ({msg.score:.2f})'
    for marker in (cube, text):
        marker.lifetime = Duration()
    return [cube, text]


def delete_all_marker(header: Header) -> Marker:
    """Return a DELETEALL marker (standing queries changed: forget the old ones)."""
    return Marker(header=header, ns=MARKER_NAMESPACE, action=Marker.DELETEALL)


def camera_info_for_image(info: CameraInfo, header: Header,
                          image_size: Tuple[int, int], K: np.ndarray) -> CameraInfo:
    """Return ``info`` restamped with ``header`` and matching an image of ``image_size`` (w, h).

    ``K`` is the camera matrix for that image (from
    :func:`vpd_ros.engine.geometry.intrinsics_for_image`); when the CameraInfo was for another
    resolution, ``k`` and the 3x3 part of ``p`` are rescaled alike (``p``'s Tx and Ty
    scale with x and y); ROI and binning are copied unchanged.
    """
    out = copy.deepcopy(info)
    out.header = header
    width, height = image_size
    if (info.width, info.height) != (width, height):
        out.width, out.height = width, height
        out.k = np.asarray(K, dtype=np.float64).reshape(-1).tolist()
        P = np.asarray(info.p, dtype=np.float64).reshape(3, 4).copy()
        if P.any():  # an uncalibrated camera's all-zero P stays all zero
            P[:, :3] = scale_intrinsics(P[:, :3], (info.width, info.height), (width, height))
            P[0, 3] *= width / info.width
            P[1, 3] *= height / info.height
            out.p = P.reshape(-1).tolist()
    return out

