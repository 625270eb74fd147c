# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros export``: the engine's models to ONNX at an input size, compiled for a backend."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os

from .cli_common import add_engine_arguments, engine_config_from_args, engine_spec_from_args
from ..engine.config import BACKENDS, PRECISIONS, engine_config


def add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``export`` on the ``vpd-ros`` command."""
    p = subparsers.add_parser(
        'export', help='export the models to ONNX (VAE, backbones with their feature taps and '
        'attention maps, heads, text tower) into the cache and compile them for a backend')
    add_engine_arguments(p)
    p.add_argument('--backend', default='onnxruntime', choices=BACKENDS[1:],
                   help='backend to compile for and check the graphs with (default onnxruntime)')
    add_graph_arguments(p)
    p.add_argument('--output', default='',
                   help='also copy the graphs here as <graph>.onnx (with <graph>.onnx.data)')
    p.set_defaults(func=run_export)


def add_graph_arguments(p: argparse.ArgumentParser) -> None:
    """Add the exported-graph options shared by ``export`` and ``bench --backend``."""
    p.add_argument('--precision', default='fp32', choices=PRECISIONS,
                   help='precision the backend runs the exported graphs in (default fp32)')
    p.add_argument('--cache-dir', default=None,
                   help='export cache folder (default $VPD_ROS_CACHE or ~/.cache/vpd_ros)')


def run_export(args: argparse.Namespace) -> int:
    """Export (or find in the cache) every graph of the chosen models; print where they are."""
    from ..engine.deploy.cache import MODEL_FILE, default_cache_dir
    from ..engine.deploy.graphs import copy_graph
    from ..engine import load_engine

    logging.basicConfig(level=logging.INFO, format='%(message)s')
    config = engine_config(args.backend, args.precision, args.cache_dir,
                           **dataclasses.asdict(engine_config_from_args(args)))
    engine = load_engine(engine_spec_from_args(args), config)
    for name, path in sorted(engine.graph_files.items()):
        print(f'{name}: {path}')
        if args.output:
            os.makedirs(args.output, exist_ok=True)
            copy_graph(path, os.path.join(args.output, f'{name}.onnx'))
    print(f'cache: {args.cache_dir or default_cache_dir()} ({MODEL_FILE} per entry)')
    return 0
