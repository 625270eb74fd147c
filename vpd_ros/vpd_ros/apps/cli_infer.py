# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``vpd-ros infer``: depth and referred masks for image files (see :data:`DESCRIPTION`)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from .cli_common import RawDescriptionHelpFormatter, add_engine_arguments, frame_settings

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
#: Images with more pixels than this are not run (reported as failed); see --max-megapixels.
MAX_MEGAPIXELS = 64.0
#: Bytes of memory per input pixel, and more per query, on top of the model (measured, README:
#: a 4000x3000 image with one query peaked 480 MB above a 320x240 one).
BYTES_PER_PIXEL, BYTES_PER_PIXEL_QUERY = 36, 6

DESCRIPTION = """Depth and referred masks for image files, written next to each other.

Per image: <name>_depth.png (uint16 millimetres, 0 = invalid), <name>_depth.npy (float32
metres), <name>_mask-<query slug>.png (0/255 per query) and <name>_vis.png (input | depth
with a colour bar in metres | masks). <name> is the file's stem, made unique within the run
(x.png and x.jpg give x_png and x_jpg), so no output overwrites another. Exit code: 0 when
every image was processed, 1 when some failed, 2 for a usage error."""


def add_infer_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``infer``."""
    p = subparsers.add_parser('infer', help='run depth / queries on image files or a folder',
                              description=DESCRIPTION,
                              formatter_class=RawDescriptionHelpFormatter)
    p.add_argument('inputs', nargs='+', help='image files or folders of images')
    p.add_argument('--output', '-o', required=True, help='output folder (created if missing)')
    p.add_argument('--query', '-q', action='append', default=[],
                   help='referring expression, e.g. "the red mug" (repeat for several)')
    p.add_argument('--max-megapixels', type=float, default=MAX_MEGAPIXELS,
                   help='larger images are not run (reported as failed); images over a quarter '
                   'of it get a warning with the memory they will take')
    add_engine_arguments(p)
    p.set_defaults(func=run_infer)


def list_images(inputs: Sequence[str]) -> List[str]:
    """Expand folders to their image files (sorted); keep files as given; raise for neither."""
    files = []
    for path in inputs:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, f) for f in os.listdir(path)
                            if f.lower().endswith(IMAGE_EXTENSIONS)
                            and os.path.isfile(os.path.join(path, f)))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'{path}: no such file or folder')
    return files


def output_names(files: Sequence[str]) -> List[str]:
    """Return a distinct output name per file: its stem, or stem_ext (then _2, _3) on clashes."""
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    names = [s if stems.count(s) == 1 else os.path.basename(f).replace('.', '_')
             for s, f in zip(stems, files)]
    unique: List[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in unique:
            n += 1
            candidate = f'{name}_{n}'
        unique.append(candidate)
    return unique


def query_slugs(queries: Sequence[str], length: int = 40) -> List[str]:
    """Return a distinct file-name slug per query: lower-case words joined by '-'."""
    slugs = []
    for i, q in enumerate(queries):
        slug = re.sub(r'[^a-z0-9]+', '-', q.lower()).strip('-')[:length].rstrip('-') or 'query'
        slugs.append(slug if slug not in slugs else f'{slug}-{i + 1}')
    return slugs


def check_queries(queries: Sequence[str]) -> Optional[str]:
    """Return why the queries cannot be used (an empty or blank one), or None."""
    for i, q in enumerate(queries, 1):
        if not q.strip():
            return f'query {i} is empty: give the object to look for, e.g. -q "the red mug"'
    return None


def memory_estimate(pixels: int, queries: int) -> int:
    """Return the bytes one image of ``pixels`` with ``queries`` queries takes beyond the model."""
    return pixels * (BYTES_PER_PIXEL + BYTES_PER_PIXEL_QUERY * queries)


def depth_to_png_mm(depth: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres; invalid or out-of-range (> 65.535 m) -> 0."""
    mm = np.where(np.isfinite(depth) & (depth > 0), np.round(depth * 1000.0), 0.0)
    return np.where(mm > 65535, 0, mm).astype(np.uint16)


def check_arguments(args: argparse.Namespace) -> Tuple[Optional[str], List[str]]:
    """Return (the usage problem or None, the image files) before any model is loaded."""
    problem = check_queries(args.query)
    if problem:
        return problem, []
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        return f'output {args.output} exists and is not a folder', []
    if args.max_megapixels <= 0:
        return f'--max-megapixels {args.max_megapixels} must be > 0', []
    try:
        files = list_images(args.inputs)
    except FileNotFoundError as error:
        return str(error), []
    if not files:
        return f'no image files ({", ".join(IMAGE_EXTENSIONS)}) in {" ".join(args.inputs)}', []
    return None, files


def report_cut_queries(engine, queries: Sequence[str]) -> None:
    """Say which queries are longer than the model's text tokens and are cut."""
    if not queries:  # the tokenizer fails on an empty list
        return
    from ..model.text import tokenize

    for q, cut in zip(queries, tokenize(list(queries), engine.token_length).truncated):
        if cut:
            shown = q if len(q) <= 60 else q[:57] + '...'
            print(f'warning: query {shown!r} ({len(q)} characters) is longer than the model\'s '
                  f'{engine.token_length} text tokens: only its beginning is used',
                  file=sys.stderr)


def write_image(path: str, image: np.ndarray) -> None:
    """Write an image file; raise OSError when OpenCV could not (it only returns False)."""
    import cv2

    if not cv2.imwrite(path, image):
        raise OSError(f'could not write {path}')


def process_image(engine, path: str, name: str, args: argparse.Namespace,
                  slugs: Sequence[str], warn: Callable[[str], None]) -> str:
    """Run one image and write its files; return its result line; raise ValueError if unusable.

    An image over a quarter of ``--max-megapixels`` gets a warning with the memory it takes.
    """
    import cv2

    from ..engine.visualize import depth_picture, overlay_masks, side_by_side

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError('not a readable image')
    pixels = bgr.shape[0] * bgr.shape[1]
    if pixels > args.max_megapixels * 1e6:
        raise ValueError(f'{bgr.shape[0]}x{bgr.shape[1]} pixels ({pixels / 1e6:.1f} megapixels) '
                         f'is over --max-megapixels {args.max_megapixels:g}; downscale it or '
                         'raise the limit')
    if pixels > args.max_megapixels * 1e6 / 4:
        warn(f'warning: {path} has {pixels / 1e6:.1f} megapixels: it takes about '
             f'{memory_estimate(pixels, len(args.query)) / 2 ** 30:.2f} GiB of memory on top of '
             'the model')
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    pred = engine.predict(rgb, args.query, depth=engine.depth is not None,
                          **frame_settings(args))
    stem = os.path.join(args.output, name)
    panels, titles = [bgr], ['input']
    if pred.depth is not None:
        write_image(stem + '_depth.png', depth_to_png_mm(pred.depth))
        np.save(stem + '_depth.npy', pred.depth)
        panels.append(depth_picture(pred.depth))
        titles.append('depth')
    for slug, mask in zip(slugs, pred.masks):
        write_image(f'{stem}_mask-{slug}.png', mask.astype(np.uint8) * 255)
    if len(pred.masks):
        panels.append(overlay_masks(rgb, list(pred.masks), list(args.query)))
        titles.append('masks')
    write_image(stem + '_vis.png', side_by_side(panels, titles))
    summary = ', '.join(f'{q!r}: {int(m.sum())} px, score {s:.2f}'
                        for q, m, s in zip(args.query, pred.masks, pred.scores))
    return f'{path}: {pred.timings["total"]:.0f} ms' + (f'; {summary}' if summary else '')


def run_infer(args: argparse.Namespace) -> int:
    """Run the engine on every image; 0 when all were processed, 1 when some failed, 2 usage."""
    problem, files = check_arguments(args)
    if problem:
        print(f'vpd-ros infer: error: {problem}', file=sys.stderr)
        return 2
    from tqdm import tqdm

    from .cli_common import engine_from_args

    try:
        engine = engine_from_args(args)
    except (OSError, ValueError) as error:
        print(f'vpd-ros infer: error: cannot load the model: {error}', file=sys.stderr)
        return 2
    if args.query and engine.refer is None:
        print('vpd-ros infer: error: --query needs a referring model (--tasks must include '
              'refer)', file=sys.stderr)
        return 2
    report_cut_queries(engine, args.query)
    os.makedirs(args.output, exist_ok=True)
    slugs = query_slugs(args.query)
    failed: List[str] = []
    bar = tqdm(list(zip(files, output_names(files))), desc='infer', unit='img', file=sys.stderr)
    for path, name in bar:
        try:
            line = process_image(engine, path, name, args, slugs,
                                 lambda text: bar.write(text, file=sys.stderr))
            bar.write(line, file=sys.stdout)
        except Exception as error:  # noqa: BLE001 - one bad image never stops the batch
            failed.append(path)
            bar.write(f'{path}: failed: {error}', file=sys.stderr)
    bar.close()
    done = len(files) - len(failed)
    print(f'processed {done} of {len(files)} images'
          + (f', {len(failed)} failed ({", ".join(failed)})' if failed else '')
          + f'; outputs in {os.path.abspath(args.output)}')
    return 1 if failed else 0
