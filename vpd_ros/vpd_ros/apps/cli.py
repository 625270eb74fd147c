# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros``: infer on files, train, eval, bench, the offline demo and the soak test."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# (module, function adding the sub-command); modules are imported lazily to keep --help fast.
SUBCOMMANDS = [
    ('vpd_ros.apps.cli_infer', 'add_infer_parser'),
    ('vpd_ros.apps.cli_train', 'add_train_parser'),
    ('vpd_ros.apps.cli_eval', 'add_eval_parser'),
    ('vpd_ros.apps.bench', 'add_bench_parser'),
    ('vpd_ros.apps.demo', 'add_demo_parser'),
    ('vpd_ros.apps.soak', 'add_soak_parser'),
]


def build_parser() -> argparse.ArgumentParser:
    """Return the ``vpd-ros`` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog='vpd-ros', description=__doc__)
    subparsers = parser.add_subparsers(dest='command', required=True)
    for module, function in SUBCOMMANDS:
        getattr(importlib.import_module(module), function)(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the command line and run the chosen sub-command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
