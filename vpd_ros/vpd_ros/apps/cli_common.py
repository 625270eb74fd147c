# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Command-line options shared by the ``vpd-ros`` sub-commands: which weights, device, dtype.

Choices and checks come from :mod:`vpd_ros.engine.config`; loading goes through
:func:`vpd_ros.engine.load_engine`, as in the node.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Dict

from ..engine.config import (COMPILE_MODES, DTYPE_CHOICES, FRAME_DEFAULTS, EngineConfig,
                             EngineSpec, check_option)


def _checked(option: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """Return an argparse type that converts and checks a value by the engine's rule."""
    def parse(text: str) -> Any:
        try:
            return check_option(option, convert(text), f'--{option.replace("_", "-")}')
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
    return parse


class _InputSize(argparse.Action):
    """Check --input-size H W by the engine's rule once both values are read."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Any = None) -> None:
        try:
            setattr(namespace, self.dest, check_option('input_size', values, '--input-size'))
        except ValueError as error:
            parser.error(str(error))


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose and configure the models."""
    group = parser.add_argument_group('model')
    group.add_argument('--weights', default='tiny',
                       help='shipped model name (tiny), a vpd_ros model folder, or random:<preset>')
    group.add_argument('--depth-checkpoint', default='', help='official vpd_depth_480x480.pth '
                       '(overrides --weights)')
    group.add_argument('--refer-checkpoint', default='', help='official vpd_ris_*.pth '
                       '(overrides --weights)')
    group.add_argument('--sd15', default='', help='SD-1.5 diffusers folder or single file: the '
                       'CLIP text tower for the official referring checkpoint')
    group.add_argument('--tasks', default='depth,refer', help='comma-separated: depth, refer')
    group.add_argument('--device', default='auto', type=_checked('device', str),
                       help='auto, cpu, cuda, cuda:N')
    group.add_argument('--dtype', default='auto', choices=DTYPE_CHOICES)
    group.add_argument('--compile', default='none', choices=COMPILE_MODES,
                       help='torch.compile mode of the backbones')
    group.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'), action=_InputSize,
                       help='model input size (multiples of 32); default: the model\'s native')
    group.add_argument('--scene', type=_checked('scene', int), default=FRAME_DEFAULTS['scene'],
                       help='depth scene-class id (default: mean embedding)')
    group.add_argument('--mask-threshold', type=_checked('mask_threshold', float),
                       default=FRAME_DEFAULTS['mask_threshold'])
    group.add_argument('--tta', action='store_true', help='official depth test-time augmentation')


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """Build the EngineConfig the options describe."""
    return EngineConfig(device=args.device, dtype=args.dtype, compile=args.compile,
                        input_size=tuple(args.input_size) if args.input_size else None,
                        tta=args.tta)


def engine_spec_from_args(args: argparse.Namespace) -> EngineSpec:
    """Build the EngineSpec the options describe."""
    return EngineSpec(weights=args.weights, depth_checkpoint=args.depth_checkpoint,
                      refer_checkpoint=args.refer_checkpoint, sd15=args.sd15,
                      tasks=tuple(t.strip() for t in args.tasks.split(',') if t.strip()))


def frame_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """Return the per-frame settings of :meth:`VPDEngine.predict` the options give."""
    return {'mask_threshold': args.mask_threshold, 'scene': args.scene}


def engine_from_args(args: argparse.Namespace) -> Any:
    """Load the engine the options describe (official checkpoints win over --weights)."""
    from ..engine import load_engine
    return load_engine(engine_spec_from_args(args), engine_config_from_args(args))
