# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Measured check: how much faster than torch any fp32 backend could be on this CPU.

A backend that computes the same thing does the same arithmetic, so its time per graph is bounded
below by the graph's floating-point work divided by the most this CPU sustains. This script
measures both and the two runtimes between them, for the depth model's graphs at SD-1.5 size
(random weights in the sd15 preset: speed does not depend on the values):

- the CPU's dense peak: torch sgemm (4096^3) and the VAE's and UNet's main 3x3 convolutions
  (channels-last), and OpenVINO's own convolution throughput from its per-layer counters;
- per graph: GFLOP (``torch.utils.flop_counter``: convolutions and matrix products), the torch
  module's time (channels-last, inference mode: what the torch engine runs), OpenVINO's time on
  the exported graph and how it splits between dense layers and the rest (``PERF_COUNT``);
- the floor (GFLOP / peak) and the largest speed-up over torch that any backend doing this
  arithmetic can reach: torch time / floor.

    .venv/bin/python bench/cpu_ceiling.py --threads 2 --workdir /tmp/ceiling --markdown c.md

Needs ~8 GB of RAM and ~4 GB in the work folder (the UNet graph); exports take minutes.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from typing import Callable, Dict, List

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from vpd_ros.apps import bench
from vpd_ros.engine.deploy.graphs import GraphSpec, depth_specs, export_graph, vae_spec
from vpd_ros.model import VPDDepth, get_preset

#: OpenVINO layer types that do the graphs' dense arithmetic.
DENSE = ('Convolution', 'ConvolutionBackpropData', 'FullyConnected', 'MatMul',
         'ScaledDotProductAttention')


def best_seconds(run: Callable[[], object], iterations: int) -> float:
    """Return the fastest of ``iterations`` timed calls after one warm-up call."""
    run()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def kernel_peaks(iterations: int) -> Dict[str, float]:
    """GFLOP/s of torch's sgemm and of the models' largest 3x3 convolutions (channels-last)."""
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    peaks = {'sgemm 4096': 2 * 4096 ** 3 / best_seconds(lambda: a @ b, iterations) / 1e9}
    for channels, side in ((128, 512), (256, 256), (512, 128), (320, 64), (1280, 16)):
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(
            memory_format=torch.channels_last)
        x = torch.randn(1, channels, side, side).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            seconds = best_seconds(lambda: conv(x), iterations)
        flops = 2 * side * side * channels ** 2 * 9
        peaks[f'conv3x3 {channels}ch {side}^2'] = flops / seconds / 1e9
    return peaks


def graph_flops(spec: GraphSpec) -> Dict[str, float]:
    """Return the graph's floating-point operations: ``conv`` (convolutions) and ``all``.

    Attention runs as explicit matrix products here (the math SDPA kernel): the counter does not
    count the CPU flash-attention kernel, and the same products are done either way.
    """
    spec.module.requires_grad_(False)  # the counter's module hooks fail on autograd tensors
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), \
            FlopCounterMode(display=False) as counter:
        spec.module(*[x.detach() for x in spec.inputs.values()])
    by_op = {str(k): v for k, v in counter.get_flop_counts()['Global'].items()}
    return {'conv': float(by_op.get('aten.convolution', 0)),
            'all': float(counter.get_total_flops())}


def torch_seconds(spec: GraphSpec, iterations: int) -> float:
    """Time the graph's torch module the way the CPU engine runs it (channels-last)."""
    module = spec.module.to(memory_format=torch.channels_last)
    inputs = [x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
              for x in spec.inputs.values()]
    with torch.inference_mode():
        return best_seconds(lambda: module(*inputs), iterations)


def openvino_profile(path: str, spec: GraphSpec, threads: int,
                     iterations: int) -> Dict[str, float]:
    """OpenVINO's time on the exported graph, and its dense layers' share from PERF_COUNT."""
    import openvino as ov

    compiled = ov.Core().compile_model(path, 'CPU', {
        'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_NUM_THREADS': threads, 'PERF_COUNT': True})
    request = compiled.create_infer_request()
    feed = {k: v.numpy() for k, v in spec.inputs.items()}
    seconds = best_seconds(lambda: request.infer(feed), iterations)
    by_type: Dict[str, float] = collections.defaultdict(float)
    for layer in request.profiling_info:  # the last call's counters
        by_type[layer.node_type] += layer.real_time.total_seconds()
    dense = sum(v for k, v in by_type.items() if k in DENSE)
    return {'seconds': seconds, 'dense': dense, 'other': sum(by_type.values()) - dense,
            'conv_seconds': by_type.get('Convolution', 0.0)}


def engine_seconds(model: VPDDepth, size: tuple, threads: int, iterations: int) -> float:
    """Time the torch engine's depth frame (a 480x640 camera frame resized to ``size``)."""
    from vpd_ros.engine import VPDEngine

    engine = VPDEngine(model, None, bench.optimized_config('cpu', 'float32', size,
                                                           num_threads=threads))
    frame = bench.make_frame(480, 640)
    return best_seconds(lambda: engine.predict(frame), iterations)


def main() -> int:
    """Measure, print and optionally write the table."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--iterations', type=int, default=2)
    p.add_argument('--size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    p.add_argument('--graphs', nargs='+', default=['vae', 'depth_unet', 'depth_head'])
    p.add_argument('--workdir', required=True, help='exported graphs go here (~4 GB)')
    p.add_argument('--markdown', default='')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)
    peaks = kernel_peaks(args.iterations)
    print('dense kernels, GFLOP/s:', {k: round(v) for k, v in peaks.items()}, flush=True)
    preset = get_preset('sd15')
    torch.manual_seed(0)
    model = VPDDepth(preset['unet'], preset['vae'], **preset['depth']).eval()
    size = tuple(args.size)
    specs = {s.name: s for s in [vae_spec(model.backbone, size)] + depth_specs(model, size)}
    rows: List[Dict[str, float]] = []
    for name in args.graphs:
        spec = specs[name]
        path = os.path.join(args.workdir, f'{name}.onnx')
        if not os.path.exists(path):
            export_graph(spec, path)
        ov_run = openvino_profile(path, spec, args.threads, args.iterations)
        flops = graph_flops(spec)
        rows.append({'graph': name, 'gflop': flops['all'] / 1e9, 'conv_gflop': flops['conv'] / 1e9,
                     'torch': torch_seconds(spec, args.iterations), **ov_run})
        print(rows[-1], flush=True)
    whole = sorted(args.graphs) == sorted(specs)
    engine_s = engine_seconds(model, size, args.threads, args.iterations) if whole else None
    peaks_end = kernel_peaks(args.iterations)  # the host's speed drifts: measured again
    # OpenVINO's convolutions: its fastest dense layers here (its attention runs in fused subgraphs)
    ov_peak = max(r['conv_gflop'] / r['conv_seconds'] for r in rows if r['conv_seconds'] > 0)
    peak = max(max(peaks.values()), max(peaks_end.values()), ov_peak)
    lines = [f'machine: {", ".join(f"{k} {v}" for k, v in bench.machine_info().items())}',
             f'threads {args.threads}, input {size[0]}x{size[1]}; dense peak {peak:.0f} GFLOP/s '
             f'(torch kernels at the start: {", ".join(f"{k} {v:.0f}" for k, v in peaks.items())}'
             f'; at the end: {", ".join(f"{v:.0f}" for v in peaks_end.values())}; '
             f'OpenVINO convolutions up to {ov_peak:.0f})', '',
             '| graph | GFLOP | torch s | torch GFLOP/s | OpenVINO s | OpenVINO dense s | '
             'OpenVINO other s | floor s at peak | OpenVINO / torch | best possible / torch |',
             '|---|---|---|---|---|---|---|---|---|---|']
    total = {k: sum(r[k] for r in rows) for k in ('gflop', 'torch', 'seconds', 'dense', 'other')}
    for r in rows + [dict(total, graph='all')]:
        floor = r['gflop'] / peak
        lines.append(f"| {r['graph']} | {r['gflop']:.0f} | {r['torch']:.2f} | "
                     f"{r['gflop'] / r['torch']:.0f} | {r['seconds']:.2f} | {r['dense']:.2f} | "
                     f"{r['other']:.2f} | {floor:.2f} | {r['torch'] / r['seconds']:.2f}x | "
                     f"{r['torch'] / floor:.2f}x |")
    if engine_s is not None:
        floor = total['gflop'] / peak
        lines += ['', f'torch engine, depth frame (predict, 480x640 -> {size[0]}x{size[1]}): '
                  f'{engine_s:.2f} s ({total["gflop"] / engine_s:.0f} GFLOP/s); best possible / '
                  f'torch engine: {engine_s / floor:.2f}x (floor {floor:.2f} s)']
    text = '\n'.join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, 'w', encoding='utf-8') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
