# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros``: infer on files, train, eval, bench, export, the offline demo and the soak test."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from typing import List, Optional

from .cli_common import Parser

# (module, function adding the sub-command). None of these modules imports torch at import time,
# so --help answers at once; the commands import it when they run.
SUBCOMMANDS = [
    ('vpd_ros.apps.cli_infer', 'add_infer_parser'),
    ('vpd_ros.apps.cli_train', 'add_train_parser'),
    ('vpd_ros.apps.cli_eval', 'add_eval_parser'),
    ('vpd_ros.apps.bench', 'add_bench_parser'),
    ('vpd_ros.apps.cli_export', 'add_export_parser'),
    ('vpd_ros.apps.demo', 'add_demo_parser'),
    ('vpd_ros.apps.soak', 'add_soak_parser'),
]


def package_version() -> str:
    """Return the installed vpd_ros version (from the package metadata)."""
    try:
        return importlib.metadata.version('vpd_ros')
    except importlib.metadata.PackageNotFoundError:
        return 'unknown (not installed)'


def build_parser() -> Parser:
    """Return the ``vpd-ros`` argument parser with every sub-command."""
    parser = Parser(prog='vpd-ros', description='VPD metric depth and referred object masks: '
                    'run them on image files, evaluate, train, benchmark, the offline demo and '
                    'the soak test. "vpd-ros <command> --help" describes each command.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {package_version()}')
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
