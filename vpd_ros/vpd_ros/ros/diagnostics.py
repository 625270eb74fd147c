# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Frame statistics of the node and their ``diagnostic_msgs/DiagnosticArray`` form.

:class:`FrameStats` is filled from the worker and callback threads and read once per
diagnostics period: totals since start plus a window (rate, mean latency per stage, errors)
that each report starts afresh. Levels: ERROR when inference failed in the window, WARN when
the node is not active or input was refused (decode or camera_info problems), OK otherwise.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

#: Counters the node keeps; each also has a per-window count.
COUNTERS = ('received', 'processed', 'dropped', 'idle', 'ground_reused', 'decode_errors',
            'camera_info_errors', 'inference_errors')


@dataclass
class StatsReport:
    """One period's view of :class:`FrameStats`.

    Attributes:
        totals: counter name -> count since start.
        window: counter name -> count in this period.
        seconds: length of this period, seconds.
        stage_ms: stage name -> mean milliseconds per processed frame in this period.
        last_error: the newest error text since start, or ``''``.
    """

    totals: Dict[str, int]
    window: Dict[str, int]
    seconds: float
    stage_ms: Dict[str, float] = field(default_factory=dict)
    last_error: str = ''

    @property
    def rate_hz(self) -> float:
        """Frames processed per second in this period."""
        return self.window['processed'] / self.seconds if self.seconds > 0 else 0.0


class FrameStats:
    """Thread-safe counters and per-stage latencies of the node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Counter = Counter()
        self._window: Counter = Counter()
        self._stage_sums: Dict[str, float] = {}
        self._window_start = time.monotonic()
        self._last_error = ''

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (one of :data:`COUNTERS`)."""
        if name not in COUNTERS:
            raise ValueError(f'counter {name!r} not in {", ".join(COUNTERS)}')
        with self._lock:
            self._totals[name] += n
            self._window[name] += n

    def error(self, name: str, text: str) -> None:
        """Count an error under ``name`` and remember ``text`` as the last error."""
        self.count(name)
        with self._lock:
            self._last_error = text

    def frame(self, stage_ms: Dict[str, float]) -> None:
        """Record one processed frame with its milliseconds per stage."""
        self.count('processed')
        with self._lock:
            for stage, ms in stage_ms.items():
                self._stage_sums[stage] = self._stage_sums.get(stage, 0.0) + ms

    def report(self) -> StatsReport:
        """Return this period's report and start a new period."""
        now = time.monotonic()
        with self._lock:
            processed = self._window['processed']
            report = StatsReport(
                totals={name: self._totals[name] for name in COUNTERS},
                window={name: self._window[name] for name in COUNTERS},
                seconds=now - self._window_start,
                stage_ms={k: v / processed for k, v in self._stage_sums.items()}
                if processed else {},
                last_error=self._last_error)
            self._window.clear()
            self._stage_sums.clear()
            self._window_start = now
        return report


class LogLimiter:
    """Say whether a log text may be written now: each distinct text at most once a period.

    A camera that keeps sending the same broken frame logs one line per ``period`` seconds,
    while a different problem (another text) is logged at once; rclpy's own throttle is per
    call site and would hide it.
    """

    #: Remembered texts before the oldest are forgotten (bounds memory under varying texts).
    MAX_TEXTS = 256

    def __init__(self, period: float) -> None:
        if not period >= 0.0:
            raise ValueError(f'period {period!r} must be >= 0 seconds')
        self.period = period
        self._last: Dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, text: str, now: Optional[float] = None) -> bool:
        """Return True when ``text`` was not allowed within the last period (and note it)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._last.get(text)
            if last is not None and now - last < self.period:
                return False
            if len(self._last) >= self.MAX_TEXTS:
                self._last.pop(min(self._last, key=self._last.__getitem__))
            self._last[text] = now
            return True


def diagnostic_array(report: StatsReport, stamp: Time, name: str, hardware_id: str,
                     state: str, extra: Optional[Dict[str, str]] = None) -> DiagnosticArray:
    """Build the /diagnostics message of one period.

    Args:
        report: the period's statistics.
        stamp: header stamp (the node clock's now).
        name: status name, e.g. ``vpd_node: inference``.
        hardware_id: the compute device, e.g. ``cpu`` or ``cuda:0``.
        state: the lifecycle state label (``active``, ``inactive``, ...).
        extra: more key/value pairs (device memory, queries).
    """
    window = report.window
    if window['inference_errors']:
        level, message = DiagnosticStatus.ERROR, f'inference failed: {report.last_error}'
    elif state != 'active':
        level, message = DiagnosticStatus.WARN, f'not processing (state {state})'
    elif window['decode_errors'] or window['camera_info_errors']:
        level, message = DiagnosticStatus.WARN, f'input refused: {report.last_error}'
    else:
        level, message = DiagnosticStatus.OK, f'{report.rate_hz:.2f} Hz'
    values: List[KeyValue] = [
        KeyValue(key='state', value=state),
        KeyValue(key='rate_hz', value=f'{report.rate_hz:.3f}'),
    ]
    values += [KeyValue(key=f'{key}_total', value=str(count))
               for key, count in report.totals.items()]
    values += [KeyValue(key=f'{key}_window', value=str(count))
               for key, count in report.window.items()]
    values += [KeyValue(key=f'latency_ms.{stage}', value=f'{ms:.2f}')
               for stage, ms in sorted(report.stage_ms.items())]
    values += [KeyValue(key=key, value=value) for key, value in (extra or {}).items()]
    values.append(KeyValue(key='last_error', value=report.last_error))
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                              values=values)
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg
