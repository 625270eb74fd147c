# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The latest-frame slot and the inference worker thread of the node (pure Python, no rclpy).

Camera callbacks only call :meth:`InferenceWorker.submit`, which stores the newest frame and
returns at once: a frame replaced before the worker took it is counted as dropped, so a slow
model never builds a backlog. One worker thread takes the newest frame, attaches the pending
one-shot ground requests to it and calls the node's ``process`` function. Requesters wait on an
:class:`threading.Event` that the worker sets, so no executor thread ever runs the model.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, List, Optional

from vpd_ros.ros.diagnostics import FrameStats


@dataclass
class Frame:
    """One received camera message.

    Attributes:
        msg: the message as received (opaque here; the node decodes it).
        seq: 1-based arrival number.
        received: ``time.monotonic()`` at arrival, seconds.
    """

    msg: Any
    seq: int
    received: float


@dataclass
class GroundRequest:
    """A one-shot query waiting to be served on a frame.

    Attributes:
        query: the referring expression.
        use_latest: serve on the newest frame already received instead of the next one.
        after_seq: a frame must have ``seq`` above this to serve a ``use_latest=False`` request.
        done: set when ``result`` or ``error`` is final.
        result: what the node's process function produced for this query.
        error: why no result was produced, or ``''``.
        taken: a job holding this request has started (the model runs on its frame).
    """

    query: str
    use_latest: bool
    after_seq: int
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: str = ''
    taken: bool = False

    def finish(self, result: Any = None, error: str = '') -> None:
        """Store the outcome and wake the waiter; later calls change nothing."""
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


@dataclass
class Job:
    """What the worker hands to the process function.

    Attributes:
        frame: the frame to run.
        requests: ground requests to serve on it (their queries join the frame's batch).
        replay: the frame was taken before (``use_latest`` on an already processed frame):
            serve ``requests`` only and publish nothing.
    """

    frame: Frame
    requests: List[GroundRequest]
    replay: bool = False


class InferenceWorker:
    """One thread that runs ``process`` on the newest frame, never on a queue of old ones.

    Args:
        process: called with a :class:`Job` on the worker thread; it must finish the job's
            requests (what it does not finish is failed with a generic reason).
        on_error: called on the worker thread with the job and the exception when ``process``
            raises; the worker then continues with the next frame.
        max_rate: most frames per second the worker starts (0 = unlimited). Replays for
            ``use_latest`` requests are not limited.
        stats: where received and dropped frames are counted (the node's diagnostics).
        serving: returns a context the thread runs its jobs in (the engine's ``serving``:
            CUDA graphs are recorded and freed per thread).
    """

    def __init__(self, process: Callable[[Job], None],
                 on_error: Callable[[Job, BaseException], None],
                 max_rate: float = 0.0, stats: Optional[FrameStats] = None,
                 serving: Callable[[], ContextManager[None]] = contextlib.nullcontext) -> None:
        self._process = process
        self._on_error = on_error
        self._serving = serving
        self._cond = threading.Condition()
        self._pending: Optional[Frame] = None
        self._latest: Optional[Frame] = None
        self._requests: List[GroundRequest] = []
        self._thread: Optional[threading.Thread] = None
        self._running = False
        self._next_start = 0.0
        self._max_rate = 0.0
        self.max_rate = max_rate
        self.stats = stats or FrameStats()
        self._seq = 0  # frames submitted; requests wait for a frame after theirs

    @property
    def max_rate(self) -> float:
        """Most frames started per second, 0 for unlimited."""
        return self._max_rate

    @max_rate.setter
    def max_rate(self, value: float) -> None:
        if not value >= 0.0:
            raise ValueError(f'max_rate {value!r} must be >= 0 Hz (0 = unlimited)')
        with self._cond:
            self._max_rate = float(value)
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        """Whether the thread accepts frames."""
        return self._running

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._cond:
            if self._running:
                return
            self._running = True
            self._thread = threading.Thread(target=self._loop, name='vpd_inference', daemon=True)
            self._thread.start()

    def stop(self, timeout: Optional[float] = None, reason: str = 'node deactivated') -> bool:
        """Stop taking frames, fail waiting requests with ``reason`` and join the thread.

        A frame already in the model is finished first. Returns False when the thread was
        still running after ``timeout`` seconds.
        """
        with self._cond:
            self._running = False
            self._pending = None
            waiting, self._requests = self._requests, []
            self._cond.notify_all()
            thread = self._thread
        for request in waiting:
            request.finish(error=reason)
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def submit(self, msg: Any) -> bool:
        """Store ``msg`` as the newest frame; return True when it replaced an unprocessed one."""
        with self._cond:
            if not self._running:
                return False
            self._seq += 1
            self.stats.count('received')
            frame = Frame(msg=msg, seq=self._seq, received=time.monotonic())
            replaced = self._pending is not None
            if replaced:
                self.stats.count('dropped')
            self._pending = self._latest = frame
            self._cond.notify_all()
            return replaced

    def request(self, query: str, use_latest: bool) -> GroundRequest:
        """Queue a one-shot query for the next frame (or the newest received one).

        Raises:
            RuntimeError: the worker is stopped, or ``use_latest`` and no frame arrived yet.
        """
        with self._cond:
            if not self._running:
                raise RuntimeError('the node is not active')
            if use_latest and self._latest is None:
                raise RuntimeError('no frame received yet')
            request = GroundRequest(query=query, use_latest=use_latest,
                                    after_seq=self._seq)
            self._requests.append(request)
            self._cond.notify_all()
            return request

    def cancel(self, request: GroundRequest) -> bool:
        """Withdraw a request that no job has taken; return True when it was withdrawn."""
        with self._cond:
            if request in self._requests:
                self._requests.remove(request)
                return True
            return False

    def wait(self, request: GroundRequest, timeout: float) -> str:
        """Wait for ``request``; return ``''`` when it has its result, else why not.

        A request still unserved after ``timeout`` seconds is withdrawn.
        """
        if not request.done.wait(timeout):
            waited = 'for inference' if request.taken else 'for a frame'
            self.cancel(request)
            return f'timed out after {timeout:.2f} s waiting {waited}'
        return request.error

    def _next_job(self) -> Optional[Job]:
        """Wait for work and return it, or None when stopped (called with the lock free)."""
        with self._cond:
            while self._running:
                now = time.monotonic()
                if self._pending is not None and now >= self._next_start:
                    frame, self._pending = self._pending, None
                    served = [r for r in self._requests
                              if r.use_latest or frame.seq > r.after_seq]
                    self._requests = [r for r in self._requests if r not in served]
                    if self._max_rate > 0.0:
                        self._next_start = now + 1.0 / self._max_rate
                    return Job(frame=frame, requests=served)
                replays = [r for r in self._requests if r.use_latest]
                if replays and self._pending is None and self._latest is not None:
                    self._requests = [r for r in self._requests if not r.use_latest]
                    return Job(frame=self._latest, requests=replays, replay=True)
                wait = None
                if self._pending is not None:
                    wait = self._next_start - now
                self._cond.wait(wait)
            return None

    def _loop(self) -> None:
        with self._serving():
            self._run_jobs()

    def _run_jobs(self) -> None:
        """Run jobs until stopped; an exception in ``process`` fails only its own job."""
        while True:
            job = self._next_job()
            if job is None:
                return
            for request in job.requests:
                request.taken = True
            try:
                self._process(job)
            except Exception as error:  # noqa: BLE001 - any model failure must not end the thread
                self._on_error(job, error)
                for request in job.requests:
                    request.finish(error=f'inference failed: {error}')
            for request in job.requests:
                request.finish(error='the frame produced no result for this query')
