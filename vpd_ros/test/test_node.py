# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""vpd_node as a real process on DDS: outputs, queries, grounding and bad input.

One node process serves the whole module (raw images, random:tiny at a 128x128 model input);
this process publishes frames and compares what comes back with the engine run directly on the
same pixels. Each test sends the frames and sets the threshold it relies on, so the tests pass
alone and in any order.
"""

from __future__ import annotations

from collections.abc import Iterator

import harness
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from helpers.camera import camera_frame, camera_info
from helpers.vpd_client import LATCHED, Client, image_array, image_msg, start_node
from rcl_interfaces.srv import GetParameters
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from vpd_ros.engine import EngineConfig, EngineSpec, VPDEngine, load_engine
from vpd_ros_interfaces.msg import Grounding
from vpd_ros_interfaces.srv import Ground, SetQuery

pytestmark = pytest.mark.ros

WIDTH, HEIGHT = 160, 120
INPUT_SIZE = (128, 128)
FRAME_ID = 'test_camera_optical_frame'
QUERY = 'the red mug'


class Session:
    """The node process, this process's client and an engine equal to the node's."""

    def __init__(self, process: harness.RosProcess, client: Client, engine: VPDEngine) -> None:
        self.process, self.client, self.engine = process, client, engine
        self.mask_threshold = 0.5  # the node's mask_threshold as the tests last set it
        self.node_name = client.name('vpd_node')
        self.depth = client.collect(Image, 'depth')
        self.info = client.collect(CameraInfo, 'depth/camera_info')
        self.mask = client.collect(Image, 'mask')
        self.grounding = client.collect(Grounding, 'grounding')
        self.current_query = client.collect(String, 'current_query', LATCHED)
        self.diagnostics = client.collect(DiagnosticArray, '/diagnostics')
        self.image_pub = client.publisher(Image, 'image')
        self.info_pub = client.publisher(CameraInfo, 'camera_info')
        ready = lambda: (self.image_pub.get_subscription_count() > 0  # noqa: E731
                         and self.info_pub.get_subscription_count() > 0)
        assert client.spin_until(ready, 30), process.output()

    def send(self, rgb: np.ndarray, sec: int, encoding: str = 'rgb8') -> None:
        """Publish camera_info, let it arrive, then the frame with stamp ``sec``."""
        info = camera_info(rgb.shape[1], rgb.shape[0])
        info.header.frame_id, info.header.stamp.sec = FRAME_ID, sec
        self.info_pub.publish(info)
        self.client.spin_until(lambda: False, 0.2)
        self.image_pub.publish(image_msg(rgb, FRAME_ID, sec, encoding))

    def wait_for(self, messages: list, sec: int, count: int = 1, timeout: float = 60) -> list:
        """Return the ``count`` messages stamped ``sec`` once they arrived (fail otherwise)."""
        def stamped() -> list:
            return [m for m in messages if m.header.stamp.sec == sec]
        assert self.client.spin_until(lambda: len(stamped()) >= count, timeout), \
            self.process.output()[-3000:]
        return stamped()

    def use_median_threshold(self, rgb: np.ndarray, query: str) -> float:
        """Set the node's mask threshold (and ``mask_threshold``) to the median probability.

        The mask of ``query`` on ``rgb`` is then neither empty nor full, so comparisons mean
        something.
        """
        threshold = float(np.median(self.engine.predict(rgb, [query]).probs[0]))
        result = self.client.set_parameters(self.node_name, {'mask_threshold': threshold})[0]
        assert result.successful, result.reason
        self.mask_threshold = threshold
        return threshold

    def diagnostic_values(self) -> dict[str, str]:
        """Wait for the node's next /diagnostics message and return its key/values."""
        count = len(self.diagnostics)
        assert self.client.spin_until(lambda: len(self.diagnostics) > count, 5)
        return {kv.key: kv.value for kv in self.diagnostics[-1].status[0].values}

    def set_query(self, text: str) -> SetQuery.Response:
        """Call ~/set_query."""
        return self.client.call(SetQuery, f'{self.node_name}/set_query', SetQuery.Request(
            query=text))


@pytest.fixture(scope='module')
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """Start one vpd_node for the module with a standing query, and the client."""
    tmp = tmp_path_factory.mktemp('vpd_node')
    namespace = '/' + harness.unique_name('vpd_node_test')
    process = start_node(tmp, harness.ros_env(tmp), namespace, {
        'input_size': list(INPUT_SIZE), 'default_query': QUERY, 'device': 'cpu'})
    client = Client(namespace)
    try:
        engine = load_engine(EngineSpec(weights='random:tiny'),
                             EngineConfig(device='cpu', input_size=INPUT_SIZE))
        yield Session(process, client, engine)
    finally:
        client.close()
        process.stop()


def frame(index: int) -> np.ndarray:
    """Return test frame ``index`` at the module's size."""
    return camera_frame(7, index, WIDTH, HEIGHT)


def assert_masks_match(published: np.ndarray, prob: np.ndarray, threshold: float) -> None:
    """The node's mono8 mask is the engine's mask; pixels within 1e-4 of the threshold may flip."""
    assert set(np.unique(published)) <= {0, 255}
    expected = prob > threshold
    differ = (published == 255) != expected
    assert not np.any(differ & (np.abs(prob - threshold) > 1e-4)), int(differ.sum())


def test_outputs_match_the_engine(session: Session) -> None:
    """Depth, camera_info, mask and grounding keep the input header and size, and equal the engine.

    The mask threshold is set at runtime to the median probability so that the mask is neither
    empty nor full, which makes the comparison meaningful.
    """
    rgb = frame(0)
    threshold = session.use_median_threshold(rgb, QUERY)
    session.send(rgb, 42)

    depth_msg = session.wait_for(session.depth, 42)[0]
    mask_msg = session.wait_for(session.mask, 42)[0]
    info_msg = session.wait_for(session.info, 42)[0]
    grounding = session.wait_for(session.grounding, 42)[0]
    expected = session.engine.predict(rgb, [QUERY])

    for msg in (depth_msg, mask_msg, info_msg, grounding):
        assert msg.header.frame_id == FRAME_ID and msg.header.stamp.nanosec == 0
    assert (depth_msg.width, depth_msg.height, depth_msg.encoding) == (WIDTH, HEIGHT, '32FC1')
    assert (mask_msg.width, mask_msg.height, mask_msg.encoding) == (WIDTH, HEIGHT, 'mono8')
    assert (info_msg.width, info_msg.height) == (WIDTH, HEIGHT)
    np.testing.assert_allclose(image_array(depth_msg), expected.depth, rtol=1e-5, atol=1e-5)
    mask = image_array(mask_msg)
    assert 0.1 < (mask == 255).mean() < 0.9
    assert_masks_match(mask, expected.probs[0], threshold)
    assert grounding.query == QUERY and grounding.valid and grounding.has_3d
    assert grounding.pixel_count == int((mask == 255).sum())
    np.testing.assert_array_equal(image_array(grounding.mask), mask)
    assert session.current_query[-1].data == QUERY


def test_set_query_changes_masks_and_batches_several(session: Session) -> None:
    """set_query with two queries: two Groundings, the mask of the first; blank: depth only."""
    rgb = frame(1)
    threshold = session.use_median_threshold(rgb, 'a chair')
    reply = session.set_query('a chair;  the red mug ')
    assert reply.success, reply.message
    assert session.client.spin_until(
        lambda: session.current_query[-1].data == 'a chair; the red mug', 10)
    session.send(rgb, 43, encoding='bgr8')
    groundings = session.wait_for(session.grounding, 43, count=2)
    mask = image_array(session.wait_for(session.mask, 43)[0])
    expected = session.engine.predict(rgb, ['a chair', QUERY])
    assert [g.query for g in groundings] == ['a chair', QUERY]
    assert_masks_match(mask, expected.probs[0], threshold)
    assert_masks_match(image_array(groundings[1].mask), expected.probs[1], threshold)
    assert np.any(image_array(groundings[0].mask) != image_array(groundings[1].mask))

    reply = session.set_query('   ')
    assert reply.success and 'depth only' in reply.message
    session.send(rgb, 44)
    session.wait_for(session.depth, 44)
    session.client.spin_until(lambda: False, 0.5)
    assert not [m for m in session.mask + session.grounding if m.header.stamp.sec == 44]

    reply = session.set_query('x' * 201)
    assert not reply.success and 'max_query_length' in reply.message
    assert session.set_query(QUERY).success


def test_ground_returns_a_grounding_consistent_with_depth(session: Session) -> None:
    """~/ground answers on the latest frame; its centroid back-projects from depth, K and mask.

    The standing query stays as it was, and a request for the next frame is served on it.
    """
    client, service = session.client, f'{session.node_name}/ground'
    session.use_median_threshold(frame(2), 'a lamp')  # a mask neither empty nor full
    session.send(frame(2), 46)  # the latest frame that use_latest grounds on
    session.wait_for(session.depth, 46)
    reused = int(session.diagnostic_values()['ground_reused_total'])
    reply = client.call(Ground, service, Ground.Request(query='a lamp', use_latest=True))
    assert reply.success, reply.message
    # The engine kept frame 46's latents and depth: only the text and referring pass ran.
    assert client.spin_until(
        lambda: int(session.diagnostic_values()['ground_reused_total']) > reused, 10)
    result = reply.result
    sec = result.header.stamp.sec
    depth = image_array(session.wait_for(session.depth, sec)[0])
    info = session.wait_for(session.info, sec)[0]
    mask = image_array(result.mask) == 255
    assert result.query == 'a lamp' and result.valid and result.has_3d
    ys, xs = np.nonzero(mask)
    assert (result.x_min, result.y_min, result.x_max, result.y_max) == (
        xs.min(), ys.min(), xs.max(), ys.max())
    fx, cx, fy, cy = info.k[0], info.k[2], info.k[4], info.k[5]
    z = depth[ys, xs]
    points = np.stack([(xs - cx) / fx * z, (ys - cy) / fy * z, z], axis=1)
    low, high = points.min(axis=0), points.max(axis=0)
    centroid = np.array([result.centroid.x, result.centroid.y, result.centroid.z])
    assert np.all(centroid >= low) and np.all(centroid <= high)
    np.testing.assert_allclose(centroid, points.mean(axis=0), atol=0.05 * (high - low).max())
    assert session.current_query[-1].data == QUERY

    future = client.node.create_client(Ground, service).call_async(
        Ground.Request(query='a lamp', timeout=60.0, use_latest=False))
    client.spin_until(lambda: False, 0.5)
    assert not future.done()
    session.send(frame(2), 45)
    assert client.spin_until(future.done, 60), session.process.output()[-3000:]
    assert future.result().success and future.result().result.header.stamp.sec == 45
    assert [g.query for g in session.wait_for(session.grounding, 45)] == [QUERY]

    reply = client.call(Ground, service, Ground.Request(query='a lamp', timeout=0.3))
    assert not reply.success and 'timed out after 0.30 s waiting for a frame' in reply.message


def test_bad_input_is_refused_and_the_next_frame_processed(session: Session) -> None:
    """A depth image and a truncated image give no output, one log line each, and count."""
    rgb = frame(3)
    start_totals = session.diagnostic_values()
    depth_image = Image(height=HEIGHT, width=WIDTH, encoding='32FC1', step=WIDTH * 4)
    depth_image.header.stamp.sec, depth_image.header.frame_id = 50, FRAME_ID
    depth_image.data = np.ones((HEIGHT, WIDTH), np.float32).tobytes()
    session.image_pub.publish(depth_image)
    session.client.spin_until(lambda: False, 1.0)
    truncated = image_msg(rgb, FRAME_ID, 51)
    truncated.data = bytes(truncated.data)[:-WIDTH]
    session.image_pub.publish(truncated)
    session.client.spin_until(lambda: False, 1.0)
    session.send(rgb, 52)
    session.wait_for(session.depth, 52)
    assert not [m for m in session.depth if m.header.stamp.sec in (50, 51)]
    session.process.wait_for_line(r"image refused: depth encoding sent as a camera image: "
                                  r"'32FC1'", timeout=10)

    def grew(key: str) -> int:  # in the newest /diagnostics, since the test started
        values = {kv.key: kv.value for kv in session.diagnostics[-1].status[0].values}
        return int(values[key]) - int(start_totals[key])
    # A report can be taken between frame 52's publishing and its count: wait for the count.
    assert session.client.spin_until(
        lambda: grew('decode_errors_total') >= 2 and grew('processed_total') >= 1, 10)
    stages = {kv.key for diag in session.diagnostics for kv in diag.status[0].values
              if kv.key.startswith('latency_ms.')}
    assert {'latency_ms.decode', 'latency_ms.engine.refer', 'latency_ms.encode',
            'latency_ms.publish'} <= stages


def test_caption_topic_sets_the_parameter_and_vpd_says_once_it_is_ignored(
        session: Session) -> None:
    """~/caption sets depth_caption (last writer wins); bad text is refused; frames go on.

    The module's engine is VPD, which takes no caption: one warning for the whole process.
    """
    client = session.client
    publisher = client.publisher(String, 'vpd_node/caption')
    assert client.spin_until(lambda: publisher.get_subscription_count() > 0, 30)

    def caption() -> str:
        reply = client.call(GetParameters, f'{session.node_name}/get_parameters',
                            GetParameters.Request(names=['depth_caption']))
        return reply.values[0].string_value

    def wait_caption(text: str) -> None:
        assert client.spin_until(lambda: caption() == text, 10), caption()

    publisher.publish(String(data='a kitchen with two windows'))
    wait_caption('a kitchen with two windows')
    session.process.wait_for_line(r'depth_caption / ~/caption ignored: this depth model is VPD',
                                  timeout=10)
    assert client.set_parameters(session.node_name, {'depth_caption': 'a hall'})[0].successful
    publisher.publish(String(data='a long corridor'))  # the newest writer wins, topic or param
    wait_caption('a long corridor')
    publisher.publish(String(data='a hall\x1b[31m'))
    session.process.wait_for_line(r'~/caption refused: depth_caption contains control '
                                  r'characters \(U\+001B\)', timeout=10)
    assert caption() == 'a long corridor'
    session.send(frame(4), 60)  # a caption never stops VPD frames
    session.wait_for(session.depth, 60)
    assert session.process.output().count('~/caption ignored') == 1
    assert client.set_parameters(session.node_name, {'depth_caption': ''})[0].successful
