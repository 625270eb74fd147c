# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros infer``: depth and referred masks for image files, written next to each other.

Per image: ``<stem>_depth.png`` (uint16 millimetres, 0 = invalid), ``<stem>_depth.npy`` (float32
metres), ``<stem>_mask<i>.png`` (0/255 per query) and ``<stem>_vis.png`` (input | depth | masks).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List

import cv2
import numpy as np

from .cli_common import add_engine_arguments, engine_from_args, frame_settings
from ..engine.visualize import colorize_depth, overlay_masks, side_by_side

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def add_infer_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``infer``."""
    p = subparsers.add_parser('infer', help='run depth / queries on image files or a folder')
    p.add_argument('inputs', nargs='+', help='image files or folders of images')
    p.add_argument('--output', '-o', required=True, help='output folder')
    p.add_argument('--query', '-q', action='append', default=[],
                   help='referring expression (repeat for several)')
    add_engine_arguments(p)
    p.set_defaults(func=run_infer)


def list_images(inputs: List[str]) -> List[str]:
    """Expand folders to their image files (sorted); keep files as given."""
    files = []
    for path in inputs:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, f) for f in os.listdir(path)
                            if f.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'{path}: no such file or folder')
    return files


def depth_to_png_mm(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres; invalid or out-of-range (> 65.535 m) -> 0."""
    mm = np.where(np.isfinite(depth) & (depth > 0), np.round(depth * 1000.0), 0.0)
    return np.where(mm > 65535, 0, mm).astype(np.uint16)


def run_infer(args: argparse.Namespace) -> int:
    """Run the engine on every image and write the results."""
    files = list_images(args.inputs)
    if not files:
        print('no images found', file=sys.stderr)
        return 1
    engine = engine_from_args(args)
    if args.query and engine.refer is None:
        print('--query needs a referring model (tasks must include refer)', file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    for path in files:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            print(f'{path}: not a readable image, skipped', file=sys.stderr)
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        pred = engine.predict(rgb, args.query, depth=engine.depth is not None,
                              **frame_settings(args))
        stem = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0])
        panels, titles = [bgr], ['input']
        if pred.depth is not None:
            cv2.imwrite(stem + '_depth.png', depth_to_png_mm(pred.depth))
            np.save(stem + '_depth.npy', pred.depth)
            panels.append(colorize_depth(pred.depth))
            titles.append('depth')
        for i, mask in enumerate(pred.masks):
            cv2.imwrite(f'{stem}_mask{i}.png', mask.astype(np.uint8) * 255)
        if len(pred.masks):
            panels.append(overlay_masks(rgb, list(pred.masks), list(args.query)))
            titles.append('masks')
        cv2.imwrite(stem + '_vis.png', side_by_side(panels, titles))
        summary = ', '.join(f'{q!r}: {int(m.sum())} px, score {s:.2f}'
                            for q, m, s in zip(args.query, pred.masks, pred.scores))
        print(f'{path}: {pred.timings["total"]:.0f} ms' + (f'; {summary}' if summary else ''))
    return 0
