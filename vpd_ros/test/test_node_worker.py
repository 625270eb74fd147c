# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's inference worker without ROS: latest wins, requests, rate limit, errors."""

from __future__ import annotations

import threading
import time

import pytest

from vpd_ros.ros.worker import InferenceWorker, Job


class Recorder:
    """A process function that records jobs and can be held inside a frame."""

    def __init__(self, fail_on: object = None) -> None:
        self.jobs: list[Job] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_on = fail_on
        self.errors: list[BaseException] = []

    def process(self, job: Job) -> None:
        self.jobs.append(job)
        self.gate.wait(10)
        if job.frame.msg == self.fail_on:
            raise RuntimeError('boom')
        for request in job.requests:
            request.finish(result=(job.frame.msg, request.query))

    def on_error(self, job: Job, error: BaseException) -> None:
        self.errors.append(error)


def wait(predicate, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


def test_latest_frame_wins_and_replaced_frames_count_as_dropped() -> None:
    """While a frame is in flight, only the newest of the following ones is processed."""
    rec = Recorder()
    worker = InferenceWorker(rec.process, rec.on_error)
    worker.start()
    rec.gate.clear()
    worker.submit('a')
    assert wait(lambda: len(rec.jobs) == 1)
    replaced = [worker.submit(m) for m in ('b', 'c', 'd')]
    rec.gate.set()
    assert wait(lambda: len(rec.jobs) == 2)
    time.sleep(0.05)
    assert worker.stop(timeout=5)
    assert [j.frame.msg for j in rec.jobs] == ['a', 'd']
    assert replaced == [False, True, True]
    totals = worker.stats.report().totals
    assert (totals['received'], totals['dropped']) == (4, 2)


def test_ground_requests_next_frame_latest_frame_and_stop() -> None:
    """Next-frame requests wait for a new frame; use_latest replays the last one; stop fails all."""
    rec = Recorder()
    worker = InferenceWorker(rec.process, rec.on_error)
    with pytest.raises(RuntimeError, match='not active'):
        worker.request('q', use_latest=False)
    worker.start()
    with pytest.raises(RuntimeError, match='no frame received yet'):
        worker.request('q', use_latest=True)
    worker.submit('f1')
    assert wait(lambda: len(rec.jobs) == 1)
    following = worker.request('next', use_latest=False)
    latest = worker.request('latest', use_latest=True)
    assert latest.done.wait(5) and latest.result == ('f1', 'latest')
    assert rec.jobs[-1].replay
    assert not following.done.wait(0.1)
    worker.submit('f2')
    assert following.done.wait(5) and following.result == ('f2', 'next')
    waiting = worker.request('never', use_latest=False)
    worker.stop(timeout=5, reason='node deactivated')
    assert waiting.done.is_set() and waiting.error == 'node deactivated'
    assert not worker.submit('f3')


def test_wait_returns_the_outcome_or_withdraws_the_request() -> None:
    """A served request waits to ''; a failed one to its error; an unserved one is withdrawn."""
    rec = Recorder(fail_on='bad')
    worker = InferenceWorker(rec.process, rec.on_error)
    worker.start()
    unserved = worker.request('q', use_latest=False)
    assert worker.wait(unserved, 0.01) == 'timed out after 0.01 s waiting for a frame'
    assert not worker.cancel(unserved)  # already withdrawn: no frame will serve it
    failed = worker.request('b', use_latest=False)
    worker.submit('bad')
    assert worker.wait(failed, 5) == 'inference failed: boom'
    served = worker.request('a', use_latest=False)
    worker.submit('good')
    assert worker.wait(served, 5) == '' and served.result == ('good', 'a')
    worker.stop(timeout=5)


def test_an_exception_fails_only_its_frame() -> None:
    """A failing frame reports the error and fails its requests; the next frame runs."""
    rec = Recorder(fail_on='bad')
    worker = InferenceWorker(rec.process, rec.on_error)
    worker.start()
    request = worker.request('q', use_latest=False)
    worker.submit('bad')
    assert request.done.wait(5) and request.error == 'inference failed: boom'
    worker.submit('good')
    assert wait(lambda: len(rec.jobs) == 2)
    worker.stop(timeout=5)
    assert [str(e) for e in rec.errors] == ['boom']


def test_max_rate_spaces_frame_starts() -> None:
    """With max_rate 20 Hz, consecutive frames start at least 50 ms apart."""
    starts: list[float] = []
    worker = InferenceWorker(lambda job: starts.append(time.monotonic()), lambda j, e: None,
                             max_rate=20.0)
    worker.start()
    for index in range(3):
        worker.submit(index)
        assert wait(lambda: len(starts) == index + 1)
    worker.stop(timeout=5)
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.045
    with pytest.raises(ValueError, match='max_rate'):
        worker.max_rate = -1.0

