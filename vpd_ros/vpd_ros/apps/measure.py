# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the bench and the soak measure: latency percentiles and process memory and threads.

Process samples come from ``psutil``; only the peak RSS (``VmHWM``, resettable per frame, which
psutil does not offer) is read from /proc.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np
import psutil


@dataclass
class ProcessSample:
    """One sample of a process.

    Attributes:
        t: seconds since the measuring window started.
        rss_kb: resident set size, kB.
        threads: number of threads.
    """

    t: float
    rss_kb: int
    threads: int


def process_sample(pid: int, t: float) -> ProcessSample:
    """Return the resident memory and thread count of process ``pid`` now.

    Raises:
        ProcessLookupError: the process no longer exists.
    """
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            return ProcessSample(t=t, rss_kb=process.memory_info().rss // 1024,
                                 threads=process.num_threads())
    except psutil.NoSuchProcess as error:
        raise ProcessLookupError(f'process {pid} is gone') from error


def percentiles(values_ms: Sequence[float]) -> Dict[str, float]:
    """Return p50, p90, p99, mean and max of ``values_ms`` (empty dict for no samples)."""
    if not len(values_ms):
        return {}
    values = np.asarray(values_ms, np.float64)
    out = {f'p{q}': float(np.percentile(values, q)) for q in (50, 90, 99)}
    out['mean'] = float(values.mean())
    out['max'] = float(values.max())
    return out


def _status_kb(field: str) -> int:
    """Return a ``/proc/self/status`` field in kB (0 where /proc is missing)."""
    try:
        with open('/proc/self/status', encoding='utf-8') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_host_peak() -> None:
    """Reset the process's peak RSS (``VmHWM``) so the next reading covers one frame."""
    try:
        with open('/proc/self/clear_refs', 'w', encoding='utf-8') as f:
            f.write('5')
    except OSError:
        pass


def host_peak_mb() -> float:
    """Return the process's peak RSS since the last reset, MB."""
    kb = _status_kb('VmHWM')
    if not kb:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0
