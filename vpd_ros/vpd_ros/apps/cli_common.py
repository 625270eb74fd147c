# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Command-line options shared by the ``vpd-ros`` sub-commands: which weights, device, dtype."""

from __future__ import annotations

import argparse

from ..engine import EngineConfig, VPDEngine


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
    group.add_argument('--tasks', default='depth,refer', help='comma-separated: depth, refer')
    group.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N')
    group.add_argument('--dtype', default='auto', help='auto, float32, float16, bfloat16')
    group.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                       help='model input size (multiples of 32); default: the model\'s native')
    group.add_argument('--scene', type=int, help='depth scene-class id (default: mean embedding)')
    group.add_argument('--mask-threshold', type=float, default=0.5)
    group.add_argument('--tta', action='store_true', help='official depth test-time augmentation')


def engine_config_from_args(args: argparse.Namespace) -> EngineConfig:
    """Build the EngineConfig the options describe."""
    return EngineConfig(device=args.device, dtype=args.dtype,
                        input_size=tuple(args.input_size) if args.input_size else None,
                        scene=args.scene, mask_threshold=args.mask_threshold, tta=args.tta)


def engine_from_args(args: argparse.Namespace) -> VPDEngine:
    """Load the engine the options describe (official checkpoints win over --weights)."""
    config = engine_config_from_args(args)
    tasks = tuple(t.strip() for t in args.tasks.split(',') if t.strip())
    if args.depth_checkpoint or args.refer_checkpoint:
        return VPDEngine.from_official(args.depth_checkpoint if 'depth' in tasks else None,
                                       args.refer_checkpoint if 'refer' in tasks else None,
                                       sd15=args.sd15, config=config)
    return VPDEngine.load(args.weights, tasks, config)
