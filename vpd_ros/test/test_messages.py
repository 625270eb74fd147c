# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Unit tests of vpd_ros.ros.messages: a frame's topics, Grounding, markers, CameraInfo."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from vpd_ros.engine.geometry import GroundingResult, ground_object, scale_intrinsics
from vpd_ros.engine.runner import Prediction
from vpd_ros.ros.conversions import camera_info_to_model
from vpd_ros.ros.messages import (MARKER_NAMESPACE, MIN_MARKER_SIZE, camera_info_for_image,
                                  delete_all_marker, frame_messages, grounding_markers,
                                  grounding_msg, groundings)
from vpd_ros.ros.params import PARAMETERS

HEADER = Header(stamp=Time(sec=7, nanosec=9), frame_id='camera_optical_frame')
K = np.array([[300.0, 0.0, 159.5], [0.0, 310.0, 119.5], [0.0, 0.0, 1.0]])


def _info(**fields: object) -> CameraInfo:
    P = np.hstack([K, [[15.0], [0.0], [0.0]]])
    info = CameraInfo(width=320, height=240, k=K.ravel().tolist(), p=P.ravel().tolist(),
                      d=[-0.2, 0.05, 0.0, 0.0, 0.0], distortion_model='plumb_bob')
    for name, value in fields.items():
        setattr(info, name, value)
    return info


def test_grounding_msg_carries_the_result_and_mask() -> None:
    """Box, score, 3D centroid and extent, the truncation flag and a mono8 mask."""
    mask = np.zeros((40, 60), bool)
    mask[10:20, 5:30] = True
    depth = np.full(mask.shape, 2.0, np.float32)
    result = ground_object(mask, depth, K, np.where(mask, 0.8, 0.1).astype(np.float32))
    msg = grounding_msg(result, HEADER, 'the mug', True, mask)
    assert (msg.query, msg.valid, msg.truncated, msg.has_3d) == ('the mug', True, True, True)
    assert (msg.x_min, msg.y_min, msg.x_max, msg.y_max) == (5, 10, 29, 19)
    assert msg.pixel_count == 250 and msg.score == pytest.approx(0.8)
    assert msg.centroid.z == pytest.approx(2.0) and msg.depth_samples == result.depth_samples
    assert msg.extent.x == pytest.approx(result.extent[0])
    assert msg.header == HEADER and msg.mask.header == HEADER
    assert msg.mask.encoding == 'mono8' and (msg.mask.height, msg.mask.width) == (40, 60)
    assert np.count_nonzero(np.frombuffer(bytes(msg.mask.data), np.uint8)) == 250


def test_invalid_grounding_has_zero_score_and_delete_markers() -> None:
    """An empty mask: invalid, no 3D, both markers DELETE with their ids."""
    msg = grounding_msg(GroundingResult(valid=False, pixel_count=0, score=0.4), HEADER, 'x',
                        False, np.zeros((4, 4), bool))
    assert not msg.valid and msg.score == 0.0 and not msg.has_3d
    cube, text = grounding_markers(msg, 3)
    assert (cube.id, text.id) == (6, 7)
    assert cube.action == text.action == Marker.DELETE
    assert cube.ns == text.ns == MARKER_NAMESPACE


def test_markers_sit_at_the_centroid_and_keep_a_minimum_size() -> None:
    """The cube is centred and sized by the extent (never below MIN_MARKER_SIZE), text above."""
    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:40] = True
    msg = grounding_msg(ground_object(mask, np.full(mask.shape, 1.5, np.float32), K), HEADER,
                        'a box', False, mask)
    cube, text = grounding_markers(msg, 0)
    assert cube.type == Marker.CUBE and text.type == Marker.TEXT_VIEW_FACING
    assert cube.action == Marker.ADD and cube.header == HEADER
    assert (cube.pose.position.x, cube.pose.position.z) == (msg.centroid.x, msg.centroid.z)
    assert cube.scale.z == MIN_MARKER_SIZE  # a flat patch has no depth extent
    assert cube.scale.x == pytest.approx(msg.extent.x)
    assert text.pose.position.y < cube.pose.position.y and 'a box' in text.text
    assert delete_all_marker(HEADER).action == Marker.DELETEALL


def test_camera_info_of_the_same_image_is_the_input_restamped() -> None:
    """Same size (or the ROI/binning size) keeps every field but the header."""
    for info in (_info(), _info(binning_x=2, binning_y=2)):
        out = camera_info_for_image(info, HEADER, (info.width // max(info.binning_x, 1),
                                                   info.height // max(info.binning_y, 1)))
        assert out.header == HEADER
        assert (list(out.k), list(out.p), list(out.d)) == (list(info.k), list(info.p),
                                                           list(info.d))
        assert (out.binning_x, out.width) == (info.binning_x, info.width)


def test_camera_info_of_a_resized_image_is_scaled_once() -> None:
    """A half-size image: K and P scaled by scale_intrinsics, P's Tx with it, D kept."""
    out = camera_info_for_image(_info(), HEADER, (160, 120))
    half = scale_intrinsics(K, (320, 240), (160, 120))
    np.testing.assert_allclose(np.reshape(out.k, (3, 3)), half)
    P = np.reshape(out.p, (3, 4))
    np.testing.assert_allclose(P[:, :3], half)
    assert P[0, 3] == pytest.approx(7.5)
    assert (out.width, out.height, list(out.d)) == (160, 120, list(_info().d))


def test_camera_info_folds_roi_and_binning_into_a_resized_image() -> None:
    """ROI + binning + a further resize: the output describes the same rays as the input."""
    info = _info(binning_x=2, binning_y=2)
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 40, 20, 200, 160
    out = camera_info_for_image(info, HEADER, (50, 40))
    assert (out.binning_x, out.binning_y, out.roi.width, out.width) == (0, 0, 0, 50)
    np.testing.assert_allclose(camera_info_to_model(out).rays((50, 40)),
                               camera_info_to_model(info).rays((50, 40)), atol=1e-6)


def _prediction(depth: bool = True) -> Prediction:
    """Two queries on a 48x64 frame: a filled box and an empty mask."""
    masks = np.zeros((2, 48, 64), bool)
    masks[0, 10:20, 5:30] = True
    return Prediction(depth=np.full((48, 64), 2.0, np.float32) if depth else None, masks=masks,
                      probs=np.where(masks, 0.8, 0.1).astype(np.float32), scores=[0.8, 0.0],
                      truncated=[False, True])


#: Every publish.* setting on, as config/vpd.yaml ships them.
SETTINGS = {spec.name: spec.default for spec in PARAMETERS}


def test_groundings_follow_the_queries_and_need_rays_for_3d() -> None:
    """One Grounding per query in order; 3D only with rays, the truncation flag passed on."""
    prediction = _prediction()
    rays = camera_info_to_model(_info()).rays((64, 48))
    flat, solid = (groundings(prediction, HEADER, ['a mug', 'a cat'], r) for r in (None, rays))
    assert [g.query for g in solid] == ['a mug', 'a cat']
    assert [g.valid for g in solid] == [True, False] and [g.truncated for g in solid] == [
        False, True]
    assert solid[0].has_3d and solid[0].centroid.z == pytest.approx(2.0)
    assert not flat[0].has_3d and flat[0].pixel_count == solid[0].pixel_count


def test_frame_messages_with_every_output_wanted() -> None:
    """All outputs, in publishing order, for the standing queries only, stamped as the input."""
    prediction, rgb = _prediction(), np.zeros((48, 64, 3), np.uint8)
    info = _info()
    rays = camera_info_to_model(info).rays((64, 48))
    found = groundings(prediction, HEADER, ['a mug', 'a cat'], rays)
    out = frame_messages(prediction, HEADER, rgb, info, rays, ['a mug'], found, SETTINGS,
                         {'depth/colorized', 'points', 'mask/overlay'}, refer=True)
    assert [name for name, _ in out] == ['depth', 'depth/camera_info', 'depth/colorized',
                                         'points', 'mask', 'grounding', 'grounding/marker',
                                         'grounding/marker', 'mask/overlay']
    msgs = dict(out)
    assert all(m.header == HEADER for m in msgs.values())
    assert msgs['depth'].encoding == '32FC1' and msgs['depth/camera_info'].width == 64
    assert msgs['mask'] is found[0].mask and msgs['grounding'] is found[0]
    assert msgs['mask/overlay'].encoding == 'bgr8' and msgs['points'].width > 0


def test_frame_messages_skip_what_nobody_wants() -> None:
    """Unsubscribed visualisations, switched-off topics, missing depth, info or refer: absent."""
    prediction, rgb = _prediction(), np.zeros((48, 64, 3), np.uint8)
    found = groundings(prediction, HEADER, ['a mug'], None)
    unsubscribed = frame_messages(prediction, HEADER, rgb, None, None, ['a mug'], found,
                                  SETTINGS, set(), refer=True)
    assert [name for name, _ in unsubscribed] == ['depth', 'mask', 'grounding',
                                                  'grounding/marker', 'grounding/marker']
    off = dict(SETTINGS, **{'publish.depth': False, 'publish.mask': False,
                            'publish.marker': False, 'publish.overlay': False})
    assert [name for name, _ in frame_messages(
        prediction, HEADER, rgb, _info(), None, ['a mug'], found, off, {'mask/overlay'},
        refer=True)] == ['grounding']
    no_depth = _prediction(depth=False)
    assert [name for name, _ in frame_messages(
        no_depth, HEADER, rgb, _info(), None, [], [], SETTINGS,
        {'depth/colorized', 'points', 'mask/overlay'}, refer=False)] == []
