# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros bench``: how fast the engine and the node are, measured, never estimated.

Engine mode runs the engine on a synthetic camera frame and reports per-stage times (medians),
latency percentiles, sequential throughput, peak host RSS and peak device memory, with the
machine and library versions. ``--compare-baseline`` runs the same weights the naive way too
(eager fp32, explicit attention on every layer, one VAE encode per model, text encoded every
frame, contiguous tensors: how the official code runs), alternating frames between the two
engines so that both see the same machine load, and prints one table of both.

Node mode (``--node``) starts ``vpd_node`` and a simulated camera as separate processes on DDS,
loopback only (:mod:`vpd_ros.apps.rosenv`), and reports camera-stamp-to-output latency and the
node's own per-stage means (decode, engine, encode, publish) from its diagnostics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..engine.config import COMPILE_MODES, DTYPE_CHOICES
from .measure import host_peak_mb, percentiles, reset_host_peak

#: Stage names in table order (those the engine did not run are left out).
STAGES = ('preprocess', 'vae', 'text', 'depth', 'depth_unet', 'depth_head', 'refer',
          'refer_unet', 'refer_head', 'postprocess', 'total')
#: Query texts used in turn for the benchmark's queries.
QUERY_TEXTS = ('the red mug on the table', 'the chair on the left', 'the open door',
               'the person in a blue shirt', 'the small plant near the window',
               'the laptop', 'the white cabinet', 'the lamp behind the sofa')
#: Configuration fields that make an engine the naive baseline.
BASELINE = {'dtype': 'float32', 'channels_last': False, 'attention': 'explicit',
            'shared_encode': False, 'text_cache': False, 'overlap': False,
            'pinned_memory': False, 'compile': 'none'}


def cpu_model() -> str:
    """Return the CPU model name (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> Dict[str, str]:
    """Return the machine and library versions a result belongs to."""
    import diffusers
    import torch
    import transformers

    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    info = {
        'cpu': cpu_model(), 'cores': str(cores), 'torch_threads': str(torch.get_num_threads()),
        'gpu': (torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'),
        'python': platform.python_version(), 'torch': torch.__version__,
        'diffusers': diffusers.__version__, 'transformers': transformers.__version__,
        'numpy': np.__version__,
    }
    if hasattr(os, 'getloadavg'):
        info['load_average'] = ' '.join(f'{v:.2f}' for v in os.getloadavg())
    return info


def baseline_config(config: Any) -> Any:
    """Return ``config`` (an EngineConfig) turned into the naive, official-style baseline."""
    return dataclasses.replace(config, **BASELINE)


def optimized_config(device: str = 'auto', dtype: str = 'auto',
                     input_size: Optional[Sequence[int]] = None, compile_mode: str = 'none',
                     num_threads: Optional[int] = None) -> Any:
    """Return the engine configuration the benchmark calls optimized (the deployed one)."""
    from ..engine import EngineConfig

    return EngineConfig(device=device, dtype=dtype,
                        input_size=tuple(input_size) if input_size else None,
                        compile=compile_mode, num_threads=num_threads, channels_last=True,
                        shared_encode=True, text_cache=True, overlap=True, pinned_memory=True)


def model_mb(engine: Any) -> float:
    """Return the bytes of the engine's parameters and buffers (shared tensors once), MB."""
    seen, total = set(), 0
    for model in (engine.depth, engine.refer):
        if model is None:
            continue
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                total += tensor.numel() * tensor.element_size()
    return total / 2 ** 20


def make_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Return a reproducible (height, width, 3) uint8 RGB test frame."""
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def build_engines(weights: str, tasks: Sequence[str],
                  configs: Dict[str, Any]) -> Dict[str, Any]:
    """Return one engine per named config, each loading the same weights.

    ``random:<preset>`` weights are seeded, so every load gives the same tensors. (Loading
    again rather than deep-copying: a copied backbone's feature-tap hooks would still write
    to the original.)
    """
    from ..engine import EngineSpec, load_engine

    spec = EngineSpec(weights=weights, tasks=tuple(tasks))
    return {name: load_engine(spec, config) for name, config in configs.items()}


@dataclasses.dataclass
class EngineResult:
    """One engine's measurements at one number of queries.

    Attributes:
        stages_ms: stage -> median milliseconds (exact device times: profiling on).
        latency_ms: p50, p90, p99, mean of whole-frame wall time.
        throughput_fps: frames per second, one frame after the other.
        host_peak_mb: peak RSS of the process while this engine ran a frame.
        device_peak_mb: peak device memory allocated while this engine ran (CUDA).
        weights_mb: the engine's parameter and buffer bytes.
        warmup_s: seconds the warm-up took (with compile: the compilation).
    """

    stages_ms: Dict[str, float]
    latency_ms: Dict[str, float]
    throughput_fps: float
    host_peak_mb: float
    device_peak_mb: Optional[float]
    weights_mb: float
    warmup_s: float


def _run_frame(engine: Any, frame: np.ndarray, queries: List[str],
               depth: bool) -> Dict[str, float]:
    """Run one frame; return its timings plus ``wall`` ms and the memory peaks."""
    import torch

    cuda = engine.device.type == 'cuda'
    if cuda:
        torch.cuda.reset_peak_memory_stats(engine.device)
    reset_host_peak()
    start = time.perf_counter()
    pred = engine.predict(frame, queries, depth=depth)
    out = dict(pred.timings)
    out['wall'] = (time.perf_counter() - start) * 1e3
    out['host_peak_mb'] = host_peak_mb()
    if cuda:
        out['device_peak_mb'] = torch.cuda.max_memory_allocated(engine.device) / 2 ** 20
    return out


def bench_engines(engines: Dict[str, Any], frame: np.ndarray, num_queries: int,
                  iterations: int, warmup: int) -> Dict[str, EngineResult]:
    """Measure each engine on ``frame`` with ``num_queries`` queries, alternating frames.

    On CUDA the timed frames run with profiling off (stages may overlap; no synchronising
    between stages) and extra frames with profiling on give the per-stage times. On CPU the
    two are the same, so one set of frames gives both.
    """
    if iterations < 1 or warmup < 0 or num_queries < 0:
        raise ValueError(f'iterations {iterations} must be >= 1, warmup {warmup} and queries '
                         f'{num_queries} >= 0')
    any_engine = next(iter(engines.values()))
    queries = [QUERY_TEXTS[i % len(QUERY_TEXTS)] + ('' if i < len(QUERY_TEXTS) else f' {i}')
               for i in range(num_queries)] if any_engine.refer is not None else []
    depth = any_engine.depth is not None
    warm_s = {}
    for name, engine in engines.items():
        start = time.perf_counter()
        for _ in range(max(warmup, 1)):
            engine.predict(frame, queries, depth=depth)
        warm_s[name] = time.perf_counter() - start
    runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in engines}
    staged: Dict[str, List[Dict[str, float]]] = {name: [] for name in engines}
    for _ in range(iterations):
        for name, engine in engines.items():
            runs[name].append(_run_frame(engine, frame, queries, depth))
    for name, engine in engines.items():
        if engine.device.type == 'cuda' and not engine.config.profile:
            engine.config.profile = True
            try:
                staged[name] = [_run_frame(engine, frame, queries, depth)
                                for _ in range(min(iterations, 5))]
            finally:
                engine.config.profile = False
        else:
            staged[name] = runs[name]
    results = {}
    for name, engine in engines.items():
        frames = runs[name]
        stages = {s: float(np.median([f[s] for f in staged[name]]))
                  for s in STAGES if s in staged[name][0]}
        latency = percentiles([f['wall'] for f in frames])
        device = [f['device_peak_mb'] for f in frames if 'device_peak_mb' in f]
        results[name] = EngineResult(
            stages_ms=stages, latency_ms=latency, throughput_fps=1e3 / latency['mean'],
            host_peak_mb=max(f['host_peak_mb'] for f in frames),
            device_peak_mb=max(device) if device else None, weights_mb=model_mb(engine),
            warmup_s=warm_s[name])
    return results


def _fmt(value: Optional[float], digits: int = 1) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def results_markdown(results: Dict[int, Dict[str, EngineResult]]) -> str:
    """Return one markdown table: rows = measures, columns = engine (x queries), with ratios."""
    cols = [(q, name) for q, by_name in results.items() for name in by_name]
    header = '| measure | ' + ' | '.join(f'{name}, {q} q' for q, name in cols)
    compare = all(set(by_name) == {'baseline', 'optimized'} for by_name in results.values())
    if compare:
        header += ' | ' + ' | '.join(f'speed-up, {q} q' for q in results)
    lines = [header + ' |', '|---|' + '---|' * (len(cols) + (len(results) if compare else 0))]

    def row(label: str, get, ratio: bool = False, digits: int = 1) -> None:
        values = [get(results[q][name]) for q, name in cols]
        if all(v is None for v in values):
            return
        cells = [_fmt(v, digits) for v in values]
        if compare:
            for q in results:
                base, opt = get(results[q]['baseline']), get(results[q]['optimized'])
                cells.append(f'{base / opt:.2f}x' if ratio and base and opt else '')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')

    for stage in STAGES:
        row(f'{stage} ms (median)', lambda r, s=stage: r.stages_ms.get(s), ratio=True)
    for p in ('p50', 'p90', 'p99'):
        row(f'latency {p} ms', lambda r, p=p: r.latency_ms[p], ratio=True)
    row('throughput frames/s', lambda r: r.throughput_fps, digits=2)
    row('peak host RSS MB (process)', lambda r: r.host_peak_mb, digits=0)
    row('peak device MB', lambda r: r.device_peak_mb, digits=0)
    row('weights MB', lambda r: r.weights_mb, digits=0)
    row('warm-up s', lambda r: r.warmup_s, digits=1)
    return '\n'.join(lines)


def engine_report(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the engine benchmark the arguments describe; return a JSON-able report."""
    from ..engine import default_weights

    tasks = {'both': ('depth', 'refer'), 'depth': ('depth',), 'refer': ('refer',)}[args.tasks]
    weights = args.weights or default_weights()
    optimized = optimized_config(args.device, args.dtype, args.input_size, args.compile,
                                 args.threads)
    configs = {'optimized': optimized}
    if args.compare_baseline:
        configs = {'baseline': baseline_config(optimized), 'optimized': optimized}
    engines = build_engines(weights, tasks, configs)
    for engine in engines.values():
        if engine.device.type == 'cuda':
            engine.config.profile = False  # timed frames unsynchronised; stages measured apart
    frame = make_frame(*args.frame_size)
    queries = [q for q in args.queries if 'refer' in tasks] or [0]
    results = {q: bench_engines(engines, frame, q, args.iterations, args.warmup)
               for q in queries}
    first = next(iter(engines.values()))
    settings = {
        'weights': weights, 'tasks': args.tasks, 'device': str(first.device),
        'dtype': {n: str(e.dtype).replace('torch.', '') for n, e in engines.items()},
        'input_size': list(first.input_size), 'frame_size': list(args.frame_size),
        'iterations': args.iterations, 'warmup': args.warmup, 'compile': args.compile,
        'configs': {n: dataclasses.asdict(c) for n, c in configs.items()},
    }
    return {'machine': machine_info(), 'settings': settings, 'queries': queries,
            'results': {q: {n: dataclasses.asdict(r) for n, r in by.items()}
                        for q, by in results.items()},
            'markdown': results_markdown(results)}


def node_report(args: argparse.Namespace) -> Dict[str, Any]:
    """Run vpd_node with a simulated camera on loopback DDS; return latency and node stages.

    Needs the ROS layer (``vpd_ros.ros``); imported here so that the engine benchmark runs
    without ROS.
    """
    import tempfile

    from . import rosenv
    from ..engine import default_weights
    from . import soak

    class StageClient(soak.SoakClient):
        """The soak client that also keeps the node's per-stage means from diagnostics."""

        def __init__(self) -> None:
            self.stage_ms: Dict[str, List[float]] = {}
            super().__init__()

        def _on_diagnostics(self, msg: Any) -> None:
            super()._on_diagnostics(msg)
            for status in msg.status:
                if self.counting and status.name.startswith('vpd_node'):
                    for kv in status.values:
                        if kv.key.startswith('latency_ms.'):
                            self.stage_ms.setdefault(kv.key[11:], []).append(float(kv.value))

    weights = args.weights or default_weights()
    tmp = tempfile.mkdtemp(prefix='vpd_bench_node_')
    rosenv.apply_session_env(tmp)
    env = rosenv.ros_env(tmp)
    query = QUERY_TEXTS[0] if args.tasks != 'depth' and args.queries[0] > 0 else ''
    params = {'weights': weights, 'device': args.device, 'dtype': args.dtype,
              'tasks': args.tasks, 'default_query': query, 'autostart': 'true',
              'qos.input.reliability': 'reliable'}
    if args.input_size:
        params['input_size'] = '[{},{}]'.format(*args.input_size)
    if args.threads:
        params['num_threads'] = args.threads
    node_cmd = rosenv.executable('vpd_node') + ['--ros-args'] + [
        a for k, v in params.items() for a in ('-p', f'{k}:={v}')]
    height, width = args.frame_size
    camera_cmd = soak.camera_command(args.rate, width, height)
    report = soak.SoakReport(duration_s=args.duration, weights=weights)
    client = StageClient()
    try:
        soak.run_node_and_camera(client, node_cmd, camera_cmd, env, tmp, report, args.warmup_s)
    finally:
        client.close()
    stages = {k: float(np.mean(v)) for k, v in sorted(client.stage_ms.items())}
    overhead = None
    if 'total' in stages and 'engine.total' in stages:
        overhead = stages['total'] - stages['engine.total']
    return {'machine': machine_info(), 'soak': dataclasses.asdict(report),
            'node_stage_ms': stages, 'node_overhead_ms': overhead, 'params': params,
            'log_dir': tmp,
            'markdown': node_markdown(report.latency_ms, stages, overhead, report)}


def node_markdown(latency: Dict[str, float], stages: Dict[str, float],
                  overhead: Optional[float], report: Any) -> str:
    """Return the node benchmark as a markdown table."""
    lines = ['| measure | value |', '|---|---|']
    lines += [f'| camera stamp -> depth received, {k} ms | {v:.1f} |' for k, v in latency.items()]
    lines += [f'| node stage {k} ms (mean) | {v:.2f} |' for k, v in stages.items()]
    lines.append(f'| node overhead beyond the engine ms | {_fmt(overhead, 2)} |')
    lines.append(f'| frames in / processed / dropped / outputs | {report.frames_in} / '
                 f'{report.node_processed} / {report.node_dropped} / {report.outputs} |')
    if report.rss_mb:
        lines.append(f'| node peak RSS MB | {report.rss_mb["peak"]:.0f} |')
    return '\n'.join(lines)


def _size(text: str) -> List[int]:
    parts = [int(v) for v in text.lower().replace('x', ' ').replace(',', ' ').split()]
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f'size {text!r} must be HEIGHTxWIDTH, e.g. 480x640')
    return parts


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """Add the benchmark options to ``p`` (imports no torch: ``vpd-ros --help`` stays fast)."""
    p.add_argument('--weights', default=None,
                   help='tiny (shipped), random:<preset> (e.g. random:sd15) or a model folder '
                        '(default: shipped tiny, else random:tiny)')
    p.add_argument('--tasks', default='both', choices=('both', 'depth', 'refer'))
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--dtype', default='auto', choices=DTYPE_CHOICES,
                   help='optimized engine dtype (the baseline is always float32)')
    p.add_argument('--input-size', type=_size, default=None,
                   help='model input HEIGHTxWIDTH, multiples of 32 (default: native)')
    p.add_argument('--frame-size', type=_size, default=[480, 640],
                   help='camera frame HEIGHTxWIDTH (default 480x640)')
    p.add_argument('--queries', type=int, nargs='+', default=[1],
                   help='numbers of queries per frame, one table column each (default 1)')
    p.add_argument('--iterations', type=int, default=20, help='timed frames per engine')
    p.add_argument('--warmup', type=int, default=3, help='untimed frames per engine first')
    p.add_argument('--compile', default='none', choices=COMPILE_MODES,
                   help='torch.compile mode of the optimized engine (default none; CUDA)')
    p.add_argument('--threads', type=int, default=None,
                   help='CPU threads (torch.set_num_threads); default: torch\'s choice')
    p.add_argument('--compare-baseline', action='store_true',
                   help='also run the naive official-style baseline on the same weights')
    p.add_argument('--node', action='store_true',
                   help='benchmark vpd_node end to end (camera -> node -> subscriber on DDS)')
    p.add_argument('--duration', type=float, default=20.0, help='--node: measured seconds')
    p.add_argument('--warmup-s', type=float, default=5.0, help='--node: unmeasured seconds')
    p.add_argument('--rate', type=float, default=30.0, help='--node: camera frames per second')
    p.add_argument('--json', default='', help='write the full report as JSON to this file')
    p.add_argument('--markdown', default='', help='write the table as markdown to this file')


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``bench`` on the ``vpd-ros`` command."""
    p = subparsers.add_parser('bench', help='benchmark the engine (optionally against the '
                              'naive baseline) or the node end to end')
    add_bench_arguments(p)
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark the arguments describe; print the machine and the table."""
    report = node_report(args) if args.node else engine_report(args)
    machine = ', '.join(f'{k} {v}' for k, v in report['machine'].items())
    settings = report.get('settings') or report.get('params')
    print(f'machine: {machine}')
    print(f'settings: {json.dumps({k: v for k, v in settings.items() if k != "configs"})}')
    print(report['markdown'])
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=2, default=str)
    if args.markdown:
        with open(args.markdown, 'w', encoding='utf-8') as f:
            f.write(f'machine: {machine}\n\nsettings: `{json.dumps(settings, default=str)}`'
                    f'\n\n{report["markdown"]}\n')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``python -m vpd_ros.apps.bench [options]``."""
    parser = argparse.ArgumentParser(prog='vpd-ros bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
