# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros soak``: its measurements, and a 25-second soak of the real node and camera.

The full soak (10 minutes by default) is run by hand and its figures are in
docs/reliability.md; CI runs the same command for 25 seconds.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import harness
import pytest

from vpd_ros.apps.measure import ProcessSample, percentiles, process_sample
from vpd_ros.apps.soak import SoakReport, memory_slope_mb_per_min


def test_memory_slope_fits_a_line_in_mb_per_minute() -> None:
    """A steady 1 kB/s growth is 60/1024 MB/min; noise around a flat line gives about zero."""
    growing = [ProcessSample(t=float(t), rss_kb=100_000 + t, threads=5) for t in range(120)]
    assert memory_slope_mb_per_min(growing) == pytest.approx(60 / 1024, rel=1e-6)
    flat = [ProcessSample(t=float(t), rss_kb=100_000 + (-1) ** t * 500, threads=5)
            for t in range(120)]
    assert abs(memory_slope_mb_per_min(flat)) < 0.5
    assert memory_slope_mb_per_min(growing[:1]) == 0.0


def test_latency_percentiles_and_failures() -> None:
    """Percentiles come from the samples; each bound that is exceeded is named as a failure."""
    latency = percentiles([float(v) for v in range(1, 101)])
    assert latency['p50'] == pytest.approx(50.5) and latency['max'] == 100.0
    assert latency['mean'] == pytest.approx(50.5)
    assert percentiles([]) == {}
    report = SoakReport(duration_s=60, weights='random:tiny', outputs=10,
                        latency_ms=latency, memory_slope_mb_per_min=3.0)
    assert report.failures(max_memory_slope=5.0, max_p99_ms=200.0) == []
    reasons = report.failures(max_memory_slope=2.0, max_p99_ms=50.0)
    assert len(reasons) == 2 and 'memory grows 3.00 MB/min' in reasons[0]
    assert 'latency p99' in reasons[1]
    crashed = SoakReport(duration_s=60, weights='random:tiny', crashed='vpd_node exited')
    assert crashed.failures(5.0, 1e9) == ['crash: vpd_node exited',
                                          'no output received from the node']


def test_process_sample_reads_this_process() -> None:
    """RSS and thread count of a live process; a missing pid raises."""
    sample = process_sample(os.getpid(), 1.0)
    assert sample.rss_kb > 10_000 and sample.threads >= 1
    with pytest.raises(ProcessLookupError):
        process_sample(2 ** 22 + 1, 0.0)


@pytest.mark.slow
@pytest.mark.ros
def test_short_soak_passes(tmp_path: Path) -> None:
    """A 25 s soak at 30 Hz VGA after 10 s of warm-up: output, every frame counted, flat
    memory and threads, clean stop."""
    report_path = tmp_path / 'soak.json'
    # 25 seconds cannot tell the allocator's settling from a leak as ten can (the 10-minute
    # run in docs/reliability.md: slope +0.6 MB/min, yet its RSS peaked 35 MB above the start;
    # a 60 s run: +7.6 MB/min), so the short run allows 25 MB/min; leaking a decoded VGA frame
    # per output is about 55 MB/min at 3 outputs/s. The 10-minute soak and test_faults'
    # lifecycle cycles watch memory more closely. Latency depends on the machine (vpd-ros soak
    # and bench print it); no bound here.
    command = [sys.executable, '-m', 'vpd_ros.apps.soak', '--duration', '25', '--warmup', '10',
               '--device', 'cpu', '--max-memory-slope', '25', '--max-p99-ms', '1e9',
               '--json', str(report_path)]
    with harness.RosProcess(command, harness.ros_env(tmp_path), tmp_path / 'soak.log',
                            sigint_timeout=20.0) as soak:
        code = soak.wait(timeout=360)
    output = soak.output()
    assert code == 0, output[-4000:]
    report = json.loads(report_path.read_text())
    print(output)
    assert report['frames_in'] > 0 and report['node_received'] > 0, report
    assert report['outputs'] >= 3, report
    assert report['node_processed'] >= report['outputs'] - 2, report
    # Latest wins: every received frame is processed or dropped (frames in flight at either
    # edge of the window aside), whether the camera outruns the model or not.
    assert abs(report['node_received'] - report['node_processed']
               - report['node_dropped']) <= 2, report
    assert report['threads']['last'] <= report['threads']['first'] + 1, report
    assert report['shutdown_code'] == 0, report  # SIGINT mid-stream ends the node cleanly
    assert 'PASS' in output
