# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the ``vpd-ros`` sub-commands share: the parser style, sizes, the model options.

Nothing here imports torch: ``vpd-ros --help`` must not wait for it.

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


def parse_size(text: str) -> tuple:
    """Parse ``HEIGHTxWIDTH`` (e.g. ``480x640``) into (height, width) positive ints."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size {text!r} must be HEIGHTxWIDTH, e.g. 480x640'
                                         ) from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f'size {text!r} must be positive')
    return height, width


def parse_model_size(text: str) -> tuple:
    """Parse a model input ``HEIGHTxWIDTH`` and check it by the engine's rule."""
    size = parse_size(text)
    try:
        return check_option('input_size', size, '--input-size')
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose and configure the models."""
    group = parser.add_argument_group('model')
    group.add_argument('--weights', default='tiny',
                       help='shipped model name (tiny), a vpd_ros model folder, or random:<name> '
                       '(random weights: tiny, sd15, evp-tiny, evp-sd15)')
    group.add_argument('--depth-checkpoint', default='', help='official vpd_depth_480x480.pth '
                       'or EVP best_model_nyu.ckpt, told apart by content (overrides --weights)')
    group.add_argument('--refer-checkpoint', default='', help='official vpd_ris_*.pth or EVP '
                       'best_model_refcoco.pth (overrides --weights)')
    group.add_argument('--sd15', default='', help='SD-1.5 diffusers folder or single file: the '
                       'CLIP text tower for the official referring checkpoint')
    group.add_argument('--tasks', default='depth,refer', help='models to load, comma-separated: '
                       'depth, refer')
    group.add_argument('--device', default='auto', type=_checked('device', str),
                       help='auto (CUDA when available), cpu, cuda, cuda:N')
    group.add_argument('--dtype', default='auto', choices=DTYPE_CHOICES,
                       help='auto: float16 on CUDA, float32 on CPU')
    group.add_argument('--compile', default='none', choices=COMPILE_MODES,
                       help='torch.compile mode of the backbones')
    group.add_argument('--input-size', type=parse_model_size, metavar='HEIGHTxWIDTH',
                       help='model input size, multiples of 32, e.g. 256x320 (default: the '
                       'model\'s native square size)')
    group.add_argument('--scene', type=_checked('scene', int), default=FRAME_DEFAULTS['scene'],
                       help='VPD depth scene-class id (default: the mean of the class embeddings)')
    captions = group.add_mutually_exclusive_group()
    captions.add_argument('--caption', help='EVP depth: the scene caption the depth is '
                          'conditioned on (default: the model\'s, see docs/evp.md)')
    captions.add_argument('--caption-embedding', metavar='FILE', help='EVP depth: condition on '
                          'EVP\'s aggregated caption embedding, a (1, L, D) tensor file or its '
                          '<dataset>_class_embeddings_my_captions.pth with an \'aggregated\' entry')
    group.add_argument('--mask-threshold', type=_checked('mask_threshold', float),
                       default=FRAME_DEFAULTS['mask_threshold'],
                       help='foreground probability above which a pixel is in a mask')
    group.add_argument('--tta', action='store_true', help='official depth test-time augmentation '
                       '(shifted windows + flip: 2 windows for VPD, 8 for EVP; slower)')


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """Build the EngineConfig the options describe."""
    return EngineConfig(device=args.device, dtype=args.dtype, compile=args.compile,
                        input_size=args.input_size,
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
    """Load the engine the options describe (official checkpoints win over --weights).

    ``--caption`` / ``--caption-embedding`` need an EVP depth model: ValueError otherwise.
    """
    from ..engine import load_engine
    engine = load_engine(engine_spec_from_args(args), engine_config_from_args(args))
    if args.caption is not None or args.caption_embedding:
        from ..model.evp_depth import load_caption_embedding
        option = '--caption' if args.caption is not None else '--caption-embedding'
        if not engine.takes_caption:
            raise ValueError(f'{option} needs an EVP depth model (--depth-checkpoint '
                             'best_model_nyu.ckpt or --weights random:evp-<size>)')
        if args.caption is not None:
            engine.set_caption(args.caption)
        else:
            engine.set_caption_embedding(load_caption_embedding(args.caption_embedding))
    return engine
