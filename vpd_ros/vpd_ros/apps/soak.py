# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros soak``: run vpd_node against a 30 Hz VGA camera for a bounded time and judge it.

It starts ``vpd_node`` (tiny model, one standing query, so depth and referring heads both run)
and ``vpd_sim_camera`` looping one rendered room at 30 Hz, 640x480, then measures over the
soak window, after a warm-up:

* frames in (camera), received, processed and dropped by the node (latest wins), outputs out;
* latency from the camera stamp to the receipt of the node's ``depth`` output (percentiles);
* the node process's resident memory (RSS, read with psutil once a second) and
  the least-squares slope of it, MB per minute, and its thread count.

Exit status 0 when the node and camera stayed up, outputs arrived, the memory slope stayed under
``--max-memory-slope`` and latency p99 under ``--max-p99-ms``; 1 otherwise, with the reasons
printed. Every process runs under the loopback network rule (vpd_ros.apps.rosenv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import rosenv
from .measure import ProcessSample, percentiles, process_sample
from .cli_common import parse_size

#: Default soak length, seconds (the issue's 10 minutes).
DEFAULT_DURATION_S = 600.0
#: Memory-slope bound, MB/min. A healthy node's RSS is flat after warm-up (allocator pools
#: settle within seconds); leaking one decoded 640x480 frame per processed frame (0.9 MB, at least
#: one frame a second on the slowest target) would be about 55 MB/min, and even a 10 kB leak per
#: received camera frame (30 Hz) is 18 MB/min. 5 MB/min sits well above the fit's noise over a
#: soak window and far below any per-frame leak.
DEFAULT_MAX_MEMORY_SLOPE = 5.0
#: Latency p99 bound, ms. With latest-wins frame handling a frame waits at most for the one
#: already in the model, then runs itself: about two inference times plus transport. On a 2-core
#: CPU (tiny, depth + one query, VGA) a 10-minute soak measured p99 592 ms; 2 s leaves room for
#: a busy machine, while a backlog (queueing instead of dropping) adds a frame period per frame
#: and crosses it within seconds. Pass a tighter bound on a GPU (tiny runs in tens of ms there).
DEFAULT_MAX_P99_MS = 2000.0
#: Seconds for the node to import torch, load the model and warm up.
START_TIMEOUT_S = 180.0


@dataclass
class SoakReport:
    """What one soak run measured over its window (after warm-up).

    Attributes:
        duration_s: length of the soak window, seconds.
        weights: the model the node ran.
        frames_in: frames the camera published.
        node_received: frames the node received (its /diagnostics totals).
        node_processed: frames the node ran the model on.
        node_dropped: frames replaced before inference (latest wins).
        outputs: depth images received from the node.
        latency_ms: percentile name (p50, p90, p99, max) -> camera stamp to output receipt, ms.
        memory_slope_mb_per_min: least-squares slope of the node's RSS, MB/min.
        rss_mb: first, last and peak RSS in the window, MB.
        threads: first, last and peak thread count in the window.
        crashed: why a process ended early, or ``''``.
        shutdown_s: SIGINT to the node's exit after the window, seconds (None: not stopped).
        shutdown_code: the node's exit code after that SIGINT.
    """

    duration_s: float
    weights: str
    frames_in: int = 0
    node_received: int = 0
    node_processed: int = 0
    node_dropped: int = 0
    outputs: int = 0
    latency_ms: Dict[str, float] = field(default_factory=dict)
    memory_slope_mb_per_min: float = 0.0
    rss_mb: Dict[str, float] = field(default_factory=dict)
    threads: Dict[str, int] = field(default_factory=dict)
    crashed: str = ''
    shutdown_s: Optional[float] = None
    shutdown_code: Optional[int] = None

    def failures(self, max_memory_slope: float, max_p99_ms: float) -> List[str]:
        """Return why this run fails the bounds (MB/min, ms); empty when it passes."""
        reasons = []
        if self.crashed:
            reasons.append(f'crash: {self.crashed}')
        if self.outputs == 0:
            reasons.append('no output received from the node')
        if self.memory_slope_mb_per_min > max_memory_slope:
            reasons.append(f'memory grows {self.memory_slope_mb_per_min:.2f} MB/min, above '
                           f'--max-memory-slope {max_memory_slope:g}')
        p99 = self.latency_ms.get('p99', 0.0)
        if p99 > max_p99_ms:
            reasons.append(f'latency p99 {p99:.0f} ms above --max-p99-ms {max_p99_ms:g}')
        return reasons

    def summary(self) -> str:
        """Return the report as aligned text lines."""
        lat = ', '.join(f'{k} {v:.0f}' for k, v in self.latency_ms.items())
        rss = ', '.join(f'{k} {v:.1f}' for k, v in self.rss_mb.items())
        threads = ', '.join(f'{k} {v}' for k, v in self.threads.items())
        return '\n'.join([
            f'  window            {self.duration_s:.0f} s, weights {self.weights}',
            f'  frames in         {self.frames_in} (camera)',
            f'  node              received {self.node_received}, processed '
            f'{self.node_processed}, dropped {self.node_dropped} (latest wins)',
            f'  outputs           {self.outputs} depth images '
            f'({self.outputs / max(self.duration_s, 1e-9):.2f} Hz)',
            f'  latency ms        {lat or "none"} (camera stamp -> output receipt)',
            f'  memory            slope {self.memory_slope_mb_per_min:+.2f} MB/min; RSS MB {rss}',
            f'  threads           {threads}',
        ])


def memory_slope_mb_per_min(samples: Sequence[ProcessSample]) -> float:
    """Return the least-squares slope of RSS over time, MB per minute (0 for < 2 samples)."""
    if len(samples) < 2:
        return 0.0
    t = np.array([s.t for s in samples], np.float64)
    if np.ptp(t) == 0:
        return 0.0
    rss_mb = np.array([s.rss_kb for s in samples], np.float64) / 1024.0
    slope_per_s = np.polyfit(t, rss_mb, 1)[0]
    return float(slope_per_s * 60.0)


class SoakClient:
    """The measuring side: counts camera frames, timestamps outputs, reads node diagnostics.

    With ``probe_query`` it also calls ``~/set_query`` with it (the standing query, so nothing
    changes) about 20 times a second while counting, keeping the round trips in
    ``round_trips_ms``: answers taken while frames stream, mostly while the engine runs.
    """

    def __init__(self, probe_query: Optional[str] = None) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from vpd_ros_interfaces.srv import SetQuery

        from .ros_client import RosClient

        self.ros = RosClient(f'vpd_soak_{os.getpid()}')
        self.counting = False
        self.frames_in = 0
        self.outputs_seen = 0
        self.latencies_ms: List[float] = []
        self.totals: Dict[str, int] = {}
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        node = self.ros.node
        node.create_subscription(String, 'sim_camera/scene', self._on_frame, 50)
        node.create_subscription(Image, 'depth', self._on_depth, qos)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self.round_trips_ms: List[float] = []
        self.probe_query = probe_query
        self.set_query = node.create_client(SetQuery, '/vpd_node/set_query')
        self.SetQuery = SetQuery

    def spin_for(self, seconds: float) -> None:
        """Process callbacks for ``seconds`` (probing ``~/set_query`` while counting)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.counting and self.probe_query is not None:
                start = time.perf_counter()
                future = self.set_query.call_async(self.SetQuery.Request(query=self.probe_query))
                if self.ros.spin_until(future.done, left + 5.0):
                    self.round_trips_ms.append((time.perf_counter() - start) * 1e3)
            self.ros.spin_for(min(0.05, max(deadline - time.monotonic(), 0.0)))

    def _on_frame(self, msg: object) -> None:
        if self.counting:
            self.frames_in += 1

    def _on_depth(self, msg: object) -> None:
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.outputs_seen += 1
        if self.counting:
            self.latencies_ms.append((now - stamp) * 1e3)

    def _on_diagnostics(self, msg: object) -> None:
        for status in msg.status:
            if status.name.startswith('vpd_node'):
                self.totals = {kv.key[:-len('_total')]: int(kv.value) for kv in status.values
                               if kv.key.endswith('_total')}

    def node_active(self) -> bool:
        """Return True once vpd_node reports the lifecycle state ``active``."""
        return self.ros.state('/vpd_node', 2.0) == 'active'

    def close(self) -> None:
        """Shut this client's context down."""
        self.ros.close()


def add_soak_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``soak``."""
    p = subparsers.add_parser('soak', help='run node + 30 Hz VGA camera for a bounded time, '
                              'check latency and memory growth')
    add_soak_arguments(p)
    p.set_defaults(func=run_soak)


def add_soak_arguments(p: argparse.ArgumentParser) -> None:
    """Add the soak options to ``p``."""
    p.add_argument('--duration', type=float, default=DEFAULT_DURATION_S,
                   help='soak window in seconds, after warm-up')
    p.add_argument('--warmup', type=float, default=15.0,
                   help='seconds after the first output that are not measured')
    p.add_argument('--weights', default=None,
                   help='model for the node (default: shipped tiny, else random:tiny)')
    p.add_argument('--device', default='auto', help='auto (CUDA when available), cpu, cuda or '
                   'cuda:N')
    p.add_argument('--query', default='the chair',
                   help='standing query, so the referring head runs too ("" = depth only)')
    p.add_argument('--rate', type=float, default=30.0, help='camera frames per second')
    p.add_argument('--frame-size', type=parse_size, default='480x640', metavar='HEIGHTxWIDTH',
                   help='camera frame size')
    p.add_argument('--max-memory-slope', type=float, default=DEFAULT_MAX_MEMORY_SLOPE,
                   help='fail above this RSS growth, MB/min')
    p.add_argument('--max-p99-ms', type=float, default=DEFAULT_MAX_P99_MS,
                   help='fail above this latency p99, ms')
    p.add_argument('--json', help='also write the report as JSON to this file')


def _check_args(args: argparse.Namespace) -> None:
    for name in ('duration', 'rate', 'max_memory_slope', 'max_p99_ms'):
        if not getattr(args, name) > 0:
            raise ValueError(f'--{name.replace("_", "-")} {getattr(args, name)!r} must be > 0')
    if args.warmup < 0:
        raise ValueError(f'--warmup {args.warmup!r} must be >= 0')


def measure(client: SoakClient, node: rosenv.RosProcess, camera: rosenv.RosProcess,
             report: SoakReport, warmup: float) -> None:
    """Warm up, then sample the node once a second over the window, filling ``report``."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while client.outputs_seen == 0:
        if node.poll() is not None or camera.poll() is not None:
            report.crashed = 'a process exited before the first output'
            return
        if time.monotonic() > deadline:
            report.crashed = f'no output within {START_TIMEOUT_S:.0f} s of the camera start'
            return
        client.spin_for(0.1)
    client.spin_for(warmup)
    start_totals = dict(client.totals)
    client.counting = True
    start = time.monotonic()
    samples: List[ProcessSample] = []
    while (elapsed := time.monotonic() - start) < report.duration_s:
        for name, process in (('vpd_node', node), ('vpd_sim_camera', camera)):
            if process.poll() is not None:
                report.crashed = f'{name} exited with {process.returncode} after {elapsed:.0f} s'
        if report.crashed:
            break
        try:
            samples.append(process_sample(node.pid, elapsed))
        except ProcessLookupError as error:
            report.crashed = str(error)
            break
        client.spin_for(min(1.0, report.duration_s - elapsed))
    client.counting = False
    client.spin_for(1.5)  # the last diagnostics period
    report.duration_s = min(report.duration_s, time.monotonic() - start)
    for key in ('received', 'processed', 'dropped'):
        setattr(report, f'node_{key}',
                client.totals.get(key, 0) - start_totals.get(key, 0))
    report.frames_in = client.frames_in
    report.outputs = len(client.latencies_ms)
    report.latency_ms = percentiles(client.latencies_ms)
    report.memory_slope_mb_per_min = memory_slope_mb_per_min(samples)
    if samples:
        rss = [s.rss_kb / 1024.0 for s in samples]
        threads = [s.threads for s in samples]
        report.rss_mb = {'first': rss[0], 'last': rss[-1], 'peak': max(rss)}
        report.threads = {'first': threads[0], 'last': threads[-1], 'peak': max(threads)}


def camera_command(rate: float, width: int, height: int) -> List[str]:
    """Return the ``vpd_sim_camera`` command that repeats one rendered room at ``rate`` Hz."""
    return rosenv.executable('vpd_sim_camera') + [
        '--ros-args', '-p', 'scene_count:=0', '-p', 'frames_per_scene:=1000000',
        '-p', f'rate:={rate}', '-p', f'width:={width}', '-p', f'height:={height}']


def run_node_and_camera(client: SoakClient, node_cmd: List[str], camera_cmd: List[str],
                        env: Dict[str, str], log_dir: str, report: SoakReport,
                        warmup: float) -> str:
    """Start vpd_node, wait until it is active, start the camera and :func:`measure`.

    Both processes are ended afterwards. Returns the tail of the node's log.

    Raises:
        RuntimeError: vpd_node did not become active (the message holds its log tail).
    """
    with rosenv.RosProcess(node_cmd, env, os.path.join(log_dir, 'vpd_node.log'),
                           sigint_timeout=10.0) as node:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not client.node_active():
            if node.poll() is not None or time.monotonic() > deadline or \
                    'autostart did not reach active' in node.output():
                raise RuntimeError('vpd_node did not become active; its log:\n'
                                   + node.output()[-3000:])
        with rosenv.RosProcess(camera_cmd, env, os.path.join(log_dir, 'camera.log')) as camera:
            measure(client, node, camera, report, warmup)
        if node.poll() is None:
            start = time.monotonic()
            report.shutdown_code = node.stop()
            report.shutdown_s = time.monotonic() - start
        return node.output()[-3000:]


def run_soak(args: argparse.Namespace) -> int:
    """Run the soak; print the report; return 0 when every bound held, else 1."""
    from ..engine import default_weights

    _check_args(args)
    weights = args.weights or default_weights()
    tmp = tempfile.mkdtemp(prefix='vpd_soak_')
    rosenv.apply_session_env(tmp)
    env = rosenv.ros_env(tmp)
    node_cmd = rosenv.executable('vpd_node') + [
        '--ros-args', '-p', f'weights:={weights}', '-p', f'device:={args.device}',
        '-p', 'autostart:=true', '-p', f'default_query:={args.query}']
    height, width = args.frame_size
    camera_cmd = camera_command(args.rate, width, height)
    print(f'vpd-ros soak: {args.duration:.0f} s at {args.rate:g} Hz {height}x{width}, '
          f'weights {weights}; ROS domain {env["ROS_DOMAIN_ID"]}, loopback only, logs in {tmp}',
          flush=True)
    report = SoakReport(duration_s=args.duration, weights=weights)
    client = SoakClient()
    try:
        node_log = run_node_and_camera(client, node_cmd, camera_cmd, env, tmp, report,
                                       args.warmup)
    except RuntimeError as error:
        print(error)
        return 1
    finally:
        client.close()
    if report.crashed:
        print('vpd_node log tail:\n' + node_log)
    print(report.summary())
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(asdict(report), f, indent=2)
    failures = report.failures(args.max_memory_slope, args.max_p99_ms)
    for reason in failures:
        print(f'FAIL: {reason}')
    if not failures:
        print(f'PASS: memory slope <= {args.max_memory_slope:g} MB/min, '
              f'latency p99 <= {args.max_p99_ms:g} ms, no crash')
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``soak`` as ``python -m vpd_ros.apps.soak [options]``."""
    parser = argparse.ArgumentParser(prog='vpd-ros soak', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_soak_arguments(parser)
    return run_soak(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
