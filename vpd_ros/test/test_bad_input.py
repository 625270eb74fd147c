# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The bad-input catalogue of docs/reliability.md, each row against a real vpd_node over DDS.

One node process serves the module (random:tiny at a 64x64 model input, a standing query,
``max_image_pixels`` 100000 so "huge" needs no huge message). Every refused frame must give one
log line naming the reason, a /diagnostics entry carrying it, no output with its stamp, and the
next good frame must be processed (:meth:`NodeSession.assert_refused`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from helpers.camera import camera_info
from helpers.node_session import FRAME_ID, HEIGHT, WIDTH, NodeSession, solid_rgb
from helpers.vpd_client import image_msg
from lifecycle_msgs.msg import Transition
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vpd_ros_interfaces.srv import Ground, SetQuery

pytestmark = pytest.mark.ros

QUERY = 'the red mug'
MAX_PIXELS = 100_000


@pytest.fixture(scope='module')
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeSession]:
    """Start one vpd_node for the module."""
    s = NodeSession(tmp_path_factory.mktemp('vpd_bad_input'), {
        'input_size': [64, 64], 'default_query': QUERY, 'device': 'cpu',
        'max_image_pixels': MAX_PIXELS, 'publish.points': False}, 'vpd_bad_input')
    try:
        s.process_good_frame()
        yield s
    finally:
        s.close()


def raw(encoding: str, width: int, height: int, step: int, data: bytes) -> Image:
    """Return an Image with exactly the given fields (header filled by the caller)."""
    msg = Image(encoding=encoding, width=width, height=height, step=step)
    msg.header.frame_id = FRAME_ID
    msg.data = data
    return msg


def publisher_of(session: NodeSession, make: Callable[[], Image]) -> Callable[[int], None]:
    """Return ``publish(sec)`` that stamps ``make()`` and publishes it on image."""
    def publish(sec: int) -> None:
        msg = make()
        msg.header.stamp.sec = sec
        session.image_pub.publish(msg)
    return publish


RGB = solid_rgb(WIDTH, HEIGHT).tobytes()


@pytest.mark.parametrize('name, make, reason', [
    ('unknown encoding', lambda: raw('yuv_made_up', WIDTH, HEIGHT, WIDTH * 3, RGB),
     r"unsupported image encoding 'yuv_made_up'"),
    ('unsupported encoding (bayer)',
     lambda: raw('bayer_rggb8', WIDTH, HEIGHT, WIDTH, RGB[:WIDTH * HEIGHT]),
     r"unsupported image encoding 'bayer_rggb8'"),
    ('depth 16UC1 as camera image', lambda: raw('16UC1', WIDTH, HEIGHT, WIDTH * 2,
                                                bytes(WIDTH * HEIGHT * 2)),
     r"depth encoding sent as a camera image: '16UC1'"),
    ('depth 32FC1 as camera image', lambda: raw('32FC1', WIDTH, HEIGHT, WIDTH * 4,
                                                np.ones(WIDTH * HEIGHT, np.float32).tobytes()),
     r"depth encoding sent as a camera image: '32FC1'"),
    ('step smaller than a row', lambda: raw('rgb8', WIDTH, HEIGHT, WIDTH * 3 - 3, RGB),
     r'step 477 is smaller than width \* bytes per pixel'),
    ('truncated data', lambda: raw('rgb8', WIDTH, HEIGHT, WIDTH * 3, RGB[:-WIDTH]),
     r'data length 57440 != step \* height = 480 \* 120'),
    ('data longer than step * height', lambda: raw('rgb8', WIDTH, HEIGHT - 1, WIDTH * 3, RGB),
     r'data length 57600 != step \* height = 480 \* 119'),
    ('zero size', lambda: raw('rgb8', 0, 0, 0, b''), r'empty image: width=0, height=0'),
    ('huge declared size, tiny data', lambda: raw('rgb8', 100_000, 100_000, 300_000, b'\0' * 3),
     r'image 100000x100000 has 10000000000 pixels, above max_pixels=100000'),
    ('huge real image', lambda: image_msg(solid_rgb(400, 300), FRAME_ID, 0),
     r'image 400x300 has 120000 pixels, above max_pixels=100000'),
])
def test_bad_raw_image_is_refused(session: NodeSession, name: str, make: Callable[[], Image],
                                  reason: str) -> None:
    """A raw Image the node cannot use is refused with its reason; the next frame works."""
    session.assert_refused(publisher_of(session, make), reason)


def test_refusal_log_is_rate_limited(session: NodeSession) -> None:
    """The same broken frame five times gives one log line, but five counted refusals."""
    make = lambda: raw('rgb8', WIDTH, HEIGHT, WIDTH * 3, RGB[:-7])  # noqa: E731
    reason = r'data length 57593 != step \* height'
    publish = publisher_of(session, make)
    before = session.totals()['decode_errors']
    session.assert_refused(publish, reason)
    for _ in range(4):
        publish(session.stamp())
        session.pause(0.5)
    session.diagnostic_status(lambda v: int(v['decode_errors_total']) >= before + 5)
    assert len([line for line in session.process.output().splitlines()
                if 'data length 57593' in line]) == 1


def _info(width: int, height: int, k: list[float] | None = None) -> CameraInfo:
    """Return the test CameraInfo for ``width`` x ``height``, with ``k`` replaced if given."""
    info = camera_info(width, height)
    if k is not None:
        info.k = k
    return info


def test_camera_info_of_a_scaled_size_rescales_k(session: NodeSession) -> None:
    """CameraInfo for twice the image size (same aspect) is scaled: 3D output and scaled K."""
    sec = session.stamp()
    full = _info(2 * WIDTH, 2 * HEIGHT)
    session.send_info(sec, full)
    session.image_pub.publish(image_msg(solid_rgb(WIDTH, HEIGHT, 90), FRAME_ID, sec))
    info = session.wait_output(session.depth_info, sec)
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    np.testing.assert_allclose(info.k[0], full.k[0] / 2, rtol=1e-6)
    np.testing.assert_allclose(info.k[2], (full.k[2] + 0.5) / 2 - 0.5, atol=0.6)


@pytest.mark.parametrize('name, info, reason', [
    ('size not a scale of the image', lambda: _info(WIDTH, WIDTH),
     r'camera_info unusable, no 3D output: .*'),
    ('K all zeros', lambda: _info(WIDTH, HEIGHT, [0.0] * 9),
     r'camera_info unusable, no 3D output: .*zero'),
    ('K with NaN', lambda: _info(WIDTH, HEIGHT, [math.nan] + [0.0] * 7 + [1.0]),
     r'camera_info unusable, no 3D output: .*finite'),
    ('K with Inf', lambda: _info(WIDTH, HEIGHT, [math.inf, 0.0, 80.0, 0.0, 100.0, 60.0,
                                                 0.0, 0.0, 1.0]),
     r'camera_info unusable, no 3D output: .*finite'),
])
def test_bad_camera_info_disables_3d_only(session: NodeSession, name: str,
                                          info: Callable[[], CameraInfo], reason: str) -> None:
    """Unusable CameraInfo: depth still published, groundings without 3D, reason logged."""
    before = session.totals()['camera_info_errors']
    sec = session.stamp()
    session.send_info(sec, info())
    session.image_pub.publish(session.good_image(sec))
    session.wait_output(session.depth, sec)
    grounding = session.wait_output(session.grounding, sec)
    assert not grounding.has_3d
    assert not [m for m in session.depth_info if m.header.stamp.sec == sec]
    session.diagnostic_status(lambda v: int(v['camera_info_errors_total']) > before)
    session.process.wait_for_line(reason, timeout=10)
    good = session.process_good_frame()
    assert session.wait_output(session.grounding, good).query == QUERY


def set_query(session: NodeSession, text: str) -> SetQuery.Response:
    """Call ~/set_query."""
    return session.client.call(SetQuery, f'{session.node_name}/set_query',
                               SetQuery.Request(query=text))


def test_blank_queries_mean_depth_only(session: NodeSession) -> None:
    """Empty and whitespace-only queries clear the standing query: depth, no grounding."""
    for text in ('', ' \t\n '):
        reply = set_query(session, text)
        assert reply.success and 'depth only' in reply.message
        sec = session.process_good_frame()
        session.pause(0.5)
        assert not [g for g in session.grounding if g.header.stamp.sec == sec]
    assert set_query(session, QUERY).success


@pytest.mark.parametrize('name, text, reason', [
    ('10 kB', 'a' * 10_000, r'10000 characters, more than max_query_length=200'),
    # NUL cannot be sent: DDS strings end at it. Escape sequences and BEL can.
    ('control characters', 'the red mug\x1b[31m\x07', r'control characters \(U\+0007, U\+001B\)'),
])
def test_bad_query_is_refused_and_the_standing_query_kept(session: NodeSession, name: str,
                                                          text: str, reason: str) -> None:
    """set_query refuses the text with the reason; the standing query and output continue."""
    reply = set_query(session, text)
    assert not reply.success and re.search(reason, reply.message), reply.message
    session.pause(0.3)
    assert session.current_query[-1].data == QUERY
    sec = session.process_good_frame()
    assert session.wait_output(session.grounding, sec).query == QUERY


def test_non_latin_query_is_grounded(session: NodeSession) -> None:
    """A Japanese (UTF-8) query is accepted and echoed unchanged in the Grounding."""
    text = '赤いマグカップ'
    assert set_query(session, text).success
    sec = session.process_good_frame()
    assert session.wait_output(session.grounding, sec).query == text
    assert set_query(session, QUERY).success


def test_query_longer_than_the_token_length_is_truncated_and_says_so(
        session: NodeSession) -> None:
    """A query beyond the text encoder's tokens is cut: the reply and Grounding.truncated say so."""
    text = ' '.join(['the small red mug on the wooden table'] * 4)
    reply = set_query(session, text)
    assert reply.success and 'truncated' in reply.message, reply.message
    sec = session.process_good_frame()
    grounding = session.wait_output(session.grounding, sec)
    assert grounding.query == text and grounding.truncated
    assert set_query(session, QUERY).success
    sec = session.process_good_frame()
    assert not session.wait_output(session.grounding, sec).truncated


@pytest.mark.parametrize('timeout', [math.nan, math.inf, -math.inf])
def test_ground_with_a_non_finite_timeout_is_refused(session: NodeSession,
                                                     timeout: float) -> None:
    """~/ground with a NaN or infinite timeout answers at once with the reason."""
    reply = session.client.call(Ground, f'{session.node_name}/ground',
                                Ground.Request(query=QUERY, timeout=timeout, use_latest=True),
                                timeout=10.0)
    assert not reply.success and 'timeout' in reply.message and 'finite' in reply.message
    assert session.process.poll() is None


def test_corrupt_compressed_images_are_refused(session: NodeSession) -> None:
    """On compressed transport: corrupt, empty and compressedDepth payloads are refused."""
    client, name = session.client, session.node_name
    assert client.change_state(name, Transition.TRANSITION_DEACTIVATE)
    assert client.set_parameters(name, {'image_transport': 'compressed'})[0].successful
    assert client.change_state(name, Transition.TRANSITION_ACTIVATE)
    session.wait_subscribed(session.compressed_pub)
    try:
        for fmt, data, reason in (
                ('png', b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4,
                 r'cannot decode CompressedImage \(format .png., 1032 bytes\)'),
                ('jpeg', b'', r'empty CompressedImage data'),
                ('16UC1; compressedDepth png', b'\x00' * 64,
                 r'depth encoding sent as a camera image: CompressedImage')):
            def publish(sec: int, fmt: str = fmt, data: bytes = data) -> None:
                msg = CompressedImage(format=fmt)
                msg.header.stamp.sec, msg.header.frame_id = sec, FRAME_ID
                msg.data = data
                session.compressed_pub.publish(msg)
            session.assert_refused(publish, reason, publisher=session.compressed_pub,
                                   good=_png)
    finally:
        assert client.change_state(name, Transition.TRANSITION_DEACTIVATE)
        client.set_parameters(name, {'image_transport': 'raw'})
        assert client.change_state(name, Transition.TRANSITION_ACTIVATE)


def _png(sec: int) -> CompressedImage:
    """Return a valid png CompressedImage stamped ``sec``."""
    import cv2

    ok, data = cv2.imencode('.png', solid_rgb(WIDTH, HEIGHT, 60))
    msg = CompressedImage(format='png')
    msg.header.stamp.sec = sec
    msg.data = data.tobytes()
    return msg
