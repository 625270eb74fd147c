# Copyright 2026 The vpd_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fit the mask-score calibration of a model on held-out rendered scenes and check it on others.

Reproduce or refresh (e.g. after retraining the shipped model)::

    python -m vpd_ros.apps.calibrate_scores --weights tiny --write
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..engine.score_calibration import (CHECK_SEEDS, FILENAME, FIT_SEEDS, IOU_RIGHT, MODEL_FILE,
                                        ScoreCalibration, file_sha256, fit_logistic,
                                        mask_features, reliability)


def collect(engine, seeds: Sequence[int], progress: bool = True) -> Tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """Run every expression of the rendered scenes; return (features, right, raw score)."""
    from .evaluate import _progress, rendered_refer
    from .metrics import ReferMeter

    feats, right, raw, meter = [], [], [], ReferMeter()
    for group in _progress(rendered_refer(seeds), len(seeds), progress, 'calibrate'):
        pred = engine.predict(group.rgb, group.texts, depth=False)
        feats.append(mask_features(pred.probs, pred.masks))
        right += [meter.update(m, gt) >= IOU_RIGHT for m, gt in zip(pred.masks, group.masks)]
        raw += [float(p[m].mean()) if m.any() else 0.0 for p, m in zip(pred.probs, pred.masks)]
    return np.concatenate(feats), np.asarray(right, np.float64), np.asarray(raw)


def calibrate(engine, fit_seeds: Sequence[int], check_seeds: Sequence[int],
              progress: bool = True) -> ScoreCalibration:
    """Fit on ``fit_seeds``, then measure raw and calibrated scores on ``check_seeds``."""
    x, y, _ = collect(engine, fit_seeds, progress)
    w, b = fit_logistic(x, y)
    cal = ScoreCalibration(weights=[float(v) for v in w], bias=b,
                           fit_seeds=[fit_seeds[0], fit_seeds[-1] + 1],
                           check_seeds=[check_seeds[0], check_seeds[-1] + 1])
    xc, yc, raw = collect(engine, check_seeds, progress)
    cal.check = {'raw': reliability(raw, yc), 'calibrated': reliability(cal.predict(xc), yc)}
    return cal


def main(argv: Optional[List[str]] = None) -> int:
    """Fit the score calibration of a model and print (and with --write store) it."""
    parser = argparse.ArgumentParser(prog='python -m vpd_ros.apps.calibrate_scores',
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--weights', default='tiny', help='shipped model name or model folder')
    parser.add_argument('--fit-seeds', default='{}:{}'.format(*FIT_SEEDS),
                        help='rendered scene seeds start:stop to fit on')
    parser.add_argument('--check-seeds', default='{}:{}'.format(*CHECK_SEEDS),
                        help='rendered scene seeds start:stop to check on')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--write', action='store_true',
                        help=f'store {FILENAME} in the model\'s refer/ folder')
    args = parser.parse_args(argv)
    from ..engine import EngineConfig, EngineSpec, load_engine
    from ..engine.loader import model_folder
    from .cli_data import parse_seeds

    fit, check = parse_seeds(args.fit_seeds), parse_seeds(args.check_seeds)
    engine = load_engine(EngineSpec(weights=args.weights, tasks=('refer',)),
                         EngineConfig(device='cpu', num_threads=args.threads))
    refer = os.path.join(model_folder(args.weights), 'refer')
    cal = calibrate(engine, fit, check)
    cal.model_sha256 = file_sha256(os.path.join(refer, MODEL_FILE))
    cal.command = ('python -m vpd_ros.apps.calibrate_scores --weights {} --fit-seeds {} '
                   '--check-seeds {} --write').format(args.weights, args.fit_seeds,
                                                      args.check_seeds)
    print(json.dumps(asdict(cal), indent=2))
    if args.write:
        print('wrote', cal.save(refer))
    return 0


if __name__ == '__main__':
    sys.exit(main())
