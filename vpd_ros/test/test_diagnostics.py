# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's counters and /diagnostics message (vpd_ros.ros.diagnostics) as pure functions."""

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from vpd_ros.ros.diagnostics import COUNTERS, FrameStats, StatsReport, diagnostic_array


def values_of(report: StatsReport, state: str = 'active', **kwargs) -> tuple:
    """Return (status, key -> value) of the diagnostics message built from ``report``."""
    msg = diagnostic_array(report, Time(sec=7), 'vpd_node: inference', 'cpu', state, **kwargs)
    assert len(msg.status) == 1 and msg.header.stamp.sec == 7
    status = msg.status[0]
    return status, {kv.key: kv.value for kv in status.values}


def test_counters_totals_and_windows() -> None:
    """Totals grow for ever; each report's window holds only what happened since the last."""
    stats = FrameStats()
    for _ in range(3):
        stats.count('received')
    stats.count('dropped', 2)
    stats.frame({'decode': 2.0, 'total': 10.0})
    stats.frame({'decode': 4.0, 'total': 30.0})
    first = stats.report()
    assert first.totals['received'] == 3 and first.totals['dropped'] == 2
    assert first.window['processed'] == 2 and first.stage_ms == {'decode': 3.0, 'total': 20.0}
    stats.count('received')
    second = stats.report()
    assert second.totals['received'] == 4 and second.window['received'] == 1
    assert second.window['processed'] == 0 and second.stage_ms == {}
    assert set(second.totals) == set(COUNTERS)
    with pytest.raises(ValueError, match='counter'):
        stats.count('frames')


def test_rate_is_processed_frames_per_second_of_the_window() -> None:
    """rate_hz is the window's processed count over its length (0 for an empty window)."""
    window = dict.fromkeys(COUNTERS, 0)
    window['processed'] = 6
    assert StatsReport(totals=window, window=window, seconds=2.0).rate_hz == 3.0
    assert StatsReport(totals=window, window=window, seconds=0.0).rate_hz == 0.0


def test_levels_name_the_worst_problem_of_the_window() -> None:
    """Inference errors are ERROR; not active or refused input WARN; else OK with the rate."""
    stats = FrameStats()
    stats.frame({'total': 5.0})
    status, values = values_of(stats.report(), extra={'queries': 'mug'})
    assert status.level == DiagnosticStatus.OK and status.message.endswith(' Hz')
    assert values['processed_total'] == '1' and values['latency_ms.total'] == '5.00'
    assert values['queries'] == 'mug' and values['state'] == 'active'
    assert status.hardware_id == 'cpu' and status.name == 'vpd_node: inference'

    assert values_of(stats.report(), state='inactive')[0].level == DiagnosticStatus.WARN
    stats.error('decode_errors', 'encoding 16UC1 is a depth encoding')
    status, values = values_of(stats.report())
    assert status.level == DiagnosticStatus.WARN and '16UC1' in status.message
    stats.error('inference_errors', 'out of memory')
    status, values = values_of(stats.report())
    assert status.level == DiagnosticStatus.ERROR and 'out of memory' in status.message
    assert values['inference_errors_total'] == '1' and values['last_error'] == 'out of memory'
    status, _ = values_of(stats.report())  # a quiet window after the error: OK again
    assert status.level == DiagnosticStatus.OK
