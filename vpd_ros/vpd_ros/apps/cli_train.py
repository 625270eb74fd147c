# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros train``: the argument parser and its implementation.

Training defaults follow the official recipe for ``--preset sd15``; ``--preset tiny`` is trained
from scratch (there is no pretrained tiny UNet), so its UNet runs at full lr and its lrs are
higher (see ``TRAIN_DEFAULTS`` and the tiny model card).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from typing import Any, Dict, Tuple

from .cli_data import add_data_arguments, depth_reader, refer_reader

TRAIN_TASKS = ('vae', 'depth', 'refer')
# (preset, task) -> lr, min_lr, weight decay, UNet and text-tower lr multipliers, Dice weight.
TRAIN_DEFAULTS: Dict[Tuple[str, str], Dict[str, float]] = {
    ('sd15', 'depth'): {'lr': 5e-4, 'min_lr': 3e-5, 'weight_decay': 0.1, 'unet_lr_mult': 0.01,
                        'text_lr_mult': 0.0, 'dice_weight': 0.0},
    ('sd15', 'refer'): {'lr': 5e-5, 'min_lr': 0.0, 'weight_decay': 1e-2, 'unet_lr_mult': 1.0,
                        'text_lr_mult': 0.0, 'dice_weight': 0.0},
    ('tiny', 'depth'): {'lr': 1e-3, 'min_lr': 1e-4, 'weight_decay': 0.1, 'unet_lr_mult': 1.0,
                        'text_lr_mult': 0.0, 'dice_weight': 0.0},
    ('tiny', 'refer'): {'lr': 5e-4, 'min_lr': 0.0, 'weight_decay': 1e-2, 'unet_lr_mult': 1.0,
                        'text_lr_mult': 1.0, 'dice_weight': 1.0},
}
VAE_DEFAULTS = {'lr': 1e-3, 'min_lr': 0.0, 'weight_decay': 0.0, 'unet_lr_mult': 1.0,
                'text_lr_mult': 1.0, 'dice_weight': 0.0}
TRAIN_HELP = ('Train a VPD depth or referring model (or the tiny preset\'s autoencoder) with the '
              'paper\'s losses and schedules, on rendered rooms, NYUv2, RefCOCO or your own data. '
              'See weights/tiny/MODEL_CARD.md for the recipe of the shipped model.')
CLASS_TEMPLATES = ('a photo of a {}.', 'a picture of a {}.', 'an image of a {}.',
                   'a photo of the {}.', 'a rendering of a {}.')


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to an argparse sub-parser set and return its parser."""
    p = subparsers.add_parser('train', help='train a VPD depth/referring model or the tiny VAE',
                              description=TRAIN_HELP)
    p.add_argument('--task', choices=TRAIN_TASKS, required=True,
                   help='what to train: the tiny autoencoder, depth or referring')
    p.add_argument('--preset', choices=('tiny', 'sd15'), default='tiny',
                   help='model sizes: tiny (CPU) or sd15 (the paper\'s)')
    p.add_argument('--out', required=True, help='output folder (model + checkpoint/)')
    p.add_argument('--init', help="start weights: 'sd15:<SD-1.5 folder or file>' or a vpd_ros "
                   'model folder (default: fresh preset initialisation)')
    p.add_argument('--vae', help='autoencoder folder from --task vae whose encoder is copied '
                   'into the model and frozen (tiny preset)')
    p.add_argument('--class-text-from', help='depth: referring model folder whose text tower '
                   "sets the scene-class embeddings (pooled CLIP output of 'a photo of a "
                   "<class>.' templates, as VPD)")
    p.add_argument('--class-names', default='room', help='depth: comma-separated scene classes')
    p.add_argument('--steps', type=int, default=1000, help='optimizer steps')
    p.add_argument('--batch-size', type=int, default=8, help='samples per step')
    p.add_argument('--image-size', type=int, metavar='SIDE', help='square training input side, '
                   'pixels (default: the preset\'s image_size)')
    p.add_argument('--crop', type=int, default=0, help='vae: train on random crops of this side '
                   'taken from --image-size inputs (0: whole images)')
    p.add_argument('--lr', type=float, help='peak (depth) / initial (refer, vae) learning rate '
                   '(default: the preset and task\'s)')
    p.add_argument('--min-lr', type=float, help='depth schedule floor (default: the preset\'s)')
    p.add_argument('--weight-decay', type=float, help='AdamW weight decay (default: the '
                   'preset and task\'s)')
    p.add_argument('--unet-lr-mult', type=float, help='UNet lr multiplier (sd15 depth: 0.01)')
    p.add_argument('--text-lr-mult', type=float, help='text tower lr multiplier (0 = frozen)')
    p.add_argument('--dice-weight', type=float, help='refer: weight of an added Dice loss '
                   '(not official; tiny default 1.0, sd15 0)')
    p.add_argument('--grad-clip', type=float, default=0.0,
                   help='clip the gradient norm to this (0: no clipping)')
    p.add_argument('--precision', choices=('fp32', 'fp16', 'bf16'), default='fp32',
                   help='training arithmetic (fp16/bf16 autocast on CUDA)')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--seed', type=int, default=0, help='random seed (initialisation, sampling)')
    p.add_argument('--resume', action='store_true', help='continue from <out>/checkpoint')
    p.add_argument('--save-every', type=int, default=200, help='checkpoint every N steps')
    p.add_argument('--save-dtype', choices=('float32', 'float16'), default='float32',
                   help='dtype of the final weights (float16 for shipping)')
    p.add_argument('--cache', default='/tmp/vpd_ros_scene_cache',
                   help='folder for the rendered-scene cache (one sub-folder per seeds/size)')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    p.add_argument('--render-workers', type=int, default=1,
                   help='processes that render a missing scene cache')
    add_data_arguments(p, '0:2000')
    p.set_defaults(func=run_train)
    return p


def _scene_cache(args: argparse.Namespace, size: int) -> Any:
    """Render (once) the seeds at ``size``; datasets resize to other training sizes."""
    from ..data.datasets import SceneCache
    folder = os.path.join(args.cache, f'seeds{args.seeds.start}-{args.seeds.stop}_{size}')
    return SceneCache.build(folder, args.seeds, size, progress=True,
                            workers=args.render_workers)


def _build_model(args: argparse.Namespace) -> Any:
    import torch

    from ..model import VPDDepth, VPDRefer, get_preset
    p = get_preset(args.preset)
    cls = VPDDepth if args.task == 'depth' else VPDRefer
    head: Dict[str, Any] = dict(p[args.task])
    if args.task == 'depth':
        names = [n.strip() for n in args.class_names.split(',') if n.strip()]
        head.update(num_classes=len(names), class_names=names)
    else:
        head['text_config'] = p['text']
    if args.init and args.init.startswith('sd15:'):
        if args.task == 'refer':
            head.pop('text_config')
        model = cls.from_sd15(args.init.split(':', 1)[1], args.preset, **head)
    elif args.init:
        model = cls.from_pretrained(args.init)
    else:
        torch.manual_seed(args.seed)
        model = cls(p['unet'], p['vae'], **head)
    if args.vae:
        from ..training.autoencoder import copy_encoder, load_autoencoder
        copy_encoder(load_autoencoder(args.vae), model)
    if args.task == 'depth' and args.class_text_from:
        set_class_embeddings(model, VPDRefer.from_pretrained(args.class_text_from))
    return model


def set_class_embeddings(depth: Any, refer: Any) -> None:
    """Set ``depth.class_embeddings`` from the referring model's text tower, as VPD does with CLIP.

    Each class vector is the pooled (final-LN EOS) output averaged over ``CLASS_TEMPLATES``.
    """
    import torch

    from ..model import tokenize
    names = depth.config.class_names
    if not names:
        raise ValueError('the depth model has no class_names to embed')
    if refer.text_encoder is None:
        raise ValueError('the referring model has no text tower')
    with torch.no_grad():
        vectors = []
        for name in names:
            texts = [t.format(name.replace('_', ' ')) for t in CLASS_TEMPLATES]
            ids = tokenize(texts, refer.token_length).input_ids
            vectors.append(refer.text_encoder(input_ids=ids).pooler_output.mean(0))
        depth.class_embeddings.copy_(torch.stack(vectors))


def run_train(args: argparse.Namespace) -> int:
    """Implement ``vpd-ros train``: build model, data, optimiser and schedule; train; save."""
    import torch

    from ..model import get_preset
    from ..data.datasets import DepthDataset, ReferDataset
    from ..training.optim import LrSchedule, build_optimizer, default_schedule, freeze_vae
    from ..training.trainer import (Trainer, TrainerConfig, depth_loss_fn, refer_loss_fn,
                                   save_weights)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.image_size or get_preset(args.preset)['image_size']
    defaults = VAE_DEFAULTS if args.task == 'vae' else TRAIN_DEFAULTS[(args.preset, args.task)]
    hp = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in defaults.items()}
    if args.data == 'rendered':
        source = _scene_cache(args, get_preset(args.preset)['image_size'])
    elif args.task == 'refer':
        source = refer_reader(args)
    else:
        source = depth_reader(args)
    config = TrainerConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                           precision=args.precision, device=args.device,
                           save_every=args.save_every, grad_clip=args.grad_clip)
    start = time.perf_counter()
    if args.task == 'vae':
        from ..training.autoencoder import autoencoder_loss, build_autoencoder
        torch.manual_seed(args.seed)
        model = build_autoencoder(args.preset)
        dataset = DepthDataset(source, size, augment=True, crop=args.crop)
        optimizer = torch.optim.AdamW([{'params': list(model.parameters()), 'lr_mult': 1.0}],
                                      lr=hp['lr'], weight_decay=hp['weight_decay'])
        schedule = LrSchedule('poly', args.steps, hp['lr'])

        def loss_fn(m: Any, batch: Dict[str, Any], device: torch.device) -> torch.Tensor:
            return autoencoder_loss(m, batch['image'].to(device))
        before = None
    else:
        model = _build_model(args)
        if args.task == 'depth':
            dataset = DepthDataset(source, size, augment=True,
                                   max_depth=float(model.config.max_depth))
            loss_fn = depth_loss_fn
        else:
            dataset = ReferDataset(source, size)
            loss_fn = functools.partial(refer_loss_fn, dice_weight=hp['dice_weight'])
        optimizer = build_optimizer(model, args.task, hp['lr'], hp['weight_decay'],
                                    hp['unet_lr_mult'], hp['text_lr_mult'])
        schedule = default_schedule(args.task, args.steps, hp['lr'], hp['min_lr'])
        before = freeze_vae
    trainer = Trainer(model, loss_fn, dataset, optimizer, schedule, args.out, config,
                      before_step=before)
    if args.resume:
        trainer.load_checkpoint()
        print(f'resumed at step {trainer.step}')
    losses = trainer.run()
    dtype = torch.float16 if args.save_dtype == 'float16' else None
    save_weights(model.to('cpu'), args.out, dtype=dtype)
    elapsed = time.perf_counter() - start
    tail = losses[-min(len(losses), 50):]
    summary = {'task': args.task, 'preset': args.preset, 'steps': args.steps,
               'batch_size': args.batch_size, 'image_size': size, 'seconds': round(elapsed, 1),
               'final_loss': sum(tail) / len(tail), **hp}
    with open(os.path.join(args.out, 'train_summary.json'), 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return 0
