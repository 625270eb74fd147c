# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""vpd_ros_interfaces as built into the venv: field contract and serialisation.

Calls over DDS are tested against the real vpd_node (test_node.py, test_bad_input.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from vpd_ros_interfaces.msg import Grounding
from vpd_ros_interfaces.srv import Ground, SetQuery

GROUNDING_FIELDS = {
    'header': 'std_msgs/Header',
    'query': 'string',
    'score': 'float',
    'valid': 'boolean',
    'truncated': 'boolean',
    'x_min': 'int32',
    'y_min': 'int32',
    'x_max': 'int32',
    'y_max': 'int32',
    'pixel_count': 'uint32',
    'has_3d': 'boolean',
    'centroid': 'geometry_msgs/Point',
    'extent': 'geometry_msgs/Vector3',
    'depth_samples': 'uint32',
    'mask': 'sensor_msgs/Image',
}


@pytest.mark.parametrize('interface, fields', [
    (Grounding, GROUNDING_FIELDS),
    (SetQuery.Request, {'query': 'string'}),
    (SetQuery.Response, {'success': 'boolean', 'message': 'string'}),
    (Ground.Request, {'query': 'string', 'timeout': 'float', 'use_latest': 'boolean'}),
    (Ground.Response, {'success': 'boolean', 'message': 'string',
                       'result': 'vpd_ros_interfaces/Grounding'}),
])
def test_interface_fields_follow_the_contract(interface: type, fields: dict[str, str]) -> None:
    """The generated types carry exactly the documented fields, in order, with their types."""
    assert interface.get_fields_and_field_types() == fields
    assert list(interface.get_fields_and_field_types()) == list(fields)


def test_grounding_serialization_round_trip() -> None:
    """A fully populated Grounding (with a mono8 mask) survives CDR serialisation unchanged."""
    rng = np.random.default_rng(7)
    mask = np.where(rng.random((48, 64)) > 0.5, 255, 0).astype(np.uint8)
    msg = Grounding()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000, 123_456_789
    msg.header.frame_id = 'camera_color_optical_frame'
    msg.query = 'the red mug'
    msg.score, msg.valid, msg.truncated = 0.8125, True, True
    ys, xs = np.nonzero(mask)
    msg.x_min, msg.y_min = int(xs.min()), int(ys.min())
    msg.x_max, msg.y_max = int(xs.max()), int(ys.max())
    msg.pixel_count = int(mask.astype(bool).sum())
    msg.has_3d, msg.depth_samples = True, msg.pixel_count - 3
    msg.centroid.x, msg.centroid.y, msg.centroid.z = 0.125, -0.25, 1.5
    msg.extent.x, msg.extent.y, msg.extent.z = 0.08, 0.11, 0.09
    msg.mask.header = msg.header
    msg.mask.height, msg.mask.width = mask.shape
    msg.mask.encoding, msg.mask.step = 'mono8', mask.shape[1]
    msg.mask.data = mask.tobytes()

    data = serialize_message(msg)
    back = deserialize_message(data, Grounding)

    assert isinstance(data, bytes) and len(data) > mask.size
    assert back == msg
    restored = np.frombuffer(back.mask.data, dtype=np.uint8).reshape(back.mask.height, -1)
    np.testing.assert_array_equal(restored, mask)
    assert back.header.frame_id == 'camera_color_optical_frame'
    assert back.mask.header == back.header


def test_ground_response_round_trip() -> None:
    """A Ground response nests a Grounding that survives serialisation too."""
    response = Ground.Response(success=True, message='ok')
    response.result.query = 'a chair'
    response.result.x_max = 639
    back = deserialize_message(serialize_message(response), Ground.Response)
    assert back == response
    assert back.result.query == 'a chair' and back.result.x_max == 639

