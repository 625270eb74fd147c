# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros bench``: how fast the engine and the node are, measured, never estimated.

Engine mode runs the engine on a synthetic camera frame and reports per-stage times (medians),
latency percentiles, sequential throughput, peak host RSS and peak device memory, with the
machine and library versions. ``--compare-baseline`` runs the same weights the naive way too
(eager fp32, explicit attention on every layer, one VAE encode per model, text encoded every
frame, contiguous tensors: how the official code runs); ``--backend torch onnxruntime openvino``
runs the same weights on each deployment backend (:mod:`vpd_ros.engine.deploy`). Frames alternate
between the engines so that all see the same machine load; one table holds them all, with the
ratio to the first engine and the outputs' deviation from it.

Node mode (``--node``) starts ``vpd_node`` and a simulated camera as separate processes on DDS,
loopback only (:mod:`vpd_ros.apps.rosenv`), and reports camera-stamp-to-output latency and the
node's own per-stage means (decode, engine, encode, publish) from its diagnostics.

Progress lines with the elapsed time go to stderr as the run goes (build, each warm-up, each
query count), and ``--json``/``--markdown`` are rewritten after every query count, so a run cut
short by a time limit still leaves what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..engine.config import BACKENDS, COMPILE_MODES, DTYPE_CHOICES, engine_config, usable_cores
from .cli_common import Parser, parse_model_size, parse_size
from .measure import host_peak_mb, percentiles, reset_host_peak
from .cli_export import add_graph_arguments

BENCH_HELP = ('benchmark the engine (optionally against the naive baseline) or the node end to '
              'end; prints the machine, per-stage times, percentiles and memory')
#: Stage names in table order (those the engine did not run are left out; ``*_imafr`` and
#: ``depth_bins`` are EVP's feature refinement and metric-bins head).
STAGES = ('preprocess', 'vae', 'text', 'depth', 'depth_unet', 'depth_imafr', 'depth_bins',
          'depth_head', 'refer', 'refer_unet', 'refer_imafr', 'refer_head', 'postprocess', 'total')
#: Query texts used in turn for the benchmark's queries.
QUERY_TEXTS = ('the red mug on the table', 'the chair on the left', 'the open door',
               'the person in a blue shirt', 'the small plant near the window',
               'the laptop', 'the white cabinet', 'the lamp behind the sofa')
#: Configuration fields that make an engine the naive baseline (true fp32: no TF32).
BASELINE = {'dtype': 'float32', 'channels_last': False, 'attention': 'explicit',
            'shared_encode': False, 'text_cache': False, 'overlap': False,
            'pinned_memory': False, 'compile': 'none', 'tf32': False}
#: Variants of the optimized engine that ``--variants`` adds, as configuration changes.
VARIANTS = {'contiguous': {'channels_last': False}}
_START = time.perf_counter()


def progress(message: str) -> None:
    """Print a progress line with the seconds since the benchmark started (stderr, flushed)."""
    print(f'[bench {time.perf_counter() - _START:7.1f} s] {message}', file=sys.stderr,
          flush=True)


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

    info = {
        'cpu': cpu_model(), 'cores': str(usable_cores()),
        'torch_threads': str(torch.get_num_threads()),
        'gpu': (torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'),
        'python': platform.python_version(), 'torch': torch.__version__,
        'diffusers': diffusers.__version__, 'transformers': transformers.__version__,
        'numpy': np.__version__,
    }
    if torch.cuda.is_available():
        info['cuda'] = str(torch.version.cuda)
        info['cudnn'] = str(torch.backends.cudnn.version())
    if hasattr(os, 'getloadavg'):
        info['load_average'] = ' '.join(f'{v:.2f}' for v in os.getloadavg())
    return info


def precision_settings(engines: Dict[str, Any]) -> Dict[str, Any]:
    """Return what decides float32 precision and kernel choice: TF32 per engine, cuDNN autotune."""
    import torch

    return {'tf32': {name: e.config.tf32 for name, e in engines.items()},
            'cudnn_benchmark': bool(torch.backends.cudnn.benchmark)}


def prime_cuda(device: Any) -> None:
    """Run throwaway CUDA work (context, cuBLAS and cuDNN handles, lazy modules) before timing.

    Otherwise the engine warmed up first absorbs that one-time set-up in its warm-up time.
    """
    import torch
    import torch.nn.functional as F

    for dtype in (torch.float32, torch.float16):
        x = torch.ones(1, 8, 16, 16, device=device, dtype=dtype)
        F.conv2d(x, torch.ones(8, 8, 3, 3, device=device, dtype=dtype), padding=1)
        x.flatten(1) @ torch.ones(x[0].numel(), 8, device=device, dtype=dtype)
    torch.cuda.synchronize(device)


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
                        shared_encode=True, text_cache=True, overlap=True, pinned_memory=True,
                        profile=False)


def bench_configs(optimized: Any, compare_baseline: bool,
                  variants: Sequence[str] = ()) -> Dict[str, Any]:
    """Return the named engine configurations to run: baseline first, optimized, variants."""
    configs = {'baseline': baseline_config(optimized)} if compare_baseline else {}
    configs['optimized'] = optimized
    for name in variants:
        configs[name] = dataclasses.replace(optimized, **VARIANTS[name])
    return configs


def model_mb(engine: Any) -> Optional[float]:
    """Return the bytes of the engine's parameters and buffers (shared tensors once), MB.

    ``None`` for an engine running exported graphs.
    """
    seen, total = set(), 0
    models = [m for m in (engine.depth, engine.refer) if m is not None]
    if not all(isinstance(m, torch_module()) for m in models):
        return None
    for model in models:
        for tensor in list(model.parameters()) + list(model.buffers()):
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                total += tensor.numel() * tensor.element_size()
    return total / 2 ** 20


def own_device_peak_mb(peak_mb: float, name: str, engines: Dict[str, Any]) -> float:
    """Return engine ``name``'s share of a device-memory peak taken while it ran a frame.

    Every engine of the run stays loaded, so the allocator's peak also holds the others'
    weights: they are subtracted. What remains is this engine's weights, caches and the
    frame's activations.
    """
    return peak_mb - sum(model_mb(e) or 0.0 for other, e in engines.items() if other != name)


def torch_module() -> type:
    """``torch.nn.Module`` (imported when needed: ``vpd-ros --help`` imports no torch)."""
    import torch

    return torch.nn.Module


def make_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Return a reproducible (height, width, 3) uint8 RGB test frame."""
    return (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)


def build_engines(weights: str, tasks: Sequence[str],
                  configs: Dict[str, Any]) -> Dict[str, Any]:
    """Return one engine per named config, each loading the same weights.

    ``random:<name>`` weights are seeded, so every load gives the same tensors. (Loading
    again rather than deep-copying: a copied backbone's feature-tap hooks would still write
    to the original.)
    """
    engines = {}
    for name, config in configs.items():
        engines[name], seconds = timed_load(weights, tasks, config)
        progress(f'built {name} on {engines[name].device} ({_fmt(model_mb(engines[name]), 0)} MB '
                 f'{str(engines[name].dtype).replace("torch.", "")}) in {seconds:.1f} s')
    return engines


def timed_load(weights: str, tasks: Sequence[str], config: Any) -> Tuple[Any, float]:
    """Load an engine; return it and the seconds :func:`load_engine` took (imports done)."""
    from ..engine import EngineSpec, load_engine

    start = time.perf_counter()
    engine = load_engine(EngineSpec(weights=weights, tasks=tuple(tasks)), config)
    return engine, time.perf_counter() - start


def cache_starts(weights: str, tasks: Sequence[str], configs: Dict[str, Any]) -> Dict[str, float]:
    """Seconds each exported-graph engine takes to start again, its graphs now in the cache."""
    starts = {}
    for name, config in configs.items():
        if getattr(config, 'backend', 'torch') != 'torch':
            engine, starts[name] = timed_load(weights, tasks, config)
            engine.release()
            progress(f'start from cache: {name} {starts[name]:.2f} s')
    return starts


@dataclasses.dataclass
class EngineResult:
    """One engine's measurements at one number of queries.

    Attributes:
        stages_ms: stage -> median milliseconds (exact device times: profiling on).
        latency_ms: p50, p90, p99, mean of whole-frame wall time.
        throughput_fps: frames per second, one frame after the other.
        host_peak_mb: peak RSS of the process while this engine ran a frame.
        device_peak_mb: this engine's peak device memory allocated while it ran a frame
            (CUDA; the other engines' weights, loaded all the while, subtracted).
        weights_mb: the engine's parameter and buffer bytes (``None``: exported graphs).
        warmup_s: seconds the warm-up took (with compile: the compilation).
        deviation: outputs against the first engine's on the same frame: ``depth_rel_l2``,
            ``depth_max_abs_m``, ``mask_differ_pct``, ``probs_rel_l2``.
    """

    stages_ms: Dict[str, float]
    latency_ms: Dict[str, float]
    throughput_fps: float
    host_peak_mb: float
    device_peak_mb: Optional[float]
    weights_mb: Optional[float]
    warmup_s: float
    deviation: Dict[str, float] = dataclasses.field(default_factory=dict)


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
        for i in range(max(warmup, 1)):
            engine.predict(frame, queries, depth=depth)
            progress(f'{num_queries} q: {name} warm-up frame {i + 1}/{max(warmup, 1)} done')
        warm_s[name] = time.perf_counter() - start
    runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in engines}
    staged: Dict[str, List[Dict[str, float]]] = {name: [] for name in engines}
    for _ in range(iterations):
        for name, engine in engines.items():
            runs[name].append(_run_frame(engine, frame, queries, depth))
    progress(f'{num_queries} q: {iterations} timed frames per engine done')
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
            device_peak_mb=own_device_peak_mb(max(device), name, engines) if device else None,
            weights_mb=model_mb(engine),
            warmup_s=warm_s[name])
    reference = next(iter(engines.values())).predict(frame, queries, depth=depth)
    for name, engine in list(engines.items())[1:]:
        results[name].deviation = deviation(engine.predict(frame, queries, depth=depth),
                                            reference)
    return results


def bench_ground(engine: Any, frame: np.ndarray, iterations: int) -> Dict[str, Dict[str, float]]:
    """Time ``~/ground`` with one query: on a new frame (a whole predict) and with use_latest.

    use_latest is ``ground_latest`` on the frame just run: the kept latents and depth are
    reused, only the text (cached) and the referring pass run. The first pair is untimed.
    """
    depth = engine.depth is not None
    times: Dict[str, List[float]] = {'new_frame_ms': [], 'use_latest_ms': []}
    for i in range(iterations + 1):
        start = time.perf_counter()
        engine.predict(frame, QUERY_TEXTS[:1], depth=depth, frame_id=('bench', i))
        mark = time.perf_counter()
        engine.ground_latest(QUERY_TEXTS[:1], ('bench', i))
        if i:
            times['new_frame_ms'].append((mark - start) * 1e3)
            times['use_latest_ms'].append((time.perf_counter() - mark) * 1e3)
    return {name: percentiles(values) for name, values in times.items()}


def ground_markdown(name: str, ground: Dict[str, Dict[str, float]]) -> str:
    """Return the ``~/ground`` table: a new frame against use_latest, p50 and p90."""
    new, latest = ground['new_frame_ms'], ground['use_latest_ms']
    return '\n'.join([
        f'| ~/ground, 1 query ({name}) | p50 ms | p90 ms |', '|---|---|---|',
        f'| on a new frame (whole frame) | {new["p50"]:.1f} | {new["p90"]:.1f} |',
        f'| use_latest (kept latents and depth) | {latest["p50"]:.1f} | {latest["p90"]:.1f} |',
        f'| saved by use_latest | {new["p50"] - latest["p50"]:.1f} '
        f'({100 * (1 - latest["p50"] / new["p50"]):.0f} %) | |'])


def deviation(pred: Any, reference: Any) -> Dict[str, float]:
    """How far a prediction is from a reference prediction of the same frame."""
    def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a.astype(np.float64), b.astype(np.float64)
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))
    out = {}
    if reference.depth is not None:
        out['depth_rel_l2'] = rel_l2(pred.depth, reference.depth)
        out['depth_max_abs_m'] = float(np.abs(pred.depth - reference.depth).max())
    if reference.masks.size:
        out['mask_differ_pct'] = float((pred.masks != reference.masks).mean() * 100)
        out['probs_rel_l2'] = rel_l2(pred.probs, reference.probs)
    return out


def _fmt(value: Optional[float], digits: int = 1) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def results_markdown(results: Dict[int, Dict[str, EngineResult]]) -> str:
    """Return one markdown table: rows = measures, columns = engine (x queries).

    Then the speed-up of every other engine over the first (its time / theirs) and, in the last
    rows, their outputs' deviation from the first engine's.
    """
    cols = [(q, name) for q, by_name in results.items() for name in by_name]
    header = '| measure | ' + ' | '.join(f'{name}, {q} q' for q, name in cols)
    first = next(iter(next(iter(results.values()))))
    ratios = [(q, name) for q, name in cols if name != first]
    header += ''.join(f' | speed-up {name} / {first}, {q} q' for q, name in ratios)
    lines = [header + ' |', '|---|' + '---|' * (len(cols) + len(ratios))]

    def row(label: str, get, ratio: bool = False, digits: int = 1) -> None:
        values = [get(results[q][name]) for q, name in cols]
        if all(v is None for v in values):
            return
        cells = [_fmt(v, digits) for v in values]
        for q, name in ratios:
            ref, other = get(results[q][first]), get(results[q][name])
            cells.append(f'{ref / other:.2f}x' if ratio and ref and other else '')
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
    for key, label, digits in (('depth_rel_l2', f'depth rel L2 vs {first}', 7),
                               ('depth_max_abs_m', f'depth max abs m vs {first}', 6),
                               ('mask_differ_pct', f'mask pixels differing % vs {first}', 4),
                               ('probs_rel_l2', f'mask probability rel L2 vs {first}', 7)):
        row(label, lambda r, k=key: r.deviation.get(k), digits=digits)
    return '\n'.join(lines)


def engine_report(args: argparse.Namespace,
                  on_partial: Optional[Callable[[Dict[str, Any]], None]] = None
                  ) -> Dict[str, Any]:
    """Run the engine benchmark the arguments describe; return a JSON-able report.

    The report ends with ``~/ground`` on a new frame against use_latest (:func:`bench_ground`).
    ``on_partial`` gets the report of the query counts measured so far after each one (its
    ``partial`` is True until the last).
    """
    from ..engine import default_weights

    tasks = {'both': ('depth', 'refer'), 'depth': ('depth',), 'refer': ('refer',)}[args.tasks]
    weights = args.weights or default_weights()
    optimized = optimized_config(args.device, args.dtype, args.input_size, args.compile,
                                 args.threads)
    configs = bench_configs(optimized, args.compare_baseline, args.variants)
    if args.backend != ['torch']:
        configs = backend_configs(optimized, args.backend, args.precision, args.cache_dir)
    engines = build_engines(weights, tasks, configs)
    machine = machine_info()  # after the engines: they set torch's thread count (--threads)
    starts = cache_starts(weights, tasks, configs)
    first = next(iter(engines.values()))
    if first.device.type == 'cuda':
        prime_cuda(first.device)
        progress('CUDA primed (context, cuBLAS, cuDNN)')
    frame = make_frame(*args.frame_size)
    queries = [q for q in args.queries if 'refer' in tasks] or [0]
    settings = {
        'weights': weights, 'tasks': args.tasks, 'device': str(first.device),
        'dtype': {n: str(e.dtype).replace('torch.', '') for n, e in engines.items()},
        'input_size': list(first.input_size), 'frame_size': list(args.frame_size),
        'iterations': args.iterations, 'warmup': args.warmup, 'compile': args.compile,
        **precision_settings(engines), 'start_from_cache_s': starts,
        'configs': {n: dataclasses.asdict(c) for n, c in configs.items()},
    }
    results: Dict[int, Dict[str, EngineResult]] = {}
    report: Dict[str, Any] = {}
    for q in queries:
        results[q] = bench_engines(engines, frame, q, args.iterations, args.warmup)
        report = {'machine': machine, 'settings': settings, 'queries': queries,
                  'partial': q != queries[-1],
                  'results': {n: {k: dataclasses.asdict(r) for k, r in by.items()}
                              for n, by in results.items()},
                  'markdown': results_markdown(results) + starts_markdown(starts)}
        if on_partial is not None and q != queries[-1]:
            on_partial(report)
    name = next(iter(engines))
    if first.refer is not None:
        report['ground'] = bench_ground(first, frame, args.iterations)
        report['markdown'] += '\n\n' + ground_markdown(name, report['ground'])
        progress(f'~/ground: {args.iterations} new-frame / use_latest pairs done')
    if on_partial is not None:
        on_partial(report)
    return report


def starts_markdown(starts: Dict[str, float]) -> str:
    """Return the start-from-cache line under the table (empty without exported graphs)."""
    if not starts:
        return ''
    return ('\n\nstart from cache (load_engine with the graphs cached, imports done): '
            + ', '.join(f'{name} {seconds:.2f} s' for name, seconds in starts.items()))


def backend_configs(optimized: Any, backends: Sequence[str], precision: str,
                    cache_dir: Optional[str]) -> Dict[str, Any]:
    """Return one engine configuration per backend.

    ``torch`` is the optimized engine; the others run its exported graphs
    (:class:`vpd_ros.engine.config.BackendConfig`).
    """
    fields = dict(dataclasses.asdict(optimized), dtype='auto')
    return {b: optimized if b == 'torch' else engine_config(
        b, precision, cache_dir, **dict(fields, device='cuda' if b == 'tensorrt'
                                        else fields['device'])) for b in backends}


def node_report(args: argparse.Namespace) -> Dict[str, Any]:
    """Run vpd_node with a simulated camera on loopback DDS; return latency and node stages.

    Needs the ROS layer (``vpd_ros.ros``); imported here so that the engine benchmark runs
    without ROS.
    """
    import tempfile

    from . import rosenv
    from ..engine import default_weights
    from . import soak

    weights = args.weights or default_weights()
    query = QUERY_TEXTS[0] if args.tasks != 'depth' and args.queries[0] > 0 else ''

    class StageClient(soak.SoakClient):
        """The soak client that also keeps the node's per-stage means from diagnostics."""

        def __init__(self) -> None:
            self.stage_ms: Dict[str, List[float]] = {}
            super().__init__(probe_query=query)

        def _on_diagnostics(self, msg: Any) -> None:
            super()._on_diagnostics(msg)
            for status in msg.status:
                if self.counting and status.name.startswith('vpd_node'):
                    for kv in status.values:
                        if kv.key.startswith('latency_ms.'):
                            self.stage_ms.setdefault(kv.key[11:], []).append(float(kv.value))

    tmp = tempfile.mkdtemp(prefix='vpd_bench_node_')
    rosenv.apply_session_env(tmp)
    env = rosenv.ros_env(tmp)
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
    round_trips = percentiles(client.round_trips_ms)
    return {'machine': machine_info(), 'soak': dataclasses.asdict(report),
            'node_stage_ms': stages, 'node_overhead_ms': overhead, 'params': params,
            'service_round_trip_ms': round_trips, 'service_calls': len(client.round_trips_ms),
            'log_dir': tmp,
            'markdown': node_markdown(report.latency_ms, stages, overhead, report,
                                      round_trips, len(client.round_trips_ms))}


def node_markdown(latency: Dict[str, float], stages: Dict[str, float],
                  overhead: Optional[float], report: Any, round_trips: Dict[str, float],
                  calls: int) -> str:
    """Return the node benchmark as a markdown table."""
    lines = ['| measure | value |', '|---|---|']
    lines += [f'| camera stamp -> depth received, {k} ms | {v:.1f} |' for k, v in latency.items()]
    lines += [f'| ~/set_query round trip while frames stream, {k} ms ({calls} calls) | {v:.1f} |'
              for k, v in round_trips.items()]
    lines += [f'| node stage {k} ms (mean) | {v:.2f} |' for k, v in stages.items()]
    lines.append(f'| node overhead beyond the engine ms | {_fmt(overhead, 2)} |')
    lines.append(f'| frames in / processed / dropped / outputs | {report.frames_in} / '
                 f'{report.node_processed} / {report.node_dropped} / {report.outputs} |')
    lines.append(f'| simulated camera frames/s achieved (render + publish) | '
                 f'{report.frames_in / report.duration_s:.1f} |')
    if report.shutdown_s is not None:
        lines.append(f'| SIGINT -> node exit s (exit code {report.shutdown_code}) | '
                     f'{report.shutdown_s:.2f} |')
    if report.rss_mb:
        lines.append(f'| node peak RSS MB | {report.rss_mb["peak"]:.0f} |')
    return '\n'.join(lines)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    """Add the benchmark options to ``p`` (imports no torch: ``vpd-ros --help`` stays fast)."""
    p.add_argument('--weights', default=None,
                   help='tiny (shipped), random:<name> (random weights: tiny, sd15, evp-tiny, '
                        'evp-sd15) or a model folder '
                        '(default: shipped tiny, else random:tiny)')
    p.add_argument('--tasks', default='both', choices=('both', 'depth', 'refer'),
                   help='models to run')
    p.add_argument('--device', default='auto', help='auto (CUDA when available), cpu, cuda or '
                   'cuda:N')
    p.add_argument('--dtype', default='auto', choices=DTYPE_CHOICES,
                   help='optimized engine dtype (the baseline is always float32)')
    p.add_argument('--input-size', type=parse_model_size, default=None, metavar='HEIGHTxWIDTH',
                   help='model input size, multiples of 32 (default: the model\'s native)')
    p.add_argument('--frame-size', type=parse_size, default='480x640', metavar='HEIGHTxWIDTH',
                   help='camera frame size')
    p.add_argument('--queries', type=int, nargs='+', default=[1],
                   help='numbers of queries per frame, one table column each')
    p.add_argument('--iterations', type=int, default=20, help='timed frames per engine')
    p.add_argument('--warmup', type=int, default=3, help='untimed frames per engine first')
    p.add_argument('--compile', default='none', choices=COMPILE_MODES,
                   help='torch.compile mode of the optimized engine (CUDA)')
    p.add_argument('--threads', type=int, default=None,
                   help='CPU threads (torch.set_num_threads); default: torch\'s choice '
                   '(--node: the node\'s num_threads default, all cores but one)')
    p.add_argument('--compare-baseline', action='store_true',
                   help='also run the naive official-style baseline on the same weights')
    p.add_argument('--variants', nargs='*', default=[], choices=sorted(VARIANTS),
                   help='also run these variants of the optimized engine (contiguous: '
                        'channels-last off)')
    p.add_argument('--backend', nargs='+', default=['torch'],
                   choices=BACKENDS,
                   help='engines to compare, the first is the reference (e.g. torch '
                        'onnxruntime openvino); other than torch run the exported graphs')
    add_graph_arguments(p)
    p.add_argument('--node', action='store_true',
                   help='benchmark vpd_node end to end (camera -> node -> subscriber on DDS)')
    p.add_argument('--duration', type=float, default=20.0, help='--node: measured seconds')
    p.add_argument('--warmup-s', type=float, default=5.0, help='--node: unmeasured seconds')
    p.add_argument('--rate', type=float, default=30.0, help='--node: camera frames per second')
    p.add_argument('--json', help='write the full report as JSON to this file')
    p.add_argument('--markdown', help='write the table as markdown to this file')


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``bench`` on the ``vpd-ros`` command."""
    p = subparsers.add_parser('bench', help=BENCH_HELP, description=BENCH_HELP)
    add_bench_arguments(p)
    p.set_defaults(func=run_bench)


def write_report(report: Dict[str, Any], json_path: str, markdown_path: str) -> None:
    """Write the report as JSON and/or markdown (a partial one says so at its top)."""
    machine = ', '.join(f'{k} {v}' for k, v in report['machine'].items())
    settings = report.get('settings') or report.get('params')
    if json_path:
        with open(json_path, 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=2, default=str)
    if markdown_path:
        note = ('PARTIAL: the run stopped or is still running; only the query counts below '
                'were measured.\n\n' if report.get('partial') else '')
        with open(markdown_path, 'w', encoding='utf-8') as f:
            f.write(f'{note}machine: {machine}\n\nsettings: '
                    f'`{json.dumps(settings, default=str)}`\n\n{report["markdown"]}\n')


def run_bench(args: argparse.Namespace) -> int:
    """Run the benchmark the arguments describe; print the machine and the table."""
    if args.node:
        report = node_report(args)
    else:
        report = engine_report(args, lambda r: write_report(r, args.json, args.markdown))
    machine = ', '.join(f'{k} {v}' for k, v in report['machine'].items())
    settings = report.get('settings') or report.get('params')
    print(f'machine: {machine}')
    print(f'settings: {json.dumps({k: v for k, v in settings.items() if k != "configs"})}')
    print(report['markdown'])
    write_report(report, args.json, args.markdown)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``python -m vpd_ros.apps.bench [options]``."""
    parser = Parser(prog='vpd-ros bench', description=BENCH_HELP)
    add_bench_arguments(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
