# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Measured check: the deployment backends at SD-1.5 sizes, from checkpoints in the official
key layout (random weights, vpd_ros/test/official_layout.py), against the torch engine.

Writes random official-layout depth and referring checkpoints to a temporary folder, loads them
the way official checkpoints load (``from_official_checkpoint``; a random CLIP text tower),
runs the torch engine and each backend on the same frame, alternating, and prints the
benchmark table (per-stage times, speed-up over torch, deviation from torch). Needs ~18 GB of
free RAM per backend for both models (torch weights and the backend's copy; ``--tasks depth``
or ``refer`` about half) and a cache folder with ~8 GB free (delete it afterwards).

    .venv/bin/python bench/sd15_backends.py --backend onnxruntime --threads 2 \\
        --cache-dir /tmp/vpd_sd15_cache --markdown sd15_ort.md
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'vpd_ros', 'test'))

from official_layout import random_official_state, refer_extras  # noqa: E402

from vpd_ros.apps import bench  # noqa: E402
from vpd_ros.engine.deploy.engine import BackendConfig, GraphEngine  # noqa: E402
from vpd_ros.engine import VPDEngine  # noqa: E402
from vpd_ros.model import EVPDepth, EVPRefer, VPDDepth, VPDRefer, get_preset  # noqa: E402
from vpd_ros.model.text import build_text_encoder  # noqa: E402


MODELS = {'depth': VPDDepth, 'evp_depth': EVPDepth, 'evp_refer': EVPRefer}


def finite_state(kind: str) -> dict:
    """Random official-layout tensors whose BatchNorm variances are positive.

    Drawn around 0 like the rest, negative variances made the depth head return NaN,
    and the deviation from torch NaN with it (the 2026-11-30 run).
    """
    state = random_official_state(kind, seed=1)
    return {k: v.abs() + 1.0 if k.endswith('running_var') else v for k, v in state.items()}


def official_models(folder: str, tasks: str, family: str = 'vpd') -> tuple:
    """Random depth and/or referring models loaded from official-layout checkpoints.

    ``family`` ``evp``: EVP's layouts (each file holds its CLIP tower; the referring file its
    training entries, as released).
    """
    models = {}
    for task in ('depth', 'refer'):
        if tasks in (task, 'both'):
            kind = task if family == 'vpd' else f'evp_{task}'
            path = os.path.join(folder, f'{kind}.pth')
            extra = refer_extras() if kind == 'evp_refer' else {}
            torch.save({'model': finite_state(kind), **extra}, path)
            if kind == 'refer':
                models[task] = VPDRefer.from_official_checkpoint(
                    path, text_encoder=build_text_encoder(get_preset('sd15')['text']))
            else:
                models[task] = MODELS[kind].from_official_checkpoint(path)
            os.remove(path)
    return models.get('depth'), models.get('refer')


def main() -> int:
    """Run the check the arguments describe; print the machine and the table."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--backend', nargs='+', default=['onnxruntime'])
    p.add_argument('--precision', default='fp32')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--iterations', type=int, default=2)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--cache-dir', default=None)
    p.add_argument('--tasks', default='both', choices=('depth', 'refer', 'both'),
                   help='one model at a time needs half the memory')
    p.add_argument('--family', default='vpd', choices=('vpd', 'evp'),
                   help='official layouts of VPD (default) or EVP')
    p.add_argument('--markdown', default='')
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    with tempfile.TemporaryDirectory() as tmp:
        depth, refer = official_models(tmp, args.tasks, args.family)
    optimized = bench.optimized_config('cpu', 'float32', (512, 512), num_threads=args.threads)
    configs = bench.backend_configs(optimized, ['torch'] + args.backend, args.precision,
                                    args.cache_dir)
    # One set of torch modules: the torch engine runs them, the others export them.
    engines = {name: (GraphEngine if isinstance(config, BackendConfig) else VPDEngine)(
        depth, refer, config) for name, config in configs.items()}
    frame = bench.make_frame(480, 640)
    queries = 0 if args.tasks == 'depth' else 1
    results = {queries: bench.bench_engines(engines, frame, queries, args.iterations,
                                            args.warmup)}
    machine = ', '.join(f'{k} {v}' for k, v in bench.machine_info().items())
    table = bench.results_markdown(results)
    print(f'machine: {machine}\n{table}')
    if args.markdown:
        with open(args.markdown, 'w', encoding='utf-8') as f:
            f.write(f'machine: {machine}\n\n{table}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
