# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the ``vpd-ros`` sub-commands share: the parser style, sizes, the model options.

Nothing here imports torch: ``vpd-ros --help`` must not wait for it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine imports torch: only after the arguments are parsed
    from .engine import EngineConfig, VPDEngine


#: Model input sizes are multiples of this (the UNet's total stride).
SIZE_MULTIPLE = 32


class HelpFormatter(argparse.HelpFormatter):
    """Show an option's default once: appended unless its help says it; none for None, off, []."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ''
        if ('(default' in text or not action.option_strings
                or any(action.default is v for v in (None, False, argparse.SUPPRESS))
                or action.default == []):
            return text
        return f'{text} (default: %(default)s)'


class RawDescriptionHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """:class:`HelpFormatter` that keeps the description's line breaks."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage dump) with exit code 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault('formatter_class', HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        """Print ``<prog>: error: <message>`` and exit with 2 (the usage error code)."""
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


def parse_size(text: str, multiple: int = 1) -> tuple:
    """Parse ``HEIGHTxWIDTH`` (e.g. ``480x640``) into (height, width) positive ints."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size {text!r} must be HEIGHTxWIDTH, e.g. 480x640'
                                         ) from None
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise argparse.ArgumentTypeError(
            f'size {text!r} must be positive' + (f' multiples of {multiple}' if multiple > 1
                                                 else ''))
    return height, width


def parse_model_size(text: str) -> tuple:
    """Parse a model input ``HEIGHTxWIDTH``: positive multiples of :data:`SIZE_MULTIPLE`."""
    return parse_size(text, SIZE_MULTIPLE)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose and configure the models."""
    group = parser.add_argument_group('model')
    group.add_argument('--weights', default='tiny',
                       help='shipped model name (tiny), a vpd_ros model folder, or random:<preset>')
    group.add_argument('--depth-checkpoint', help='official vpd_depth_480x480.pth (overrides '
                       '--weights)')
    group.add_argument('--refer-checkpoint', help='official vpd_ris_*.pth (overrides --weights)')
    group.add_argument('--sd15', help='SD-1.5 diffusers folder or single file: the CLIP text tower '
                       'for the official referring checkpoint')
    group.add_argument('--tasks', default='depth,refer', help='models to load, comma-separated: '
                       'depth, refer')
    group.add_argument('--device', default='auto', help='auto (CUDA when available), cpu, cuda, '
                       'cuda:N')
    group.add_argument('--dtype', default='auto', choices=('auto', 'float32', 'float16',
                                                          'bfloat16'),
                       help='auto: float16 on CUDA, float32 on CPU')
    group.add_argument('--input-size', type=parse_model_size, metavar='HEIGHTxWIDTH',
                       help=f'model input size, multiples of {SIZE_MULTIPLE}, e.g. 256x320 '
                       '(default: the model\'s native square size)')
    group.add_argument('--scene', type=int, help='depth scene-class id (default: the mean of '
                       'the class embeddings)')
    group.add_argument('--mask-threshold', type=float, default=0.5,
                       help='foreground probability above which a pixel is in a mask')
    group.add_argument('--tta', action='store_true', help='official depth test-time augmentation '
                       '(shifted windows + flip; slower)')


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """Build the EngineConfig the options describe."""
    from .engine import EngineConfig

    return EngineConfig(device=args.device, dtype=args.dtype,
                        input_size=args.input_size,
                        scene=args.scene, mask_threshold=args.mask_threshold, tta=args.tta)


def engine_from_args(args: argparse.Namespace) -> VPDEngine:
    """Load the engine the options describe (official checkpoints win over --weights)."""
    from .engine import VPDEngine

    config = engine_config_from_args(args)
    tasks = tuple(t.strip() for t in args.tasks.split(',') if t.strip())
    if args.depth_checkpoint or args.refer_checkpoint:
        return VPDEngine.from_official(args.depth_checkpoint if 'depth' in tasks else None,
                                       args.refer_checkpoint if 'refer' in tasks else None,
                                       sd15=args.sd15, config=config)
    return VPDEngine.load(args.weights, tasks, config)
