# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros train`` and ``vpd-ros eval``: argument parsers and their implementations.

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
from typing import Any, Dict, Optional, Tuple

DATA_KINDS = ('rendered', 'nyu', 'refcoco', 'user')
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
CLASS_TEMPLATES = ('a photo of a {}.', 'a picture of a {}.', 'an image of a {}.',
                   'a photo of the {}.', 'a rendering of a {}.')


def parse_seeds(text: str) -> range:
    """Parse ``start:stop`` into a seed range (stop exclusive)."""
    try:
        start, stop = (int(v) for v in text.split(':'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'seeds {text!r} must be start:stop') from None
    if not 0 <= start < stop:
        raise argparse.ArgumentTypeError(f'seeds {text!r}: need 0 <= start < stop')
    return range(start, stop)


def _add_data_args(p: argparse.ArgumentParser, default_seeds: str) -> None:
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


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to an argparse sub-parser set and return its parser."""
    p = subparsers.add_parser('train', help='train a VPD depth/referring model or the tiny VAE',
                              description=__doc__,
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--task', choices=TRAIN_TASKS, required=True)
    p.add_argument('--preset', choices=('tiny', 'sd15'), default='tiny')
    p.add_argument('--out', required=True, help='output folder (model + checkpoint/)')
    p.add_argument('--init', help="start weights: 'sd15:<SD-1.5 folder or file>' or a vpd_ros "
                   'model folder (default: fresh preset initialisation)')
    p.add_argument('--vae', help='autoencoder folder from --task vae whose encoder is copied '
                   'into the model and frozen (tiny preset)')
    p.add_argument('--class-text-from', help='depth: referring model folder whose text tower '
                   "sets the scene-class embeddings (pooled CLIP output of 'a photo of a "
                   "<class>.' templates, as VPD)")
    p.add_argument('--class-names', default='room', help='depth: comma-separated scene classes')
    p.add_argument('--steps', type=int, default=1000)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--image-size', type=int, help='square training input side '
                   '(default: the preset image_size)')
    p.add_argument('--crop', type=int, default=0, help='vae: train on random crops of this side '
                   'taken from --image-size inputs (0: whole images)')
    p.add_argument('--lr', type=float, help='peak (depth) / initial (refer, vae) learning rate')
    p.add_argument('--min-lr', type=float, help='depth schedule floor')
    p.add_argument('--weight-decay', type=float)
    p.add_argument('--unet-lr-mult', type=float, help='UNet lr multiplier (sd15 depth: 0.01)')
    p.add_argument('--text-lr-mult', type=float, help='text tower lr multiplier (0 = frozen)')
    p.add_argument('--dice-weight', type=float, help='refer: weight of an added Dice loss '
                   '(not official; tiny default 1.0, sd15 0)')
    p.add_argument('--grad-clip', type=float, default=0.0)
    p.add_argument('--precision', choices=('fp32', 'fp16', 'bf16'), default='fp32')
    p.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--resume', action='store_true', help='continue from <out>/checkpoint')
    p.add_argument('--save-every', type=int, default=200)
    p.add_argument('--save-dtype', choices=('float32', 'float16'), default='float32',
                   help='dtype of the final weights (float16 for shipping)')
    p.add_argument('--cache', default='/tmp/vpd_ros_scene_cache',
                   help='folder for the rendered-scene cache (one sub-folder per seeds/size)')
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    p.add_argument('--render-workers', type=int, default=1,
                   help='processes that render a missing scene cache')
    _add_data_args(p, '0:2000')
    p.set_defaults(func=run_train)
    return p


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` to an argparse sub-parser set and return its parser."""
    from .cli_common import add_engine_arguments
    p = subparsers.add_parser('eval', help='print official depth/referring metrics of a model',
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_engine_arguments(p)
    p.add_argument('--limit', type=int, default=0, help='evaluate at most N samples (0: all)')
    p.add_argument('--eigen-crop', action='store_true', help='NYUv2 Eigen crop (480x640 only)')
    p.add_argument('--min-depth', type=float, default=1e-3)
    p.add_argument('--max-depth', type=float, default=10.0)
    p.add_argument('--json-out', help='also write the metrics to this JSON file')
    p.add_argument('--by-category', action='store_true', help='rendered refer: also print the '
                   'metrics per kind of expression, word used and target size (a Markdown table)')
    _add_data_args(p, '1000000:1000200')
    p.set_defaults(func=run_eval)
    return p


def _depth_reader(args: argparse.Namespace) -> Any:
    from .data import NyuDepthSplit, UserDepthFolder
    if args.data == 'nyu':
        if not (args.root and args.list_file):
            raise ValueError('--data nyu needs --root and --list')
        return NyuDepthSplit(args.root, args.list_file)
    if args.data == 'user':
        if not args.folder:
            raise ValueError('--data user needs --folder for depth')
        return UserDepthFolder(args.folder)
    raise ValueError(f'--data {args.data} has no depth ground truth; use rendered, nyu or user')


def _refer_reader(args: argparse.Namespace) -> Any:
    from .data import RefCocoSplit, UserReferJson
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


def _scene_cache(args: argparse.Namespace, size: int) -> Any:
    """Render (once) the seeds at ``size``; datasets resize to other training sizes."""
    from .training.datasets import SceneCache
    folder = os.path.join(args.cache, f'seeds{args.seeds.start}-{args.seeds.stop}_{size}')
    return SceneCache.build(folder, args.seeds, size, progress=True,
                            workers=args.render_workers)


def _build_model(args: argparse.Namespace) -> Any:
    import torch

    from .model import VPDDepth, VPDRefer, get_preset
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
        from .training.autoencoder import copy_encoder, load_autoencoder
        copy_encoder(load_autoencoder(args.vae), model)
    if args.task == 'depth' and args.class_text_from:
        set_class_embeddings(model, VPDRefer.from_pretrained(args.class_text_from))
    return model


def set_class_embeddings(depth: Any, refer: Any) -> None:
    """Set ``depth.class_embeddings`` from the referring model's text tower, as VPD does with CLIP.

    Each class vector is the pooled (final-LN EOS) output averaged over ``CLASS_TEMPLATES``.
    """
    import torch

    from .model import tokenize
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

    from .model import get_preset
    from .training.datasets import DepthDataset, ReferDataset
    from .training.optim import LrSchedule, build_optimizer, default_schedule, freeze_vae
    from .training.trainer import (Trainer, TrainerConfig, depth_loss_fn, refer_loss_fn,
                                   save_weights)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = args.image_size or get_preset(args.preset)['image_size']
    defaults = VAE_DEFAULTS if args.task == 'vae' else TRAIN_DEFAULTS[(args.preset, args.task)]
    hp = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in defaults.items()}
    if args.data == 'rendered':
        source = _scene_cache(args, get_preset(args.preset)['image_size'])
    elif args.task == 'refer':
        source = _refer_reader(args)
    else:
        source = _depth_reader(args)
    config = TrainerConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                           precision=args.precision, device=args.device,
                           save_every=args.save_every, grad_clip=args.grad_clip)
    start = time.perf_counter()
    if args.task == 'vae':
        from .training.autoencoder import autoencoder_loss, build_autoencoder
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


def run_eval(args: argparse.Namespace) -> int:
    """Implement ``vpd-ros eval``: load the engine, run the chosen data, print the metrics."""
    from .cli_common import engine_from_args
    from .evaluate import evaluate_depth, evaluate_refer, rendered_depth, rendered_refer
    from .metrics import format_metrics
    engine = engine_from_args(args)
    limit: Optional[int] = args.limit or None
    results: Dict[str, Dict[str, float]] = {}
    by_category: Dict[str, Dict[str, float]] = {}
    if 'depth' in engine.tasks:
        samples = (rendered_depth(args.seeds) if args.data == 'rendered'
                   else _depth_reader(args))
        results['depth'] = evaluate_depth(engine, samples, args.min_depth, args.max_depth,
                                          args.eigen_crop, limit, progress=True)
    if 'refer' in engine.tasks:
        if args.by_category and args.data == 'rendered':
            from .data import render_scene
            from .refer_breakdown import format_breakdown, refer_breakdown
            seeds = args.seeds[:limit] if limit else args.seeds
            table = refer_breakdown(engine, map(render_scene, seeds))
            print(format_breakdown(table))
            results['refer'] = table['all']
            by_category = table
        else:
            samples = (rendered_refer(args.seeds) if args.data == 'rendered'
                       else _refer_reader(args))
            results['refer'] = evaluate_refer(engine, samples, limit, progress=True)
    for task, metrics in results.items():
        print(f'{task}: {format_metrics(metrics)}')
    if args.json_out:
        with open(args.json_out, 'w', encoding='utf-8') as f:
            json.dump({**results, 'refer_by_category': by_category} if by_category else results,
                      f, indent=1)
    return 0
