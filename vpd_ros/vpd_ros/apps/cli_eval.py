# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros eval``: official depth and referring metrics of a model on a data set."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Optional

from .cli_common import add_engine_arguments, engine_from_args
from .cli_data import add_data_arguments, depth_reader, refer_reader


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` to an argparse sub-parser set and return its parser."""
    p = subparsers.add_parser('eval', help='print official depth/referring metrics of a model',
                              description='Print the official depth and referring metrics of a '
                              'model on rendered rooms, NYUv2, RefCOCO or your own data. '
                              'The official NYUv2 protocol: --data nyu --eigen-crop '
                              '--input-size 480x640 --tta (VPD: 2 windows + flips; EVP: 8 '
                              'windows + flips, with --captions for its published number).')
    add_engine_arguments(p)
    p.add_argument('--limit', type=int, default=0, help='evaluate at most N samples (0: all)')
    p.add_argument('--eigen-crop', action='store_true', help='NYUv2 Eigen crop (480x640 only)')
    p.add_argument('--min-depth', type=float, default=1e-3,
                   help='ground-truth depths below this (m) are not scored')
    p.add_argument('--max-depth', type=float, default=10.0,
                   help='ground-truth depths above this (m) are not scored')
    p.add_argument('--json-out', help='also write the metrics to this JSON file')
    p.add_argument('--captions', metavar='FILE', help='EVP depth: per-image captions, a JSON '
                   'object {image path or name: caption} or EVP\'s '
                   'nyu_class_embeddings_my_captions.pth (each image its own caption, as the '
                   'published NYUv2 test; see docs/evp.md)')
    p.add_argument('--by-category', action='store_true', help='rendered refer: also print the '
                   'metrics per kind of expression, word used and target size (a Markdown table)')
    add_data_arguments(p, '1000000:1000200')
    p.set_defaults(func=run_eval)
    return p


def run_eval(args: argparse.Namespace) -> int:
    """Implement ``vpd-ros eval``: load the engine, run the chosen data, print the metrics.

    Exit code 2 when the model or the captions file cannot be loaded (one line says why).
    """
    from .captions import CaptionTable
    from .evaluate import evaluate_depth, evaluate_refer, rendered_depth, rendered_refer
    from .metrics import format_metrics

    try:
        captions = CaptionTable.load(args.captions) if args.captions else None
        engine = engine_from_args(args)
    except (OSError, ValueError) as error:
        print(f'vpd-ros eval: error: {error}', file=sys.stderr)
        return 2
    limit: Optional[int] = args.limit or None
    results: Dict[str, Dict[str, float]] = {}
    if 'depth' in engine.tasks:
        samples = (rendered_depth(args.seeds) if args.data == 'rendered'
                   else depth_reader(args))
        results['depth'] = evaluate_depth(engine, samples, args.min_depth, args.max_depth,
                                          args.eigen_crop, limit, progress=True,
                                          scene=args.scene, captions=captions)
    by_category: Dict[str, Dict[str, float]] = {}
    if 'refer' in engine.tasks and args.by_category and args.data == 'rendered':
        from ..data import render_scene
        from .refer_breakdown import format_breakdown, refer_breakdown
        seeds = args.seeds[:limit] if limit else args.seeds
        by_category = refer_breakdown(engine, map(render_scene, seeds), args.mask_threshold)
        print(format_breakdown(by_category))
        results['refer'] = by_category['all']
    elif 'refer' in engine.tasks:
        samples = (rendered_refer(args.seeds) if args.data == 'rendered'
                   else refer_reader(args))
        results['refer'] = evaluate_refer(engine, samples, limit, progress=True,
                                          mask_threshold=args.mask_threshold)
    for task, metrics in results.items():
        print(f'{task}: {format_metrics(metrics)}')
    if args.json_out:
        with open(args.json_out, 'w', encoding='utf-8') as f:
            json.dump({**results, 'refer_by_category': by_category} if by_category else results,
                      f, indent=1)
    return 0
