# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Data options shared by ``vpd-ros train`` and ``vpd-ros eval``, and the readers they name."""

from __future__ import annotations

import argparse
from typing import Any

DATA_KINDS = ('rendered', 'nyu', 'refcoco', 'user')


def parse_seeds(text: str) -> range:
    """Parse ``start:stop`` into a seed range (stop exclusive)."""
    try:
        start, stop = (int(v) for v in text.split(':'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'seeds {text!r} must be start:stop') from None
    if not 0 <= start < stop:
        raise argparse.ArgumentTypeError(f'seeds {text!r}: need 0 <= start < stop')
    return range(start, stop)


def add_data_arguments(p: argparse.ArgumentParser, default_seeds: str) -> None:
    """Add the options choosing the data set (rendered seeds, NYUv2, RefCOCO, user files)."""
    g = p.add_argument_group('data')
    g.add_argument('--data', choices=DATA_KINDS, default='rendered',
                   help='rendered scenes, NYUv2, RefCOCO-family, or a user folder/JSON')
    g.add_argument('--seeds', type=parse_seeds, default=parse_seeds(default_seeds),
                   help='rendered scene seeds start:stop (default %(default)s)')
    g.add_argument('--root', help='NYU data root (--list paths are relative to it) or RefCOCO '
                   'data root (holding <dataset>/refs(<split-by>).p and images/)')
    g.add_argument('--list', dest='list_file', help='NYU filenames file (<rgb> <depth> <focal>)')
    g.add_argument('--dataset', default='refcoco', help='refcoco, refcoco+ or refcocog')
    g.add_argument('--split-by', default='unc', help='unc, umd or google')
    g.add_argument('--split', default='val', help='RefCOCO split, e.g. val, testA')
    g.add_argument('--image-root', help='COCO train2014 folder (default under --root)')
    g.add_argument('--folder', help='user depth folder (rgb/, depth/)')
    g.add_argument('--json', dest='json_file', help='user refer JSON file')


def depth_reader(args: argparse.Namespace) -> Any:
    """Return the depth data set the options name (not rendered)."""
    from ..data import NyuDepthSplit, UserDepthFolder
    if args.data == 'nyu':
        if not (args.root and args.list_file):
            raise ValueError('--data nyu needs --root and --list')
        return NyuDepthSplit(args.root, args.list_file)
    if args.data == 'user':
        if not args.folder:
            raise ValueError('--data user needs --folder for depth')
        return UserDepthFolder(args.folder)
    raise ValueError(f'--data {args.data} has no depth ground truth; use rendered, nyu or user')


def refer_reader(args: argparse.Namespace) -> Any:
    """Return the referring data set the options name (not rendered)."""
    from ..data import RefCocoSplit, UserReferJson
    if args.data == 'refcoco':
        if not args.root:
            raise ValueError('--data refcoco needs --root')
        return RefCocoSplit(args.root, args.dataset, args.split_by, args.split, args.image_root)
    if args.data == 'user':
        if not args.json_file:
            raise ValueError('--data user needs --json for referring')
        return UserReferJson(args.json_file)
    raise ValueError(f'--data {args.data} has no referring ground truth; use rendered, '
                     'refcoco or user')
