# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Output messages built from engine and geometry results: one frame's topics and their parts.

Every builder takes the INPUT frame's header and copies it unchanged, so stamps and frame ids
of all outputs match the camera image they came from.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Collection, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from builtin_interfaces.msg import Duration
from sensor_msgs.msg import CameraInfo, RegionOfInterest
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from vpd_ros.engine.geometry import GroundingResult, ground_object, scale_intrinsics
from vpd_ros.engine.visualize import colorize_depth, overlay_masks
from vpd_ros.ros.conversions import (bgr_to_image, depth_to_image, depth_to_pointcloud2,
                                     mask_to_image)
from vpd_ros_interfaces.msg import Grounding

if TYPE_CHECKING:  # the runner imports torch; messages only read a Prediction's arrays
    from vpd_ros.engine.runner import Prediction

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
                          image_size: Tuple[int, int]) -> CameraInfo:
    """Return ``info`` restamped with ``header`` and describing an image of ``image_size`` (w, h).

    An image of the size the CameraInfo describes (after its ROI and binning) keeps it as sent.
    Another size (a downscaled stream) gets ``k`` and ``p``'s 3x3 part for that image, with the
    ROI and binning folded in (both then reset); D is unchanged, as distortion acts on
    normalised coordinates. Pixel centres stay integers (:func:`scale_intrinsics`).
    """
    out = copy.deepcopy(info)
    out.header = header
    width, height = image_size
    roi = info.roi
    x0, y0 = roi.x_offset, roi.y_offset
    roi_size = (roi.width or info.width - x0, roi.height or info.height - y0)
    binned = (roi_size[0] // max(info.binning_x, 1), roi_size[1] // max(info.binning_y, 1))
    if binned == (width, height):
        return out
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
    K = shift @ np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    out.k = scale_intrinsics(K, roi_size, (width, height)).reshape(-1).tolist()
    P = np.asarray(info.p, dtype=np.float64).reshape(3, 4).copy()
    if P.any():  # an uncalibrated camera's all-zero P stays all zero
        P[:, :3] = scale_intrinsics(shift @ P[:, :3], roi_size, (width, height))
        P[0, 3] *= width / roi_size[0]
        P[1, 3] *= height / roi_size[1]
        out.p = P.reshape(-1).tolist()
    out.width, out.height = width, height
    out.binning_x = out.binning_y = 0
    out.roi = RegionOfInterest()
    return out



def groundings(prediction: Prediction, header: Header, queries: Sequence[str],
               rays: Optional[np.ndarray]) -> List[Grounding]:
    """Return one Grounding per query of ``prediction`` (3D only with ``rays`` and depth)."""
    return [grounding_msg(ground_object(mask, prediction.depth, rays, prob), header, query, cut,
                          mask)
            for query, mask, prob, cut in zip(queries, prediction.masks, prediction.probs,
                                               prediction.truncated)]


def frame_messages(prediction: Prediction, header: Header, rgb: np.ndarray,
                   info: Optional[CameraInfo], rays: Optional[np.ndarray],
                   standing: Sequence[str], frame_groundings: Sequence[Grounding],
                   settings: Mapping[str, Any], subscribed: Collection[str],
                   refer: bool) -> List[Tuple[str, Any]]:
    """Build the messages of one frame as (topic, message), in publishing order.

    ``frame_groundings`` start with the ``standing`` queries' ones; ``settings`` are the node's
    parameter values (``publish.*``, ``points_step``); ``subscribed`` names the output topics
    with subscribers (the costly visualisations are built only for them); ``refer`` says
    whether the engine has a referring model (the overlay needs one).
    """
    out: List[Tuple[str, Any]] = []
    depth = prediction.depth
    if depth is not None and settings['publish.depth']:
        out.append(('depth', depth_to_image(depth, header)))
        if info is not None:
            out.append(('depth/camera_info', camera_info_for_image(
                info, header, (rgb.shape[1], rgb.shape[0]))))
    if depth is not None and settings['publish.colorized'] and 'depth/colorized' in subscribed:
        out.append(('depth/colorized', bgr_to_image(colorize_depth(depth), header)))
    if depth is not None and rays is not None and settings['publish.points'] and \
            'points' in subscribed:
        out.append(('points', depth_to_pointcloud2(depth, rays, header,
                                                   int(settings['points_step']), rgb)))
    n = len(standing)
    if n and settings['publish.mask']:
        out.append(('mask', frame_groundings[0].mask))  # the first standing query's mono8 mask
    if settings['publish.grounding']:
        out += [('grounding', g) for g in frame_groundings[:n]]
    if settings['publish.marker']:
        out += [('grounding/marker', m)
                for i, g in enumerate(frame_groundings[:n]) for m in grounding_markers(g, i)]
    if refer and settings['publish.overlay'] and 'mask/overlay' in subscribed:
        labels = [f'{q} {s:.2f}' for q, s in zip(standing, prediction.scores)]
        overlay = overlay_masks(rgb, list(prediction.masks[:n]), labels)
        out.append(('mask/overlay', bgr_to_image(overlay, header)))
    return out
