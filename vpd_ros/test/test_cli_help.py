# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros`` help: answered without importing torch, every option explained, defaults once."""

import argparse
import json
import os
import re
import subprocess
import sys

import pytest

from vpd_ros.apps.cli import SUBCOMMANDS, build_parser, package_version

VPD_ROS = os.path.join(os.path.dirname(sys.executable), 'vpd-ros')
COMMANDS = ['infer', 'train', 'eval', 'bench', 'export', 'demo', 'soak']

#: Runs every --help in one process and reports what each printed and which heavy modules loaded.
HELP_SCRIPT = '''
import contextlib, io, json, sys
from vpd_ros.apps.cli import main
out = {}
for argv in [['--help']] + [[c, '--help'] for c in %r]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            main(argv)
        except SystemExit as stop:
            code = stop.code
    out[' '.join(argv)] = [code, buffer.getvalue()]
out['heavy'] = sorted(m for m in ('torch', 'diffusers', 'transformers', 'rclpy')
                      if m in sys.modules)
print(json.dumps(out))
''' % COMMANDS


@pytest.fixture(scope='module')
def helps():
    """Every help text, printed by one Python process, and the heavy modules it imported."""
    result = subprocess.run([sys.executable, '-c', HELP_SCRIPT], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def texts(helps: dict) -> list:
    """The (argv, [exit code, help text]) pairs of the help run."""
    return [(k, v) for k, v in helps.items() if k != 'heavy']


def test_help_imports_no_torch(helps):
    """Parsing and printing every help needs none of torch, diffusers, transformers, rclpy."""
    assert helps['heavy'] == []
    assert len(helps) == len(COMMANDS) + 2
    for argv, (code, text) in texts(helps):
        assert code == 0 and text.startswith('usage: vpd-ros'), argv


def test_help_says_each_default_once_and_no_docstrings(helps):
    """No '(default: None)', no option with two defaults, no reST markup from docstrings."""
    for argv, (_, text) in texts(helps):
        assert '(default: None)' not in text, argv
        assert '``' not in text and ':func:' not in text and 'Args:' not in text, argv
        options = re.split(r'\n  (?=-)', text)
        for option in options:
            assert option.count('(default') <= 1, (argv, option)


def test_every_option_has_help_and_sizes_share_one_format():
    """Each option of each sub-command explains itself; sizes are HEIGHTxWIDTH everywhere."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(subparsers.choices) == sorted(COMMANDS)
    assert len({module for module, _ in SUBCOMMANDS}) >= 4
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings or action.dest)
            if action.dest.endswith('size') and action.dest != 'batch_size':
                assert action.metavar in ('HEIGHTxWIDTH', 'SIDE'), (name, action.dest)
                assert action.nargs is None, (name, action.dest)
    args = parser.parse_args(['bench', '--input-size', '64x96', '--frame-size', '240x320'])
    assert args.input_size == (64, 96) and args.frame_size == (240, 320)
    assert parser.parse_args(['soak']).frame_size == (480, 640)


def test_version_from_the_real_command():
    """``vpd-ros --version`` prints the installed package version."""
    exe = [VPD_ROS] if os.path.exists(VPD_ROS) else [sys.executable, '-m', 'vpd_ros.apps.cli']
    result = subprocess.run(exe + ['--version'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f'vpd-ros {package_version()}'
    assert re.fullmatch(r'\d+\.\d+\.\d+', package_version())
