# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Faults around a running vpd_node: memory exhaustion, camera loss, lifecycle churn, signals.

One node process serves the module (random:tiny, 64x64 model input, a standing query). Weight
file faults (missing, truncated, wrong layout, pickles carrying code) are in test_security.py.

Out of memory on a frame is real, not mocked: the test lowers the running node's address-space
limit (``prlimit`` on its pid, what a container memory limit does) and sends a frame that the
node's own cap allows but whose processing needs more memory than is left. The allocation fails
inside the real decode/model path; the node must drop that frame, report ERROR on /diagnostics
and process the next frame normally. (On CUDA the same path raises torch.cuda.OutOfMemoryError,
which the node handles in the same place and additionally empties the CUDA cache.)
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Iterator

import harness
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from helpers.node_session import NodeSession, solid_rgb
from helpers.vpd_client import image_msg
from lifecycle_msgs.msg import Transition
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from vpd_ros.ros.node import EXECUTOR_THREADS
from vpd_ros.apps.measure import process_sample
from vpd_ros_interfaces.srv import SetQuery

pytestmark = pytest.mark.ros

CAMERA = os.path.join(os.path.dirname(__file__), 'helpers', 'camera.py')
QUERY = 'the red mug'
#: Lifecycle cycles of each kind, and the allowed RSS trend over their second half (least
#: squares, MB per cycle). RSS swings by about the model's size (27 MB for tiny) as the
#: allocator returns freed weights to the OS or keeps them, and may step up once while its pools
#: grow, so single samples are no measure; a leak repeats every cycle (a leaked tiny engine would
#: be 27 MB/cycle) and shows in the second half as in the first.
CYCLES = 12
RSS_TREND_BOUND_MB = 2.0


@pytest.fixture(scope='module')
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeSession]:
    """Start one vpd_node for the module."""
    s = NodeSession(tmp_path_factory.mktemp('vpd_faults'), {
        'input_size': [64, 64], 'default_query': QUERY, 'device': 'cpu',
        'publish.points': False}, 'vpd_faults')
    try:
        s.process_good_frame()
        yield s
    finally:
        s.close()


def camera(session: NodeSession, name: str, *args: str) -> harness.RosProcess:
    """Return a camera child (helpers/camera.py) in the node's namespace, not yet started."""
    return harness.RosProcess(harness.python_command(
        CAMERA, '--namespace', session.namespace, '--width', '160', '--height', '120', *args),
        session.env, session.tmp / f'{name}.log')


def test_camera_dies_and_returns(session: NodeSession) -> None:
    """A camera killed mid-stream and a new one started: processing resumes on its frames."""
    with camera(session, 'camera_a', '--count', '100', '--rate', '10',
                '--stamp-base', '5000') as first:
        first.wait_for_line(r'^SENT 3$', timeout=60)
        assert session.client.spin_until(
            lambda: any(5000 <= m.header.stamp.sec < 5100 for m in session.depth), 60)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    session.pause(1.0)
    with camera(session, 'camera_b', '--count', '3', '--stamp-base', '6000') as second:
        second.wait_for_line(r'^DONE$', timeout=60)
        assert session.client.spin_until(
            lambda: any(6000 <= m.header.stamp.sec < 6003 for m in session.depth), 60), \
            session.process.output()[-3000:]
    assert session.process.poll() is None


def test_query_service_hammered_while_streaming(session: NodeSession) -> None:
    """A burst of 300 set_query calls during a 30 Hz stream: all answered, the last wins."""
    service = session.client.node.create_client(SetQuery, f'{session.node_name}/set_query',
                                                qos_profile=QoSProfile(depth=400))
    assert session.client.spin_until(service.service_is_ready, 30)
    futures = []
    with camera(session, 'camera_hammer', '--count', '90', '--rate', '30',
                '--stamp-base', '7000') as cam:
        cam.wait_for_line(r'^READY$', timeout=60)
        start = time.monotonic()
        for i in range(300):
            futures.append(service.call_async(SetQuery.Request(query=f'object number {i}')))
            session.client.spin_until(lambda: False, max(0.0, start + (i + 1) / 100
                                                         - time.monotonic()))
        assert session.client.spin_until(lambda: all(f.done() for f in futures), 30)
    assert all(f.result().success for f in futures), [f.result().message for f in futures
                                                      if not f.result().success][:3]
    assert session.client.spin_until(
        lambda: session.current_query[-1].data == 'object number 299', 10)
    sec = session.process_good_frame()
    assert session.wait_output(session.grounding, sec).query == 'object number 299'
    session.client.node.destroy_client(service)
    assert session.client.call(SetQuery, f'{session.node_name}/set_query',
                               SetQuery.Request(query=QUERY)).success


def test_out_of_memory_on_a_frame_drops_it_and_the_next_works(session: NodeSession) -> None:
    """A frame needing more memory than the process may have: dropped, ERROR, next one works."""
    pid = session.process.pid
    before = process_sample(pid, 0.0)
    vm_kb = int(dict(line.split(':', 1) for line in open(f'/proc/{pid}/status')
                     )['VmSize'].split()[0])
    old = resource.prlimit(pid, resource.RLIMIT_AS)
    # Room for small frames, not for a 6000x4000 one (72 MB raw, its depth 96 MB, masks...).
    resource.prlimit(pid, resource.RLIMIT_AS, ((vm_kb + 300 * 1024) * 1024, old[1]))
    try:
        big = image_msg(solid_rgb(6000, 4000), 'oom_optical_frame', 0)
        sec = session.stamp()
        big.header.stamp.sec = sec
        session.image_pub.publish(big)
        status, values = session.diagnostic_status(
            lambda v: 'inference failed' in v.get('last_error', '')
            and 'memory' in v['last_error'].lower(), timeout=60)
        assert status.level == DiagnosticStatus.ERROR
        session.process.wait_for_line(r'inference failed, frame dropped: .*memory', timeout=10)
        good = session.process_good_frame()
        assert not session.outputs_at(sec) and good > sec
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, old)
    assert session.process.poll() is None
    assert process_sample(pid, 0.0).threads == before.threads


def test_incompatible_qos_publisher_is_warned_once(session: NodeSession) -> None:
    """A best-effort image publisher against the reliable subscription: one warning."""
    publisher = session.client.node.create_publisher(
        Image, session.client.name('image'),
        QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        session.process.wait_for_line(r'incompatible QoS .*image.*RELIABILITY', timeout=20)
        session.pause(3.0)
        assert len([line for line in session.process.output().splitlines()
                    if 'incompatible QoS' in line]) == 1
    finally:
        session.client.node.destroy_publisher(publisher)
    assert 'input QoS: reliability reliable' in session.process.output()


def _cycle(session: NodeSession, transitions: tuple[int, int], count: int) -> list:
    """Run ``count`` cycles of ``transitions``; return a process sample after each."""
    samples = []
    for i in range(count):
        for transition in transitions:
            assert session.client.change_state(session.node_name, transition), \
                session.process.output()[-2000:]
        samples.append(process_sample(session.process.pid, float(i)))
    return samples


@pytest.mark.slow
def test_lifecycle_cycles_do_not_grow_memory_or_threads(session: NodeSession) -> None:
    """12 deactivate/activate and 12 cleanup/configure cycles: no RSS trend, no thread leak."""
    active = (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE)
    configured = (Transition.TRANSITION_CLEANUP, Transition.TRANSITION_CONFIGURE)
    assert session.client.change_state(session.node_name, Transition.TRANSITION_DEACTIVATE)
    _cycle(session, configured, 3)
    assert session.client.change_state(session.node_name, Transition.TRANSITION_ACTIVATE)
    first = _cycle(session, active, 3)[-1]
    for transitions, before, after in ((active, (), ()),
                                       (configured, (Transition.TRANSITION_DEACTIVATE,),
                                        (Transition.TRANSITION_ACTIVATE,))):
        for transition in before:
            assert session.client.change_state(session.node_name, transition)
        samples = _cycle(session, transitions, CYCLES)
        for transition in after:
            assert session.client.change_state(session.node_name, transition)
        rss = np.array([s.rss_kb for s in samples]) / 1024
        half = rss[len(rss) // 2:]
        trend = float(np.polyfit(np.arange(len(half)), half, 1)[0])
        assert trend < RSS_TREND_BOUND_MB, f'RSS trend {trend:.2f} MB/cycle: {rss.round(1)}'
        # The executor's thread pool starts its threads lazily, up to EXECUTOR_THREADS; a thread
        # leaked per cycle would pass that within the 12 cycles (EXECUTOR_THREADS is 6).
        threads = [s.threads for s in samples]
        assert max(threads) <= first.threads + EXECUTOR_THREADS, threads
    session.process_good_frame()


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_signal_exits_cleanly(tmp_path_factory: pytest.TempPathFactory,
                              sig: signal.Signals) -> None:
    """SIGINT and SIGTERM while a frame arrives: a clean exit 0.

    Each signal gets a node of its own, so that the module's node serves the other tests in any
    order.
    """
    target = NodeSession(tmp_path_factory.mktemp(f'vpd_{sig.name.lower()}'), {
        'input_size': [64, 64], 'tasks': 'depth', 'device': 'cpu'}, f'vpd_{sig.name.lower()}')
    try:
        target.client.publisher(Image, 'image').publish(target.good_image(target.stamp()))
        os.kill(target.process.pid, sig)
        code = target.process.wait(timeout=30)  # a hang guard, not a speed bound
    finally:
        target.close()
    assert code == 0, target.process.output()[-3000:]
